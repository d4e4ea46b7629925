//! The operator commands over AWS `tick` and `warm`, and what every command
//! over AWS shares (the table, the runtime, the clock).
//!
//! They honour the standard AWS environment (`AWS_REGION`, `AWS_PROFILE`,
//! `AWS_ENDPOINT_URL_*`) and name the table with `--table` or
//! `FOREWARM_TABLE` (default `forewarm`).

use anyhow::{Context, bail};
use clap::Args;

use super::parse::parse_duration;
use crate::aws::WarmerConfig;
use crate::aws::controller::{self, ControllerConfig};
use crate::decision::ReportSummary;
use crate::ports::{FunctionRef, WarmPlan, Warmer};

/// Where the table is.
#[derive(Debug, Args)]
pub(crate) struct TableArg {
    /// The DynamoDB table (default: $FOREWARM_TABLE, else `forewarm`).
    #[arg(long, global = true)]
    pub table: Option<String>,
}

/// `forewarm tick`.
#[derive(Debug, Args)]
pub(crate) struct TickArgs {
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
pub(crate) struct WarmArgs {
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

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread drives every ping: they wait on the network, not the CPU,
    // and one allocator arena keeps the fan-out's memory small.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(super) fn config(table: &TableArg) -> anyhow::Result<ControllerConfig> {
    let mut c = ControllerConfig::from_env()?;
    if let Some(t) = &table.table {
        c.table = t.clone();
    }
    Ok(c)
}

pub(super) fn now_ms() -> u64 {
    crate::ports::Clock::now_ms(&crate::ports::SystemClock)
}

/// Runs `forewarm tick`.
pub(super) fn tick(args: TickArgs) -> anyhow::Result<()> {
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
            // A planned warm that went as planned has nothing to save: its
            // stored plan says what it did.
            let as_planned = !f.saved
                && f.note.is_none()
                && f.decision
                    .is_some_and(|d| d.reason == crate::decision::Reason::Planned);
            let saved = if as_planned {
                "plan".to_string()
            } else {
                f.saved.to_string()
            };
            println!(
                "{:<32} {:>9} {:>7} {:>6} {:>8} {:>6} {:>6}  {}",
                f.function,
                reason,
                target,
                pings,
                distinct,
                cold,
                saved,
                f.note.as_ref().map(ToString::to_string).unwrap_or_default()
            );
        }
        println!("{} functions resting (not due for a look)", report.resting);
        if let Some(gap) = report.idle_gap_s {
            println!(
                "account: idle sandboxes taken to survive {gap} s (the warms' interval, inside each function's own deaths)"
            );
        }
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
pub(super) fn warm(args: WarmArgs) -> anyhow::Result<()> {
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
    print_warm(&f, &s, delay_ms, wall_ms, cost, args.json);
    if s.ok == 0 {
        bail!("no ping succeeded");
    }
    Ok(())
}

/// What `forewarm warm` prints: one JSON object, or a sentence with hints.
fn print_warm(
    f: &FunctionRef,
    s: &ReportSummary,
    delay_ms: u32,
    wall_ms: u64,
    cost: f64,
    json: bool,
) {
    if json {
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
}
