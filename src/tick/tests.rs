//! The tick as stories, over the in-memory store and small fake ports.

use std::future::Future;
use std::sync::Mutex;

use super::*;
use crate::decision::Reason;
use crate::decision::policy::{PolicyDoc, Scalar};
use crate::ports::memory::{MemoryMetrics, MemoryStore, MemoryWarmer};
use crate::ports::{FixedClock, PortError};

const NOW: u64 = 1_764_150_000_000;

fn policy(pairs: &[(&str, f64)]) -> PolicyDoc {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Scalar::Num(*v)))
        .collect()
}

fn f(name: &str) -> FunctionRef {
    FunctionRef::unqualified(name)
}

fn tick(
    store: &MemoryStore,
    metrics: &MemoryMetrics,
    lambda: &MemoryWarmer,
    owner: &str,
    now: u64,
) -> TickReport {
    block_on_ready(run_tick(
        store,
        metrics,
        lambda,
        &FixedClock(now),
        &TickConfig::new(owner),
        now,
    ))
}

#[test]
fn a_tick_warms_the_forecast_and_saves_state() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[("max", 50.0)]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 6.0)]),
        MemoryWarmer::default(),
    );
    let r = tick(&store, &metrics, &lambda, "run-1", NOW);
    let out = &r.functions[0];
    assert!(out.saved, "{out:?}");
    let d = out.decision.unwrap();
    assert!(d.target >= 6, "{d:?}");
    // Three sandboxes are busy with real requests at a typical moment: the
    // pings warm the rest of the target.
    assert_eq!(d.pings(), d.target - 3, "{d:?}");
    assert_eq!(out.warm.unwrap().distinct, d.pings());
    let (state, version, err) = store.get(&f("orders"));
    assert_eq!((version, err), (1, None));
    assert!(state.unwrap().last_warm.is_some());
    assert_eq!(
        *metrics.calls.lock().unwrap(),
        1,
        "one batched metrics call"
    );
}

#[test]
fn a_malformed_policy_is_reported_and_the_others_still_warm() {
    let store = MemoryStore::new();
    store.put_policy(&f("good"), policy(&[]));
    store.put_policy(&f("bad"), policy(&[]));
    let metrics = MemoryMetrics::steady(&[("good", 3.0), ("bad", 3.0)]);
    let lambda = MemoryWarmer::default();
    tick(&store, &metrics, &lambda, "run-1", NOW);
    let healthy = store.state_json(&f("bad")).unwrap();

    // Somebody edits the item badly.
    store.put_policy(&f("bad"), policy(&[("min", 10.0), ("max", 5.0)]));
    lambda.sent.lock().unwrap().clear();
    let r = tick(&store, &metrics, &lambda, "run-2", NOW + 300_000);
    assert_eq!(r.functions.len(), 2);
    let bad = r
        .functions
        .iter()
        .find(|o| &*o.function.name == "bad")
        .unwrap();
    assert!(
        matches!(&bad.note, Some(Note::InvalidPolicy(why)) if why.contains("max (5) is below min (10)")),
        "{bad:?}"
    );
    let (_, version, err) = store.get(&f("bad"));
    assert_eq!(version, 1);
    assert_eq!(
        store.state_json(&f("bad")).unwrap(),
        healthy,
        "nothing of its state overwritten"
    );
    assert!(err.unwrap().contains("max (5) is below min (10)"));
    let sent = lambda.sent.lock().unwrap();
    assert!(sent.iter().any(|p| &*p.function.name == "good"));
    assert!(!sent.iter().any(|p| &*p.function.name == "bad"));
}

#[test]
fn a_tick_while_another_run_holds_the_claim_does_nothing() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 4.0)]),
        MemoryWarmer::default(),
    );
    // Run A claimed the run (it is mid-tick) when run B starts.
    block_on_ready(store.claim_run("run-A", NOW, NOW + 50_000)).unwrap();
    let r = tick(&store, &metrics, &lambda, "run-B", NOW + 1_000);
    assert!(r.functions.is_empty(), "B looked at nothing");
    assert!(
        r.error.is_none(),
        "an overlapping delivery is not a failure"
    );
    assert!(
        r.skipped.as_ref().unwrap().contains("claimed by run-A"),
        "{r:?}"
    );
    assert!(lambda.sent.lock().unwrap().is_empty(), "warmed by A only");
    assert_eq!(store.get(&f("orders")).1, 0, "nothing written");
    assert_eq!(r.idle_gap_s, None, "B learned nothing of the account");
    // After A's claim expires, B may run; it releases its own claim at the end.
    let r = tick(&store, &metrics, &lambda, "run-B", NOW + 60_000);
    assert!(r.functions[0].saved);
    assert_eq!(store.run_claim(), None, "released");
}

#[test]
fn a_tick_that_cannot_claim_the_run_fails_and_writes_nothing() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 4.0)]),
        MemoryWarmer::default(),
    );
    store.fail_next(
        "claim_run",
        PortError::new(ErrorKind::Unavailable, "table unreachable"),
    );
    let r = tick(&store, &metrics, &lambda, "run-1", NOW);
    assert!(r.error.as_ref().unwrap().contains("table unreachable"));
    assert!(r.functions.is_empty());
    assert!(lambda.sent.lock().unwrap().is_empty());
}

#[test]
fn a_lost_save_leaves_the_stored_state_intact() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 4.0)]),
        MemoryWarmer::default(),
    );
    tick(&store, &metrics, &lambda, "run-1", NOW);
    let before = store.state_json(&f("orders"));
    store.fail_next(
        "save",
        PortError::new(ErrorKind::Throttled, "ProvisionedThroughputExceeded"),
    );
    // Past the warms the first look planned: a look, with a save.
    let r = tick(&store, &metrics, &lambda, "run-2", NOW + 61 * 60_000);
    assert!(!r.functions[0].saved);
    assert!(
        matches!(
            r.functions[0].note,
            Some(Note::NotSaved {
                why: Unsaved::Unchanged,
                uncertain: None,
                ..
            })
        ),
        "{:?}",
        r.functions[0]
    );
    assert_eq!(store.state_json(&f("orders")), before);
}

#[test]
fn a_save_whose_answer_was_lost_is_read_back_not_guessed() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 4.0)]),
        MemoryWarmer::default(),
    );
    tick(&store, &metrics, &lambda, "run-1", NOW);
    let mut at = NOW;
    // Applied, then the connection dropped; applied, then the SDK's retry
    // found its own write and failed the condition: both are this run's
    // saves, and say so.
    for (i, lost) in [
        PortError::new(ErrorKind::Unavailable, "connection reset"),
        PortError::new(ErrorKind::Conflict, "ConditionalCheckFailed"),
    ]
    .into_iter()
    .enumerate()
    {
        // Each past the warms the look before planned: a look, with a save.
        at += 61 * 60_000;
        store.lose_answer_next("save", lost);
        let run = format!("run-lost-{i}");
        let r = tick(&store, &metrics, &lambda, &run, at);
        assert!(r.functions[0].saved, "{:?}", r.functions[0]);
        assert_eq!(r.functions[0].note, None);
        assert_eq!(store.get(&f("orders")).1, 2 + i as u64);
    }
    // A save that failed and a read-back that failed too: not certain, and
    // it says so rather than guessing.
    at += 61 * 60_000;
    store.fail_next("save", PortError::new(ErrorKind::Unavailable, "timeout"));
    store.fail_next(
        "last_save",
        PortError::new(ErrorKind::Unavailable, "timeout"),
    );
    let r = tick(&store, &metrics, &lambda, "run-x", at);
    let note = r.functions[0].note.clone();
    assert!(!r.functions[0].saved);
    assert!(
        matches!(
            note,
            Some(Note::NotSaved {
                uncertain: Some(_),
                ..
            })
        ),
        "{note:?}"
    );
    let said = note.map(|n| n.to_string()).unwrap_or_default();
    assert!(
        said.contains("not certain") && said.contains("next tick reads"),
        "{said}"
    );
}

#[test]
fn a_metrics_outage_falls_back_to_the_last_forecast() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let lambda = MemoryWarmer::default();
    tick(
        &store,
        &MemoryMetrics::steady(&[("orders", 8.0)]),
        &lambda,
        "run-1",
        NOW,
    );
    let down = MemoryMetrics {
        down: true,
        ..MemoryMetrics::default()
    };
    let r = tick(&store, &down, &lambda, "run-2", NOW + 20 * 60_000);
    let d = r.functions[0].decision.unwrap();
    assert_eq!(d.reason, Reason::StaleMetrics);
    assert!(d.target >= 8);
    let (_, _, err) = store.get(&f("orders"));
    assert!(err.unwrap().contains("cloudwatch is down"));
}

#[test]
fn a_missing_function_is_reported_and_skipped() {
    let store = MemoryStore::new();
    store.put_policy(&f("gone"), policy(&[]));
    store.put_policy(&f("here"), policy(&[]));
    let metrics = MemoryMetrics::steady(&[("gone", 2.0), ("here", 2.0)]);
    let lambda = MemoryWarmer {
        missing: vec!["gone".into()],
        ..MemoryWarmer::default()
    };
    let r = tick(&store, &metrics, &lambda, "run-1", NOW);
    let (_, _, err) = store.get(&f("gone"));
    assert!(err.unwrap().contains("not found"));
    assert!(
        r.functions
            .iter()
            .any(|o| &*o.function.name == "here" && o.saved)
    );
    // The run's claim was released: the next run is not blocked.
    assert!(block_on_ready(store.claim_run("run-2", NOW + 1, NOW + 2)).is_ok());
}

/// A tick that decides and writes nothing (`forewarm tick --dry-run`).
fn dry_tick(
    store: &MemoryStore,
    metrics: &MemoryMetrics,
    lambda: &MemoryWarmer,
    now: u64,
) -> TickReport {
    let cfg = TickConfig {
        dry_run: true,
        ..TickConfig::new("dry")
    };
    block_on_ready(run_tick(
        store,
        metrics,
        lambda,
        &FixedClock(now),
        &cfg,
        now,
    ))
}

#[test]
fn a_dry_run_decides_but_neither_pings_nor_saves() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 5.0)]),
        MemoryWarmer::default(),
    );
    let r = dry_tick(&store, &metrics, &lambda, NOW);
    assert!(r.functions[0].decision.unwrap().target >= 5);
    assert!(lambda.sent.lock().unwrap().is_empty());
    assert_eq!(store.get(&f("orders")).1, 0);
}

#[test]
fn a_dry_run_decides_with_the_idle_gap_the_account_learned() {
    // The last run left the lesson that idle sandboxes survive 7 minutes:
    // a dry run must decide as the next tick would, not from 4 minutes.
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let learned = crate::decision::Reaping::parse("0;0;7:100/0/0").unwrap();
    block_on_ready(store.claim_run("run-0", NOW - 60_000, NOW - 1)).unwrap();
    block_on_ready(store.release_run("run-0", &Default::default(), &learned)).unwrap();
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 5.0)]),
        MemoryWarmer::default(),
    );
    let r = dry_tick(&store, &metrics, &lambda, NOW);
    let d = r.functions[0].decision.unwrap();
    assert_eq!(d.reason, Reason::Due, "{d:?}");
    assert_eq!(d.next_due_ms - NOW, 420_000, "{d:?}");
    // And the report says the lesson (`tick --json`, the controller's log).
    assert_eq!(r.idle_gap_s, Some(420), "{r:?}");
    assert_eq!(store.get(&f("orders")).1, 0, "nothing saved");
    assert_eq!(store.run_claim(), None, "nothing claimed");
}

#[test]
fn the_policy_list_failing_aborts_the_tick() {
    let store = MemoryStore::new();
    store.fail_next(
        "targets",
        PortError::new(ErrorKind::NotFound, "table forewarm not found"),
    );
    let r = tick(
        &store,
        &MemoryMetrics::default(),
        &MemoryWarmer::default(),
        "run-1",
        NOW,
    );
    assert!(r.error.unwrap().contains("table forewarm not found"));
}

#[test]
fn reserved_concurrency_caps_what_the_tick_sends() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[("headroom", 2.0)]));
    let metrics = MemoryMetrics::steady(&[("orders", 20.0)]);
    let lambda = MemoryWarmer {
        reserved: [("orders".to_string(), 25)].into(),
        ..MemoryWarmer::default()
    };
    tick(&store, &metrics, &lambda, "run-1", NOW);
    assert!(lambda.sent.lock().unwrap().iter().all(|p| p.n <= 3));
}

#[test]
fn every_port_failure_has_a_recovery() {
    use ErrorKind::*;
    for stage in [
        Stage::Claim,
        Stage::Targets,
        Stage::Load,
        Stage::Observe,
        Stage::Limits,
        Stage::Warm,
        Stage::Save,
    ] {
        for kind in [Throttled, Conflict, NotFound, Unavailable, Invalid] {
            let r = error_policy(stage, kind);
            // Only what no function can go without stops the tick.
            if !matches!(stage, Stage::Claim | Stage::Targets) {
                assert_ne!(
                    r,
                    Recovery::Abort,
                    "{stage:?}/{kind:?} must not stop other functions"
                );
            }
        }
    }
    assert_eq!(error_policy(Stage::Save, Conflict), Recovery::Discard);
    assert_eq!(error_policy(Stage::Claim, Conflict), Recovery::Skip);
    assert_eq!(error_policy(Stage::Claim, Unavailable), Recovery::Abort);
}

/// Five functions peaking at 10 real each (5 on average), none reserved,
/// in an account whose unreserved pool is 60, ticked at `at`.
fn five_in_a_pool_of_60(at: u64) -> (MemoryStore, MemoryWarmer, TickReport) {
    let store = MemoryStore::new();
    let names = ["a", "b", "c", "d", "e"];
    for n in names {
        store.put_policy(&f(n), policy(&[]));
    }
    let metrics = MemoryMetrics::steady(&names.map(|n| (n, 10.0)));
    let lambda = MemoryWarmer {
        unreserved: Some(60),
        ..MemoryWarmer::default()
    };
    let r = tick(&store, &metrics, &lambda, "run-1", at);
    (store, lambda, r)
}

/// The functions whose warm the tick cut to share the pool, and when each
/// next warm falls due as saved.
fn cut_and_due(store: &MemoryStore, r: &TickReport) -> Vec<(FunctionRef, u64)> {
    r.functions
        .iter()
        .filter(|o| {
            o.decision
                .is_some_and(|d| d.capped_by == Some(crate::decision::Cap::Concurrency))
        })
        .map(|o| {
            let (state, ..) = store.get(&o.function);
            (o.function.clone(), state.expect("saved").next_due_ms)
        })
        .collect()
}

#[test]
fn functions_sharing_the_account_pool_share_its_room() {
    // Together they run about 5 x 5 + sqrt(5 x 5^2) = 36.2 at once; with
    // headroom 5, 18 sandboxes are left for pings between them, however
    // much each would warm alone (each alone sees room for 45).
    let (store, lambda, r) = five_in_a_pool_of_60(NOW);
    let sent: u32 = lambda.sent.lock().unwrap().iter().map(|p| p.n).sum();
    assert!(sent <= 60 - 37 - 5, "{sent} pings: {r:#?}");
    assert!(sent > 0, "the room left is used");
    // The tick starts a forecast window, where looks and warms gather: a
    // cut function's next warm comes 1 to 4 minutes early, by its own
    // phase, off this tick (the first interval is 4 minutes).
    let cut = cut_and_due(&store, &r);
    assert!(!cut.is_empty());
    let interval = u64::from(crate::decision::survival::DEFAULT_INTERVAL_S) * 1_000;
    for (function, due) in &cut {
        assert!(
            (NOW + 60_000..=NOW + interval - 60_000).contains(due),
            "{function} due {} s after the tick",
            (due - NOW) / 1_000
        );
    }
}

#[test]
fn a_warm_cut_off_the_window_grid_keeps_its_interval() {
    // Where the pool is full at every tick, moving every cut warm forward
    // only adds warms to the crowd.
    let at = NOW + 60_000;
    let (store, _, r) = five_in_a_pool_of_60(at);
    let cut = cut_and_due(&store, &r);
    assert!(!cut.is_empty());
    let interval = u64::from(crate::decision::survival::DEFAULT_INTERVAL_S) * 1_000;
    for (function, due) in &cut {
        assert_eq!(*due, at + interval, "{function}");
    }
}

/// Five functions peaking at 10 real each, in an account whose unreserved
/// pool is 80: alone their estimate (about 36 at once) leaves room for
/// every ping they want; `pool` is what the account's series showed and
/// `pool_pings` what the last run said it sent into the pool.
fn five_in_a_pool_of_80(
    pool: Vec<(u64, f64)>,
    pool_pings: &crate::ports::PoolPings,
) -> (u32, MemoryStore, MemoryMetrics) {
    let store = MemoryStore::new();
    let names = ["a", "b", "c", "d", "e"];
    for n in names {
        store.put_policy(&f(n), policy(&[]));
    }
    // The last run's release leaves its pings on the account's item.
    block_on_ready(store.claim_run("run-0", NOW - 60_000, NOW - 1)).unwrap();
    block_on_ready(store.release_run("run-0", pool_pings, &crate::decision::Reaping::default()))
        .unwrap();
    let metrics = MemoryMetrics {
        pool,
        ..MemoryMetrics::steady(&names.map(|n| (n, 10.0)))
    };
    let lambda = MemoryWarmer {
        unreserved: Some(80),
        ..MemoryWarmer::default()
    };
    tick(&store, &metrics, &lambda, "run-1", NOW);
    let sent = lambda.sent.lock().unwrap().iter().map(|p| p.n).sum();
    (sent, store, metrics)
}

/// `batch` ran 30 at once for five minutes 50 minutes ago and one since;
/// every other function runs one.
fn burst_an_hour_ago(f: &FunctionRef, minute: u64) -> crate::decision::MinuteMetrics {
    let ago = (NOW / 60_000).saturating_sub(minute);
    let c = if &*f.name == "batch" && (46..=50).contains(&ago) {
        30.0
    } else {
        1.0
    };
    crate::decision::MinuteMetrics {
        minute,
        concurrency_max: Some(c),
        invocations: Some(c * 60.0),
        duration_avg_ms: Some(500.0),
        ..crate::decision::MinuteMetrics::default()
    }
}

#[test]
fn a_burst_its_function_no_longer_forecasts_does_not_crowd_out_the_others() {
    // An unreserved pool of 40. `batch` burst to 30 within the hour, and
    // its forecast for the next window is far below that; five functions
    // run one each. Reserving room for the burst (the hourly peak) left 2
    // of the 40 for pings, and every small function lost its warm: the
    // room kept is for what each function's forecast expects next.
    let store = MemoryStore::new();
    let small = ["a", "b", "c", "d", "e"];
    for n in small.iter().chain(&["batch"]) {
        store.put_policy(&f(n), policy(&[]));
    }
    let metrics = MemoryMetrics {
        shape: Some(burst_an_hour_ago),
        ..MemoryMetrics::default()
    };
    let lambda = MemoryWarmer {
        unreserved: Some(40),
        ..MemoryWarmer::default()
    };
    let r = tick(&store, &metrics, &lambda, "run-1", NOW);
    let batch = r.functions.iter().find(|o| &*o.function.name == "batch");
    let d = batch.and_then(|o| o.decision).expect("batch decided");
    assert!(d.raw_target < 30, "its forecast is below the burst: {d:?}");
    for o in r.functions.iter().filter(|o| &*o.function.name != "batch") {
        let d = o.decision.expect("decided");
        assert!(d.pings() > 0, "{}: {d:?}", o.function);
        assert_eq!(d.capped_by, None, "{}: {d:?}", o.function);
    }
    let sent: u32 = lambda.sent.lock().unwrap().iter().map(|p| p.n).sum();
    assert!(sent <= 40 - 5, "{sent} pings: {r:#?}");
}

#[test]
fn the_accounts_own_series_narrows_the_pool_less_the_pings_it_counted() {
    use crate::ports::PoolPings;
    let minute = NOW / 60_000 - 4;
    let (alone, ..) = five_in_a_pool_of_80(vec![], &PoolPings::default());
    assert!(alone >= 20, "no cut without the series: {alone}");
    // The account's series saw 60 in use a few minutes ago: the real
    // traffic then, whatever the functions' estimate, leaves room for
    // 80 - (60 + sqrt 60) - 5 pings.
    let (busy, _, metrics) = five_in_a_pool_of_80(vec![(minute, 60.0)], &PoolPings::default());
    assert!(busy <= 7, "{busy} pings");
    let (from, until) = metrics.pool_reads.lock().unwrap()[0];
    assert!((from..until).contains(&minute), "{from}..{until}");
    // The same maximum, when 40 of it were the last run's pings: the real
    // traffic was 20, below the estimate, and nothing is cut.
    let mut pinged = PoolPings::default();
    pinged.add(minute, 40);
    let (same, store, _) = five_in_a_pool_of_80(vec![(minute, 60.0)], &pinged);
    assert_eq!(same, alone);
    // And this run leaves its own pings for the next one.
    let next = block_on_ready(store.claim_run("run-2", NOW + 60_000, NOW + 90_000)).unwrap();
    assert_eq!(next.pool_pings.at(NOW / 60_000), same);
    assert_eq!(next.pool_pings.at(minute), 40);
}

#[test]
fn a_corrupt_state_is_started_afresh_and_said_and_the_others_go_on() {
    let store = MemoryStore::new();
    for n in ["broken", "garbled", "wild", "good"] {
        store.put_policy(&f(n), policy(&[]));
    }
    let metrics = MemoryMetrics::steady(&[
        ("broken", 4.0),
        ("garbled", 4.0),
        ("wild", 4.0),
        ("good", 4.0),
    ]);
    let lambda = MemoryWarmer::default();
    tick(&store, &metrics, &lambda, "run-1", NOW);
    // Packed buckets of the wrong length: indexing them would panic.
    let mut short = store.get(&f("broken")).0.unwrap();
    short.forecaster.buckets.truncate(2);
    store.put_state_json(&f("broken"), &serde_json::to_string(&short).unwrap());
    store.put_state_json(&f("garbled"), "{\"schema\": 2, \"forecaster\": ");
    // Values no controller writes: a look planned millions of years ahead,
    // a heat that would ask for every sandbox the policy allows.
    let mut wild = serde_json::to_value(store.get(&f("wild")).0.unwrap()).unwrap();
    wild["next_check_ms"] = serde_json::json!(u64::MAX / 2);
    wild["forecaster"]["heat"] = serde_json::json!(1e308);
    store.put_state_json(&f("wild"), &wild.to_string());

    // Past the warms the first look planned: every function is looked at.
    let later = NOW + 61 * 60_000;
    let r = tick(&store, &metrics, &lambda, "run-2", later);
    for (name, says) in [
        ("broken", "unusable"),
        ("garbled", "unreadable"),
        ("wild", "repaired"),
    ] {
        let out = r
            .functions
            .iter()
            .find(|o| *o.function.name == *name)
            .unwrap();
        assert!(out.saved, "{name}: {out:?}");
        let (_, _, err) = store.get(&f(name));
        let err = err.unwrap_or_default();
        assert!(err.contains(says), "{name}: {err}");
    }
    let good = r
        .functions
        .iter()
        .find(|o| &*o.function.name == "good")
        .unwrap();
    assert!(good.saved && good.note.is_none(), "{good:?}");
    // Bounded: the wild one's look is no longer a day away.
    let (wild, _, _) = store.get(&f("wild"));
    assert!(wild.unwrap().next_check_ms <= later + 30 * 60_000);
}

#[test]
fn a_look_planned_beyond_any_rest_is_taken_now() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let metrics = MemoryMetrics::steady(&[("orders", 4.0)]);
    let lambda = MemoryWarmer::default();
    tick(&store, &metrics, &lambda, "run-1", NOW);
    store.set_next_check(&f("orders"), u64::MAX / 2);
    let r = tick(&store, &metrics, &lambda, "run-2", NOW + 10 * 60_000);
    assert_eq!(r.resting, 0);
    assert!(r.functions[0].saved, "{r:?}");
}

#[test]
fn an_idle_function_read_an_hour_apart_rests_until_its_look() {
    // Read an hour apart while its forecast holds, an idle function is
    // next looked at on the half hour after its next read: 80 minutes away
    // here. The ticks until then leave it alone (no state read).
    let store = MemoryStore::new();
    store.put_policy(&f("reports"), policy(&[]));
    let mut st = FunctionState::new(&decision::Policy::default());
    st.read_every_minutes = decision::READ_EVERY_MAX_MINUTES;
    st.next_check_ms = NOW + 80 * 60_000;
    block_on_ready(store.save(&f("reports"), Box::new(st), 0, "earlier")).unwrap();
    let metrics = MemoryMetrics::steady(&[]);
    let r = tick(&store, &metrics, &MemoryWarmer::default(), "run-1", NOW);
    assert_eq!(r.resting, 1, "{r:?}");
    assert!(r.functions.is_empty(), "{r:?}");
}

#[test]
fn functions_that_ran_nothing_are_screened_not_read() {
    // Twelve functions that never run and one busy one, read at the base
    // cadence (15 minutes).
    let store = MemoryStore::new();
    let mut levels = vec![("busy".to_string(), 4.0)];
    levels.extend((0..12).map(|i| (format!("idle-{i}"), 0.0)));
    for (name, _) in &levels {
        store.put_policy(&f(name), policy(&[]));
    }
    let pairs: Vec<(&str, f64)> = levels.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let metrics = MemoryMetrics {
        screens: true,
        ..MemoryMetrics::steady(&pairs)
    };
    let lambda = MemoryWarmer::default();
    // First look: three hours of history, read for everyone (the screen
    // sees only the last three hours, minus its margins).
    tick(&store, &metrics, &lambda, "run-1", NOW);
    assert_eq!(metrics.read.lock().unwrap().len(), 13);
    metrics.read.lock().unwrap().clear();
    // An hour later every function is due again: one screen, and only the
    // busy function is read; the others' idle minutes are folded in up to
    // the screen's margin.
    let later = NOW + 60 * 60_000;
    tick(&store, &metrics, &lambda, "run-2", later);
    assert_eq!(*metrics.screened.lock().unwrap(), 1);
    assert_eq!(*metrics.read.lock().unwrap(), vec!["busy".to_string()]);
    let (idle, _, _) = store.get(&f("idle-3"));
    assert_eq!(
        idle.unwrap().watermark_minute,
        Some(later / 60_000 - decision::SCREEN_MARGIN_MINUTES - 1)
    );
    // A source that cannot screen: everything due is read.
    let store2 = MemoryStore::new();
    for (name, _) in &levels {
        store2.put_policy(&f(name), policy(&[]));
    }
    let plain = MemoryMetrics::steady(&pairs);
    tick(&store2, &plain, &lambda, "run-1", NOW);
    plain.read.lock().unwrap().clear();
    tick(&store2, &plain, &lambda, "run-2", later);
    assert_eq!(plain.read.lock().unwrap().len(), 13);
}

/// A clock the fakes move on.
struct Stepping(std::sync::atomic::AtomicU64);

impl Stepping {
    fn at(t: u64) -> Self {
        Stepping(std::sync::atomic::AtomicU64::new(t))
    }

    fn pass(&self, ms: u64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for Stepping {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The in-memory store with every state read and save taking `call_ms`,
/// recording when each save ended and the claims asked for.
struct SlowStore<'c> {
    inner: MemoryStore,
    clock: &'c Stepping,
    call_ms: u64,
    /// A state read's time: `call_ms`, or nothing where the tick's scan
    /// already read the item (as the DynamoDB adapter's loads do).
    load_ms: u64,
    saves_at: Mutex<Vec<u64>>,
    claims: Mutex<Vec<(u64, u64)>>,
}

impl<'c> SlowStore<'c> {
    fn new(clock: &'c Stepping, call_ms: u64) -> Self {
        SlowStore {
            inner: MemoryStore::new(),
            clock,
            call_ms,
            load_ms: call_ms,
            saves_at: Mutex::default(),
            claims: Mutex::default(),
        }
    }

    /// Loads that take no time: the scan read every state already.
    fn with_scanned_states(self) -> Self {
        SlowStore { load_ms: 0, ..self }
    }
}

impl StateStore for SlowStore<'_> {
    fn targets(&self) -> impl Future<Output = Result<Vec<crate::ports::Target>, PortError>> + Send {
        self.inner.targets()
    }

    fn claim_run(
        &self,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> impl Future<Output = Result<crate::ports::Claimed, PortError>> + Send {
        self.claims.lock().unwrap().push((now_ms, until_ms));
        self.clock.pass(self.call_ms);
        self.inner.claim_run(owner, now_ms, until_ms)
    }

    fn peek_run(&self) -> impl Future<Output = Result<crate::ports::Claimed, PortError>> + Send {
        self.inner.peek_run()
    }

    fn release_run(
        &self,
        owner: &str,
        pool_pings: &crate::ports::PoolPings,
        reaping: &crate::decision::Reaping,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.inner.release_run(owner, pool_pings, reaping)
    }

    fn load(
        &self,
        f: &FunctionRef,
    ) -> impl Future<Output = Result<crate::ports::Stored, PortError>> + Send {
        self.clock.pass(self.load_ms);
        self.inner.load(f)
    }

    fn save(
        &self,
        f: &FunctionRef,
        state: Box<FunctionState>,
        version: u64,
        run: &str,
    ) -> impl Future<Output = Result<u64, PortError>> + Send {
        self.clock.pass(self.call_ms);
        self.saves_at.lock().unwrap().push(self.clock.now_ms());
        self.inner.save(f, state, version, run)
    }

    fn last_save(
        &self,
        f: &FunctionRef,
        run: &str,
    ) -> impl Future<Output = Result<(u64, bool), PortError>> + Send {
        self.inner.last_save(f, run)
    }

    fn record_error(
        &self,
        f: &FunctionRef,
        error: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.inner.record_error(f, error)
    }
}

/// Twelve functions (`fn-00` to `fn-11`) running six each, and a first
/// tick over them: its report, the claim's end, the names, the metrics and
/// the warmer it used.
fn twelve_ticked(
    store: &SlowStore<'_>,
    clock: &Stepping,
) -> (TickReport, u64, Vec<String>, MemoryMetrics, MemoryWarmer) {
    let names: Vec<String> = (0..12).map(|i| format!("fn-{i:02}")).collect();
    for n in &names {
        store.inner.put_policy(&f(n), policy(&[("max", 50.0)]));
    }
    let pairs: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 6.0)).collect();
    let (metrics, lambda) = (MemoryMetrics::steady(&pairs), MemoryWarmer::default());
    let cfg = TickConfig::new("run-1");
    let r = block_on_ready(run_tick(store, &metrics, &lambda, clock, &cfg, NOW));
    (r, NOW + cfg.lease_ms, names, metrics, lambda)
}

#[test]
fn a_slow_table_leaves_functions_for_the_next_tick_and_nothing_outlasts_the_claim() {
    // Twelve functions; each state read and each save takes 4 s; the run's
    // claim lasts 50 s. Handling all twelve would take 96 s, and another
    // run may take the claim after 50 s and warm them again.
    let clock = Stepping::at(NOW);
    let store = SlowStore::new(&clock, 4_000);
    let (r, until, names, metrics, lambda) = twelve_ticked(&store, &clock);
    assert_eq!(*store.claims.lock().unwrap(), vec![(NOW, until)]);
    let saved: Vec<String> = r
        .functions
        .iter()
        .filter(|o| o.saved)
        .map(|o| o.function.to_string())
        .collect();
    assert!(!saved.is_empty(), "some are handled: {r:#?}");
    assert_eq!(
        r.late,
        names.len() - saved.len(),
        "the rest are late: {r:#?}"
    );
    for o in r.functions.iter().filter(|o| !o.saved) {
        assert!(o.note == Some(Note::Late), "{o:?}");
        assert_eq!(store.inner.get(&o.function).1, 0, "nothing written: {o:?}");
    }
    assert!(
        store.saves_at.lock().unwrap().iter().all(|&t| t <= until),
        "every save before the claim ends: {:?}",
        store.saves_at.lock().unwrap()
    );
    let sent = lambda.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), saved.len());
    assert!(
        sent.iter()
            .all(|p| p.answer_by_ms.is_some_and(|by| by <= until)),
        "answers awaited no longer than the claim: {sent:?}"
    );

    // The next tick takes on the ones left first.
    clock.pass(60_000 - (clock.now_ms() - NOW));
    let r2 = block_on_ready(run_tick(
        &store,
        &metrics,
        &lambda,
        &clock,
        &TickConfig::new("run-2"),
        NOW + 60_000,
    ));
    let first = r2.functions.iter().find(|o| o.saved).expect("one handled");
    assert!(
        !saved.contains(&first.function.to_string()),
        "a function left last time goes first: {r2:#?}"
    );
}

#[test]
fn loads_the_scan_already_read_still_leave_time_for_the_saves() {
    // The same twelve functions and 4 s writes, but their states came with
    // the scan, so loading them takes no time: the saves' pace is the
    // claim's write, not the loads'. Paced by the loads, all twelve were
    // taken on, and their saves ran 14 s past the claim.
    let clock = Stepping::at(NOW);
    let store = SlowStore::new(&clock, 4_000).with_scanned_states();
    let (r, until, ..) = twelve_ticked(&store, &clock);
    let saves = store.saves_at.lock().unwrap().clone();
    assert!(!saves.is_empty(), "some are handled: {r:#?}");
    assert!(r.late > 0, "the rest are left for the next tick: {r:#?}");
    assert!(
        saves.iter().all(|&t| t <= until),
        "every save before the claim ends ({until}): {saves:?}"
    );
}

#[test]
fn the_claim_is_counted_from_when_it_is_asked_for() {
    // The tick's decisions are for `NOW`, but it gets to claiming the run
    // 6 s later (a slow start): the claim lasts its full length from then.
    let clock = Stepping::at(NOW + 6_000);
    let store = SlowStore::new(&clock, 0);
    store.inner.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 3.0)]),
        MemoryWarmer::default(),
    );
    let cfg = TickConfig {
        deadline_ms: Some(NOW + 30_000),
        ..TickConfig::new("run-1")
    };
    block_on_ready(run_tick(&store, &metrics, &lambda, &clock, &cfg, NOW));
    assert_eq!(
        *store.claims.lock().unwrap(),
        vec![(NOW + 6_000, NOW + 6_000 + cfg.lease_ms)]
    );
    // And the warm's answers are awaited until the deadline at most.
    let sent = lambda.sent.lock().unwrap().clone();
    assert_eq!(sent[0].answer_by_ms, Some(NOW + 30_000));
}

/// Ticks once a minute for `minutes`, from `from`; what each did.
fn ticks_each_minute(
    store: &MemoryStore,
    metrics: &MemoryMetrics,
    lambda: &MemoryWarmer,
    from: u64,
    minutes: u64,
) -> Vec<(u64, TickReport)> {
    (0..minutes)
        .map(|m| {
            let at = from + m * 60_000;
            (at, tick(store, metrics, lambda, "run", at))
        })
        .collect()
}

#[test]
fn the_warms_between_two_reads_go_out_without_a_state_write() {
    // A steady function: nothing new is known between two metrics reads,
    // so the look that warms plans the warms after it, and they go out at
    // their minutes from the stored plan. Saving each of them was most of
    // forewarm's DynamoDB bill.
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 4.0)]),
        MemoryWarmer::default(),
    );
    let ticks = ticks_each_minute(&store, &metrics, &lambda, NOW, 120);
    let sent: Vec<u64> = lambda
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.at_ms)
        .collect();
    let saves = ticks
        .iter()
        .filter(|(_, r)| r.functions.iter().any(|o| o.saved))
        .count();
    // The account's lesson lengthens the gap a minute a look (a one-function
    // account scouts with every warm): 5 to 9 minutes apart.
    let gaps: Vec<u64> = sent.windows(2).map(|w| (w[1] - w[0]) / 60_000).collect();
    assert!(
        sent.len() >= 15,
        "{} warms in two hours: {gaps:?}",
        sent.len()
    );
    // A save a read (every 15 minutes), not a save a warm.
    assert!(
        saves <= 120 / 15 + 1,
        "{saves} saves for {} warms",
        sent.len()
    );
    // Planned warms keep the spacing their look decided; only a look
    // changes it (the interval learner lengthens it here, as the sandboxes
    // keep surviving).
    let warms: Vec<(u64, Reason)> = ticks
        .iter()
        .filter_map(|(at, r)| {
            let d = r.functions.first()?.decision?;
            (d.pings() > 0).then_some((*at, d.reason))
        })
        .collect();
    for w in warms.windows(3) {
        if w[1].1 == Reason::Planned && w[2].1 == Reason::Planned {
            assert_eq!(w[2].0 - w[1].0, w[1].0 - w[0].0, "{warms:?}");
        }
    }
    assert!(
        sent.windows(2).all(|w| w[1] - w[0] <= 10 * 60_000),
        "{sent:?}"
    );
    // The last look took every warm sent since the one before into its
    // records (their pings come out of the minutes it reads next).
    let (last_look, _) = ticks
        .iter()
        .rev()
        .find(|(_, r)| r.functions.iter().any(|o| o.saved))
        .unwrap();
    let state = store.get(&f("orders")).0.unwrap();
    let recorded: Vec<u64> = state.warms.iter().map(|w| w.at_ms).collect();
    for at in sent
        .iter()
        .filter(|&&at| at <= *last_look && at + 25 * 60_000 > *last_look)
    {
        assert!(recorded.contains(at), "warm at {at} not in {recorded:?}");
    }
}

#[test]
fn a_planned_warm_that_finds_its_sandboxes_reaped_is_saved_and_ends_the_plan() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 4.0)]),
        MemoryWarmer::default(),
    );
    ticks_each_minute(&store, &metrics, &lambda, NOW, 3);
    let planned = store
        .get(&f("orders"))
        .0
        .unwrap()
        .run
        .expect("a run planned");
    *lambda.cold_once_at.lock().unwrap() = Some(planned.first_ms);
    let ticks = ticks_each_minute(&store, &metrics, &lambda, NOW + 3 * 60_000, 20);
    let (at, r) = ticks
        .iter()
        .find(|(at, _)| *at >= planned.first_ms)
        .unwrap();
    let out = &r.functions[0];
    assert_eq!(out.decision.unwrap().reason, Reason::Planned, "{out:?}");
    assert!(out.saved && out.warm.unwrap().cold > 0, "{out:?}");
    let st = store.get(&f("orders")).0.unwrap();
    assert!(
        st.run.is_none_or(|r| r.first_ms > *at),
        "the reaped run goes on: {:?}",
        st.run
    );
}

#[test]
fn after_missed_ticks_the_warm_is_a_look_and_the_slots_never_sent_are_not_recorded() {
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    let (metrics, lambda) = (
        MemoryMetrics::steady(&[("orders", 4.0)]),
        MemoryWarmer::default(),
    );
    ticks_each_minute(&store, &metrics, &lambda, NOW, 2);
    let run = store
        .get(&f("orders"))
        .0
        .unwrap()
        .run
        .expect("a run planned");
    // The schedule stops from the minute before the first slot to two
    // slots later.
    let back = run.first_ms + 2 * run.every_ms + 60_000;
    assert!(back < run.until_ms, "{run:?}");
    let r = tick(&store, &metrics, &lambda, "run", back);
    let out = &r.functions[0];
    assert!(out.saved, "{out:?}");
    assert_ne!(out.decision.unwrap().reason, Reason::Planned, "{out:?}");
    let st = store.get(&f("orders")).0.unwrap();
    for missed in [run.first_ms, run.first_ms + run.every_ms] {
        assert!(
            st.warms.iter().all(|w| w.at_ms != missed),
            "a slot never sent was recorded: {:?}",
            st.warms
        );
    }
}

#[test]
fn the_traffic_of_resting_functions_counts_in_the_accounts_pool() {
    // `reports` runs 15 sandboxes on average and is not due this tick; the
    // account's unreserved pool is 20. What `orders` may warm must leave
    // room for `reports`' traffic too, not only for its own.
    let store = MemoryStore::new();
    store.put_policy(&f("orders"), policy(&[]));
    store.put_policy(&f("reports"), policy(&[]));
    let mut st = FunctionState::new(&decision::Policy::default());
    st.busy = 15.0;
    st.next_check_ms = NOW + 10 * 60_000;
    block_on_ready(store.save(&f("reports"), Box::new(st), 0, "earlier")).unwrap();
    let metrics = MemoryMetrics::steady(&[("orders", 6.0)]);
    let lambda = MemoryWarmer {
        unreserved: Some(20),
        ..MemoryWarmer::default()
    };
    let r = tick(&store, &metrics, &lambda, "run-1", NOW);
    assert_eq!(r.resting, 1, "{r:?}");
    let orders = r
        .functions
        .iter()
        .find(|o| &*o.function.name == "orders")
        .unwrap();
    let d = orders.decision.unwrap();
    // 15 (reports) + 3 on average and 3 of burst (orders) + 5 of headroom
    // leave nothing of the 20.
    assert_eq!(d.pings(), 0, "{d:?}");
    assert_eq!(d.capped_by, Some(decision::Cap::Concurrency), "{d:?}");
}
