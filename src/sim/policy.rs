//! Warming policies the simulator compares, parsed from `--policy SPEC`.
//!
//! * `none`: no warming.
//! * `fixed:n=N,every=5m,delay=300ms`: the seed's warmer: N concurrent pings
//!   every period, each sleeping a fixed time.
//! * `lambda-warmer:n=N,every=5m`: self fan-out: one ping reaches the
//!   function, which invokes itself N−2 times asynchronously and once
//!   synchronously; the fan-out pings sleep 75 ms.
//! * `provisioned:n=N`: N sandboxes of Provisioned Concurrency all the time;
//!   `provisioned:auto`: an hourly schedule set from the same hour of the day
//!   before (what a scheduled-scaling user would configure from history).
//! * `forewarm` or `forewarm:quantile=0.9,...`: the real controller (any
//!   policy attribute may be given).
//! * `oracle`: perfect foresight: every cold start is prepared just in time.

use std::fmt;

use crate::decision::policy::{Policy, PolicyDoc, Scalar};

/// A parsed policy spec.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// No warming.
    None,
    /// The seed's fixed warmer.
    Fixed {
        /// Pings per warm.
        n: u32,
        /// Period, ms.
        every_ms: u64,
        /// Hold, ms.
        delay_ms: u64,
    },
    /// lambda-warmer's self fan-out.
    LambdaWarmer {
        /// Pings per warm.
        n: u32,
        /// Period, ms.
        every_ms: u64,
    },
    /// Static Provisioned Concurrency.
    Provisioned {
        /// Sandboxes, or `None` for the hourly schedule from history.
        n: Option<u32>,
    },
    /// The forewarm controller with these policy attributes.
    Forewarm {
        /// Attributes over the defaults.
        doc: PolicyDoc,
        /// The same, merged and validated.
        policy: Policy,
    },
    /// Perfect foresight.
    Oracle,
}

impl PolicySpec {
    /// Parses `name[:k=v,k=v]`.
    pub fn parse(spec: &str) -> Result<PolicySpec, String> {
        let spec = spec.trim();
        if spec == "provisioned:auto" {
            return Ok(PolicySpec::Provisioned { n: None });
        }
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        let mut kv = Vec::new();
        for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                format!("policy `{spec}`: parameter `{part}` must look like key=value")
            })?;
            kv.push((k.trim(), v.trim()));
        }
        let allow = |known: &[&str]| -> Result<(), String> {
            for (k, _) in &kv {
                if !known.contains(k) {
                    return Err(format!(
                        "policy `{name}` has no parameter `{k}` (it takes: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
            }
            Ok(())
        };
        let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let count = |k: &str, default: u32| -> Result<u32, String> {
            get(k).map_or(Ok(default), |v| {
                v.parse::<u32>()
                    .map_err(|_| format!("policy `{name}`: {k} must be a whole number, not `{v}`"))
            })
        };
        let duration = |k: &str, default: u64| -> Result<u64, String> {
            get(k).map_or(Ok(default), |v| {
                humantime_ms(v).ok_or_else(|| {
                    format!("policy `{name}`: {k} must be a duration like 300ms or 5m, not `{v}`")
                })
            })
        };
        match name {
            "none" => {
                allow(&[])?;
                Ok(PolicySpec::None)
            }
            "oracle" => {
                allow(&[])?;
                Ok(PolicySpec::Oracle)
            }
            "fixed" => {
                allow(&["n", "every", "delay"])?;
                let every_ms = duration("every", 300_000)?;
                if every_ms < 60_000 {
                    return Err(format!("policy `{name}`: every must be at least 1m"));
                }
                Ok(PolicySpec::Fixed {
                    n: count("n", 1)?,
                    every_ms,
                    delay_ms: duration("delay", 300)?,
                })
            }
            "lambda-warmer" => {
                allow(&["n", "every"])?;
                let every_ms = duration("every", 300_000)?;
                if every_ms < 60_000 {
                    return Err(format!("policy `{name}`: every must be at least 1m"));
                }
                Ok(PolicySpec::LambdaWarmer {
                    n: count("n", 1)?,
                    every_ms,
                })
            }
            "provisioned" => {
                allow(&["n"])?;
                match get("n") {
                    None | Some("auto") => Ok(PolicySpec::Provisioned { n: None }),
                    Some(_) => Ok(PolicySpec::Provisioned {
                        n: Some(count("n", 0)?),
                    }),
                }
            }
            "forewarm" => {
                let mut doc = PolicyDoc::new();
                for (k, v) in &kv {
                    doc.insert(k.to_string(), Scalar::from_text(v));
                }
                PolicySpec::forewarm(doc).map_err(|e| format!("policy `{spec}`: {e}"))
            }
            other => Err(format!(
                "unknown policy `{other}`: use none, fixed, lambda-warmer, provisioned, forewarm or oracle"
            )),
        }
    }

    /// The forewarm controller with these attributes over the defaults,
    /// validated; a warning (an unknown attribute) is an error here.
    pub fn forewarm(doc: PolicyDoc) -> Result<PolicySpec, String> {
        let parsed = Policy::from_doc(&doc).map_err(|e| e.to_string())?;
        if let Some(w) = parsed.warnings.first() {
            return Err(w.to_string());
        }
        Ok(PolicySpec::Forewarm {
            doc,
            policy: parsed.policy,
        })
    }

    /// Whether the policy's single parameter `n` can be swept.
    pub fn with_n(&self, n: u32) -> Option<PolicySpec> {
        match self {
            PolicySpec::Fixed {
                every_ms, delay_ms, ..
            } => Some(PolicySpec::Fixed {
                n,
                every_ms: *every_ms,
                delay_ms: *delay_ms,
            }),
            PolicySpec::LambdaWarmer { every_ms, .. } => Some(PolicySpec::LambdaWarmer {
                n,
                every_ms: *every_ms,
            }),
            PolicySpec::Provisioned { .. } => Some(PolicySpec::Provisioned { n: Some(n) }),
            _ => None,
        }
    }
}

/// A duration in milliseconds, in the grammar of every duration forewarm
/// reads (`300ms`, `5m`, `1h30m`: humantime's).
fn humantime_ms(s: &str) -> Option<u64> {
    humantime::parse_duration(s.trim())
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dur = |ms: u64| {
            if ms.is_multiple_of(60_000) {
                format!("{}m", ms / 60_000)
            } else if ms.is_multiple_of(1_000) {
                format!("{}s", ms / 1_000)
            } else {
                format!("{ms}ms")
            }
        };
        match self {
            PolicySpec::None => f.write_str("none"),
            PolicySpec::Oracle => f.write_str("oracle"),
            PolicySpec::Fixed {
                n,
                every_ms,
                delay_ms,
            } => {
                write!(
                    f,
                    "fixed:n={n},every={},delay={}",
                    dur(*every_ms),
                    dur(*delay_ms)
                )
            }
            PolicySpec::LambdaWarmer { n, every_ms } => {
                write!(f, "lambda-warmer:n={n},every={}", dur(*every_ms))
            }
            PolicySpec::Provisioned { n: Some(n) } => write!(f, "provisioned:n={n}"),
            PolicySpec::Provisioned { n: None } => f.write_str("provisioned:auto"),
            PolicySpec::Forewarm { doc, .. } if doc.is_empty() => f.write_str("forewarm"),
            PolicySpec::Forewarm { doc, .. } => {
                let parts: Vec<String> = doc
                    .iter()
                    .map(|(k, v)| match v {
                        Scalar::Str(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                write!(f, "forewarm:{}", parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in [
            "none",
            "oracle",
            "fixed:n=3,every=5m,delay=300ms",
            "lambda-warmer:n=5,every=15m",
            "provisioned:n=2",
            "provisioned:auto",
            "forewarm",
            "forewarm:quantile=0.9",
        ] {
            assert_eq!(PolicySpec::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            PolicySpec::parse("fixed").unwrap().to_string(),
            "fixed:n=1,every=5m,delay=300ms"
        );
        // The grammar of `--ttl` and every other duration read.
        assert_eq!(
            PolicySpec::parse("fixed:n=2,every=1h30m,delay=1s")
                .unwrap()
                .to_string(),
            "fixed:n=2,every=90m,delay=1s"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = |s| PolicySpec::parse(s).unwrap_err();
        assert!(e("warmest").contains("unknown policy `warmest`"));
        assert!(e("fixed:m=3").contains("no parameter `m`"));
        assert!(e("fixed:n=three").contains("n must be a whole number"));
        assert!(e("fixed:every=soon").contains("every must be a duration"));
        assert!(e("fixed:n").contains("key=value"));
        assert!(e("forewarm:quantile=2").contains("quantile (2)"));
        assert!(e("forewarm:qantile=0.9").contains("unknown attribute"));
    }
}
