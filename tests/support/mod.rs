//! Shared harness for the integration tests: local AWS stand-ins on loopback.
//!
//! The README's test command (`scripts/test`) installs the stand-ins and puts
//! them on `PATH`; these helpers start a private instance per test where a test
//! needs a pristine one (a cold sandbox pool), and stop it when the test ends,
//! pass or fail.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the README's test command installs the stand-ins.
fn venv_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin")
}

/// `PATH` with the test command's venv first, where it exists: a plain
/// `cargo test` after one run of `scripts/test` finds the same tools.
fn path_with_venv() -> std::ffi::OsString {
    let mut dirs = vec![venv_bin()];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Stops the test binary with one line, not a panic per test, when the
/// stand-ins are not installed (a plain `cargo test` on a fresh checkout).
fn require_stand_ins() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let ok = |c: &mut Command| {
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let mut missing = Vec::new();
        if !ok(Command::new(python()).args(["-c", "import moto"])) {
            missing.push("moto");
        }
        if !ok(Command::new("cargo")
            .args(["lambda", "--version"])
            .env("PATH", path_with_venv()))
        {
            missing.push("cargo-lambda");
        }
        if !missing.is_empty() {
            // Straight to the process's stderr: the test harness captures
            // `eprintln!` of a test that then never reports.
            let _ = writeln!(
                std::io::stderr(),
                "the integration tests need local AWS stand-ins ({} not found): run scripts/test, the README's test command, which installs and starts them",
                missing.join(" and ")
            );
            std::process::exit(2);
        }
    });
}

/// A `cargo lambda watch` serving this crate's bins (e.g. `demo-target`) as
/// functions over the Lambda Invoke API, on a free loopback port.
pub struct LambdaWatch {
    child: Child,
    /// `http://127.0.0.1:<port>`, for `endpoint_url`.
    pub endpoint: String,
    /// Where the emulator and the function instances write their logs.
    pub log: PathBuf,
}

impl LambdaWatch {
    /// Starts a watch whose pools grow to `concurrency` sandboxes per function.
    /// Every pool starts cold: no instance runs until the first invoke.
    pub fn start(concurrency: usize) -> LambdaWatch {
        let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let port = free_port();
        let log_dir = manifest_dir.join("target").join("test-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = log_dir.join(format!("cargo-lambda-watch-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        require_stand_ins();
        let child = Command::new("cargo")
            .env("PATH", path_with_venv())
            .args(["lambda", "watch", "--ignore-changes", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string(), "--concurrency", &concurrency.to_string()])
            .current_dir(&manifest_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `cargo lambda watch` ({e}); run the tests with scripts/test, which installs cargo-lambda"));
        let mut watch = LambdaWatch {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        watch.wait_for_port(port);
        watch
    }

    fn wait_for_port(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "`cargo lambda watch` exited with {status} (is cargo-lambda installed? scripts/test installs it); log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("`cargo lambda watch` did not open port {port} within 60 s");
    }

    /// The emulator's log so far, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        // SIGTERM lets cargo-lambda stop every function instance it started;
        // SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Time a ping may take beyond its hold under `cargo lambda watch`. The
/// emulator starts each sandbox as `cargo run --bin NAME`: even with the
/// binary built, cargo's freshness check and the process start take seconds
/// on a loaded 2-core machine, several sandboxes at once contend for cargo's
/// build lock, and a ping to a sandbox being started waits for all of it.
/// The controller's default (5 s beyond the hold) is for Lambda, whose
/// inits are bounded; against the emulator it turned first pings into
/// timeouts ("6 of 6 pings failed") about one run in three.
pub const EMULATOR_PING_MARGIN_MS: u64 = 90_000;

/// Raises this test process's open-file limit to `n` (within the hard
/// limit): a stand-in serving a thousand connections holds one each.
/// Returns the limit in force.
pub fn raise_fd_limit(n: u64) -> u64 {
    rlimit::increase_nofile_limit(n).unwrap_or(0)
}

/// The `forewarm` binary as a user runs it against local stand-ins: static
/// test credentials, one region, no instance metadata and no profile; the
/// caller sets the endpoints. The binary exists only with the `cli` feature.
#[cfg(feature = "cli")]
pub fn forewarm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_forewarm"));
    c.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    c
}

/// How long a command run against the stand-ins may take before the test
/// fails: a tick is bounded by its claim and its call timeouts, far below
/// this, so only a hang reaches it, and it then fails the test with what the
/// command printed instead of stalling the whole suite.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(240);

/// `Command::output` and `Child::wait_with_output`, within `COMMAND_LIMIT`.
pub trait Within {
    /// Runs to completion (stdout and stderr captured), or kills the
    /// command at the limit and panics with what it had printed.
    fn output_within(self) -> std::process::Output;
}

impl Within for &mut Command {
    fn output_within(self) -> std::process::Output {
        self.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
            .output_within()
    }
}

impl Within for Child {
    fn output_within(mut self) -> std::process::Output {
        use std::io::Read;
        fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        }
        let (out, err) = (drain(self.stdout.take()), drain(self.stderr.take()));
        let until = Instant::now() + COMMAND_LIMIT;
        let status = loop {
            if let Some(status) = self.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= until {
                let _ = self.kill();
                let _ = self.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
        let Some(status) = status else {
            panic!(
                "the command did not finish within {COMMAND_LIMIT:?}; it printed:\n{}\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        };
        std::process::Output {
            status,
            stdout,
            stderr,
        }
    }
}

/// A free TCP port on loopback (bound, then released for the stand-in).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Lambda client for a local endpoint: static test credentials, and no SDK
/// retries, because local stand-ins answer 5xx for handler errors and a retry
/// would run the handler again.
pub fn lambda_client(endpoint: &str) -> aws_sdk_lambda::Client {
    use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

/// The Python with the stand-ins installed: `$FOREWARM_TEST_PYTHON`, else the
/// test command's `.ci/venv`, else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FOREWARM_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = venv_bin().join("python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// moto (DynamoDB, CloudWatch behind a CBOR front door, the Lambda control
/// plane), optionally forwarding Lambda invokes to a `cargo lambda watch`.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    log: PathBuf,
}

impl Moto {
    /// Starts a fresh moto on a free port.
    pub fn start(invoke_upstream: Option<&str>) -> Moto {
        require_stand_ins();
        let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let port = free_port();
        let log_dir = manifest_dir.join("target").join("test-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = log_dir.join(format!("moto-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(manifest_dir.join("tests/support/moto_cbor.py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()]);
        if let Some(u) = invoke_upstream {
            cmd.args(["--invoke-upstream", u]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto ({e}); run the tests with scripts/test, which installs it"
                )
            });
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto exited with {status}:\n{}",
                    std::fs::read_to_string(&moto.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < until,
                "moto did not open port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// Creates a Lambda function in moto's control plane (an IAM role
    /// first, as moto requires), with its memory and reserved concurrency.
    pub fn create_function(&self, name: &str, memory_mb: u32, reserved: u32) {
        self.create_functions(&[name], memory_mb, reserved);
    }

    /// Makes `rate` of the requests that follow fail (see the front door's
    /// FAULTS), drawn from `seed`; 0 stops it. Returns what was injected so
    /// far, by kind.
    pub fn faults(&self, rate: f64, seed: u64) -> serde_json::Value {
        let body = serde_json::json!({"rate": rate, "seed": seed}).to_string();
        self.control("POST", "/__faults", &body)
    }

    /// What the requests so far would have been billed, as the front door
    /// counts it (DynamoDB's units by its item-size rules, CloudWatch's
    /// metrics requested and other requests), with each DynamoDB call;
    /// `reset` zeroes the count first.
    pub fn usage(&self, reset: bool) -> serde_json::Value {
        self.control(if reset { "POST" } else { "GET" }, "/__usage", "{}")
    }

    /// One request to the front door's own control endpoints, sent in one
    /// write and read to the end of the answer within a bound, so that a
    /// stand-in that stops answering fails the test instead of hanging it.
    fn control(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        use std::io::Read;
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out)
            .unwrap_or_else(|e| panic!("{method} {path}: no whole answer within 30 s: {e}"));
        // A control request that fails must fail the test: a fault
        // injector that silently injects nothing makes the fault tests pass
        // without testing anything.
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{method} {path}: {head}\n{body}"
        );
        serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"))
    }

    /// Creates several functions alike in one go (one Python start).
    pub fn create_functions(&self, names: &[&str], memory_mb: u32, reserved: u32) {
        let script = r##"
import boto3, io, sys, zipfile
ep, names, mem, reserved = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
iam, lam = boto3.client("iam", **kw), boto3.client("lambda", **kw)
try:
    role = iam.create_role(RoleName="forewarm-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
except iam.exceptions.EntityAlreadyExistsException:
    role = iam.get_role(RoleName="forewarm-test")["Role"]["Arn"]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("bootstrap", "#!/bin/sh\n")
for name in names.split(","):
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role, Handler="bootstrap",
                        Code={"ZipFile": buf.getvalue()}, MemorySize=mem)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
"##;
        let out = Command::new(python())
            .args([
                "-c",
                script,
                &self.endpoint,
                &names.join(","),
                &memory_mb.to_string(),
                &reserved.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "create_function: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An SDK configuration pointing every client at this moto.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        use aws_config::{BehaviorVersion, Region, retry::RetryConfig};
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .endpoint_url(&self.endpoint)
            .retry_config(RetryConfig::disabled())
            // A stand-in that stops answering fails the call, not the suite.
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last 90 minutes of each function as Lambda would have reported them: 180
/// one-second calls a minute (3 sandboxes busy on average) peaking at 6.
pub async fn seed_metrics(sdk: &aws_config::SdkConfig, names: &[&str]) {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
    let cw = aws_sdk_cloudwatch::Client::new(sdk);
    let now_min = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    let mut data = Vec::new();
    for name in names {
        for m in now_min - 90..now_min {
            for (metric, value, unit) in [
                (
                    "ConcurrentExecutions",
                    3.0 + (m % 4) as f64,
                    StandardUnit::Count,
                ),
                ("Invocations", 180.0, StandardUnit::Count),
                ("Duration", 1_000.0, StandardUnit::Milliseconds),
            ] {
                data.push(
                    MetricDatum::builder()
                        .metric_name(metric)
                        .dimensions(
                            Dimension::builder()
                                .name("FunctionName")
                                .value(*name)
                                .build(),
                        )
                        .timestamp(DateTime::from_secs((m * 60) as i64))
                        .value(value)
                        .unit(unit)
                        .build(),
                );
            }
        }
    }
    for chunk in data.chunks(500) {
        cw.put_metric_data()
            .namespace("AWS/Lambda")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
    }
}
