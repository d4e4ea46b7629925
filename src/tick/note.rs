//! What the tick tells people about one function: why it was skipped, or
//! what went wrong while handling it. Each variant prints as the sentence
//! written to the function's `last_error`, the logs and `forewarm tick`.

use std::fmt;

/// Why a function was skipped or what went wrong, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The policy item is invalid (the reason): the function is skipped and
    /// nothing of its state is touched.
    InvalidPolicy(String),
    /// The policy's `mode` is `off`.
    Off,
    /// This tick's time ran out before the function's turn.
    Late,
    /// Its state item could not be read (the error).
    CannotLoad(String),
    /// What was stored could not be used as it was (the problem): it was
    /// repaired, or the function started afresh.
    StoredState(String),
    /// Its configuration could not be read and never will be as it is (the
    /// error): the function is skipped.
    CannotReadLimits(String),
    /// Its configuration could not be read this time (the error): decided,
    /// not warmed.
    LimitsUnknown(String),
    /// Its metrics could not be read (the error): the last forecast stands.
    MetricsUnavailable(String),
    /// Some pings failed.
    PingsFailed {
        /// How many failed.
        failed: u32,
        /// How many were sent.
        requested: u32,
        /// The failures in words, with what to do about each.
        what: String,
    },
    /// The warm could not be sent at all (the error).
    WarmFailed(String),
    /// The state was not saved.
    NotSaved {
        /// What the item says became of the save.
        why: Unsaved,
        /// Reading the item back failed too (that error): `why` is a guess.
        uncertain: Option<String>,
        /// The save's error.
        error: String,
    },
}

/// What became of a save that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsaved {
    /// Another run saved first; its state stands.
    Superseded,
    /// Nothing was written; the stored state is as it was.
    Unchanged,
}

impl fmt::Display for Unsaved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unsaved::Superseded => "another run saved first; its state stands",
            Unsaved::Unchanged => "save failed; the stored state is unchanged",
        })
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::InvalidPolicy(why) | Note::StoredState(why) => f.write_str(why),
            Note::Off => f.write_str("mode is off"),
            Note::Late => f.write_str(
                "left for the next tick: this tick's time (its deadline or its claim on the run) ran out before its turn; nothing of it was written",
            ),
            Note::CannotLoad(e) => write!(f, "cannot read state: {e}"),
            Note::CannotReadLimits(e) => write!(f, "cannot read function configuration: {e}"),
            Note::LimitsUnknown(e) => write!(f, "limits unknown, not warming: {e}"),
            Note::MetricsUnavailable(e) => write!(f, "metrics unavailable: {e}"),
            Note::PingsFailed {
                failed,
                requested,
                what,
            } => write!(f, "{failed} of {requested} pings failed: {what}"),
            Note::WarmFailed(e) => write!(f, "warm failed: {e}"),
            Note::NotSaved {
                why,
                uncertain: None,
                error,
            } => write!(f, "{why}: {error}"),
            Note::NotSaved {
                why,
                uncertain: Some(re),
                error,
            } => write!(
                f,
                "{why} (not certain: reading the item back failed: {re}); the next tick reads what was stored: {error}"
            ),
        }
    }
}

impl serde::Serialize for Note {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
