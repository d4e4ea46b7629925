//! What every function's warms taught about idle reaping, pooled for the
//! account.
//!
//! Lambda reaps an idle sandbox by a rule of the platform, not of the
//! function (10 minutes in 2019–20, 5–7 since 2021). A learner per function
//! paid for the same lesson once per function: each probed a minute past
//! what it had seen survive, lost half its pool there, and did it again the
//! next day. On the bundled day the probes past 5 minutes cost about 240
//! cold starts, and a fixed 5-minute interval beat the learner. Pooled, the
//! evidence of a whole fleet says within minutes which idle gap is safe, and
//! a few warms an hour (the scouts) pay for keeping it current.
//!
//! The evidence is counted in sandboxes per whole minute of idle gap (the
//! controller runs once a minute, so warms are whole minutes apart), and
//! fades with a half-life of an hour so that a change of the platform shows.
//! A sandbox that survived `g` minutes would have survived any shorter gap,
//! and one that died after `g` would have died after any longer one: the
//! death rate at `g` counts the deaths at `g` or less against the survivals
//! at `g` or more. The safe gap is the longest whose death rate is below
//! [`DEATH_RATE`]; a gap longer than the first interval
//! ([`DEFAULT_INTERVAL_S`]) needs [`EVIDENCE`] survivals first, and cold
//! pings still waiting for their minute's metrics count as deaths there, so
//! the fleet does not move on to a gap whose deaths are not read yet.

use super::survival::{DEFAULT_INTERVAL_S, MAX_AUTO_INTERVAL_S};

/// Whole minutes of idle gap tracked: 1 to 14 (the longest interval).
const BUCKETS: usize = (MAX_AUTO_INTERVAL_S / 60) as usize + 1;
/// Evidence halves every hour: a day-old lesson no longer holds the fleet.
const HALF_LIFE_MS: f64 = 3_600_000.0;
/// A gap is safe while fewer than this share of the sandboxes it was
/// tried on died. At 5–7 minutes, 6 minutes kills half a pool and 5 almost
/// none (a sandbox idle for a hair over 5 minutes now and then); the
/// threshold sits far from both.
pub(crate) const DEATH_RATE: f64 = 0.05;
/// Survivals a gap past the first interval needs before the fleet uses it.
const EVIDENCE: f64 = 3.0;
/// Scout warms an hour, account-wide, while the next longer gap is not
/// known to kill: enough to learn it within the hour.
const SCOUTS_EXPLORING: f64 = 20.0;
/// Scout warms an hour once the next gap is known to kill: enough to keep
/// knowing it as the evidence fades.
const SCOUTS_REFRESHING: f64 = 2.0;
/// Largest figure stored, so a corrupted item cannot overflow anything.
const MAX_FIGURE: f64 = 1e9;

/// What one function's warm or read showed about a gap, in sandboxes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sighting {
    /// Sandboxes proven idle through the gap and still there.
    Survived { gap_s: u32, sandboxes: u32 },
    /// Sandboxes the gap reaped.
    Died { gap_s: u32, sandboxes: u32 },
    /// Cold pings waiting for their minute's metrics to be judged.
    Waiting { gap_s: u32, sandboxes: u32 },
    /// Those cold pings judged (as deaths or not, said apart), `since_ms`
    /// the warm that sent them.
    Judged {
        gap_s: u32,
        sandboxes: u32,
        since_ms: u64,
    },
    /// A warm went out (the scouts' share is of these).
    Warmed,
}

/// The account's pooled evidence, stored on the account's item.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reaping {
    survived: [f64; BUCKETS],
    died: [f64; BUCKETS],
    waiting: [f64; BUCKETS],
    /// Warms sent, faded like the rest.
    warms: f64,
    /// When the figures were last faded, epoch ms.
    at_ms: u64,
}

/// The account's lesson as one function's look uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reaped {
    /// The longest idle gap known safe, seconds.
    pub safe_s: u32,
    /// Whether this warm is a scout: it tries a minute longer.
    #[serde(default)]
    pub scout: bool,
}

impl Default for Reaped {
    /// Nothing learned: the first interval, no scouting.
    fn default() -> Self {
        Reaped {
            safe_s: DEFAULT_INTERVAL_S,
            scout: false,
        }
    }
}

impl Reaped {
    /// The gap this warm may leave before the next: the safe gap, or a
    /// minute more for a scout.
    pub fn gap_s(&self) -> u32 {
        self.safe_s.saturating_add(if self.scout { 60 } else { 0 })
    }
}

fn bucket(gap_s: u32) -> Option<usize> {
    let b = ((gap_s as u64 + 30) / 60) as usize;
    (1..BUCKETS).contains(&b).then_some(b)
}

impl Reaping {
    /// Folds one sighting in at `now_ms`.
    pub(crate) fn see(&mut self, s: Sighting, now_ms: u64) {
        self.fade(now_ms);
        match s {
            Sighting::Survived { gap_s, sandboxes } => {
                if let Some(b) = bucket(gap_s) {
                    self.survived[b] += f64::from(sandboxes);
                }
            }
            Sighting::Died { gap_s, sandboxes } => {
                if let Some(b) = bucket(gap_s) {
                    let safe = self.safe_minutes();
                    self.died[b] += f64::from(sandboxes);
                    if b <= safe && self.death_rate(b) > DEATH_RATE {
                        // A gap that was safe now kills: the platform reaps
                        // sooner. What survived is forgotten, so the fleet
                        // falls back to the first interval at once, and
                        // learns the new gap from there; what killed stays.
                        self.survived = [0.0; BUCKETS];
                    }
                }
            }
            Sighting::Waiting { gap_s, sandboxes } => {
                if let Some(b) = bucket(gap_s) {
                    self.waiting[b] += f64::from(sandboxes);
                }
            }
            Sighting::Judged {
                gap_s,
                sandboxes,
                since_ms,
            } => {
                if let Some(b) = bucket(gap_s) {
                    // Faded since it was added, as it would have been.
                    let w = f64::from(sandboxes) * fade(now_ms.saturating_sub(since_ms));
                    self.waiting[b] = (self.waiting[b] - w).max(0.0);
                }
            }
            Sighting::Warmed => self.warms += 1.0,
        }
    }

    fn fade(&mut self, now_ms: u64) {
        if now_ms <= self.at_ms {
            // A clock a little behind the last run's (another machine's
            // `forewarm tick`) fades nothing; a stored time an hour or more
            // ahead is no run's, and would keep the figures from ever fading.
            if self.at_ms - now_ms >= HALF_LIFE_MS as u64 {
                self.at_ms = now_ms;
            }
            return;
        }
        let f = fade(now_ms - self.at_ms);
        for x in self
            .survived
            .iter_mut()
            .chain(self.died.iter_mut())
            .chain(self.waiting.iter_mut())
        {
            *x *= f;
        }
        self.warms *= f;
        self.at_ms = now_ms;
    }

    /// Sandboxes that survived `b` minutes or more.
    fn survivals(&self, b: usize) -> f64 {
        self.survived[b..].iter().sum()
    }

    /// Share of the sandboxes tried at `b` minutes that died: deaths at `b`
    /// or less (and, with `waiting`, the cold pings at `b` not judged yet)
    /// against survivals at `b` or more.
    fn rate(&self, b: usize, waiting: bool) -> (f64, f64) {
        let s = self.survivals(b);
        let d = self.died[..=b].iter().sum::<f64>() + if waiting { self.waiting[b] } else { 0.0 };
        let rate = if s + d > 0.0 { d / (s + d) } else { 0.0 };
        (rate, s)
    }

    fn death_rate(&self, b: usize) -> f64 {
        self.rate(b, false).0
    }

    /// The longest gap, whole minutes, known safe.
    fn safe_minutes(&self) -> usize {
        let first = (DEFAULT_INTERVAL_S / 60) as usize;
        // Up to the first interval, a gap is safe until deaths say not.
        let mut safe = 1;
        for b in 1..=first {
            if self.death_rate(b) > DEATH_RATE {
                return safe;
            }
            safe = b;
        }
        // Past it, only once survivals show it, with no deaths pending.
        for b in first + 1..BUCKETS {
            let (rate, survivals) = self.rate(b, true);
            if rate > DEATH_RATE || survivals < EVIDENCE {
                break;
            }
            safe = b;
        }
        safe
    }

    /// The safe gap, seconds.
    pub fn safe_s(&self) -> u32 {
        self.safe_minutes() as u32 * 60
    }

    /// The share of warms that should scout a minute past the safe gap, at
    /// `now_ms`: a few an hour account-wide, more while that gap is not
    /// known to kill; every warm of an account that sends fewer. None
    /// before the account has warmed at all: on a new account's first tick
    /// every function would scout.
    pub fn scout_share(&self, now_ms: u64) -> f64 {
        let next = self.safe_minutes() + 1;
        if next >= BUCKETS || self.warms <= 0.0 {
            return 0.0;
        }
        let (rate, _) = self.rate(next, true);
        let per_hour = if rate > DEATH_RATE {
            SCOUTS_REFRESHING
        } else {
            SCOUTS_EXPLORING
        };
        // Faded warms stand for about an hour and a half of them
        // (half-life / ln 2); read at `now_ms`, as `see` would fade them.
        let warms = self.warms * fade(now_ms.saturating_sub(self.at_ms));
        (per_hour / (warms * std::f64::consts::LN_2)).min(1.0)
    }

    /// The lesson for a function warmed at `now_ms`: the safe gap, and
    /// whether `key` (a hash of the function and the minute) picks this warm
    /// as a scout.
    pub fn reaped(&self, key: u64, now_ms: u64) -> Reaped {
        let share = self.scout_share(now_ms);
        Reaped {
            safe_s: self.safe_s(),
            scout: ((key % 1_000_000) as f64) < share * 1_000_000.0,
        }
    }

    /// The stored text: `at_ms;warms;minute:survived/died/waiting,...`,
    /// minutes with nothing left out, figures to two decimals.
    pub fn text(&self) -> String {
        let buckets: Vec<String> = (1..BUCKETS)
            .filter(|&b| self.survived[b] + self.died[b] + self.waiting[b] >= 0.005)
            .map(|b| {
                format!(
                    "{b}:{:.2}/{:.2}/{:.2}",
                    self.survived[b], self.died[b], self.waiting[b]
                )
            })
            .collect();
        format!("{};{:.2};{}", self.at_ms, self.warms, buckets.join(","))
    }

    /// Reads the stored text. It is untrusted: what does not parse, or is
    /// not a finite figure in range, is an error naming it, and the caller
    /// starts afresh (nothing learned is worse than a wrong lesson).
    pub fn parse(text: &str) -> Result<Reaping, String> {
        let mut parts = text.splitn(3, ';');
        let (Some(at), Some(warms), Some(buckets)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("reaping {text:?} is not at_ms;warms;buckets"));
        };
        let figure = |s: &str| -> Result<f64, String> {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && (0.0..=MAX_FIGURE).contains(x))
                .ok_or_else(|| format!("reaping figure {s:?} is not a number from 0 to 1e9"))
        };
        let mut r = Reaping {
            at_ms: at
                .trim()
                .parse()
                .map_err(|_| format!("reaping time {at:?} is not epoch ms"))?,
            warms: figure(warms)?,
            ..Reaping::default()
        };
        for pair in buckets.split(',').filter(|p| !p.trim().is_empty()) {
            let (minute, figures) = pair
                .split_once(':')
                .ok_or_else(|| format!("reaping entry {pair:?} is not minute:s/d/w"))?;
            let b = minute
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|b| (1..BUCKETS).contains(b))
                .ok_or_else(|| format!("reaping minute {minute:?} is not 1 to {}", BUCKETS - 1))?;
            let f: Vec<&str> = figures.split('/').collect();
            let [s, d, w] = f[..] else {
                return Err(format!("reaping entry {pair:?} is not minute:s/d/w"));
            };
            r.survived[b] = figure(s)?;
            r.died[b] = figure(d)?;
            r.waiting[b] = figure(w)?;
        }
        Ok(r)
    }

    /// For people: the safe gap and what it rests on.
    pub fn describe(&self, now_ms: u64) -> String {
        let safe = self.safe_minutes();
        let (rate, survivals) = self.rate(safe, false);
        let f = fade(now_ms.saturating_sub(self.at_ms));
        let next = safe + 1;
        let beyond = if next < BUCKETS {
            let (r, s) = self.rate(next, true);
            if s * f < EVIDENCE && r <= DEATH_RATE {
                format!("; {next} min not tried enough yet")
            } else {
                format!("; {next} min killed {:.0} %", r * 100.0)
            }
        } else {
            String::new()
        };
        format!(
            "idle sandboxes survive {safe} min ({:.0} sandboxes seen survive it lately, {:.1} % died){beyond}",
            survivals * f,
            rate * 100.0
        )
    }
}

/// What is left of a figure after `ms`.
fn fade(ms: u64) -> f64 {
    0.5f64.powf(ms as f64 / HALF_LIFE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    /// `sandboxes` proven to have survived `gap_s`, seen at `at_ms`.
    fn survive(r: &mut Reaping, gap_s: u32, sandboxes: u32, at_ms: u64) {
        r.see(Sighting::Survived { gap_s, sandboxes }, at_ms);
    }

    fn die(r: &mut Reaping, gap_s: u32, sandboxes: u32, at_ms: u64) {
        r.see(Sighting::Died { gap_s, sandboxes }, at_ms);
    }

    fn wait(r: &mut Reaping, gap_s: u32, sandboxes: u32, at_ms: u64) {
        r.see(Sighting::Waiting { gap_s, sandboxes }, at_ms);
    }

    /// The cold pings a warm at `since_ms` left waiting, judged at `at_ms`.
    fn judge(r: &mut Reaping, gap_s: u32, sandboxes: u32, since_ms: u64, at_ms: u64) {
        let s = Sighting::Judged {
            gap_s,
            sandboxes,
            since_ms,
        };
        r.see(s, at_ms);
    }

    #[test]
    fn nothing_learned_is_the_first_interval() {
        let r = Reaping::default();
        assert_eq!(r.safe_s(), DEFAULT_INTERVAL_S);
        assert_eq!(r.scout_share(0), 0.0, "before any warm, none scouts");
        let mut r = Reaping::default();
        r.see(Sighting::Warmed, 0);
        assert_eq!(r.scout_share(0), 1.0, "a warm an hour: every warm scouts");
    }

    #[test]
    fn a_gap_is_used_once_survivals_show_it_and_not_while_deaths_wait() {
        // 5 minutes survived; scouts at 6: half survive at once, half are
        // cold pings waiting for their minute's metrics.
        let scouted = || {
            let mut r = Reaping::default();
            survive(&mut r, 300, 10, MIN);
            assert_eq!(r.safe_s(), 300);
            survive(&mut r, 360, 5, 2 * MIN);
            wait(&mut r, 360, 5, 2 * MIN);
            assert_eq!(r.safe_s(), 300, "deaths not read yet hold the fleet");
            r
        };
        // Read: they were deaths (told before the wait ends, as
        // `Survival::settle` tells it).
        let mut r = scouted();
        die(&mut r, 360, 5, 5 * MIN);
        judge(&mut r, 360, 5, 2 * MIN, 5 * MIN);
        assert_eq!(r.safe_s(), 300, "{r:?}");
        // Explained by real traffic instead, 6 minutes would have been safe.
        let mut r = scouted();
        judge(&mut r, 360, 5, 2 * MIN, 5 * MIN);
        assert_eq!(r.safe_s(), 360);
    }

    #[test]
    fn a_longer_survival_vouches_for_the_shorter_gaps() {
        let mut r = Reaping::default();
        survive(&mut r, 600, 4, MIN);
        assert_eq!(r.safe_s(), 600);
    }

    #[test]
    fn a_few_stray_deaths_among_many_survivals_do_not_move_the_fleet() {
        let mut r = Reaping::default();
        survive(&mut r, 300, 2_000, MIN);
        for _ in 0..20 {
            die(&mut r, 60, 2, MIN);
        }
        assert_eq!(r.safe_s(), 300);
    }

    #[test]
    fn deaths_at_the_safe_gap_send_the_fleet_back_to_the_first_interval() {
        let mut r = Reaping::default();
        survive(&mut r, 540, 30, MIN);
        assert_eq!(r.safe_s(), 540);
        die(&mut r, 540, 3, 2 * MIN);
        assert_eq!(r.safe_s(), DEFAULT_INTERVAL_S);
    }

    #[test]
    fn evidence_fades_so_an_old_death_stops_holding_the_fleet() {
        let mut r = Reaping::default();
        survive(&mut r, 300, 100, 0);
        die(&mut r, 360, 10, 0);
        assert_eq!(r.safe_s(), 300);
        // A day later, with survivals at 6 minutes since.
        survive(&mut r, 360, 10, 24 * 60 * MIN);
        assert_eq!(r.safe_s(), 360);
    }

    #[test]
    fn scouts_are_a_few_warms_an_hour_of_a_large_fleet() {
        let mut r = Reaping::default();
        for i in 0..16_000u64 {
            r.see(Sighting::Warmed, i * 225);
        }
        survive(&mut r, 300, 10_000, 3_600_000);
        die(&mut r, 360, 500, 3_600_000);
        let share = r.scout_share(3_600_000);
        // About 11,000 warms stand faded for the last hour and a half.
        assert!(share > 0.0 && share < 0.001, "{share}");
        let scouts = (0..1_000_000u64)
            .filter(|k| r.reaped(k * 7_919, 3_600_000).scout)
            .count();
        assert!(scouts > 0 && scouts < 1_000, "{scouts}");
    }

    #[test]
    fn a_stored_time_far_ahead_does_not_stop_the_fading() {
        let mut r = Reaping::parse("999999999999999;0;5:100/0/0").unwrap();
        survive(&mut r, 300, 1, 0);
        survive(&mut r, 300, 1, 24 * 60 * MIN);
        assert!(r.survivals(5) < 2.0, "{r:?}");
    }

    #[test]
    fn stored_text_round_trips_and_bad_text_is_an_error() {
        let mut r = Reaping::default();
        survive(&mut r, 300, 12, 5 * MIN);
        r.see(Sighting::Warmed, 5 * MIN);
        die(&mut r, 360, 3, 5 * MIN);
        let text = r.text();
        assert_eq!(text, "300000;1.00;5:12.00/0.00/0.00,6:0.00/3.00/0.00");
        assert_eq!(Reaping::parse(&text), Ok(r));
        for bad in [
            "",
            "x;1;5:1/0/0",
            "0;1;99:1/0/0",
            "0;1;5:1/0",
            "0;NaN;",
            "0;1;5:-1/0/0",
            "0;1;5:1e300/0/0",
        ] {
            assert!(Reaping::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(Reaping::parse("0;0;"), Ok(Reaping::default()));
    }
}
