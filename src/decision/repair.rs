//! Every stored state is untrusted: it was written by this controller, but
//! it sits in a table people can edit, and an old or broken writer may have
//! left anything there. Before a state is decided on, every value in it is
//! checked and bounded here, so nothing read from the table can panic a tick
//! or stop a function for good (a `next_check_ms` of 1e30 would rest it
//! forever, a `heat` of 1e308 would ask for the policy's `max` at every
//! look). A value that can be put right is; a state whose shape is wrong is
//! refused, and the caller starts the function afresh and says why.

use super::FunctionState;
use super::Policy;
use super::forecast::{HEAT_RANGE, MAX_DEMAND, QUANTILE_RANGE, Z_RANGE, Z_START};

/// How far ahead of `now` a stored time may lie: a look or a warm is never
/// planned further than the longest rest, and a day covers every learner.
const FUTURE_LIMIT_MS: u64 = 86_400_000;
/// Longest lists kept in a state: anything longer was not written by this
/// controller, and is cut to its newest entries.
const LIST_LIMIT: usize = 64;

impl FunctionState {
    /// Checks and bounds every value. Returns what had to be put right (empty
    /// when nothing), or why the state cannot be used at all.
    pub fn repair(&mut self, now_ms: u64) -> Result<Vec<String>, String> {
        self.check_geometry()?;
        let mut fixed = Vec::new();
        self.bound_numbers(&mut fixed);
        self.bound_times(now_ms, &mut fixed);
        self.bound_lists(&mut fixed);
        Ok(fixed)
    }

    /// The forecaster's season and buckets must agree: nothing else about
    /// a state whose bucket list does not fit its season can be trusted.
    fn check_geometry(&self) -> Result<(), String> {
        let f = &self.forecaster;
        let geometry_ok = matches!(f.season_minutes, 1_440 | 10_080)
            && f.bucket_minutes > 0
            && f.season_minutes.is_multiple_of(f.bucket_minutes)
            && f.buckets.len() == (f.season_minutes / f.bucket_minutes) as usize;
        if !geometry_ok {
            return Err(format!(
                "stored forecaster has {} buckets for a {}-minute season of {}-minute buckets",
                f.buckets.len(),
                f.season_minutes,
                f.bucket_minutes
            ));
        }
        Ok(())
    }

    /// Every number within the range its learner can produce; a value that
    /// is not a number at all takes the learner's starting value.
    fn bound_numbers(&mut self, fixed: &mut Vec<String>) {
        let f = &mut self.forecaster;
        let mut bound = |name: &str, x: &mut f64, lo: f64, hi: f64, fallback: f64| {
            if !(x.is_finite() && (lo..=hi).contains(x)) {
                fixed.push(format!("{name} ({x}) outside {lo}..{hi}"));
                *x = if x.is_finite() {
                    x.clamp(lo, hi)
                } else {
                    fallback
                };
            }
        };
        bound("recent", &mut f.recent, 0.0, MAX_DEMAND, 0.0);
        bound(
            "recent_var",
            &mut f.recent_var,
            0.0,
            MAX_DEMAND * MAX_DEMAND,
            0.0,
        );
        bound("heat", &mut f.heat, HEAT_RANGE.0, HEAT_RANGE.1, 1.0);
        bound("heat_seen", &mut f.heat_seen, 0.0, MAX_DEMAND, 0.0);
        bound("heat_expected", &mut f.heat_expected, 0.0, MAX_DEMAND, 0.0);
        bound("last_peak", &mut f.last_peak, 0.0, MAX_DEMAND, 0.0);
        bound("active_share", &mut f.active_share, 0.0, 1.0, 0.0);
        bound("z", &mut f.z, Z_RANGE.0, Z_RANGE.1, Z_START);
        bound(
            "quantile",
            &mut f.quantile,
            QUANTILE_RANGE.0,
            QUANTILE_RANGE.1,
            Policy::default().quantile,
        );
        bound("busy", &mut self.busy, 0.0, MAX_DEMAND, 0.0);
        bound("busy_low", &mut self.busy_low, 0.0, MAX_DEMAND, 0.0);
        bound("busy_share", &mut self.busy_share, 0.0, 1.0, 0.0);
        bound("cold_rate", &mut self.cold_rate, 0.0, 1.0, 0.0);
        bound(
            "duration_ms",
            &mut self.duration_ms,
            0.0,
            super::demand::MAX_DURATION_MS,
            0.0,
        );
        let mut avoidable = self.avoidable.per_minute as f64;
        bound("avoidable", &mut avoidable, 0.0, MAX_DEMAND, 0.0);
        self.avoidable.per_minute = avoidable as f32;
        if let Some(open) = f.open.as_mut() {
            bound("open window peak", &mut open.peak, 0.0, MAX_DEMAND, 0.0);
        }
        for b in f.buckets.iter_mut() {
            if !(b.mean.is_finite() && b.sd.is_finite()) {
                b.mean = 0.0;
                b.sd = 0.0;
                b.n = 0;
            }
            b.mean = b.mean.clamp(0.0, MAX_DEMAND as f32);
            b.sd = b.sd.clamp(0.0, MAX_DEMAND as f32);
        }
        f.predicted.retain(|p| p.1.is_finite());
        for p in f.predicted.iter_mut() {
            p.1 = p.1.clamp(0.0, MAX_DEMAND as f32);
            p.2 = p.2.min(MAX_DEMAND as u32);
        }

        if self.read_every_minutes > super::READ_EVERY_MAX_CHEAP_MINUTES {
            fixed.push(format!(
                "read_every_minutes ({}) above {}",
                self.read_every_minutes,
                super::READ_EVERY_MAX_CHEAP_MINUTES
            ));
            self.read_every_minutes = 0;
        }
        if self.known.len() > super::KNOWN_MAX {
            fixed.push(format!(
                "known: {} sandbox ids, above {}",
                self.known.len(),
                super::KNOWN_MAX
            ));
            // Too many to be one warm's: none is safer than a wrong few.
            self.known.clear();
        }
        if self.init_ms as u64 > super::pings::MAX_INIT_WAIT_MS {
            fixed.push(format!(
                "init_ms ({}) above {}",
                self.init_ms,
                super::pings::MAX_INIT_WAIT_MS
            ));
            self.init_ms = super::pings::MAX_INIT_WAIT_MS as u32;
        }
        if self.fan_out_us > super::delay::FAN_OUT_MAX_US {
            fixed.push(format!(
                "fan_out_us ({}) above {}",
                self.fan_out_us,
                super::delay::FAN_OUT_MAX_US
            ));
            self.fan_out_us = super::delay::FAN_OUT_MAX_US;
        }
        if self.run.is_some_and(|r| !r.is_sane()) {
            fixed.push("run: spacing or end out of range".into());
            self.run = None;
        }
    }

    /// No time more than a day ahead of `now`, and nothing recorded after it.
    fn bound_times(&mut self, now_ms: u64, fixed: &mut Vec<String>) {
        let f = &mut self.forecaster;
        let latest = now_ms.saturating_add(FUTURE_LIMIT_MS);
        let mut not_after = |name: &str, t: &mut u64| {
            if *t > latest {
                fixed.push(format!("{name} ({t}) is more than a day ahead"));
                *t = now_ms;
            }
        };
        not_after("next_check_ms", &mut self.next_check_ms);
        not_after("next_due_ms", &mut self.next_due_ms);
        not_after("survival.last_warm_ms", &mut self.survival.last_warm_ms);
        not_after("survival.died_at_ms", &mut self.survival.died_at_ms);
        if self.watermark_minute.is_some_and(|w| w > latest / 60_000) {
            fixed.push("watermark_minute is in the future".into());
            self.watermark_minute = None;
        }
        if self.detail_minute.is_some_and(|w| w > latest / 60_000) {
            fixed.push("detail_minute is in the future".into());
            self.detail_minute = None;
        }
        let latest_window = latest / 60_000 / super::policy::WINDOW_MINUTES as u64;
        if f.open.is_some_and(|o| o.index > latest_window) {
            fixed.push("the open window is in the future".into());
            f.open = None;
        }
        if f.last_index > latest_window {
            f.last_index = 0;
        }
        f.predicted.retain(|p| p.0 <= latest_window + 1_000);
        self.outcomes.retain(|o| o.index <= latest_window);
        self.warms.retain(|w| w.at_ms <= latest);
        for w in self.warms.iter_mut() {
            w.hold_ms = w.hold_ms.min(60_000);
        }
    }

    /// Lists cut to their newest [`LIST_LIMIT`] entries.
    fn bound_lists(&mut self, fixed: &mut Vec<String>) {
        let f = &mut self.forecaster;
        let mut cut = |name: &str, len: usize| {
            if len > LIST_LIMIT {
                fixed.push(format!("{name} had {len} entries"));
            }
        };
        cut("warms", self.warms.len());
        cut("outcomes", self.outcomes.len());
        cut("decisions", self.decisions.len());
        cut("forecaster.predicted", f.predicted.len());
        cut("survival.pending", self.survival.pending.len());
        keep_newest(&mut self.warms);
        keep_newest(&mut self.outcomes);
        keep_newest(&mut self.decisions);
        keep_newest(&mut f.predicted);
        keep_newest(&mut self.survival.pending);
        for o in self.outcomes.iter_mut() {
            if !o.realized.is_finite() {
                o.realized = 0.0;
            }
            o.realized = o.realized.clamp(0.0, MAX_DEMAND as f32);
        }
    }
}

fn keep_newest<T>(v: &mut Vec<T>) {
    let extra = v.len().saturating_sub(LIST_LIMIT);
    v.drain(..extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Observation, Policy, decide};
    use proptest::prelude::*;

    const NOW: u64 = 1_764_150_000_000;

    #[test]
    fn buckets_of_the_wrong_length_are_refused_not_indexed() {
        let mut st = FunctionState::new(&Policy::default());
        st.forecaster.buckets.truncate(2);
        let err = st.repair(NOW).unwrap_err();
        assert!(err.contains("2 buckets"), "{err}");
    }

    #[test]
    fn absurd_values_are_bounded_and_named() {
        let mut st = FunctionState::new(&Policy::default());
        st.next_check_ms = u64::MAX / 2;
        st.forecaster.heat = 1e308;
        st.forecaster.recent = f64::NAN;
        st.forecaster.active_share = 7.0;
        st.avoidable.per_minute = f32::NAN;
        st.known = vec![7; 9];
        st.fan_out_us = u32::MAX;
        // A plan whose slots never end (or come every 0 ms).
        st.run = Some(crate::decision::Run {
            first_ms: NOW,
            every_ms: 0,
            until_ms: u64::MAX,
            n: u32::MAX,
            hold_ms: 300,
            reached: u32::MAX,
            busy: 0,
        });
        let fixed = st.repair(NOW).unwrap();
        assert_eq!(fixed.len(), 8, "{fixed:?}");
        assert_eq!(st.run, None);
        assert_eq!(st.fan_out_us, crate::decision::delay::FAN_OUT_MAX_US);
        assert!(st.known.is_empty());
        assert_eq!(st.avoidable.per_minute, 0.0);
        assert_eq!(st.forecaster.active_share, 1.0);
        assert_eq!(st.next_check_ms, NOW);
        assert_eq!(st.forecaster.heat, 2.5);
        assert_eq!(st.forecaster.recent, 0.0);
        let policy = Policy {
            max: 100,
            ..Policy::default()
        };
        let d = decide(&policy, &mut st, &Observation::default(), NOW);
        assert_eq!(d.target, 0, "nothing learned, nothing warmed: {d:?}");
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)),
            "[a-zA-Z0-9+/=]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any field of a real state replaced by any JSON value: it either
        /// does not read, or is refused, or decides without panicking.
        #[test]
        fn no_stored_state_can_panic_a_decision(field in 0usize..40, value in any_json()) {
            let policy = Policy::default();
            let mut st = FunctionState::new(&policy);
            st.forecaster.observe_minute(100, 5.0, 0.2);
            let mut json = serde_json::to_value(&st).unwrap();
            let paths: Vec<(String, Option<String>)> = json.as_object().unwrap().iter().flat_map(|(k, v)| {
                let mut p = vec![(k.clone(), None)];
                if let Some(o) = v.as_object() {
                    p.extend(o.keys().map(|k2| (k.clone(), Some(k2.clone()))));
                }
                p
            }).collect();
            let (k, k2) = &paths[field % paths.len()];
            match k2 {
                None => json[k] = value,
                Some(k2) => json[k][k2] = value,
            }
            if let Ok(mut st) = serde_json::from_value::<FunctionState>(json)
                && st.repair(NOW).is_ok()
            {
                let obs = Observation { complete_until_minute: NOW / 60_000 - 2, metrics: crate::decision::MetricsStatus::Fresh, ..Observation::default() };
                let d = decide(&policy, &mut st, &obs, NOW);
                prop_assert!(d.target <= policy.max);
                prop_assert!(d.next_check_ms <= NOW + FUTURE_LIMIT_MS);
            }
        }
    }
}
