//! The `forewarm` command line as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn forewarm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_forewarm"))
}

/// Runs `forewarm ARGS`, expecting success; returns stdout and stderr.
fn ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("forewarm-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A two-function, 30-minute trace in the Azure 2019 layout.
fn small_trace(dir: &std::path::Path) -> PathBuf {
    let mut text = String::from("HashFunction,HashOwner,HashApp");
    for m in 1..=30 {
        text.push_str(&format!(",minute_{m}"));
    }
    text.push('\n');
    for (id, per_min) in [("busy", 120), ("idle", 0)] {
        text.push_str(&format!("{id},{id},{id}"));
        for _ in 1..=30 {
            text.push_str(&format!(",{per_min}"));
        }
        text.push('\n');
    }
    let p = dir.join("invocations.csv");
    std::fs::write(&p, text).unwrap();
    std::fs::write(
        dir.join("durations.csv"),
        "HashOwner,HashApp,HashFunction,Average\nbusy,busy,busy,2000\n",
    )
    .unwrap();
    p
}

#[test]
fn forecast_prints_one_row_per_function_and_window() {
    let dir = tmp("forecast");
    let trace = small_trace(&dir);
    let (text, err) = ok(forewarm()
        .args(["forecast", "--csv", "--window", "10m", "--trace"])
        .arg(&trace));
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "function,window_start_min,forecast,realized_peak");
    assert_eq!(rows.len(), 1 + 2 * 3, "{text}");
    // 120 calls a minute of 2 s: 4 sandboxes by Little's law.
    assert_eq!(rows[1], "busy,0,0,4");
    let last_busy: Vec<&str> = rows[3].split(',').collect();
    assert_eq!(last_busy[..2], ["busy", "20"]);
    assert!(last_busy[2].parse::<u32>().unwrap() >= 4);
    assert!(rows[4..].iter().all(|r| r.ends_with(",0,0")));
    assert!(err.contains("quantile 0.99"), "{err}");
}

#[test]
fn forecast_rejects_bad_input_with_file_line_and_field() {
    let dir = tmp("bad");
    let trace = dir.join("invocations.csv");
    std::fs::write(&trace, "HashFunction,minute_1\nf,1\ng,-4\n").unwrap();
    let out = forewarm()
        .args(["forecast", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invocations.csv:3: minute_1"), "{err}");

    let policy = dir.join("p.json");
    std::fs::write(&policy, r#"{"quantile": 2, "min": 9, "max": 3}"#).unwrap();
    let good = small_trace(&dir);
    let out = forewarm()
        .args(["forecast", "--trace"])
        .arg(&good)
        .arg("--policy-file")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max (3) is below min (9)") && err.contains("quantile (2)"),
        "{err}"
    );

    let out = forewarm()
        .args(["forecast", "--window", "90s", "--trace"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("whole number of minutes"));
}

#[test]
fn simulate_prints_the_report_keys_as_json() {
    let dir = tmp("simulate");
    let trace = small_trace(&dir);
    let args = [
        "simulate", "--repeat", "2", "--policy", "none", "--policy", "forewarm",
    ];
    let (json, _) = ok(forewarm()
        .args(args)
        .args(["--policy", "oracle", "--json", "--trace"])
        .arg(&trace));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["functions"], 2);
    assert_eq!(
        v["sim_seconds"], 1_800.0,
        "the report covers the second play"
    );
    let names: Vec<&str> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["none", "forewarm", "oracle"]);
    assert_eq!(v["policies"][2]["cold_starts"], 0);
}

#[test]
fn simulate_writes_timelines_and_plots() {
    let dir = tmp("simulate-out");
    let trace = small_trace(&dir);
    let out_dir = dir.join("out");
    ok(forewarm()
        .args([
            "simulate",
            "--policy",
            "fixed:n=2",
            "--policy",
            "forewarm",
            "--trace",
        ])
        .arg(&trace)
        .arg("--out")
        .arg(&out_dir));
    for f in [
        "report.json",
        "fleet-timeline.csv",
        "function-timeline.csv",
        "cost-vs-cold-starts.svg",
        "function-timeline.svg",
    ] {
        let meta = std::fs::metadata(out_dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 100, "{f} is empty");
    }
    let svg = std::fs::read_to_string(out_dir.join("cost-vs-cold-starts.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("forewarm"));
}

#[test]
fn simulate_rejects_bad_input_clearly() {
    let dir = tmp("simulate-bad");
    let trace = small_trace(&dir);
    let run = |args: &[&str]| {
        let out = forewarm()
            .arg("simulate")
            .args(args)
            .arg("--trace")
            .arg(&trace)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--policy", "warmest"]).contains("unknown policy `warmest`"));
    assert!(run(&["--policy", "fixed:n=lots"]).contains("n must be a whole number"));
    assert!(run(&["--model", "lambda-1999"]).contains("unknown model"));
    let model = dir.join("m.toml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/lambda-2021.toml"
    ))
    .unwrap();
    std::fs::write(&model, text.replace("p95_ms = 600", "p95_ms = -1")).unwrap();
    let err = run(&["--model", model.to_str().unwrap()]);
    assert!(
        err.contains("m.toml: cold_start.p95_ms must be at least median_ms, not -1"),
        "{err}"
    );
    assert!(run(&["--ttl", "7m..5m"]).contains("--ttl"));
    assert!(!err.contains("panicked"));
}
