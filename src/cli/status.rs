//! `forewarm status`: the controller's view of each function. The work is
//! done over [`AdminStore`], so the in-memory store answers for DynamoDB in
//! its tests.

use std::fmt::Write;

use anyhow::bail;
use clap::Args;

use super::aws::{config, now_ms, runtime};
use crate::aws::controller;
use crate::ports::{AdminStore, StateItem};

/// `forewarm status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// One function (default: all).
    pub function: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    table: super::aws::TableArg,
}

/// Runs `forewarm status`.
pub(super) fn status(args: StatusArgs) -> anyhow::Result<()> {
    let cfg = config(&args.table)?;
    let text = runtime()?.block_on(async {
        let ports = controller::ports(&cfg).await;
        report(
            &ports.store,
            args.function.as_deref(),
            args.json,
            &cfg.table,
            now_ms(),
        )
        .await
    })?;
    println!("{text}");
    Ok(())
}

/// What `forewarm status` prints: one line per function (or JSON), after
/// the run in progress, if any.
async fn report<S: AdminStore>(
    store: &S,
    function: Option<&str>,
    json: bool,
    table: &str,
    now_ms: u64,
) -> anyhow::Result<String> {
    let items = store.states(function).await?;
    let run = store.run_item().await?;
    if let Some(f) = function
        && items.is_empty()
    {
        bail!("no state for {f} in {table} (the controller has not looked at it yet)");
    }
    let mut out = String::new();
    if json {
        let v: Vec<serde_json::Value> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "function": i.function, "version": i.version, "last_error": i.last_error,
                    "lease_owner": i.lease_owner, "lease_until_ms": i.lease_until_ms, "state": i.state,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&v)?);
    }
    if let Some(line) = run.claim.and_then(|c| claim_line(c, now_ms)) {
        writeln!(out, "{line}")?;
    }
    // What the account's warms taught about idle reaping: the gap every
    // function's interval starts from.
    if let Some(text) = run.reaping {
        match crate::decision::Reaping::parse(&text) {
            Ok(r) => writeln!(out, "account: {}", r.describe(now_ms))?,
            Err(why) => writeln!(
                out,
                "account: reaping evidence unreadable ({why}); the next tick learns it afresh"
            )?,
        }
    }
    writeln!(
        out,
        "{:<28} {:>8} {:>7} {:>7} {:>8} {:>7} {:>9} {:>9} {:>10} {:>16}  last error",
        "function",
        "forecast",
        "target",
        "warmed",
        "distinct",
        "delay",
        "z",
        "survives",
        "planned",
        "avoidable cold/h"
    )?;
    for i in &items {
        writeln!(out, "{}", state_line(i, now_ms))?;
    }
    out.pop(); // the last line's newline: the caller prints a line
    Ok(out)
}

/// The run in progress, if a live claim says so.
fn claim_line((owner, until): (String, u64), now_ms: u64) -> Option<String> {
    if until <= now_ms {
        return None;
    }
    Some(if until > now_ms.saturating_add(15 * 60_000) {
        format!(
            "the run's claim ({owner}, ending {until} ms) lasts longer than any run can: it is not a run's, and the next tick takes it over"
        )
    } else {
        format!(
            "a controller run is in progress: {owner}, claim ends in {} s",
            until.saturating_sub(now_ms).div_ceil(1_000)
        )
    })
}

/// One function's line under the header.
fn state_line(i: &StateItem, now_ms: u64) -> String {
    let Some(st) = &i.state else {
        return format!(
            "{:<28} (no readable state) {}",
            i.function,
            i.last_error.as_deref().unwrap_or("")
        );
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
    // Warms planned ahead: pings, spacing and the minutes left of the
    // run (its slots are sent without a save, so the last decision
    // shown may be older than the last warm).
    let planned = st.run.filter(|r| r.until_ms > now_ms).map_or_else(
        || "-".to_string(),
        |r| {
            format!(
                "{}@{}m/{}m",
                r.n,
                r.every_ms / 60_000,
                (r.until_ms - now_ms).div_ceil(60_000)
            )
        },
    );
    // The real cold starts an hour warming could avoid, once a day of
    // minutes has been read; where the last look left the function cold
    // for it (`not_worth_it`), what they were worth against what warming
    // would cost, USD an hour.
    let worth = match (st.avoidable.judged(), st.worth) {
        (false, _) => "-".to_string(),
        (true, None) => format!("{:.2}", st.avoidable.per_hour()),
        (true, Some(w)) => format!(
            "{:.2} ${:.1e}<{:.1e}",
            st.avoidable.per_hour(),
            w.value_usd_h,
            w.cost_usd_h
        ),
    };
    format!(
        "{:<28} {:>8.1} {:>7} {:>7} {:>8} {:>5}ms {:>9.2} {:>9} {:>10} {:>16}  {}",
        i.function,
        d.map_or(0.0, |d| d.forecast),
        d.map_or(0, |d| d.target),
        d.map_or(0, |d| d.warmed),
        st.last_warm.map_or(0, |w| w.distinct),
        st.delay_ms,
        st.forecaster.z,
        survives,
        planned,
        worth,
        i.last_error.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::policy::Policy;
    use crate::decision::{DecisionRecord, FunctionState, Reason};
    use crate::ports::FunctionRef;
    use crate::ports::memory::MemoryStore;
    use crate::tick::block_on_ready;

    #[test]
    fn status_shows_each_functions_last_decision_and_what_cannot_be_read() {
        let store = MemoryStore::new();
        let mut st = FunctionState::new(&Policy::default());
        st.decisions.push(DecisionRecord {
            at_ms: 1_000,
            reason: Reason::Due,
            forecast: 3.5,
            target: 4,
            warmed: 4,
        });
        st.run = Some(crate::decision::Run {
            first_ms: 240_000,
            every_ms: 240_000,
            until_ms: 1_200_000,
            n: 3,
            hold_ms: 300,
            reached: 4,
            busy: 1,
        });
        store.put_state_json(
            &FunctionRef::unqualified("orders"),
            &serde_json::to_string(&st).unwrap(),
        );
        store.put_state_json(&FunctionRef::unqualified("garbled"), "{not json");
        let mut cold = FunctionState::new(&Policy::default());
        cold.decisions.push(DecisionRecord {
            at_ms: 1_000,
            reason: Reason::NotWorthIt,
            forecast: 0.8,
            target: 1,
            warmed: 0,
        });
        cold.avoidable = crate::decision::Avoidable {
            per_minute: 0.000_5,
            minutes: 1_440,
        };
        cold.worth = Some(crate::decision::Worth {
            value_usd_h: 0.000_012,
            cost_usd_h: 0.000_045,
        });
        store.put_state_json(
            &FunctionRef::unqualified("cron"),
            &serde_json::to_string(&cold).unwrap(),
        );
        let text = block_on_ready(report(&store, None, false, "t", 60_000)).unwrap();
        let orders = text.lines().find(|l| l.starts_with("orders")).unwrap();
        let cols: Vec<&str> = orders.split_whitespace().collect();
        assert_eq!(&cols[1..4], ["3.5", "4", "4"], "{text}");
        // Three pings every four minutes, for 19 minutes more.
        assert_eq!(cols[8], "3@4m/19m", "{text}");
        assert_eq!(cols[9], "-", "not judged yet: {text}");
        let cron = text.lines().find(|l| l.starts_with("cron")).unwrap();
        let cols: Vec<&str> = cron.split_whitespace().collect();
        assert_eq!(&cols[9..11], ["0.03", "$1.2e-5<4.5e-5"], "{text}");
        let garbled = text.lines().find(|l| l.starts_with("garbled")).unwrap();
        assert!(garbled.contains("(no readable state)"), "{text}");

        let json = block_on_ready(report(&store, Some("orders"), true, "t", 0)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["function"], "orders");
        assert_eq!(v[0]["state"]["decisions"][0][2], 3.5);

        let e = block_on_ready(report(&store, Some("absent"), false, "t", 0)).unwrap_err();
        assert!(e.to_string().starts_with("no state for absent in t"), "{e}");
    }

    #[test]
    fn status_says_when_a_run_is_in_progress() {
        let store = MemoryStore::new();
        block_on_ready(crate::ports::StateStore::claim_run(
            &store, "run-7", 0, 50_000,
        ))
        .unwrap();
        let text = block_on_ready(report(&store, None, false, "t", 10_000)).unwrap();
        assert!(
            text.starts_with("a controller run is in progress: run-7, claim ends in 40 s"),
            "{text}"
        );
    }

    #[test]
    fn status_says_what_idle_gap_the_account_learned() {
        use crate::ports::StateStore;
        let store = MemoryStore::new();
        block_on_ready(store.claim_run("run-1", 0, 50_000)).unwrap();
        let learned =
            crate::decision::Reaping::parse("0;40.00;5:300.00/0.00/0.00,6:20.00/20.00/0.00")
                .unwrap();
        block_on_ready(store.release_run("run-1", &Default::default(), &learned)).unwrap();
        let text = block_on_ready(report(&store, None, false, "t", 0)).unwrap();
        assert!(
            text.starts_with(
                "account: idle sandboxes survive 5 min (320 sandboxes seen survive it lately, 0.0 % died); 6 min killed 50 %"
            ),
            "{text}"
        );
    }
}
