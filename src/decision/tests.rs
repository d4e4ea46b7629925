//! Scenario tests for the decision core: a minute-by-minute controller loop
//! against a tiny stand-in for CloudWatch, so each test reads as a story.

use super::*;
use proptest::prelude::*;

const MIN: u64 = 60_000;
const DAY: u64 = 1_440;

/// Real demand per minute, built like a sentence: `Series::steady(12)`,
/// `Series::diurnal(2.0, 40.0)`.
#[derive(Clone)]
struct Series(std::sync::Arc<dyn Fn(u64) -> f64 + Send + Sync>);

impl Series {
    fn none() -> Self {
        Series::steady(0.0)
    }
    fn steady(level: f64) -> Self {
        Series(std::sync::Arc::new(move |_| level))
    }
    /// `low` at night, `high` from 09:00 to 17:00.
    fn diurnal(low: f64, high: f64) -> Self {
        Series(std::sync::Arc::new(move |m| {
            if (540..1_020).contains(&(m % DAY)) {
                high
            } else {
                low
            }
        }))
    }
    fn at(&self, minute: u64) -> f64 {
        (self.0)(minute)
    }
}

/// One function under the controller, with CloudWatch as a pure function of
/// real demand plus the controller's own pings (which Lambda counts too).
struct Loop {
    policy: Policy,
    state: FunctionState,
    series: Series,
    now: u64,
    limits: Limits,
    /// Metrics lag: minutes before `now - LAG` are final.
    lag: u64,
    /// CloudWatch is down: reads fail.
    metrics_down: bool,
    /// Reads are routine (the concurrency series only), not detail reads.
    routine_reads: bool,
    /// Every warm sent, `(minute, pings, hold)`, as the platform saw them
    /// (not as the state remembers them).
    sent: Vec<(u64, u32, u32)>,
    decisions: Vec<Decision>,
}

impl Loop {
    fn new(series: Series) -> Self {
        Loop::with_policy(Policy::default(), series)
    }
    fn with_policy(policy: Policy, series: Series) -> Self {
        Loop {
            state: FunctionState::new(&policy),
            policy,
            series,
            now: 0,
            limits: Limits::default(),
            lag: 2,
            metrics_down: false,
            routine_reads: false,
            sent: Vec::new(),
            decisions: Vec::new(),
        }
    }

    /// What CloudWatch reports for one minute: real demand plus pings.
    fn metrics(&self, minute: u64) -> MinuteMetrics {
        let real = self.series.at(minute);
        let (mut pings, mut ping_ms) = (0.0, 0.0);
        for &(m, n, hold) in &self.sent {
            if m == minute {
                pings += n as f64;
                ping_ms += n as f64 * hold as f64;
            }
        }
        // Half-second calls, 120 per sandbox of the peak: half the peak is
        // busy at a typical moment.
        let real_inv = real * 60.0;
        let inv = real_inv + pings;
        MinuteMetrics {
            minute,
            concurrency_max: Some(real + pings),
            invocations: Some(inv),
            duration_avg_ms: if inv > 0.0 {
                Some((real_inv * 500.0 + ping_ms) / inv)
            } else {
                None
            },
            cold_starts: Some(0.0),
        }
    }

    /// One controller tick at the current minute, then a minute passes.
    fn tick(&mut self) -> Decision {
        let now_min = self.now / MIN;
        let complete = now_min.saturating_sub(self.lag);
        let from = self
            .state
            .watermark_minute
            .map_or(complete.saturating_sub(60), |w| w + 1);
        let obs = if self.metrics_down {
            Observation {
                limits: self.limits,
                metrics: MetricsStatus::Unavailable,
                ..Observation::default()
            }
        } else {
            Observation {
                minutes: (from..complete)
                    .map(|m| {
                        let full = self.metrics(m);
                        if self.routine_reads {
                            MinuteMetrics {
                                minute: m,
                                concurrency_max: full.concurrency_max,
                                ..MinuteMetrics::default()
                            }
                        } else {
                            full
                        }
                    })
                    .collect(),
                complete_until_minute: complete,
                limits: self.limits,
                metrics: MetricsStatus::Fresh,
                detail: !self.routine_reads,
                ..Observation::default()
            }
        };
        let d = decide(&self.policy, &mut self.state, &obs, self.now);
        if let Action::Warm { n, delay_ms } = d.action {
            self.sent.push((now_min, n, delay_ms));
            apply_report(
                &self.policy,
                &mut self.state,
                &WarmReport::every_ping_distinct(n, delay_ms, self.now, "sb-", 10),
                Some(&d),
                self.now,
            );
        }
        // Every state survives a trip through JSON, as it does through DynamoDB.
        self.state = serde_json::from_str(&serde_json::to_string(&self.state).unwrap()).unwrap();
        self.decisions.push(d);
        self.now += MIN;
        d
    }

    fn run_minutes(&mut self, minutes: u64) -> &mut Self {
        for _ in 0..minutes {
            let _ = self.tick();
        }
        self
    }

    fn last_day(&self) -> &[Decision] {
        &self.decisions[self.decisions.len().saturating_sub(DAY as usize)..]
    }
}

#[test]
fn warming_a_function_with_no_real_traffic_never_raises_its_forecast() {
    let policy = Policy {
        min: 4,
        ..Policy::default()
    };
    let mut l = Loop::with_policy(policy, Series::none());
    l.run_minutes(2 * DAY);
    let warms = l.decisions.iter().filter(|d| d.pings() > 0).count();
    assert!(warms > 100, "min keeps it warm: {warms} warms");
    assert!(
        l.decisions
            .iter()
            .all(|d| d.raw_target == 0 && d.forecast == 0.0),
        "pings fed the forecast"
    );
}

#[test]
fn pings_sent_during_a_metrics_outage_never_become_demand() {
    // Kept warm by `min` alone, no real traffic; CloudWatch is down for 45
    // minutes while the warms go on. When it is back, the first read covers
    // every minute of the outage, pings included.
    let policy = Policy {
        min: 3,
        ..Policy::default()
    };
    let mut l = Loop::with_policy(policy, Series::none());
    l.run_minutes(DAY);
    l.metrics_down = true;
    l.run_minutes(45);
    assert!(l.decisions.iter().rev().take(45).any(|d| d.pings() > 0));
    l.metrics_down = false;
    l.run_minutes(60);
    assert!(
        l.decisions.iter().all(|d| d.raw_target == 0),
        "pings fed the forecast: {:?}",
        l.decisions.iter().map(|d| d.raw_target).max()
    );
}

#[test]
fn steady_traffic_gets_its_peak_and_no_padding() {
    let mut l = Loop::new(Series::steady(12.0));
    l.run_minutes(3 * DAY);
    let targets: Vec<u32> = l.last_day().iter().map(|d| d.target).collect();
    let at_peak = targets.iter().filter(|&&t| t == 12).count();
    assert!(
        at_peak * 100 >= targets.len() * 97,
        "target 12 in {at_peak} of {} minutes: {:?}",
        targets.len(),
        &targets[..20]
    );
    assert!(
        targets.iter().all(|&t| (11..=13).contains(&t)),
        "{targets:?}"
    );
}

#[test]
fn the_office_day_is_warmed_before_it_starts() {
    let mut l = Loop::new(Series::diurnal(2.0, 40.0));
    l.run_minutes(4 * DAY + 500); // to 08:20 on day five
    let mut before_nine = 0;
    while l.now / MIN % DAY < 540 {
        before_nine = before_nine.max(l.tick().target);
    }
    assert!(before_nine >= 40, "warmed {before_nine} before 09:00");
    let night = l.decisions[(3 * DAY + 120) as usize];
    assert!(night.target <= 6, "night target {}", night.target);
}

#[test]
fn a_peak_above_the_target_raises_the_offset_and_calm_lowers_it_again() {
    let spike = Series(std::sync::Arc::new(|m| {
        if m % DAY == 1_000 { 60.0 } else { 10.0 }
    }));
    let mut l = Loop::new(spike);
    l.run_minutes(DAY + 990);
    let before = l.state.forecaster.z;
    l.run_minutes(20);
    let raised = l.state.forecaster.z;
    assert!(raised > before, "spike missed: offset {before} -> {raised}");
    l.run_minutes(600);
    let calm = l.state.forecaster.z;
    assert!(calm < raised, "calm hours lower it: {raised} -> {calm}");
}

#[test]
fn a_cap_that_binds_does_not_teach_the_forecast_to_pad() {
    // Reserved 40 leaves room for 5 pings beside a real 30 (headroom 5):
    // every window has more real demand than was warmed, but the forecast
    // itself was right, and must not widen.
    let mut l = Loop::new(Series::steady(30.0));
    l.limits = Limits {
        reserved: Some(40),
        ..Limits::default()
    };
    l.run_minutes(2 * DAY);
    assert!(
        l.last_day()
            .iter()
            .all(|d| d.capped_by == Some(Cap::Concurrency))
    );
    // The cap lifts: the target is the real peak, not the peak plus a margin
    // learned from misses the cap forced.
    l.limits = Limits::default();
    let d = l.tick();
    assert!((30..=31).contains(&d.target), "{d:?}");
}

#[test]
fn reserved_concurrency_caps_the_warm() {
    let mut l = Loop::new(Series::steady(30.0));
    l.limits = Limits {
        reserved: Some(40),
        ..Limits::default()
    };
    l.run_minutes(DAY);
    for d in l.last_day() {
        assert!(d.target + 30 + l.policy.headroom <= 40, "{d:?}");
    }
    assert!(
        l.last_day()
            .iter()
            .any(|d| d.capped_by == Some(Cap::Concurrency))
    );
}

#[test]
fn warms_come_at_the_learned_interval_not_every_minute() {
    let mut l = Loop::new(Series::steady(5.0));
    l.run_minutes(DAY);
    let warms = l.last_day().iter().filter(|d| d.pings() > 0).count();
    // Every 4 minutes at first, probing upward while sandboxes survive.
    assert!((90..=360).contains(&warms), "{warms} warms a day");
    assert!(l.last_day().iter().any(|d| d.reason == Reason::NotDue));
}

#[test]
fn observe_mode_decides_but_never_pings_and_off_does_nothing() {
    let mut obs = Loop::with_policy(
        Policy {
            mode: Mode::Observe,
            ..Policy::default()
        },
        Series::steady(8.0),
    );
    obs.run_minutes(300);
    assert!(
        obs.decisions
            .iter()
            .all(|d| d.pings() == 0 && d.reason == Reason::Observe)
    );
    assert!(obs.decisions.last().unwrap().target >= 8, "still forecasts");
    let mut off = Loop::with_policy(
        Policy {
            mode: Mode::Off,
            ..Policy::default()
        },
        Series::steady(8.0),
    );
    off.run_minutes(30);
    assert!(
        off.decisions
            .iter()
            .all(|d| d.reason == Reason::Off && d.pings() == 0)
    );
    assert_eq!(
        off.state.watermark_minute, None,
        "off functions are not even observed"
    );
}

#[test]
fn a_metrics_outage_falls_back_to_the_last_forecast() {
    let mut l = Loop::new(Series::steady(9.0));
    l.run_minutes(DAY);
    let mut state = l.state.clone();
    let outage = Observation {
        metrics: MetricsStatus::Unavailable,
        ..Observation::default()
    };
    let due = state.next_due_ms;
    let d = decide(&l.policy, &mut state, &outage, due);
    assert_eq!(d.reason, Reason::StaleMetrics);
    assert!(d.target >= 9, "{d:?}");
    assert_eq!(state.watermark_minute, l.state.watermark_minute);
}

#[test]
fn a_collapsed_warm_raises_the_delay_and_a_failed_one_is_forgotten() {
    let mut l = Loop::new(Series::steady(20.0));
    l.run_minutes(120);
    let before = l.state.delay_ms;
    let mut state = l.state.clone();
    let now = state.next_due_ms;
    let d = decide(
        &l.policy,
        &mut state,
        &Observation {
            metrics: MetricsStatus::Unavailable,
            ..Default::default()
        },
        now,
    );
    let Action::Warm { n, delay_ms } = d.action else {
        panic!("{d:?}")
    };
    let mut report = WarmReport::every_ping_distinct(n, delay_ms, now, "sb-", 10);
    for (i, p) in report.pings.iter_mut().enumerate() {
        p.instance = Some(format!("sb-{}", i % 3).into()); // all on three sandboxes
        p.started_ms = Some(now + 40 * i as u64);
    }
    apply_report(&l.policy, &mut state, &report, Some(&d), now);
    assert!(state.delay_ms > before, "{before} -> {}", state.delay_ms);
    let busy = state.warms.last().unwrap().busy;
    let named = report.summary().distinct;
    assert!(named <= 3);
    assert_eq!(
        state.pool_at(state.survival.interval_s(&l.policy, Reaped::default()), now),
        named + busy,
        "only the sandboxes named in replies, beside the {busy} real traffic holds, are warm"
    );
    warm_failed(&mut state, now);
    assert!(state.warms.iter().all(|w| w.at_ms != now));
}

#[test]
fn a_large_warm_after_small_ones_holds_long_enough_for_its_own_fan_out() {
    // Two sandboxes for six hours, then a hundred. The loop's pings start
    // 10 ms apart, so the warms of a few tuned the hold to a few tens of ms
    // of spread; held that long, the later pings of a warm of 100 (spread
    // over a second) would meet sandboxes the first had just freed.
    let mut l = Loop::new(Series(std::sync::Arc::new(|m| {
        if m < 360 { 2.0 } else { 100.0 }
    })));
    l.run_minutes(420);
    let small = l.sent.iter().rfind(|&&(m, ..)| m < 360).copied();
    let (_, small_n, small_hold) = small.expect("warms before the jump");
    assert!(small_n <= 5 && small_hold < 200, "{small:?}");
    let large: Vec<_> = l.sent.iter().filter(|&&(_, n, _)| n >= 50).collect();
    assert!(!large.is_empty(), "no large warm: {:?}", l.sent);
    for &&(m, n, hold) in &large {
        let spread_ms = f64::from(n - 1) * 10.0;
        assert!(
            f64::from(hold) >= spread_ms,
            "minute {m}: {n} pings spread over {spread_ms} ms held {hold} ms"
        );
    }
}

#[test]
fn reads_of_concurrency_alone_keep_the_pings_off_the_busy_sandboxes() {
    // Half of a steady peak of 10 is busy at a typical moment; a detail read
    // shows it, and the routine reads after it have only the peaks.
    let mut l = Loop::new(Series::steady(10.0));
    l.run_minutes(120);
    let learned = l.state.busy;
    assert!((4.0..=6.0).contains(&learned), "busy {learned}");
    l.routine_reads = true;
    l.run_minutes(180);
    assert!(
        (learned - l.state.busy).abs() < 1.0,
        "busy {} after three hours of routine reads, {learned} before",
        l.state.busy
    );
    let warms: Vec<_> = l.decisions[300 - 120..]
        .iter()
        .filter_map(|d| match d.action {
            Action::Warm { n, .. } => Some((d.target, n)),
            _ => None,
        })
        .collect();
    assert!(!warms.is_empty());
    for (target, n) in warms {
        assert!(n + 4 <= target, "{n} pings for a target of {target}");
    }
}

#[test]
fn state_stays_small() {
    let week = Policy {
        season: policy::Season::Week,
        ..Policy::default()
    };
    let mut l = Loop::with_policy(week, Series::diurnal(3.0, 150.0));
    l.run_minutes(DAY);
    let json = serde_json::to_string(&l.state).unwrap();
    assert!(json.len() < 4_096, "{} bytes: {json}", json.len());
}

fn arb_minute(m: u64) -> impl Strategy<Value = MinuteMetrics> {
    let num = prop_oneof![
        4 => (0.0f64..5_000.0).prop_map(Some),
        1 => Just(None),
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-3.0), Just(1e300)].prop_map(Some),
    ];
    (num.clone(), num.clone(), num.clone(), num).prop_map(move |(c, i, d, cs)| MinuteMetrics {
        minute: m,
        concurrency_max: c,
        invocations: i,
        duration_avg_ms: d,
        cold_starts: cs,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_decision_respects_every_cap_whatever_the_input(
        min in 0u32..20, span in 0u32..300, headroom in 0u32..20, q in 0.5f64..0.999,
        reserved in proptest::option::of(0u32..500),
        ticks in prop::collection::vec((0u64..6, prop::collection::vec(arb_minute(0), 0..6)), 1..40),
    ) {
        let policy = Policy { min, max: min + span, headroom, quantile: q, ..Policy::default() };
        let mut state = FunctionState::new(&policy);
        let limits = Limits { reserved, ..Limits::default() };
        let mut now = 100 * DAY * MIN;
        for (gap, minutes) in ticks {
            now += gap * MIN;
            let base = now / MIN - 8;
            let minutes = minutes.into_iter().enumerate().map(|(i, mut m)| { m.minute = base + i as u64; m }).collect();
            let obs = Observation { minutes, complete_until_minute: now / MIN - 1, limits, metrics: MetricsStatus::Fresh, detail: gap % 2 == 0, ..Observation::default() };
            let d = decide(&policy, &mut state, &obs, now);
            prop_assert!(d.target <= policy.max);
            prop_assert!(d.forecast.is_finite() && d.forecast >= 0.0);
            prop_assert!(d.margin.is_finite());
            if let Some(r) = reserved {
                prop_assert!(d.target <= r.saturating_sub(headroom));
            }
            if let Action::Warm { n, delay_ms } = d.action {
                prop_assert!(n > 0 && n <= d.target);
                prop_assert!((policy.delay_ms_min..=policy.delay_ms_max).contains(&delay_ms));
                apply_report(&policy, &mut state, &WarmReport::every_ping_distinct(n, delay_ms, now, "sb-", 10), Some(&d), now);
            }
            prop_assert!(state.forecaster.recent.is_finite() && state.forecaster.heat.is_finite());
            prop_assert!(serde_json::to_string(&state).is_ok());
        }
    }
}

#[test]
fn reads_stretch_while_the_forecast_holds_and_a_cold_warm_brings_them_back() {
    let mut st = FunctionState::new(&Policy::default());
    let until = 10_000;
    let plan = read_plan(&st, until, 15, 180).expect("a new function is read at once");
    assert_eq!(plan.from_minute, until - 180);
    assert!(plan.detail, "its first read has the detail");
    st.watermark_minute = Some(until - 1);
    st.detail_minute = Some(until - 1);
    st.read_every_minutes = READ_EVERY_MAX_MINUTES;
    let gap = READ_EVERY_MAX_MINUTES;
    assert_eq!(read_plan(&st, until + gap - 1, 15, 180), None, "held");
    let later = read_plan(&st, until + gap, 15, 180).expect("due after the gap");
    assert!(!later.detail, "no traffic lately: no detail");
    // A warm after the last read found cold sandboxes: read at the base.
    st.last_warm = Some(ReportSummary {
        at_ms: (until + 5) * 60_000,
        requested: 3,
        ok: 3,
        cold: 2,
        ..ReportSummary::default()
    });
    assert!(read_plan(&st, until + 15, 15, 180).is_some());
    assert_eq!(read_plan(&st, until + 14, 15, 180), None);
}

#[test]
fn a_forecast_holds_while_its_misses_are_what_its_quantile_allows() {
    // At 0.95 a window in twenty misses by design.
    assert!(forecast_held(0.95, 3, 0));
    assert!(forecast_held(0.95, 3, 1), "one miss in a 15-minute read");
    assert!(!forecast_held(0.95, 3, 2), "two of three: 0.7 % likely");
    assert!(forecast_held(0.95, 48, 5), "four hours, five misses: 9 %");
    assert!(!forecast_held(0.95, 48, 6), "six: 3 %");
    assert!(!forecast_held(0.95, 2, 3), "more misses than windows");
    assert!(!forecast_held(f64::NAN, 3, 1));
    assert!(forecast_held(f64::NAN, 3, 0));
}

/// A warm at minute `m` whose pings reached these sandboxes, `*` marking
/// one the ping made.
fn warm_of(m: u64, ids: &[&str]) -> WarmReport {
    let at = m * 60_000;
    WarmReport {
        requested: ids.len() as u32,
        delay_ms: 300,
        sent_at_ms: at,
        pings: ids
            .iter()
            .map(|id| match id.strip_prefix('*') {
                Some(made) => PingOutcome::answered(made, true, at),
                None => PingOutcome::answered(*id, false, at),
            })
            .collect(),
    }
}

#[test]
fn a_warm_reply_from_a_sandbox_no_warm_reached_calls_for_a_read_at_once() {
    let p = Policy::default();
    let mut st = FunctionState::new(&p);
    let until = 10_000;
    st.watermark_minute = Some(until - 1);
    st.detail_minute = Some(until - 1);
    st.read_every_minutes = READ_EVERY_MAX_MINUTES;
    let strangers = |st: &mut FunctionState, m: u64, ids: &[&str]| {
        apply_report(&p, st, &warm_of(m, ids), None, m * 60_000).strangers
    };
    assert_eq!(
        strangers(&mut st, until + 5, &["a", "b"]),
        0,
        "none known yet"
    );
    assert_eq!(strangers(&mut st, until + 10, &["b", "a"]), 0);
    assert_eq!(
        strangers(&mut st, until + 15, &["a", "*c"]),
        0,
        "the ping made c"
    );
    let due = |st: &FunctionState, m: u64| read_plan(st, m, 15, 180).map(|r| r.from_minute);
    assert_eq!(due(&st, until + 20), None, "one sandbox reaped: no news");
    assert_eq!(strangers(&mut st, until + 20, &["*e", "*f"]), 0);
    assert_eq!(due(&st, until + 25), Some(until), "two cold pings: read");
    st.watermark_minute = Some(until + 20);
    assert_eq!(strangers(&mut st, until + 25, &["c", "e"]), 0);
    assert_eq!(due(&st, until + 40), None, "the same sandboxes: no news");
    // Real traffic made d since: it needed more than was warm.
    assert_eq!(strangers(&mut st, until + 30, &["d", "a"]), 1);
    assert_eq!(
        due(&st, until + 36),
        Some(until + 21),
        "read at the base cadence"
    );
    // Warms that reach more than a few keep no ids: they reach a different
    // few each time.
    strangers(&mut st, until + 35, &["a", "b", "c", "d", "e"]);
    assert!(st.known.is_empty());
    assert_eq!(strangers(&mut st, until + 40, &["f", "g"]), 0);
    assert_eq!(st.known.len(), 2);
}

#[test]
fn survival_evidence_about_to_be_dropped_calls_for_a_read() {
    let mut st = FunctionState::new(&Policy::default());
    let until = 10_000;
    st.watermark_minute = Some(until - 1);
    st.detail_minute = Some(until - 1);
    st.read_every_minutes = READ_EVERY_MAX_MINUTES;
    let waiting = |minute| crate::decision::survival::Pending {
        minute,
        gap_s: 300,
        pings: 1,
        cold: 1,
    };
    st.survival.pending = (0..4).map(|k| waiting(until + 5 * k)).collect();
    assert_eq!(read_plan(&st, until + 20, 15, 180), None, "room for more");
    st.survival.pending.push(waiting(until + 20));
    assert!(
        read_plan(&st, until + 20, 15, 180).is_some(),
        "the next cold warm would drop the oldest"
    );
}

#[test]
fn detail_reads_wait_for_warming_and_come_every_two_days_for_a_cheap_function() {
    let mut st = FunctionState::new(&Policy::default());
    let until = 10_000;
    st.watermark_minute = Some(until - 1);
    st.detail_minute = Some(until - 1 - DETAIL_EVERY_MINUTES);
    st.busy = 0.5;
    let decided = |target| DecisionRecord::from((0, Reason::Due, 1.0, target, target));
    st.decisions.push(decided(0));
    let plan = |st: &FunctionState| read_plan(st, until + 15, 15, 180).map(|r| r.detail);
    assert_eq!(plan(&st), Some(false), "left cold: no detail");
    st.decisions.push(decided(5));
    assert_eq!(plan(&st), Some(true), "warmed: a day since the last");
    st.decisions.push(decided(2));
    assert_eq!(plan(&st), Some(false), "cheap to warm: two days");
    st.detail_minute = Some(until - 1 - DETAIL_EVERY_CHEAP_MINUTES + 15);
    assert_eq!(plan(&st), Some(true));
}

#[test]
fn cold_replies_teach_how_long_an_init_takes_and_timeouts_widen_the_wait() {
    let p = Policy::default();
    let mut st = FunctionState::new(&p);
    let warm = |pings: Vec<PingOutcome>| WarmReport {
        requested: pings.len() as u32,
        delay_ms: 100,
        sent_at_ms: 1_000,
        pings,
    };
    let cold = |id: &str, init_ms| {
        PingOutcome::answered(id.to_string(), true, 1_000).with_init(Some(init_ms))
    };
    assert_eq!(pings::learned_init_allowance_ms(st.init_ms as u64, None), 0);
    apply_report(
        &p,
        &mut st,
        &warm(vec![cold("a", 12_000), cold("b", 9_000)]),
        None,
        2_000,
    );
    assert_eq!(st.init_ms, 12_000, "the slowest init");
    assert_eq!(pings::learned_init_allowance_ms(12_000, None), 24_000);
    assert_eq!(
        pings::learned_init_allowance_ms(12_000, Some(3_000)),
        13_000,
        "no longer than Lambda's Init limit and the function's timeout"
    );
    assert_eq!(
        pings::learned_init_allowance_ms(40_000, None),
        pings::MAX_INIT_WAIT_MS
    );
    // Timed-out pings report nothing: the wait doubles.
    let lost = warm(vec![PingOutcome::failed(PingFailure::Timeout)]);
    apply_report(&p, &mut st, &lost, None, 3_000);
    assert_eq!(st.init_ms, 24_000);
    // Faster inits are believed slowly; warm replies say nothing.
    apply_report(&p, &mut st, &warm(vec![cold("c", 1_000)]), None, 4_000);
    assert_eq!(st.init_ms, 21_000);
    let warm_only = warm(vec![PingOutcome::answered("c".to_string(), false, 1_000)]);
    apply_report(&p, &mut st, &warm_only, None, 5_000);
    assert_eq!(st.init_ms, 21_000);
}

#[test]
fn a_pool_is_not_counted_warm_a_whole_minute_past_its_due_warm() {
    // Warms every four minutes, the controller once a minute: a warm due at
    // 4:00 goes out by 5:00 at the latest, and the interval is a minute
    // inside the shortest gap seen to kill. At 5:00 the sandboxes may be
    // going; a look then must warm rather than count them.
    let policy = Policy {
        interval: policy::Interval::Seconds(240),
        ..Policy::default()
    };
    let mut state = FunctionState::new(&policy);
    state.warms.push(WarmRecord {
        at_ms: 0,
        n: 3,
        hold_ms: 300,
        reached: 3,
        busy: 0,
    });
    assert_eq!(
        state.pool_at(
            state.survival.interval_s(&policy, Reaped::default()),
            240 * 1_000
        ),
        3
    );
    assert_eq!(
        state.pool_at(
            state.survival.interval_s(&policy, Reaped::default()),
            299 * 1_000
        ),
        3
    );
    assert_eq!(
        state.pool_at(
            state.survival.interval_s(&policy, Reaped::default()),
            300 * 1_000
        ),
        0
    );
}

/// A function warmed 100 wide for the bursts its forecast expects (a minute
/// of a hundred calls now and then), quiet in between, so its recent real
/// peak is low. Two minutes after a warm of 100, the next meets a burst: 74
/// of its pings find every sandbox they could use busy and start new ones.
fn a_warm_that_meets_a_burst(sent_by: Option<&Decision>) -> FunctionState {
    let p = Policy::default();
    let mut st = FunctionState::new(&p);
    let t0 = 10_000 * MIN;
    let first = WarmReport::every_ping_distinct(100, 300, t0, "sb-", 2);
    apply_report(&p, &mut st, &first, sent_by, t0);
    let t1 = t0 + 2 * MIN;
    let mut met = WarmReport::every_ping_distinct(100, 300, t1, "sb-", 2);
    for (i, ping) in met.pings.iter_mut().enumerate().skip(26) {
        *ping = PingOutcome::answered(format!("new-{i}"), true, t1 + 2 * i as u64);
    }
    assert!(st.recent_peak() < 74.0);
    apply_report(&p, &mut st, &met, sent_by, t1);
    st
}

#[test]
fn cold_pings_a_burst_the_forecast_expected_explains_wait_for_the_metrics() {
    let mut sent = Decision::nothing(Reason::Due, &FunctionState::new(&Policy::default()));
    sent.raw_target = 100;
    sent.target = 100;
    let st = a_warm_that_meets_a_burst(Some(&sent));
    assert_eq!(st.survival.died_s, None, "no death yet: {:?}", st.survival);
    assert_eq!(
        st.survival.pending.len(),
        1,
        "judged when the minute's maximum is read"
    );

    // Cut by its cap below what the forecast wanted, the burst outgrew the
    // pool: the cold pings count at once, and the function is warmed every
    // minute while it lasts.
    sent.raw_target = 310;
    let st = a_warm_that_meets_a_burst(Some(&sent));
    assert_eq!(st.survival.died_s, Some(120), "{:?}", st.survival);
    let reaped = Reaped {
        safe_s: 300,
        scout: false,
    };
    assert_eq!(
        st.survival.interval_s(&Policy::default(), reaped),
        survival::MIN_INTERVAL_S
    );
}
