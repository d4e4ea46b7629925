//! `forewarm probe URL -n 1000` as a user runs it (the release binary),
//! against the scripted endpoint of tests/support/invoke.rs in this process,
//! which holds each request 1 s: wall time, the probe's peak resident memory
//! (VmHWM, read from /proc while it runs) and its start spread. Run with
//! `cargo bench --bench probe`.

#![allow(missing_docs)]

#[path = "../tests/support/invoke.rs"]
mod invoke;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use invoke::{InvokeStub, Reply};

/// The probe's peak resident set so far, KB (Linux).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    // A server with a thousand connections needs a descriptor each.
    let _ = rlimit::increase_nofile_limit(4_096);
    let stub = InvokeStub::start(|_| Reply::ok(r#"{"ok":true}"#).after(Duration::from_secs(1)));
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        // The report (about 100 KB) goes to a file: a pipe nobody reads
        // while the probe runs would block it once full.
        let report =
            std::env::temp_dir().join(format!("forewarm-probe-bench-{}.json", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_forewarm"))
            .args([
                "probe",
                &stub.endpoint,
                "-n",
                "1000",
                "--no-reference",
                "--json",
            ])
            .stdout(Stdio::from(std::fs::File::create(&report).unwrap()))
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut peak = 0;
        while child.try_wait().unwrap().is_none() {
            peak = peak.max(peak_rss_kb(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(5));
        }
        let wall = t.elapsed().as_millis() as u64;
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let _ = std::fs::remove_file(&report);
        assert_eq!(r["ok"], 1_000, "{}", r["errors_by_kind"]);
        runs.push((wall, peak, r["start_spread_ms"].as_u64().unwrap_or(0)));
    }
    runs.sort_unstable();
    let (wall, peak, spread) = runs[2];
    println!(
        "probe -n 1000, 1 s hold: median wall {wall} ms (min {}, max {}), peak RSS {} MB, start spread {spread} ms",
        runs[0].0,
        runs[4].0,
        peak / 1024
    );
}
