//! Shared harness for the integration tests: local AWS stand-ins on loopback.
//!
//! The README's test command (`scripts/test`) installs the stand-ins and puts
//! them on `PATH`; these helpers start a private instance per test where a test
//! needs a pristine one (a cold sandbox pool), and stop it when the test ends,
//! pass or fail.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let child = Command::new("cargo")
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
