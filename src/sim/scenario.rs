//! Scenario files (`simulations/*.toml`) and running them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::model::Model;
use super::policy::PolicySpec;
use super::{PolicyRun, RunConfig, SimReport, minute_index, run_policy};
use crate::sim::trace::Trace;

/// A scenario as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    /// Name for the report.
    pub name: String,
    /// One line for people.
    #[serde(default)]
    pub description: String,
    /// Seed of every random draw.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A bundled model name or a model file (relative to the scenario).
    #[serde(default = "default_model")]
    pub model: String,
    /// Times the trace is played.
    #[serde(default = "one")]
    pub repeat: usize,
    /// Azure 2019 invocation files (relative to the scenario), consecutive days.
    #[serde(default)]
    pub traces: Vec<PathBuf>,
    /// Policies to compare.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Values of `n` for `--sweep`.
    #[serde(default)]
    pub sweep: Vec<u32>,
}

fn default_seed() -> u64 {
    1
}
fn default_model() -> String {
    "lambda-2021".into()
}
fn one() -> usize {
    1
}

/// Why a scenario could not be run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScenarioError {
    /// Not readable.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Scenario {
    /// Reads a scenario file; relative paths in it become relative to it.
    pub(crate) fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        let mut s: Scenario = toml::from_str(&text).map_err(|e| ScenarioError::Invalid {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        s.traces = s
            .traces
            .iter()
            .map(|t| {
                if t.is_absolute() {
                    t.clone()
                } else {
                    dir.join(t)
                }
            })
            .collect();
        if !s.model.ends_with(".toml") {
            return Ok(s);
        }
        let m = PathBuf::from(&s.model);
        if m.is_relative() {
            s.model = dir.join(m).to_string_lossy().into_owned();
        }
        Ok(s)
    }

    /// Parses the policy specs, naming the scenario in errors.
    pub(crate) fn policy_specs(&self, file: &Path) -> Result<Vec<PolicySpec>, ScenarioError> {
        self.policies
            .iter()
            .map(|p| {
                PolicySpec::parse(p).map_err(|message| ScenarioError::Invalid {
                    file: file.to_path_buf(),
                    message,
                })
            })
            .collect()
    }
}

/// Adds each parametric baseline at every `n` of the sweep (once each).
pub(crate) fn with_sweep(policies: &[PolicySpec], ns: &[u32]) -> Vec<PolicySpec> {
    let mut out: Vec<PolicySpec> = policies.to_vec();
    for p in policies {
        for &n in ns {
            if let Some(q) = p.with_n(n)
                && !out.contains(&q)
            {
                out.push(q);
            }
        }
    }
    out
}

/// Runs every policy of `cfg` on the trace, one per thread on as many
/// threads as the machine has cores (each policy's run is deterministic on
/// its own, so the order they finish in changes nothing), and assembles the
/// report. `progress(policy, minute)` is called as runs go.
pub(crate) fn run(
    cfg: &RunConfig,
    trace: &Trace,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> (SimReport, Vec<PolicyRun>) {
    let start = std::time::Instant::now();
    let by_minute = minute_index(trace);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, cfg.policies.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<PolicyRun>>> =
        std::sync::Mutex::new(vec![None; cfg.policies.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(spec) = cfg.policies.get(i) else {
                        break;
                    };
                    let r = run_policy(trace, &by_minute, cfg, spec, &|m| progress(i, m));
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    let runs: Vec<PolicyRun> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every policy ran"))
        .collect();
    let wall = start.elapsed().as_secs_f64();
    let events: u64 = runs.iter().map(|r| r.report.events).sum();
    let report_minutes = if cfg.repeat > 1 {
        trace.minutes - trace.minutes / cfg.repeat
    } else {
        trace.minutes
    };
    let report = SimReport {
        scenario: cfg.scenario.clone(),
        functions: trace.functions.len(),
        sim_seconds: report_minutes as f64 * 60.0,
        wall_seconds: (wall * 1_000.0).round() / 1_000.0,
        events_per_second: if wall > 0.0 {
            (events as f64 / wall).round()
        } else {
            0.0
        },
        policies: runs.iter().map(|r| r.report.clone()).collect(),
    };
    (report, runs)
}

/// The model a scenario names, with an optional TTL override.
pub(crate) fn model_for(
    name: &str,
    ttl: Option<(f64, f64)>,
) -> Result<Model, super::model::ModelError> {
    let m = Model::load(name)?;
    Ok(match ttl {
        Some((lo, hi)) => m.with_ttl(lo, hi),
        None => m,
    })
}
