//! Parsers shared by several commands' arguments.

use std::time::Duration;

/// Parses a duration such as `300ms`, `5m` or `1h30m`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like 300ms, 5m or 1h ({e})"))
}
