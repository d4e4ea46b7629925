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
//! A forecast for an upcoming window blends its bucket (scaled by heat) with
//! the short-term level, weighting the bucket by how often it has been seen,
//! so a new function starts from what little it has instead of zero. The warm
//! target is the forecast distribution's quantile: a count distribution
//! (Poisson, or negative binomial when over-dispersed) for small peaks, where
//! "one sandbox or none" is the real question, and a normal approximation for
//! large ones (statrs does the math).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::policy::{Policy, WINDOW_MINUTES};

/// Weight of each new window in the short-term level and heat. Larger than a
/// bucket's `alpha`: it must notice within half an hour that today runs hot.
const SHORT_TERM_WEIGHT: f64 = 0.3;
/// Heat is a ratio of today to usual; beyond these it is more likely a change
/// of regime than a hot day, and the buckets will learn it anyway.
const HEAT_RANGE: (f64, f64) = (0.5, 2.5);
/// No function runs more sandboxes than this; larger readings are garbage and
/// would overflow the variance.
pub const MAX_DEMAND: f64 = 1.0e7;
/// Samples after which a bucket's own statistics are trusted fully.
const TRUSTED_SAMPLES: f64 = 3.0;
/// Means above this use the normal approximation: the count distributions'
/// quantile search gets slow and the normal is accurate there.
const DISCRETE_LIMIT: f64 = 50.0;

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
    pub recent: f64,
    /// Short-term variance of window peaks.
    pub recent_var: f64,
    /// Today against usual: the smoothed ratio of window peaks to their
    /// buckets' means.
    pub heat: f64,
    /// Windows learned so far (saturating).
    pub windows_seen: u32,
    /// The window being filled.
    pub open: Option<OpenWindow>,
}

/// A closed window, reported so the caller can run feedback on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedWindow {
    /// Window index (epoch minute / [`WINDOW_MINUTES`]).
    pub index: u64,
    /// Its realized peak demand.
    pub peak: f64,
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
            windows_seen: 0,
            open: None,
        }
    }

    /// Re-shapes the buckets when the policy's season or bucket width changed
    /// (the old buckets mean nothing under the new geometry); keeps the
    /// short-term level, which does not depend on it.
    pub fn conform(&mut self, policy: &Policy) {
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
        let b = self.bucket_of(w.index);
        let bucket = self.buckets[b];
        let expected = if bucket.n > 0 {
            bucket.mean as f64
        } else {
            self.recent
        };

        // Short-term level first: it seeds buckets that have never been seen.
        if self.windows_seen == 0 {
            self.recent = x;
            self.recent_var = x; // Poisson-like guess until there is a second sample
        } else {
            let d = x - self.recent;
            self.recent += SHORT_TERM_WEIGHT * d;
            self.recent_var =
                (1.0 - SHORT_TERM_WEIGHT) * (self.recent_var + SHORT_TERM_WEIGHT * d * d);
        }
        if bucket.n > 0 {
            let ratio = (x + 1.0) / (expected + 1.0);
            self.heat = (self.heat + SHORT_TERM_WEIGHT * (ratio - self.heat))
                .clamp(HEAT_RANGE.0, HEAT_RANGE.1);
        }

        let slot = &mut self.buckets[b];
        if slot.n == 0 {
            slot.mean = x as f32;
            slot.sd = self.recent_var.sqrt() as f32;
        } else {
            let mean = slot.mean as f64;
            let var = (slot.sd as f64).powi(2);
            let d = x - mean;
            slot.mean = (mean + alpha * d) as f32;
            slot.sd = ((1.0 - alpha) * (var + alpha * d * d)).sqrt() as f32;
        }
        slot.n = slot.n.saturating_add(1);
        self.windows_seen = self.windows_seen.saturating_add(1);
        ClosedWindow {
            index: w.index,
            peak: x,
        }
    }

    /// Mean and variance expected for one window's peak.
    fn window_moments(&self, index: u64) -> (f64, f64) {
        let b = self.buckets[self.bucket_of(index)];
        // A bucket is trusted fully once it has seen a few windows; before
        // that it is blended with the short-term level, so one odd sample does
        // not decide alone. Short-term swings after that are heat's job.
        let w = (b.n as f64 / TRUSTED_SAMPLES).min(1.0);
        let seasonal = b.mean as f64 * self.heat;
        let seasonal_var = (b.sd as f64 * self.heat).powi(2);
        let blend = w * seasonal + (1.0 - w) * self.recent;
        let mut var = w * seasonal_var
            + (1.0 - w) * self.recent_var
            + w * (1.0 - w) * (seasonal - self.recent).powi(2);
        // Never below the short-term level: if the last half hour ran above
        // what this bucket usually sees, today runs hot, and under-warming costs
        // cold starts while over-warming costs a few pings.
        let mut mean = blend.max(0.0);
        if self.recent > mean {
            mean = self.recent;
            var = var.max(self.recent_var);
        }
        // The window being filled is at least as busy as it has been so far.
        if let Some(open) = self.open
            && open.index == index
        {
            mean = mean.max(open.peak);
        }
        (mean, var.max(0.0))
    }

    /// Forecasts the peak over the windows from `now_minute` through the next
    /// `horizon_minutes`, at quantile `quantile` shifted by `margin` (in
    /// standard-normal units: +1 is one standard deviation more cautious).
    pub fn forecast(
        &self,
        now_minute: u64,
        horizon_minutes: u32,
        quantile: f64,
        margin: f64,
    ) -> Forecast {
        if self.windows_seen == 0 && self.open.is_none() {
            return Forecast {
                mean: 0.0,
                target: 0,
            };
        }
        let first = now_minute / WINDOW_MINUTES as u64;
        let last = (now_minute + horizon_minutes as u64) / WINDOW_MINUTES as u64;
        let k = (last - first + 1) as f64;
        // The peak over k windows stays at or below n with probability
        // F(n)^k, so each window is taken at quantile q^(1/k).
        let q = shifted_quantile(quantile.powf(1.0 / k), margin);
        let mut out = Forecast {
            mean: 0.0,
            target: 0,
        };
        for index in first..=last {
            let (mean, var) = self.window_moments(index);
            out.mean = out.mean.max(mean);
            out.target = out.target.max(peak_quantile(mean, var, q));
        }
        out
    }
}

/// Moves a probability by `margin` standard deviations, kept within
/// 0.5..0.99999 so neither end degenerates.
pub fn shifted_quantile(q: f64, margin: f64) -> f64 {
    let n = Normal::standard();
    let z = n.inverse_cdf(q.clamp(0.5, 0.99999)) + margin;
    n.cdf(z.clamp(0.0, 4.3))
}

/// The `q`-quantile of a window's peak with the given mean and variance.
///
/// Peaks are counts. Small ones follow a count distribution whose variance is
/// at least Poisson's (a function busy in 20 % of windows needs one warm
/// sandbox at q = 0.95, one busy in 4 % needs none); large ones a normal.
pub fn peak_quantile(mean: f64, var: f64, q: f64) -> u32 {
    if !(mean.is_finite() && var.is_finite()) || mean <= 1e-9 {
        return 0;
    }
    // Below one, a window's peak is mostly 0 or 1: at least Poisson spread.
    // Above, peaks of busy functions are steadier than their counts; the
    // learned variance rules, with a gentle floor.
    let floor = if mean <= 1.0 {
        mean
    } else {
        1.0 + 0.25 * (mean - 1.0)
    };
    let var = var.max(floor);
    let n = if mean <= DISCRETE_LIMIT && var >= mean {
        count_quantile(mean, var, q) as f64
    } else {
        (mean + Normal::standard().inverse_cdf(q) * var.sqrt()).ceil()
    };
    if n.is_finite() {
        n.clamp(0.0, u32::MAX as f64) as u32
    } else {
        mean.ceil() as u32
    }
}

/// The `q`-quantile of a count with this mean and variance (`var >= mean`):
/// Poisson when they are equal, else negative binomial with the same two
/// moments. Summed term by term from zero (the pmf recurrence), which for
/// means up to [`DISCRETE_LIMIT`] takes at most a few hundred steps;
/// statrs's generic quantile search needs dozens of incomplete-beta
/// evaluations for the same answer (a test checks the two agree).
fn count_quantile(mean: f64, var: f64, q: f64) -> u32 {
    // Term ratio p(k+1)/p(k): Poisson λ/(k+1); NB (k+r)/(k+1)·(1-p).
    let (mut term, ratio): (f64, Box<dyn Fn(f64) -> f64>) = if var > mean * (1.0 + 1e-6) {
        let r = mean * mean / (var - mean);
        let p = r / (r + mean);
        (
            (r * p.ln()).exp(),
            Box::new(move |k: f64| (k + r) / (k + 1.0) * (1.0 - p)),
        )
    } else {
        ((-mean).exp(), Box::new(move |k: f64| mean / (k + 1.0)))
    };
    let mut cdf = term;
    let mut k = 0u32;
    while cdf < q && k < 100_000 {
        term *= ratio(k as f64);
        cdf += term;
        k += 1;
    }
    k
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

    pub fn serialize<S: Serializer>(buckets: &[Bucket], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(buckets.len() * 5);
        for b in buckets {
            bytes.extend_from_slice(&encode(b.mean).to_le_bytes());
            bytes.extend_from_slice(&encode(b.sd).to_le_bytes());
            bytes.push(b.n);
        }
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Bucket>, D::Error> {
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

    fn feed(f: &mut Forecaster, minutes: std::ops::Range<u64>, demand: impl Fn(u64) -> f64) {
        for m in minutes {
            f.observe_minute(m, demand(m), 0.2);
        }
    }

    #[test]
    fn a_constant_series_forecasts_that_constant() {
        let mut f = Forecaster::new(&Policy::default());
        feed(&mut f, 0..3 * 1_440, |_| 12.0);
        let fc = f.forecast(3 * 1_440, 5, 0.95, 0.0);
        assert!((fc.mean - 12.0).abs() < 0.05, "{fc:?}");
        // The spread floor (a quarter of the mean as variance) keeps a margin
        // even on a perfectly flat series; feedback narrows it in the loop.
        assert!((12..=16).contains(&fc.target), "{fc:?}");
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
        let night = f.forecast(7 * 1_440 + 120, 5, 0.95, 0.0);
        let day = f.forecast(7 * 1_440 + 600, 5, 0.95, 0.0);
        assert!(night.target <= 5, "{night:?}");
        assert!((40..=48).contains(&day.target), "{day:?}");
        // Looking ahead from 08:50 sees the ramp before it happens.
        let ramp = f.forecast(7 * 1_440 + 530, 15, 0.95, 0.0);
        assert!(ramp.target >= 40, "{ramp:?}");
    }

    #[test]
    fn a_new_function_starts_from_what_it_has_seen() {
        let mut f = Forecaster::new(&Policy::default());
        assert_eq!(
            f.forecast(0, 5, 0.95, 0.0).target,
            0,
            "nothing seen, nothing forecast"
        );
        f.observe_minute(100, 7.0, 0.2);
        assert!(
            f.forecast(101, 5, 0.95, 0.0).target >= 7,
            "traffic is visible: never zero"
        );
        feed(&mut f, 101..130, |_| 7.0);
        assert!(f.forecast(130, 5, 0.95, 0.0).target >= 7);
    }

    #[test]
    fn rare_functions_get_one_sandbox_only_when_calls_are_common_enough() {
        // Share of the third day's windows for which a 0.95 quantile asks for
        // a sandbox, for a function called every `period` minutes.
        let warm_share = |period: u64| {
            let mut f = Forecaster::new(&Policy::default());
            let calls = move |m: u64| if m.is_multiple_of(period) { 1.0 } else { 0.0 };
            feed(&mut f, 0..2 * 1_440, calls);
            let mut warm = 0;
            for m in 2 * 1_440..3 * 1_440 {
                f.observe_minute(m, calls(m), 0.2);
                if m % 5 == 0 && f.forecast(m, 0, 0.95, 0.0).target > 0 {
                    warm += 1;
                }
            }
            warm as f64 / 288.0
        };
        // One call in 20 windows does not pay for a sandbox most of the time;
        // one in every third window does, nearly always.
        let (rare, regular) = (warm_share(100), warm_share(15));
        assert!(rare < 0.5, "rare: {rare}");
        assert!(regular > 0.9, "regular: {regular}");
    }

    #[test]
    fn a_hot_day_raises_the_forecast_before_the_buckets_catch_up() {
        let mut f = Forecaster::new(&Policy::default());
        feed(&mut f, 0..4 * 1_440, |_| 10.0);
        let usual = f.forecast(4 * 1_440, 5, 0.95, 0.0).target;
        feed(&mut f, 4 * 1_440..4 * 1_440 + 60, |_| 20.0);
        let hot = f.forecast(4 * 1_440 + 60, 5, 0.95, 0.0).target;
        assert!(hot >= 18 && hot > usual + 4, "usual {usual}, hot {hot}");
    }

    #[test]
    fn margin_and_quantile_move_the_target_the_right_way() {
        let mut f = Forecaster::new(&Policy::default());
        feed(&mut f, 0..2 * 1_440, |m| (m % 7) as f64 * 3.0);
        let t = |q, m| f.forecast(2 * 1_440, 5, q, m).target;
        assert!(t(0.99, 0.0) >= t(0.95, 0.0) && t(0.95, 0.0) >= t(0.6, 0.0));
        assert!(t(0.95, 1.0) >= t(0.95, 0.0) && t(0.95, 0.0) >= t(0.95, -1.0));
        assert!(t(0.95, 1.0) > t(0.95, -1.0));
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
        assert!(f.forecast(1_440, 5, 0.95, 0.0).target >= 9);
    }

    #[test]
    fn a_week_of_thirty_minute_buckets_serializes_under_4_kb() {
        let week = Policy {
            season: Season::Week,
            ..Policy::default()
        };
        let mut f = Forecaster::new(&week);
        feed(&mut f, 0..7 * 1_440, |m| (m % 97) as f64 * 13.7);
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.len() < 3_000, "{} bytes", json.len());
        let back: Forecaster = serde_json::from_str(&json).unwrap();
        assert_eq!(back.buckets.len(), 336);
        let (a, b) = (
            f.forecast(7 * 1_440, 5, 0.95, 0.0),
            back.forecast(7 * 1_440, 5, 0.95, 0.0),
        );
        assert!(
            (a.mean - b.mean).abs() < 0.01 * a.mean.max(1.0),
            "{a:?} vs {b:?}"
        );
    }

    #[test]
    fn count_quantiles_agree_with_statrs() {
        use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};
        for &mean in &[0.05, 0.3, 1.0, 2.5, 7.0, 19.0, 49.0] {
            for &q in &[0.5, 0.8, 0.95, 0.99, 0.999] {
                let p = Poisson::new(mean).unwrap().inverse_cdf(q) as u32;
                assert_eq!(count_quantile(mean, mean, q), p, "Poisson({mean}) q={q}");
                let var = mean * 3.0 + 1.0;
                let r = mean * mean / (var - mean);
                let nb = NegativeBinomial::new(r, r / (r + mean))
                    .unwrap()
                    .inverse_cdf(q) as u32;
                assert_eq!(count_quantile(mean, var, q), nb, "NB({mean}, {var}) q={q}");
            }
        }
    }

    #[test]
    fn quantiles_of_small_and_large_peaks() {
        assert_eq!(peak_quantile(0.0, 0.0, 0.95), 0);
        assert_eq!(peak_quantile(0.04, 0.0, 0.95), 0);
        assert_eq!(peak_quantile(0.2, 0.0, 0.95), 1);
        assert_eq!(peak_quantile(3.0, 3.0, 0.95), 6); // Poisson(3)
        let big = peak_quantile(1_000.0, 400.0, 0.95); // 1000 + 1.645 * 20
        assert_eq!(big, 1_033);
        assert_eq!(peak_quantile(f64::NAN, 1.0, 0.95), 0);
    }
}
