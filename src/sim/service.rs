//! How long a real request runs once started.
//!
//! The Azure 2019 durations file gives, per function, its mean and the 0th,
//! 1st, 25th, 50th, 75th, 99th and 100th percentiles. Where they are known
//! (and the model asks for it) a duration is drawn by inverting the
//! distribution they define, log-linearly between consecutive percentiles:
//! durations are skewed over decades (p99 to p100 is often 20× or more), and
//! interpolating the logarithm keeps each segment's mass near its lower end
//! as a log-normal would, where a straight line would spread the top 1 %
//! evenly up to the maximum and inflate the mean. Every percentile given is
//! reproduced exactly in the limit. Otherwise durations are exponential
//! with the trace's mean.

use rand::Rng;
use rand_distr::{Distribution, Exp};
use rand_pcg::Pcg64Mcg;

use super::model::DurationShape;
use crate::sim::trace::{DURATION_PERCENTILES, FunctionTrace};

/// One function's duration law.
#[derive(Debug, Clone)]
pub(crate) enum Service {
    /// Exponential with a mean.
    Exponential(Exp<f64>),
    /// The inverse of a piecewise log-linear distribution through
    /// `(probability, ms)` knots.
    Empirical([f64; 7]),
}

impl Service {
    /// The law for `f` under the model's `shape`.
    pub(crate) fn of(f: &FunctionTrace, shape: DurationShape) -> Service {
        match (shape, f.duration_percentiles) {
            (DurationShape::Empirical, Some(q)) => Service::Empirical(q),
            (DurationShape::Empirical, None) | (DurationShape::Exponential, _) => {
                Service::Exponential(Exp::new(1.0 / f.duration_ms.max(1.0)).expect("positive rate"))
            }
        }
    }

    /// A duration, whole ms, at least 1.
    pub(crate) fn sample(&self, rng: &mut Pcg64Mcg) -> u64 {
        let ms = match self {
            Service::Exponential(e) => e.sample(rng),
            Service::Empirical(q) => inverse(q, rng.random::<f64>()),
        };
        (ms.round() as u64).max(1)
    }
}

/// The duration at cumulative probability `u` of the distribution through
/// the knots `q` at [`DURATION_PERCENTILES`].
fn inverse(q: &[f64; 7], u: f64) -> f64 {
    let p = &DURATION_PERCENTILES;
    let k = (1..p.len()).find(|&k| u < p[k]).unwrap_or(p.len() - 1);
    let (p0, p1, lo, hi) = (p[k - 1], p[k], q[k - 1], q[k]);
    let w = ((u - p0) / (p1 - p0)).clamp(0.0, 1.0);
    if lo > 0.0 && hi > lo {
        (lo.ln() + w * (hi.ln() - lo.ln())).exp()
    } else {
        lo + w * (hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_durations_reproduce_the_files_percentiles() {
        // A row of the bundled durations.csv (function bd28ee14…): average
        // 287 ms, percentiles 42, 46, 78, 109, 204, 1358, 38909.
        let q = [42.0, 46.0, 78.0, 109.0, 204.0, 1_358.0, 38_909.0];
        let f = FunctionTrace {
            id: "f".into(),
            active: vec![],
            duration_ms: 287.0,
            memory_mb: 128,
            duration_percentiles: Some(q),
            timer: false,
        };
        let s = Service::of(&f, DurationShape::Empirical);
        let mut rng = Pcg64Mcg::new(5);
        let mut d: Vec<u64> = (0..400_000).map(|_| s.sample(&mut rng)).collect();
        d.sort_unstable();
        for (&p, &want) in DURATION_PERCENTILES.iter().zip(&q).skip(1).take(5) {
            let got = d[((p * d.len() as f64) as usize).min(d.len() - 1)] as f64;
            assert!(
                (got - want).abs() <= 0.02 * want,
                "p{}: {got} vs the file's {want}",
                p * 100.0
            );
        }
        assert!(d[0] >= 42 && *d.last().unwrap() <= 38_909);
        // The exponential with the same mean misses them: its median is
        // 199 ms, not 109.
        let e = Service::of(&f, DurationShape::Exponential);
        let mut x: Vec<u64> = (0..100_000).map(|_| e.sample(&mut rng)).collect();
        x.sort_unstable();
        assert!(x[50_000] > 180, "{}", x[50_000]);
    }

    #[test]
    fn without_percentiles_the_mean_is_kept() {
        let f = FunctionTrace {
            id: "f".into(),
            active: vec![],
            duration_ms: 500.0,
            memory_mb: 128,
            duration_percentiles: None,
            timer: false,
        };
        let s = Service::of(&f, DurationShape::Empirical);
        let mut rng = Pcg64Mcg::new(9);
        let mean = (0..100_000).map(|_| s.sample(&mut rng) as f64).sum::<f64>() / 1e5;
        assert!((mean - 500.0).abs() < 10.0, "{mean}");
    }
}
