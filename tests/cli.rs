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
fn forecast_scores_the_controller_beside_the_baselines_window_by_window() {
    let dir = tmp("forecast");
    let trace = small_trace(&dir);
    let run = |extra: &[&str]| {
        ok(forewarm()
            .args(["forecast", "--repeat", "3", "--quantile", "0.9,0.99"])
            .args(extra)
            .arg("--trace")
            .arg(&trace))
    };
    let (text, err) = run(&["--csv"]);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[0],
        "function,window_start_min,quantile,forewarm,last_window,hour_max,seasonal_naive,realized_peak"
    );
    // 90 minutes: the first play is learning and the first hour is history,
    // so the busy function's six windows from minute 60 are scored, at each
    // quantile; the idle one never ran, so it has none.
    assert_eq!(rows.len(), 1 + 2 * 6, "{text}");
    for (i, row) in rows[1..].iter().enumerate() {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f[0], "busy");
        assert_eq!(f[1], (60 + 5 * (i % 6)).to_string());
        assert_eq!(f[2], if i < 6 { "0.9" } else { "0.99" });
        let n: Vec<u32> = f[3..].iter().map(|x| x.parse().unwrap()).collect();
        assert!(
            n[4] > 0,
            "120 calls a minute of 2 s run in every window: {row}"
        );
        assert!(
            n[0] > 0 && n[2] > 0,
            "warmed and seen within the hour: {row}"
        );
    }
    assert!(
        err.contains("quantile 0.99") && err.contains("hour_max"),
        "{err}"
    );

    let (json, _) = run(&["--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1]["quantile"], 0.99);
    assert_eq!(reports[1]["scored_windows"], 6);
    let names: Vec<&str> = reports[1]["forecasters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["forewarm", "last_window", "hour_max", "seasonal_naive"]
    );
    for key in [
        "pinball",
        "under_share",
        "under_share_active",
        "short_per_window",
        "over_per_window",
    ] {
        assert!(reports[1]["forecasters"][0][key].is_number(), "{key}");
    }
    // The same forecasters over only the windows a target was issued for.
    let issued = reports[1]["issued"].as_array().unwrap();
    assert_eq!(issued.len(), 4);
    assert_eq!(issued[0]["name"], "forewarm");
    assert!(issued[0]["pinball"].is_number());
    assert!(
        reports[1]["issued_active_windows"].as_u64().unwrap()
            <= reports[1]["issued_windows"].as_u64().unwrap()
    );
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
        .args(["forecast", "--quantile", "0.9,1.5", "--trace"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quantile (1.5)"), "{err}");
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
