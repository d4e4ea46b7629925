//! The operator commands over AWS: `tick`, `warm`, `policy`, `status`.
//!
//! They honour the standard AWS environment (`AWS_REGION`, `AWS_PROFILE`,
//! `AWS_ENDPOINT_URL_*`) and name the table with `--table` or
//! `FOREWARM_TABLE` (default `forewarm`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::parse::parse_duration;
use crate::aws::WarmerConfig;
use crate::aws::controller::{self, ControllerConfig};
use crate::decision::policy::{self, Policy, PolicyDoc, Scalar};
use crate::ports::{FunctionRef, WarmPlan, Warmer};

/// Where the table is.
#[derive(Debug, Args)]
pub struct TableArg {
    /// The DynamoDB table (default: $FOREWARM_TABLE, else `forewarm`).
    #[arg(long, global = true)]
    pub table: Option<String>,
}

/// `forewarm tick`.
#[derive(Debug, Args)]
pub struct TickArgs {
    /// Decide, but send no pings and save nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the tick report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    table: TableArg,
}

/// `forewarm warm`.
#[derive(Debug, Args)]
pub struct WarmArgs {
    /// The function, optionally `name:qualifier` (alias or version).
    pub function: String,
    /// Sandboxes to warm.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub n: u32,
    /// Hold per ping (e.g. 300ms, 1s).
    #[arg(long, default_value = "300ms")]
    pub delay: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `forewarm policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show a function's policy item and the merged result with defaults.
    Get {
        /// The function (`*` for the account defaults).
        function: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// Validate, then write a policy item (from --file and/or key=value pairs).
    Put {
        /// The function (`*` for the account defaults).
        function: String,
        /// Attributes as key=value (e.g. max=40 quantile=0.9).
        pairs: Vec<String>,
        /// A JSON object of attributes.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        table: TableArg,
    },
    /// Check a policy (a JSON file, or key=value pairs) without writing it.
    Validate {
        /// Attributes as key=value.
        pairs: Vec<String>,
        /// A JSON object of attributes.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List every policy item.
    List {
        #[command(flatten)]
        table: TableArg,
    },
}

/// `forewarm status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One function (default: all).
    pub function: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    table: TableArg,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread drives every ping: they wait on the network, not the CPU,
    // and one allocator arena keeps the fan-out's memory small.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn config(table: &TableArg) -> anyhow::Result<ControllerConfig> {
    let mut c = ControllerConfig::from_env()?;
    if let Some(t) = &table.table {
        c.table = t.clone();
    }
    Ok(c)
}

fn now_ms() -> u64 {
    crate::ports::Clock::now_ms(&crate::ports::SystemClock)
}

/// Runs `forewarm tick`.
pub fn tick(args: TickArgs) -> anyhow::Result<()> {
    let cfg = config(&args.table)?;
    let report = runtime()?.block_on(async {
        let ports = controller::ports(&cfg).await;
        let owner = format!("cli-{}-{}", std::process::id(), now_ms());
        controller::run(&ports, &cfg.tick(owner, args.dry_run), now_ms()).await
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:<32} {:>9} {:>7} {:>6} {:>8} {:>6} {:>6}  note",
            "function", "reason", "target", "pings", "distinct", "cold", "saved"
        );
        for f in &report.functions {
            let (reason, target, pings) = f.decision.map_or(("-".to_string(), 0, 0), |d| {
                (format!("{:?}", d.reason), d.target, d.pings())
            });
            let (distinct, cold) = f.warm.map_or((0, 0), |w| (w.distinct, w.cold));
            println!(
                "{:<32} {:>9} {:>7} {:>6} {:>8} {:>6} {:>6}  {}",
                f.function,
                reason,
                target,
                pings,
                distinct,
                cold,
                f.saved,
                f.note.as_ref().map(ToString::to_string).unwrap_or_default()
            );
        }
        println!("{} functions resting (not due for a look)", report.resting);
        if report.late > 0 {
            println!(
                "{} functions left for the next tick: this tick ran out of time",
                report.late
            );
        }
        if let Some(why) = &report.skipped {
            println!("nothing done: {why}");
        }
    }
    if let Some(e) = report.error {
        bail!(e);
    }
    Ok(())
}

/// Runs `forewarm warm`.
pub fn warm(args: WarmArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let delay = parse_duration(&args.delay).map_err(anyhow::Error::msg)?;
    let delay_ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
    if delay_ms as u64 > crate::protocol::MAX_DELAY_MS {
        bail!(
            "--delay {} is above the {} ms a shim holds",
            args.delay,
            crate::protocol::MAX_DELAY_MS
        );
    }
    let cfg = ControllerConfig::from_env()?;
    let f = FunctionRef::parse(&args.function);
    let started = std::time::Instant::now();
    let report = runtime()?.block_on(async {
        let warmer = controller::ports(&ControllerConfig {
            warmer: WarmerConfig {
                max_in_flight: (args.n as usize).max(cfg.warmer.max_in_flight),
                ..cfg.warmer
            },
            ..cfg.clone()
        })
        .await
        .warmer;
        // A one-shot warm has no history of the function's inits: it waits
        // as long as Lambda can take to answer a cold ping (its Init limit
        // plus the function's configured timeout, at most 45 s), when the
        // configuration can be read; else the configured allowance.
        let init_allowance_ms = warmer
            .limits(&f)
            .await
            .ok()
            .and_then(|l| l.timeout_ms)
            .map_or(0, |t| {
                crate::decision::pings::learned_init_allowance_ms(
                    crate::decision::pings::MAX_INIT_WAIT_MS,
                    Some(t),
                )
            });
        let plan = WarmPlan {
            function: f.clone(),
            n: args.n,
            delay_ms,
            run: format!("cli-warm-{}", now_ms()).into(),
            at_ms: now_ms(),
            init_allowance_ms,
            answer_by_ms: None,
        };
        warmer.warm_one(&plan).await
    });
    let wall_ms = started.elapsed().as_millis() as u64;
    let report = report.with_context(|| format!("warming {f}"))?;
    let s = report.summary();
    // Cost at Lambda's on-demand prices for a 128 MB function (memory is not
    // read here); scale by memory/128 for bigger ones.
    let cost = controller::ping_cost_usd(s.requested, 128, delay_ms);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "function": f.to_string(), "requested": s.requested, "ok": s.ok, "distinct": s.distinct,
                "anonymous": s.anonymous, "cold": s.cold, "failed": s.failed, "failures": s.failures,
                "spread_ms": s.spread_ms,
                "delay_ms": delay_ms, "wall_ms": wall_ms, "overhead_ms": wall_ms.saturating_sub(delay_ms as u64),
                "cost_usd_at_128mb": cost
            })
        );
    } else {
        println!(
            "{f}: {} pings, {} distinct sandboxes reached ({} answered without identity), {} cold, {} failed\n\
             start spread {} ms with a hold of {} ms; took {} ms; about ${:.8} at 128 MB",
            s.requested,
            s.distinct,
            s.anonymous,
            s.cold,
            s.failed,
            s.spread_ms,
            delay_ms,
            wall_ms,
            cost
        );
        if s.failed > 0 {
            println!("failed: {}", s.failures.describe());
        }
        if s.distinct + s.anonymous < s.ok {
            println!(
                "some pings shared a sandbox: a longer --delay (about {} ms) would reach more",
                s.spread_ms * 5 / 4 + 30
            );
        }
    }
    if s.ok == 0 {
        bail!("no ping succeeded");
    }
    Ok(())
}

fn pairs_doc(pairs: &[String], file: Option<&PathBuf>) -> anyhow::Result<PolicyDoc> {
    let mut doc = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            policy::doc_from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => PolicyDoc::new(),
    };
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("`{p}` must look like key=value"))?;
        doc.insert(k.trim().to_string(), Scalar::from_text(v));
    }
    // From key=value pairs or a file alike: a nameless attribute is a typo.
    if let Some(k) = doc.keys().find(|k| k.trim().is_empty()) {
        bail!("an attribute name is empty ({k:?})");
    }
    Ok(doc)
}

fn show_doc(doc: &PolicyDoc) -> String {
    doc.iter()
        .map(|(k, v)| format!("  {k} = {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `forewarm policy ...`.
pub fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Validate { pairs, file } => {
            let doc = pairs_doc(&pairs, file.as_ref())?;
            let parsed = Policy::from_doc(&doc)?;
            for w in &parsed.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "valid; with defaults:\n{}",
                show_doc(&parsed.policy.to_doc())
            );
            Ok(())
        }
        PolicyCommand::Put {
            function,
            pairs,
            file,
            table,
        } => {
            let cfg = config(&table)?;
            let doc = pairs_doc(&pairs, file.as_ref())?;
            if function != "*" {
                FunctionRef::check_key(&function)
                    .map_err(|e| anyhow::anyhow!("not written: {e}"))?;
            }
            runtime()?.block_on(async {
                let ports = controller::ports(&cfg).await;
                let defaults = if function == "*" {
                    None
                } else {
                    ports.store.get_policy("*").await?
                };
                let parsed = Policy::from_items(defaults.as_ref(), &doc)
                    .map_err(|e| anyhow::anyhow!("not written: {e}"))?;
                for w in &parsed.warnings {
                    eprintln!("warning: {w}");
                }
                if function == "*" {
                    // New defaults merge under every function's policy: say
                    // which of them they would make invalid (the next tick
                    // would skip those functions).
                    for (pk, fdoc, key_problem) in ports.store.list_policies().await? {
                        if pk == "*" || key_problem.is_some() {
                            continue;
                        }
                        if let Err(e) = Policy::from_items(Some(&doc), &fdoc) {
                            eprintln!(
                                "warning: with these defaults the policy of {pk} is invalid: {e}"
                            );
                        }
                    }
                }
                ports.store.put_policy(&function, &doc).await?;
                println!(
                    "wrote policy for {function} to {}; in effect, with defaults:\n{}",
                    cfg.table,
                    show_doc(&parsed.policy.to_doc())
                );
                Ok(())
            })
        }
        PolicyCommand::Get { function, table } => {
            let cfg = config(&table)?;
            runtime()?.block_on(async {
                let ports = controller::ports(&cfg).await;
                let Some(doc) = ports.store.get_policy(&function).await? else {
                    bail!("no policy item for {function} in {}", cfg.table);
                };
                let defaults = if function == "*" {
                    None
                } else {
                    ports.store.get_policy("*").await?
                };
                println!("item:\n{}", show_doc(&doc));
                match Policy::from_items(defaults.as_ref(), &doc) {
                    Ok(p) => println!(
                        "in effect, with defaults:\n{}",
                        show_doc(&p.policy.to_doc())
                    ),
                    Err(e) => println!("INVALID: {e}"),
                }
                Ok(())
            })
        }
        PolicyCommand::List { table } => {
            let cfg = config(&table)?;
            runtime()?.block_on(async {
                let ports = controller::ports(&cfg).await;
                for (pk, doc, key_problem) in ports.store.list_policies().await? {
                    let verdict = match (key_problem, Policy::from_doc(&doc)) {
                        (Some(why), _) => format!("INVALID: {why}"),
                        (None, Ok(_)) => "ok".to_string(),
                        (None, Err(e)) => format!("INVALID: {e}"),
                    };
                    let attrs: Vec<String> = doc.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("{pk:<32} {verdict:<8} {}", attrs.join(" "));
                }
                Ok(())
            })
        }
    }
}

/// Runs `forewarm status`.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let cfg = config(&args.table)?;
    let (items, claim) = runtime()?.block_on(async {
        let ports = controller::ports(&cfg).await;
        let items = ports.store.states(args.function.as_deref()).await?;
        anyhow::Ok((items, ports.store.run_claim().await?))
    })?;
    if args.function.is_some() && items.is_empty() {
        bail!(
            "no state for {} in {} (the controller has not looked at it yet)",
            args.function.unwrap_or_default(),
            cfg.table
        );
    }
    if args.json {
        let v: Vec<serde_json::Value> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "function": i.function, "version": i.version, "last_error": i.last_error,
                    "lease_owner": i.lease_owner, "lease_until_ms": i.lease_until_ms, "state": i.state,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some((owner, until)) = claim.filter(|(_, until)| *until > now_ms()) {
        if until > now_ms().saturating_add(15 * 60_000) {
            println!(
                "the run's claim ({owner}, ending {until} ms) lasts longer than any run can: it is not a run's, and the next tick takes it over"
            );
        } else {
            println!(
                "a controller run is in progress: {owner}, claim ends in {} s",
                until.saturating_sub(now_ms()).div_ceil(1_000)
            );
        }
    }
    println!(
        "{:<28} {:>8} {:>7} {:>7} {:>8} {:>7} {:>9} {:>9}  last error",
        "function", "forecast", "target", "warmed", "distinct", "delay", "z", "survives"
    );
    for i in &items {
        let Some(st) = &i.state else {
            println!(
                "{:<28} (no readable state) {}",
                i.function,
                i.last_error.as_deref().unwrap_or("")
            );
            continue;
        };
        let d = st.decisions.last();
        let survives = st.survival.died_s.map_or_else(
            || {
                st.survival
                    .survived_s
                    .map_or("?".into(), |s| format!(">={s}s"))
            },
            |d| format!("<{d}s"),
        );
        println!(
            "{:<28} {:>8.1} {:>7} {:>7} {:>8} {:>5}ms {:>9.2} {:>9}  {}",
            i.function,
            d.map_or(0.0, |d| d.forecast),
            d.map_or(0, |d| d.target),
            d.map_or(0, |d| d.warmed),
            st.last_warm.map_or(0, |w| w.distinct),
            st.delay_ms,
            st.forecaster.z,
            survives,
            i.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
