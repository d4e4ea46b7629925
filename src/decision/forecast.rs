//! The forecaster: next-window peak concurrency from per-minute demand.
//!
//! Demand arrives one minute at a time (already corrected for forewarm's own
//! pings, see [`super::demand`]). Minutes are grouped into fixed windows of
//! [`WINDOW_MINUTES`]; the peak of each closed window is one sample. Samples
//! are learned twice:
//!
//! * **seasonally**, in the time-of-day bucket the window falls in (a day or a
//!   week of buckets, `bucket_minutes` wide): an exponentially smoothed mean
//!   and dispersion per bucket, with weight `alpha`;
//! * **short-term**, in a level that follows the last few windows (`recent`)
//!   and a "heat" ratio that says how much hotter or cooler than its buckets
//!   today runs.
//!
//! A window's point forecast blends its bucket (scaled by heat) with the
//! short-term level, weighting the bucket by how often it has been seen, so a
//! new function starts from what little it has instead of zero.
//!
//! The warm target is `ceil(point + z * spread)`: `spread` is the window's
//! learned standard deviation (its bucket's, blended with the short-term
//! level's while the bucket is young), and `z` a calibrated quantile of the
//! errors in those units. Every forecast issued for a window is remembered;
//! when the window's real peak is learned, `z` moves up by `step * q` if the
//! peak exceeded the target and down by `step * (1 - q)` if not. Over any long
//! stretch the share of windows above target is then `1 - q`, even when the
//! series changes under it (adaptive conformal inference, Gibbs & Candès
//! 2021, in its quantile-tracking form). The spread carries the scale, per
//! time of day (a quiet evening gets a small one, a bursty noon a large one),
//! `z` only the shape of the tails. No distribution is assumed and nothing is
//! padded: a perfectly steady function gets no more than its peak.
//!
//! One floor follows from the quantile itself: when more than `1 - q` of a
//! function's windows (over about a day, whatever the time of day) need a
//! sandbox, the `q` quantile of its window peak is at least one, so the
//! target is at least one. A function called now and then all day has too
//! few calls in any one bucket for the bucket to say so; without the floor it
//! was warmed for a few hours after each call and then let go, and a third of
//! its calls were cold where one ping every five minutes had none.

use serde::{Deserialize, Serialize};

use super::policy::{Policy, WINDOW_MINUTES};

/// Weight of each new window in the short-term level and heat. Larger than a
/// bucket's `alpha`: it must notice within half an hour that today runs hot.
const SHORT_TERM_WEIGHT: f64 = 0.3;
/// Heat is a ratio of today to usual; beyond these it is more likely a change
/// of regime than a hot day, and the buckets will learn it anyway.
pub(crate) const HEAT_RANGE: (f64, f64) = (0.5, 2.5);
/// No function runs more sandboxes than this; larger readings are garbage and
/// would overflow the variance.
pub(crate) const MAX_DEMAND: f64 = 1.0e7;
/// A bucket expecting less than this share of the latest window's bucket is
/// a drop the season knows (an evening, a night), not noise.
const SEASONAL_DROP: f64 = 0.5;
/// Samples after which a bucket's own statistics are trusted fully.
const TRUSTED_SAMPLES: f64 = 3.0;
/// The step of `z` per scored window, in units of the window's spread.
const Z_STEP: f64 = 0.25;
/// Where `z` starts: a normal's 0.98 quantile, between the 0.95 and 0.99
/// users ask for, refined by the tracker from the first scored window.
pub(crate) const Z_START: f64 = 2.0;
/// `z` stays in this range: a wild series must not make targets explode.
/// It may go below zero: targets are whole sandboxes, rounded up, and at a
/// low quantile the rounding alone can cover more than asked.
pub(crate) const Z_RANGE: (f64, f64) = (-2.0, 12.0);
/// The quantiles the tracker calibrates to: below a half a target under the
/// point forecast is asked for, and at 1 no finite target covers.
pub(crate) const QUANTILE_RANGE: (f64, f64) = (0.5, 0.9999);
/// Forecasts remembered for scoring: the windows whose minutes have not been
/// read yet (up to an hour between reads, plus CloudWatch's lag: 13) and
/// those a plan of warms issued ahead (up to an hour: 12 more).
const PREDICTIONS_KEPT: usize = 32;
/// Weight of each window in the share of windows with any demand: about a
/// day of windows.
const ACTIVE_WEIGHT: f64 = 1.0 / 288.0;

/// One time-of-day bucket's learned statistics of window peaks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket {
    /// Smoothed mean of the window peaks seen in this bucket.
    pub mean: f32,
    /// Smoothed standard deviation of those peaks.
    pub sd: f32,
    /// How many windows taught this bucket (saturates at 255).
    pub n: u8,
}

/// The window being filled with minutes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// Window index: epoch minute / [`WINDOW_MINUTES`].
    pub index: u64,
    /// Peak demand seen in it so far.
    pub peak: f64,
}

/// The forecaster's whole memory. Serializable; the buckets pack into a short
/// base64 string so a week of 30-minute buckets stays well under 4 KB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecaster {
    /// Season length the buckets were learned with, minutes.
    pub season_minutes: u32,
    /// Bucket width the buckets were learned with, minutes.
    pub bucket_minutes: u32,
    /// The buckets, packed.
    #[serde(with = "packed")]
    pub buckets: Vec<Bucket>,
    /// Short-term level of window peaks.
    #[serde(serialize_with = "super::short")]
    pub recent: f64,
    /// Short-term variance of window peaks.
    #[serde(serialize_with = "super::short")]
    pub recent_var: f64,
    /// Today against usual: the smoothed ratio of window peaks to their
    /// buckets' means.
    #[serde(serialize_with = "super::short")]
    pub heat: f64,
    /// Smoothed window peaks seen, for heat.
    #[serde(default, serialize_with = "super::short")]
    pub heat_seen: f64,
    /// Smoothed window peaks the buckets expected, for heat.
    #[serde(default, serialize_with = "super::short")]
    pub heat_expected: f64,
    /// Windows learned so far (saturating).
    pub windows_seen: u32,
    /// The window being filled.
    pub open: Option<OpenWindow>,
    /// The last closed window's peak.
    #[serde(default, serialize_with = "super::short")]
    pub last_peak: f64,
    /// The last closed window's index.
    #[serde(default)]
    pub last_index: u64,
    /// Calibrated quantile of the forecast's errors in units of the
    /// window's learned spread: the target is `point + z * spread`.
    #[serde(default = "z_start", serialize_with = "super::short")]
    pub z: f64,
    /// The quantile the offset is calibrated to (the policy's `quantile`).
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// Whether covered windows may lower the offset (false while real cold
    /// starts run above the policy's budget). Set before each observation.
    #[serde(skip, default = "yes")]
    pub may_narrow: bool,
    /// Forecasts issued for windows not yet learned, oldest first.
    #[serde(default)]
    pub predicted: Vec<Prediction>,
    /// Smoothed share of windows that needed a sandbox at all, whatever the
    /// time of day.
    #[serde(default, serialize_with = "super::short")]
    pub active_share: f64,
}

fn default_quantile() -> f64 {
    Policy::default().quantile
}

fn z_start() -> f64 {
    Z_START
}

fn yes() -> bool {
    true
}

/// The forecast in force for one window, kept until its peak is known:
/// window index, point forecast, and the whole-sandbox target issued.
/// Stored as a three-element array, to keep the state item small.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction(pub u64, pub f32, pub u32);

/// A closed window, reported so the caller can run feedback on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedWindow {
    /// Window index (epoch minute / [`WINDOW_MINUTES`]).
    pub index: u64,
    /// Its realized peak demand.
    pub peak: f64,
    /// Whether the peak went above the target forecast for the window
    /// (`None` when no forecast was issued for it).
    pub missed: Option<bool>,
}

/// What the forecaster expects of the coming windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// The largest expected peak (mean) among the windows in the horizon.
    pub mean: f64,
    /// The warm target before caps: the quantile of the horizon's peak.
    pub target: u32,
}

impl Forecaster {
    /// A forecaster with no history, shaped by the policy.
    pub fn new(policy: &Policy) -> Self {
        let season = policy.season.minutes();
        Forecaster {
            season_minutes: season,
            bucket_minutes: policy.bucket_minutes,
            buckets: vec![Bucket::default(); (season / policy.bucket_minutes) as usize],
            recent: 0.0,
            recent_var: 0.0,
            heat: 1.0,
            heat_seen: 0.0,
            heat_expected: 0.0,
            windows_seen: 0,
            open: None,
            last_peak: 0.0,
            last_index: 0,
            z: Z_START,
            quantile: policy.quantile,
            may_narrow: true,
            predicted: Vec::new(),
            active_share: 0.0,
        }
    }

    /// Re-shapes the buckets when the policy's season or bucket width changed
    /// (the old buckets mean nothing under the new geometry); keeps the
    /// short-term level, which does not depend on it.
    pub fn conform(&mut self, policy: &Policy) {
        self.quantile = policy.quantile;
        if self.season_minutes != policy.season.minutes()
            || self.bucket_minutes != policy.bucket_minutes
        {
            let fresh = Forecaster::new(policy);
            self.season_minutes = fresh.season_minutes;
            self.bucket_minutes = fresh.bucket_minutes;
            self.buckets = fresh.buckets;
        }
    }

    fn bucket_of(&self, window_index: u64) -> usize {
        let minute = window_index * WINDOW_MINUTES as u64;
        ((minute % self.season_minutes as u64) / self.bucket_minutes as u64) as usize
    }

    /// Folds one minute of demand in. Returns the window it closed, if the
    /// minute starts a new one. Minutes must come in increasing order; a gap
    /// (minutes with no data) simply leaves windows unlearned.
    pub fn observe_minute(&mut self, minute: u64, demand: f64, alpha: f64) -> Option<ClosedWindow> {
        let demand = if demand.is_finite() {
            demand.clamp(0.0, MAX_DEMAND)
        } else {
            0.0
        };
        let index = minute / WINDOW_MINUTES as u64;
        match &mut self.open {
            Some(w) if w.index == index => {
                w.peak = w.peak.max(demand);
                None
            }
            Some(w) if w.index > index => None, // out of order: already learned
            _ => {
                let closed = self.open.take().map(|w| self.learn(w, alpha));
                self.open = Some(OpenWindow {
                    index,
                    peak: demand,
                });
                closed
            }
        }
    }

    /// Closes the open window if `now_minute` is past its end, e.g. when a
    /// function's metrics stop (CloudWatch emits nothing when nothing runs, so
    /// the adapter normally sends zeros; this covers outages too).
    pub fn close_before(&mut self, now_minute: u64, alpha: f64) -> Option<ClosedWindow> {
        let w = self.open?;
        if (w.index + 1) * WINDOW_MINUTES as u64 <= now_minute {
            self.open = None;
            Some(self.learn(w, alpha))
        } else {
            None
        }
    }

    fn learn(&mut self, w: OpenWindow, alpha: f64) -> ClosedWindow {
        let x = w.peak;
        let missed = self.score(w.index, x);
        let b = self.bucket_of(w.index);
        let bucket = self.buckets[b];
        let expected = if bucket.n > 0 {
            bucket.mean as f64
        } else {
            self.recent
        };

        // Short-term level first: it seeds buckets that have never been seen.
        if self.windows_seen == 0 {
            // One sample says nothing about spread: it is learned from the
            // next ones, never guessed (a guess is padding in disguise).
            self.recent = x;
            self.recent_var = 0.0;
        } else {
            let d = x - self.recent;
            self.recent += SHORT_TERM_WEIGHT * d;
            self.recent_var =
                (1.0 - SHORT_TERM_WEIGHT) * (self.recent_var + SHORT_TERM_WEIGHT * d * d);
        }
        if bucket.n > 0 {
            // A ratio of smoothed sums, not a smoothed ratio: one window of 40
            // where the bucket expects 6 (a tail of requests running over an
            // hour's boundary) must not make the next hour run "7 times hot".
            self.heat_seen += SHORT_TERM_WEIGHT * (x - self.heat_seen);
            self.heat_expected += SHORT_TERM_WEIGHT * (expected - self.heat_expected);
            self.heat = ((self.heat_seen + 1.0) / (self.heat_expected + 1.0))
                .clamp(HEAT_RANGE.0, HEAT_RANGE.1);
        }

        let slot = &mut self.buckets[b];
        if slot.n == 0 {
            // A bucket's spread is its own: until it has seen a few windows,
            // the short-term level's spread stands in through the blend.
            slot.mean = x as f32;
            slot.sd = 0.0;
        } else {
            let mean = slot.mean as f64;
            let var = (slot.sd as f64).powi(2);
            let d = x - mean;
            slot.mean = (mean + alpha * d) as f32;
            slot.sd = ((1.0 - alpha) * (var + alpha * d * d)).sqrt() as f32;
        }
        slot.n = slot.n.saturating_add(1);
        let active = if x > 0.01 { 1.0 } else { 0.0 };
        self.active_share += ACTIVE_WEIGHT * (active - self.active_share);
        self.windows_seen = self.windows_seen.saturating_add(1);
        self.last_peak = x;
        self.last_index = w.index;
        ClosedWindow {
            index: w.index,
            peak: x,
            missed,
        }
    }

    /// Scores the forecast that was in force for window `index` against its
    /// real peak and moves the offset: the quantile tracker. Returns whether
    /// the peak missed the forecast's target.
    fn score(&mut self, index: u64, peak: f64) -> Option<bool> {
        let found = self.predicted.iter().find(|p| p.0 == index).copied();
        self.predicted.retain(|p| p.0 > index);
        let Prediction(_, point, target) = found?;
        if !(peak.is_finite() && point.is_finite()) {
            return None;
        }
        let missed = peak > target as f64 + 1e-9;
        let q = self.quantile.clamp(QUANTILE_RANGE.0, QUANTILE_RANGE.1);
        // A window where nothing was expected and nothing came says nothing
        // of the tails: counted, the idle nights of a day-time function (or
        // the quiet windows a floor keeps one sandbox warm in) would push `z`
        // down until the busy windows missed for them.
        let idle = peak <= 0.0 && point <= 0.01;
        if missed {
            self.z += Z_STEP * q;
        } else if self.may_narrow && !idle {
            self.z -= Z_STEP * (1.0 - q);
        }
        self.z = self.z.clamp(Z_RANGE.0, Z_RANGE.1);
        Some(missed)
    }

    /// Point forecast of one window's peak, and the spread of that peak (its
    /// standard deviation as the buckets and the short-term level learned
    /// it), both in sandboxes.
    pub fn window_estimate(&self, index: u64) -> (f64, f64) {
        let b = self.buckets[self.bucket_of(index)];
        // A bucket is trusted fully once it has seen a few windows; before
        // that it is blended with the short-term level, so one odd sample does
        // not decide alone. Short-term swings after that are heat's job.
        let w = (b.n as f64 / TRUSTED_SAMPLES).min(1.0);
        let seasonal = b.mean as f64 * self.heat;
        let seasonal_sd = b.sd as f64 * self.heat;
        let mut point = (w * seasonal + (1.0 - w) * self.recent).max(0.0);
        let mut var = w * seasonal_sd * seasonal_sd
            + (1.0 - w) * self.recent_var
            + w * (1.0 - w) * (seasonal - self.recent).powi(2);
        // Today may run hotter than the buckets know: the short-term level
        // (no higher than the latest window, so a drop already seen does not
        // hold it up) is a floor, except where the season itself expects a
        // clear drop from the latest window (to less than half: the evening
        // the buckets have learned is not overridden by the afternoon's
        // level). A smaller difference is today's own rise showing in the
        // buckets, which learn within the day, and the level stands.
        let last = self.buckets[self.bucket_of(self.last_index)];
        let trusted = |x: Bucket| x.n as f64 >= TRUSTED_SAMPLES;
        let ratio = (b.mean as f64 + 1.0) / (last.mean as f64 + 1.0);
        let season_ratio = if trusted(b) && trusted(last) && ratio < SEASONAL_DROP {
            ratio
        } else {
            1.0
        };
        let level = self.recent.min(self.last_peak) * season_ratio;
        if level > point {
            point = level;
            var = var.max(self.recent_var * season_ratio * season_ratio);
        }
        // The window being filled is at least as busy as it has been so far.
        if let Some(open) = self.open
            && open.index == index
        {
            point = point.max(open.peak);
        }
        let finite = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, MAX_DEMAND)
            } else {
                0.0
            }
        };
        (finite(point), finite(var).sqrt())
    }

    /// Point forecast of one window's peak.
    pub fn window_point(&self, index: u64) -> f64 {
        self.window_estimate(index).0
    }

    /// One window's point forecast and its whole-sandbox target.
    fn window_forecast(&self, index: u64) -> (f64, u32) {
        let (point, spread) = self.window_estimate(index);
        // A hundredth of a sandbox is rounding (buckets are kept as f32), not
        // a reason to warm one more.
        let t = (point + self.z * spread - 0.01).ceil();
        let target = if t.is_finite() {
            t.clamp(0.0, MAX_DEMAND) as u32
        } else {
            0
        };
        // The first sandbox by the function's whole day: when more than
        // `1 - q` of its windows need one, the quantile of its window peak is
        // at least one whatever the time of day, although a sparse bucket
        // may not have seen that yet.
        let floor = u32::from(self.active_share > 1.0 - self.quantile);
        (point, target.max(floor))
    }

    /// The windows from `now_minute` through the next `horizon_minutes`,
    /// each with its point forecast and target; none before anything was
    /// seen.
    fn horizon(
        &self,
        now_minute: u64,
        horizon_minutes: u32,
    ) -> impl Iterator<Item = (u64, f64, u32)> + '_ {
        let first = now_minute / WINDOW_MINUTES as u64;
        let last = (now_minute + horizon_minutes as u64) / WINDOW_MINUTES as u64;
        let seen = self.windows_seen > 0 || self.open.is_some();
        (first..=last).filter(move |_| seen).map(|index| {
            let (point, target) = self.window_forecast(index);
            (index, point, target)
        })
    }

    /// Forecasts the peak over the windows from `now_minute` through the next
    /// `horizon_minutes`: the largest point forecast and the largest target.
    pub fn forecast(&self, now_minute: u64, horizon_minutes: u32) -> Forecast {
        self.horizon(now_minute, horizon_minutes).fold(
            Forecast {
                mean: 0.0,
                target: 0,
            },
            |f, (_, point, target)| Forecast {
                mean: f.mean.max(point),
                target: f.target.max(target),
            },
        )
    }

    /// The first window from `now_minute` up to (not including)
    /// `until_minute` whose target is at least one sandbox.
    pub fn first_needed_window(&self, now_minute: u64, until_minute: u64) -> Option<u64> {
        if self.windows_seen == 0 && self.open.is_none() {
            return None;
        }
        let w = WINDOW_MINUTES as u64;
        (now_minute / w..until_minute.div_ceil(w)).find(|&index| self.window_forecast(index).1 > 0)
    }

    /// Forecasts as [`Forecaster::forecast`] does, and remembers the forecast
    /// for each window of the horizon, to score it when its peak is known. A
    /// window keeps the forecast in force when it began: later looks inside
    /// it see part of its minutes already, and scoring them would flatter the
    /// forecaster.
    pub fn issue(&mut self, now_minute: u64, horizon_minutes: u32) -> Forecast {
        let windows: Vec<(u64, f64, u32)> = self.horizon(now_minute, horizon_minutes).collect();
        let mut out = Forecast {
            mean: 0.0,
            target: 0,
        };
        for &(index, point, target) in &windows {
            out.mean = out.mean.max(point);
            out.target = out.target.max(target);
            let started = index * (WINDOW_MINUTES as u64) < now_minute;
            let at = self.predicted.iter().position(|p| p.0 == index);
            if started && at.is_some() {
                continue;
            }
            let p = Prediction(index, point as f32, target);
            match at {
                Some(i) => self.predicted[i] = p,
                None => self.predicted.push(p),
            }
        }
        if windows.is_empty() {
            return out;
        }
        self.predicted.sort_unstable_by_key(|p| p.0);
        let extra = self.predicted.len().saturating_sub(PREDICTIONS_KEPT);
        self.predicted.drain(..extra);
        out
    }
}

/// Packs buckets as base64 of 5 bytes each: mean and sd as 16-bit log-scale
/// codes (0.025 % relative precision up to 10 million) and the count.
mod packed {
    use super::Bucket;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
    use serde::{Deserialize, Deserializer, Serializer};

    const SCALE: f64 = 4_000.0;

    fn encode(v: f32) -> u16 {
        let v = if v.is_finite() {
            v.max(0.0) as f64
        } else {
            0.0
        };
        (v.ln_1p() * SCALE).round().min(u16::MAX as f64) as u16
    }

    fn decode(c: u16) -> f32 {
        ((c as f64) / SCALE).exp_m1() as f32
    }

    pub(super) fn serialize<S: Serializer>(buckets: &[Bucket], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(buckets.len() * 5);
        for b in buckets {
            bytes.extend_from_slice(&encode(b.mean).to_le_bytes());
            bytes.extend_from_slice(&encode(b.sd).to_le_bytes());
            bytes.push(b.n);
        }
        s.serialize_str(&B64.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Bucket>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = B64
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 5 != 0 {
            return Err(serde::de::Error::custom(
                "packed buckets: length is not a multiple of 5",
            ));
        }
        Ok(bytes
            .chunks_exact(5)
            .map(|c| Bucket {
                mean: decode(u16::from_le_bytes([c[0], c[1]])),
                sd: decode(u16::from_le_bytes([c[2], c[3]])),
                n: c[4],
            })
            .collect())
    }

    #[cfg(test)]
    #[test]
    fn codes_round_trip_within_their_precision() {
        for v in [0.0f32, 0.01, 0.5, 1.0, 3.7, 120.0, 9_999.0, 2.0e6] {
            let back = decode(encode(v));
            assert!((back - v).abs() <= v * 2.0e-4 + 1e-4, "{v} -> {back}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::policy::Season;

    /// Feeds minutes as the controller would: a forecast issued at every
    /// window's start, then the window's minutes.
    fn feed(f: &mut Forecaster, minutes: std::ops::Range<u64>, demand: impl Fn(u64) -> f64) {
        for m in minutes {
            if m % WINDOW_MINUTES as u64 == 0 {
                f.issue(m, 0);
            }
            f.observe_minute(m, demand(m), 0.2);
        }
    }

    #[test]
    fn idle_windows_do_not_teach_the_offset() {
        // A day-time function's nights: nothing expected, nothing came.
        let mut f = Forecaster::new(&Policy::default());
        feed(&mut f, 0..60, |_| 3.0);
        let z = f.z;
        feed(&mut f, 60..600, |_| 0.0);
        assert!(f.z >= z - Z_STEP, "z {z} -> {} over idle windows", f.z);
    }

    /// Share of windows (after the first two days) whose peak exceeded the
    /// target in force when they began.
    fn miss_share(q: f64, demand: impl Fn(u64) -> f64) -> f64 {
        let policy = Policy {
            quantile: q,
            ..Policy::default()
        };
        let mut f = Forecaster::new(&policy);
        let (mut windows, mut misses) = (0, 0);
        for w in 0..4 * 288u64 {
            let start = w * WINDOW_MINUTES as u64;
            let target = f.forecast(start, 0).target;
            f.issue(start, 0);
            let mut peak = 0.0f64;
            for m in start..start + WINDOW_MINUTES as u64 {
                let d = demand(m);
                peak = peak.max(d);
                f.observe_minute(m, d, 0.2);
            }
            if w >= 2 * 288 {
                windows += 1;
                if peak > target as f64 {
                    misses += 1;
                }
            }
        }
        misses as f64 / windows as f64
    }

    /// A deterministic noisy series: a diurnal level with pseudo-random
    /// bursts (a fixed LCG, so the test is exact).
    fn noisy(m: u64) -> f64 {
        let h = (m
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
            >> 33)
            % 1_000;
        let level = if (540..1_020).contains(&(m % 1_440)) {
            30.0
        } else {
            6.0
        };
        (level * (0.6 + h as f64 / 1_000.0)).round()
    }

    #[test]
    fn a_constant_series_gets_no_padding() {
        let mut f = Forecaster::new(&Policy::default());
        feed(&mut f, 0..3 * 1_440, |_| 12.0);
        let fc = f.forecast(3 * 1_440, 5);
        assert!((fc.mean - 12.0).abs() < 0.05, "{fc:?}");
        assert!((12..=13).contains(&fc.target), "{fc:?}");
    }

    #[test]
    fn misses_follow_the_quantile() {
        for q in [0.8, 0.9, 0.95] {
            let share = miss_share(q, noisy);
            assert!(
                (share - (1.0 - q)).abs() <= 0.03,
                "q = {q}: {share} of windows above target"
            );
        }
    }

    #[test]
    fn the_daily_cycle_is_learned_per_bucket() {
        let mut f = Forecaster::new(&Policy::default());
        // Busy 09:00-17:00 (40), quiet otherwise (2), for a week.
        let shape = |m: u64| {
            if (540..1_020).contains(&(m % 1_440)) {
                40.0
            } else {
                2.0
            }
        };
        feed(&mut f, 0..7 * 1_440, shape);
        let night = f.forecast(7 * 1_440 + 120, 5);
        let day = f.forecast(7 * 1_440 + 600, 5);
        assert!(night.target <= 5, "{night:?}");
        assert!((40..=44).contains(&day.target), "{day:?}");
        // Looking ahead from 08:50 sees the ramp before it happens.
        let ramp = f.forecast(7 * 1_440 + 530, 15);
        assert!(ramp.target >= 40, "{ramp:?}");
    }

    #[test]
    fn a_drop_is_followed_by_the_bucket_not_held_up_by_the_level() {
        let mut f = Forecaster::new(&Policy::default());
        // 50 until 17:00, nothing after, every day.
        let shape = |m: u64| if m % 1_440 < 1_020 { 50.0 } else { 0.0 };
        // At 16:50, before the drop is seen: the buckets expect it.
        feed(&mut f, 0..5 * 1_440 + 1_010, shape);
        let ahead = f.forecast(5 * 1_440 + 1_010, 15);
        let at_five = f.window_point((5 * 1_440 + 1_025) / 5);
        assert!(ahead.target >= 50, "the afternoon is still busy: {ahead:?}");
        assert!(at_five <= 2.0, "17:05 is quiet: {at_five}");
        // At 17:30, the drop seen: nothing is forecast.
        feed(&mut f, 5 * 1_440 + 1_010..5 * 1_440 + 1_050, shape);
        let after = f.forecast(5 * 1_440 + 1_050, 5);
        assert!(after.target <= 2, "{after:?}");
    }

    #[test]
    fn a_new_function_starts_from_what_it_has_seen() {
        let mut f = Forecaster::new(&Policy::default());
        assert_eq!(f.forecast(0, 5).target, 0, "nothing seen, nothing forecast");
        f.observe_minute(100, 7.0, 0.2);
        assert!(
            f.forecast(101, 5).target >= 7,
            "traffic is visible: never zero"
        );
        feed(&mut f, 101..130, |_| 7.0);
        assert!(f.forecast(130, 5).target >= 7);
    }

    #[test]
    fn rare_functions_get_one_sandbox_only_when_calls_are_common_enough() {
        // Share of the third day's windows for which the target is a
        // sandbox, for a function called every `period` minutes.
        let warm_share = |period: u64, quantile: f64| {
            let policy = Policy {
                quantile,
                ..Policy::default()
            };
            let mut f = Forecaster::new(&policy);
            let calls = move |m: u64| if m.is_multiple_of(period) { 1.0 } else { 0.0 };
            feed(&mut f, 0..2 * 1_440, calls);
            let mut warm = 0;
            for m in 2 * 1_440..3 * 1_440 {
                if m % 5 == 0 {
                    if f.forecast(m, 0).target > 0 {
                        warm += 1;
                    }
                    f.issue(m, 0);
                }
                f.observe_minute(m, calls(m), 0.2);
            }
            warm as f64 / 288.0
        };
        // A call in one window of 40 is not worth a sandbox if one window in
        // twenty may go short; a call in every third window is, nearly
        // always, if only one in a hundred may.
        let (rare, regular) = (warm_share(200, 0.95), warm_share(15, 0.99));
        assert!(rare < 0.5, "rare: {rare}");
        assert!(regular > 0.95, "regular: {regular}");
    }

    #[test]
    fn a_hot_day_raises_the_forecast_before_the_buckets_catch_up() {
        let mut f = Forecaster::new(&Policy::default());
        feed(&mut f, 0..4 * 1_440, |_| 10.0);
        let usual = f.forecast(4 * 1_440, 5).target;
        feed(&mut f, 4 * 1_440..4 * 1_440 + 60, |_| 20.0);
        let hot = f.forecast(4 * 1_440 + 60, 5).target;
        assert!(hot >= 18 && hot > usual + 4, "usual {usual}, hot {hot}");
    }

    #[test]
    fn a_higher_quantile_never_lowers_the_target() {
        let target = |q: f64| {
            let policy = Policy {
                quantile: q,
                ..Policy::default()
            };
            let mut f = Forecaster::new(&policy);
            feed(&mut f, 0..3 * 1_440, noisy);
            f.forecast(3 * 1_440 + 600, 5).target
        };
        assert!(target(0.99) >= target(0.95) && target(0.95) >= target(0.6));
        assert!(target(0.99) > target(0.6));
    }

    #[test]
    fn changing_the_season_resets_buckets_but_keeps_the_level() {
        let mut f = Forecaster::new(&Policy::default());
        feed(&mut f, 0..1_440, |_| 9.0);
        let week = Policy {
            season: Season::Week,
            ..Policy::default()
        };
        f.conform(&week);
        assert_eq!(f.buckets.len(), 336);
        assert!(f.buckets.iter().all(|b| b.n == 0));
        assert!(f.forecast(1_440, 5).target >= 9);
    }

    #[test]
    fn a_week_of_thirty_minute_buckets_serializes_under_4_kb() {
        let week = Policy {
            season: Season::Week,
            ..Policy::default()
        };
        let mut f = Forecaster::new(&week);
        feed(&mut f, 0..7 * 1_440, |m| (m % 97) as f64 * 13.7);
        f.issue(7 * 1_440, 15);
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.len() < 3_000, "{} bytes", json.len());
        let back: Forecaster = serde_json::from_str(&json).unwrap();
        assert_eq!(back.buckets.len(), 336);
        let (a, b) = (f.forecast(7 * 1_440, 5), back.forecast(7 * 1_440, 5));
        assert!(
            (a.mean - b.mean).abs() < 0.01 * a.mean.max(1.0),
            "{a:?} vs {b:?}"
        );
    }
}
