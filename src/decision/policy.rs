//! Policy: the settings people edit, one DynamoDB item per function.
//!
//! A policy item is a flat set of scalar attributes, so it reads
//! and edits comfortably in the DynamoDB console. The `pk = "*"` item holds
//! account-wide defaults; a function's item overrides them attribute by
//! attribute, and anything neither names falls back to the built-in default
//! documented on [`Policy`].
//!
//! Parsing never stops at the first problem: [`Policy::from_items`] returns
//! every problem at once, in words meant for the person who typed the item
//! ("max (5) is below min (10)"), and unknown attributes are warnings, not
//! errors, so a typo never takes a function out of service on its own.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One attribute value of a policy item, as a person can type it in the
/// console: a string, a number or a boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A boolean attribute.
    Bool(bool),
    /// A number attribute (DynamoDB `N`).
    Num(f64),
    /// A string attribute (DynamoDB `S`).
    Str(String),
}

impl Scalar {
    /// A value as written in `key=value` text (`forewarm policy put
    /// max=40`, `--policy forewarm:quantile=0.9`): a number when it reads as
    /// one, else a string for the policy's checks to judge.
    pub fn from_text(v: &str) -> Scalar {
        let v = v.trim();
        v.parse::<f64>()
            .map(Scalar::Num)
            .unwrap_or_else(|_| Scalar::Str(v.to_string()))
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Num(n) => write!(f, "{n}"),
            Scalar::Str(s) => write!(f, "\"{s}\""),
        }
    }
}

/// A policy item's attributes, by name (key attributes already removed).
pub type PolicyDoc = BTreeMap<String, Scalar>;

/// What the controller does for a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forecast and warm.
    Warm,
    /// Forecast and record decisions, but send no pings: a dry run in
    /// production, to see what forewarm would do before trusting it.
    Observe,
    /// Leave the function alone.
    Off,
}

/// The time-of-day cycle the forecaster learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Season {
    /// One cycle per day: learns in a day.
    Day,
    /// One cycle per week: tells weekdays from weekends, but needs a week of
    /// history before every bucket has been seen.
    Week,
}

impl Season {
    /// Length of one cycle in minutes.
    pub fn minutes(self) -> u32 {
        match self {
            Season::Day => 1_440,
            Season::Week => 10_080,
        }
    }
}

/// How often a function is re-warmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Learned from which sandboxes survive between warms.
    Auto,
    /// A fixed number of seconds.
    Seconds(u32),
}

/// The settings for one function, after merging defaults.
///
/// Each field documents its default and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// `mode` (default `warm`): what the controller does. Writing a policy item
    /// is how a person opts a function in, so the default is to act on it;
    /// `observe` runs everything but the pings.
    pub mode: Mode,
    /// `min` (default 0): sandboxes kept warm whatever the forecast. Zero lets
    /// an idle function cost nothing; set 1 or more for functions whose first
    /// call of the day must never be cold.
    pub min: u32,
    /// `max` (default 100): the most sandboxes warmed at once. A ceiling on
    /// the damage a bad forecast can do to cost and to concurrency.
    pub max: u32,
    /// `quantile` (default 0.99): the share of forecast windows whose real
    /// peak the warm target covers. The target is calibrated to it: over any
    /// long stretch about `1 - quantile` of windows need a sandbox more than
    /// was warmed. 0.99 rather than 0.95 because a cold start costs far more
    /// than the pings that avoid it: on the bundled day, 0.95 to 0.99 cut
    /// cold starts by half for about 30 % more warming cost.
    pub quantile: f64,
    /// `bucket_minutes` (default 30): width of a time-of-day bucket. Half an
    /// hour follows office-hours ramps while giving each bucket six 5-minute
    /// samples a day to learn from.
    pub bucket_minutes: u32,
    /// `season` (default `day`): the cycle buckets repeat over. A day learns
    /// in a day; `week` separates weekends but needs a week of history.
    pub season: Season,
    /// `alpha` (default 0.2): smoothing weight of each new sample in its
    /// bucket. About the last five samples of a bucket matter: quick enough to
    /// follow a trend within days, slow enough to shrug off one odd day.
    pub alpha: f64,
    /// `interval_s` (default `auto`): seconds between warms. `auto` warms at
    /// the idle gap the whole account's warms show safe (10 min in 2019–20,
    /// 5–7 min since 2021), never within a minute of a gap that killed this
    /// function's sandboxes in the last day; a fixed number is for a
    /// function known to live on another rule (its warms still teach the
    /// account).
    pub interval: Interval,
    /// `delay_ms_min` (default 50): the shortest hold the delay tuner may
    /// choose. Below ~50 ms, network jitter alone breaks the overlap.
    pub delay_ms_min: u32,
    /// `delay_ms_max` (default 3000): the longest hold. Pings block real
    /// traffic from their sandboxes while they hold; three seconds covers the
    /// start spread of a fan-out of well over a thousand pings.
    pub delay_ms_max: u32,
    /// `headroom` (default 5): concurrency kept free for real traffic on top of
    /// its recent peak, below reserved (or account) concurrency. Pings hold
    /// sandboxes, and at the limit a real request arriving then is throttled.
    pub headroom: u32,
    /// `cold_start_budget` (default 0.01): the share of real invocations that
    /// may start cold. While the measured share is above it, windows whose
    /// peak stayed under target do not lower the calibrated target (misses
    /// still raise it), so a function over budget only moves toward caution.
    pub cold_start_budget: f64,
    /// `cold_start_usd` (default `auto`): what one avoided cold start is
    /// worth to you, USD. Where the cold starts warming can avoid are worth
    /// less than its pings and bookkeeping, forewarm does not warm the
    /// function and says so (`not_worth_it`). `auto` is
    /// [`wait_usd_per_s`](Policy::wait_usd_per_s) times the function's INIT
    /// as its pings measured it: a cold start costs its caller the INIT's
    /// time (the INIT's billing is not saved by warming, a ping pays it
    /// instead). At most $10, about a month of Provisioned Concurrency for a
    /// 1 GB sandbox: a cold start worth more than that is one to buy
    /// Provisioned Concurrency for.
    pub cold_start_usd: Option<f64>,
    /// `wait_usd_per_s` (default 0.01): what a second of a caller waiting on
    /// a cold start is worth, USD, used when `cold_start_usd` is `auto`: the
    /// easier figure to set when cold starts differ by function (a 10 s VPC
    /// INIT is worth ten times a 1 s one). A cent a second is $36 an hour,
    /// about what a person's time costs: a caller is a person, or a service
    /// someone waits on. Set it lower for callers nobody waits on (queues,
    /// batch); 0 says a cold start is worth nothing, so after a function's
    /// first day only `min` is kept warm. At any value, a function whose
    /// own traffic keeps its sandboxes alive (nothing to avoid) is left to
    /// it.
    pub wait_usd_per_s: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Warm,
            min: 0,
            max: 100,
            quantile: 0.99,
            bucket_minutes: 30,
            season: Season::Day,
            alpha: 0.2,
            interval: Interval::Auto,
            delay_ms_min: 50,
            delay_ms_max: 3_000,
            headroom: 5,
            cold_start_budget: 0.01,
            cold_start_usd: None,
            wait_usd_per_s: 0.01,
        }
    }
}

/// The attribute names a policy item may carry.
pub const KNOWN_ATTRIBUTES: &[&str] = &[
    "mode",
    "min",
    "max",
    "quantile",
    "bucket_minutes",
    "season",
    "alpha",
    "interval_s",
    "delay_ms_min",
    "delay_ms_max",
    "headroom",
    "cold_start_budget",
    "cold_start_usd",
    "wait_usd_per_s",
];

/// The most a cold start may be said to be worth, USD (see
/// [`Policy::cold_start_usd`]).
pub const MAX_COLD_START_USD: f64 = 10.0;
/// The most a second of waiting may be said to be worth, USD.
pub const MAX_WAIT_USD_PER_S: f64 = 1.0;

/// The forecaster's sample window, minutes. Buckets must be a whole number of
/// windows.
pub const WINDOW_MINUTES: u32 = 5;

/// Problems with a policy item, all of them, in words for its author.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid policy: {}", .problems.join("; "))]
pub struct PolicyError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

/// A merged, valid policy plus what was odd but harmless.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The policy to apply.
    pub policy: Policy,
    /// Unknown attributes and the like, for the log.
    pub warnings: Vec<String>,
}

impl Policy {
    /// Merges the account-wide defaults item (if any) under a function's item
    /// and validates the result.
    pub fn from_items(
        defaults: Option<&PolicyDoc>,
        function: &PolicyDoc,
    ) -> Result<Parsed, PolicyError> {
        let mut merged = defaults.cloned().unwrap_or_default();
        for (k, v) in function {
            merged.insert(k.clone(), v.clone());
        }
        Policy::from_doc(&merged)
    }

    /// Reads one (already merged) item.
    pub fn from_doc(doc: &PolicyDoc) -> Result<Parsed, PolicyError> {
        let mut p = Policy::default();
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        for (key, value) in doc {
            let r = match key.as_str() {
                "mode" => word(value, &["warm", "observe", "off"]).map(|w| {
                    p.mode = match w {
                        "warm" => Mode::Warm,
                        "observe" => Mode::Observe,
                        _ => Mode::Off,
                    }
                }),
                "season" => word(value, &["day", "week"]).map(|w| {
                    p.season = if w == "day" {
                        Season::Day
                    } else {
                        Season::Week
                    }
                }),
                "interval_s" => match value {
                    Scalar::Str(s) if s.eq_ignore_ascii_case("auto") => {
                        p.interval = Interval::Auto;
                        Ok(())
                    }
                    _ => whole(value).map(|n| p.interval = Interval::Seconds(n)),
                },
                "min" => whole(value).map(|n| p.min = n),
                "max" => whole(value).map(|n| p.max = n),
                "bucket_minutes" => whole(value).map(|n| p.bucket_minutes = n),
                "delay_ms_min" => whole(value).map(|n| p.delay_ms_min = n),
                "delay_ms_max" => whole(value).map(|n| p.delay_ms_max = n),
                "headroom" => whole(value).map(|n| p.headroom = n),
                "quantile" => number(value).map(|x| p.quantile = x),
                "alpha" => number(value).map(|x| p.alpha = x),
                "cold_start_budget" => number(value).map(|x| p.cold_start_budget = x),
                "cold_start_usd" => match value {
                    Scalar::Str(s) if s.trim().eq_ignore_ascii_case("auto") => {
                        p.cold_start_usd = None;
                        Ok(())
                    }
                    _ => number(value)
                        .map_err(|_| "\"auto\" or a number of USD".to_string())
                        .map(|x| p.cold_start_usd = Some(x)),
                },
                "wait_usd_per_s" => number(value).map(|x| p.wait_usd_per_s = x),
                _ => {
                    warnings.push(format!(
                        "unknown attribute `{key}` ignored (known: {})",
                        KNOWN_ATTRIBUTES.join(", ")
                    ));
                    Ok(())
                }
            };
            if let Err(what) = r {
                problems.push(format!("{key} must be {what}, not {value}"));
            }
        }
        problems.extend(p.problems());
        if p.cold_start_usd.is_some() && doc.contains_key("wait_usd_per_s") {
            warnings.push(
                "wait_usd_per_s ignored: cold_start_usd is set, and says what a cold start is worth"
                    .into(),
            );
        }
        if problems.is_empty() {
            Ok(Parsed {
                policy: p,
                warnings,
            })
        } else {
            Err(PolicyError { problems })
        }
    }

    /// Checks ranges and relations between fields. Returns every problem.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PolicyError { problems })
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max < self.min {
            out.push(format!("max ({}) is below min ({})", self.max, self.min));
        }
        if self.max > 10_000 {
            out.push(format!(
                "max ({}) is above 10000, more than any account can run at once",
                self.max
            ));
        }
        if !(self.quantile >= 0.5 && self.quantile < 1.0) {
            out.push(format!(
                "quantile ({}) must be at least 0.5 and below 1",
                self.quantile
            ));
        }
        if self.bucket_minutes < WINDOW_MINUTES
            || !self.bucket_minutes.is_multiple_of(WINDOW_MINUTES)
            || 1_440 % self.bucket_minutes != 0
        {
            out.push(format!(
                "bucket_minutes ({}) must be a multiple of {WINDOW_MINUTES} that divides a day (5, 10, 15, 20, 30, 60, 120, ...)",
                self.bucket_minutes
            ));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            out.push(format!(
                "alpha ({}) must be above 0 and at most 1",
                self.alpha
            ));
        }
        if let Interval::Seconds(s) = self.interval
            && !(60..=3_600).contains(&s)
        {
            out.push(format!(
                "interval_s ({s}) must be \"auto\" or between 60 and 3600 seconds (the controller runs once a minute)"
            ));
        }
        if self.delay_ms_max > crate::protocol::MAX_DELAY_MS as u32 {
            out.push(format!(
                "delay_ms_max ({}) is above {} ms, the longest hold a shim accepts",
                self.delay_ms_max,
                crate::protocol::MAX_DELAY_MS
            ));
        }
        if self.delay_ms_min > self.delay_ms_max {
            out.push(format!(
                "delay_ms_min ({}) is above delay_ms_max ({})",
                self.delay_ms_min, self.delay_ms_max
            ));
        }
        if !(0.0..=1.0).contains(&self.cold_start_budget) {
            out.push(format!(
                "cold_start_budget ({}) must be between 0 and 1",
                self.cold_start_budget
            ));
        }
        if let Some(usd) = self.cold_start_usd
            && !(0.0..=MAX_COLD_START_USD).contains(&usd)
        {
            out.push(format!(
                "cold_start_usd ({usd}) must be \"auto\" or from 0 to {MAX_COLD_START_USD} USD (above that, buy Provisioned Concurrency)"
            ));
        }
        if !(0.0..=MAX_WAIT_USD_PER_S).contains(&self.wait_usd_per_s) {
            out.push(format!(
                "wait_usd_per_s ({}) must be from 0 to {MAX_WAIT_USD_PER_S} USD a second",
                self.wait_usd_per_s
            ));
        }
        out
    }

    /// What one avoided cold start is worth, USD, for a function whose
    /// INIT takes `init_ms` (see [`Policy::cold_start_usd`]).
    pub fn cold_start_worth_usd(&self, init_ms: u64) -> f64 {
        self.cold_start_usd
            .unwrap_or(self.wait_usd_per_s * init_ms as f64 / 1_000.0)
    }

    /// The policy as an item's attributes (every knob, defaults included), the
    /// form `forewarm policy get` shows and `put` writes.
    pub fn to_doc(&self) -> PolicyDoc {
        let s = |x: &str| Scalar::Str(x.to_string());
        let n = |x: f64| Scalar::Num(x);
        let mut d = PolicyDoc::new();
        d.insert(
            "mode".into(),
            s(match self.mode {
                Mode::Warm => "warm",
                Mode::Observe => "observe",
                Mode::Off => "off",
            }),
        );
        d.insert("min".into(), n(self.min.into()));
        d.insert("max".into(), n(self.max.into()));
        d.insert("quantile".into(), n(self.quantile));
        d.insert("bucket_minutes".into(), n(self.bucket_minutes.into()));
        d.insert(
            "season".into(),
            s(match self.season {
                Season::Day => "day",
                Season::Week => "week",
            }),
        );
        d.insert("alpha".into(), n(self.alpha));
        d.insert(
            "interval_s".into(),
            match self.interval {
                Interval::Auto => s("auto"),
                Interval::Seconds(x) => n(x.into()),
            },
        );
        d.insert("delay_ms_min".into(), n(self.delay_ms_min.into()));
        d.insert("delay_ms_max".into(), n(self.delay_ms_max.into()));
        d.insert("headroom".into(), n(self.headroom.into()));
        d.insert("cold_start_budget".into(), n(self.cold_start_budget));
        d.insert(
            "cold_start_usd".into(),
            self.cold_start_usd.map_or_else(|| s("auto"), n),
        );
        d.insert("wait_usd_per_s".into(), n(self.wait_usd_per_s));
        d
    }
}

/// Reads a policy document from JSON (an object of scalars), the form of
/// `--policy-file` and of `forewarm policy put`.
pub fn doc_from_json(text: &str) -> Result<PolicyDoc, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("a policy must be a JSON object of attributes")?;
    let mut doc = PolicyDoc::new();
    for (k, v) in obj {
        if k == "pk" || k == "sk" {
            continue;
        }
        let s = match v {
            serde_json::Value::Bool(b) => Scalar::Bool(*b),
            serde_json::Value::Number(n) => Scalar::Num(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Scalar::Str(s.clone()),
            other => {
                return Err(format!(
                    "attribute `{k}` must be a string, number or boolean, not {other}"
                ));
            }
        };
        doc.insert(k.clone(), s);
    }
    Ok(doc)
}

fn word<'a>(v: &Scalar, allowed: &[&'a str]) -> Result<&'a str, String> {
    let want = || {
        format!(
            "one of {}",
            allowed
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match v {
        Scalar::Str(s) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(s.trim()))
            .copied()
            .ok_or_else(want),
        _ => Err(want()),
    }
}

/// A number, also accepted as a numeric string (the console makes it easy to
/// type `"10"` as a string attribute).
fn number(v: &Scalar) -> Result<f64, String> {
    let x = match v {
        Scalar::Num(x) => Some(*x),
        Scalar::Str(s) => s.trim().parse::<f64>().ok(),
        Scalar::Bool(_) => None,
    };
    x.filter(|x| x.is_finite())
        .ok_or_else(|| "a number".to_string())
}

fn whole(v: &Scalar) -> Result<u32, String> {
    let what = || "a whole number from 0 to 4294967295".to_string();
    let x = number(v).map_err(|_| what())?;
    if x < 0.0 || x.fract() != 0.0 || x > u32::MAX as f64 {
        return Err(what());
    }
    Ok(x as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(pairs: &[(&str, Scalar)]) -> PolicyDoc {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
    fn num(x: f64) -> Scalar {
        Scalar::Num(x)
    }
    fn s(x: &str) -> Scalar {
        Scalar::Str(x.into())
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_a_doc() {
        Policy::default().validate().unwrap();
        let back = Policy::from_doc(&Policy::default().to_doc()).unwrap();
        assert_eq!(back.policy, Policy::default());
        assert!(back.warnings.is_empty());
    }

    #[test]
    fn function_items_override_account_defaults_attribute_by_attribute() {
        let star = doc(&[
            ("max", num(50.0)),
            ("quantile", num(0.9)),
            ("season", s("week")),
        ]);
        let f = doc(&[("max", num(20.0)), ("mode", s("observe"))]);
        let p = Policy::from_items(Some(&star), &f).unwrap().policy;
        assert_eq!(
            (p.max, p.quantile, p.season, p.mode),
            (20, 0.9, Season::Week, Mode::Observe)
        );
        assert_eq!(p.min, 0, "unset everywhere: built-in default");
    }

    #[test]
    fn every_problem_is_reported_at_once_in_plain_words() {
        let bad = doc(&[
            ("min", num(10.0)),
            ("max", num(5.0)),
            ("quantile", num(1.5)),
            ("mode", s("sometimes")),
            ("headroom", num(-1.0)),
            ("bucket_minutes", num(7.0)),
        ]);
        let err = Policy::from_doc(&bad).unwrap_err();
        let text = err.to_string();
        for needle in [
            "max (5) is below min (10)",
            "quantile (1.5)",
            "mode must be one of \"warm\", \"observe\", \"off\", not \"sometimes\"",
            "headroom must be a whole number",
            "bucket_minutes (7)",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
        assert_eq!(err.problems.len(), 5, "{text}");
    }

    #[test]
    fn unknown_attributes_warn_and_numeric_strings_are_accepted() {
        let p = Policy::from_doc(&doc(&[
            ("maxx", num(3.0)),
            ("max", s("12")),
            ("interval_s", s("AUTO")),
        ]))
        .unwrap();
        assert_eq!(p.policy.max, 12);
        assert_eq!(p.policy.interval, Interval::Auto);
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("maxx"));
    }

    #[test]
    fn interval_and_delay_bounds_are_checked() {
        let e = Policy::from_doc(&doc(&[
            ("interval_s", num(10.0)),
            ("delay_ms_min", num(900.0)),
            ("delay_ms_max", num(800.0)),
        ]))
        .unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        let e = Policy::from_doc(&doc(&[("delay_ms_max", num(20_000.0))])).unwrap_err();
        assert!(e.to_string().contains("longest hold"));
        let ok = Policy::from_doc(&doc(&[("interval_s", num(240.0))])).unwrap();
        assert_eq!(ok.policy.interval, Interval::Seconds(240));
    }

    #[test]
    fn what_a_cold_start_is_worth_is_checked_and_named() {
        for (key, v, needle) in [
            (
                "cold_start_usd",
                num(-0.01),
                "cold_start_usd (-0.01) must be",
            ),
            (
                "cold_start_usd",
                s("a lot"),
                "cold_start_usd must be \"auto\" or a number",
            ),
            ("cold_start_usd", num(50.0), "above that, buy Provisioned"),
            ("wait_usd_per_s", num(-1.0), "wait_usd_per_s (-1) must be"),
            (
                "wait_usd_per_s",
                s("cheap"),
                "wait_usd_per_s must be a number",
            ),
            ("wait_usd_per_s", num(1e6), "wait_usd_per_s (1000000)"),
        ] {
            let e = Policy::from_doc(&doc(&[(key, v), ("max", num(7.0))])).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            assert!(e.to_string().contains(needle), "{needle:?} not in {e}");
        }
        let auto = Policy::from_doc(&doc(&[("wait_usd_per_s", num(0.001))])).unwrap();
        assert_eq!(auto.policy.cold_start_worth_usd(8_000), 0.008);
        let set = Policy::from_doc(&doc(&[
            ("cold_start_usd", s("0.05")),
            ("wait_usd_per_s", num(0.001)),
        ]))
        .unwrap();
        assert_eq!(set.policy.cold_start_worth_usd(8_000), 0.05);
        assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
        let back = Policy::from_doc(&set.policy.to_doc()).unwrap().policy;
        assert_eq!(back.cold_start_usd, Some(0.05));
    }

    #[test]
    fn json_documents_are_read_as_items() {
        let d = doc_from_json(r#"{"pk": "orders", "max": 40, "season": "week", "mode": "warm"}"#)
            .unwrap();
        assert!(!d.contains_key("pk"));
        assert_eq!(Policy::from_doc(&d).unwrap().policy.max, 40);
        assert!(
            doc_from_json(r#"{"max": [1]}"#)
                .unwrap_err()
                .contains("max")
        );
        assert!(doc_from_json("[1]").is_err());
    }
}
