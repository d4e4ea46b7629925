//! A scripted Lambda Invoke endpoint on loopback, for what `cargo lambda
//! watch` cannot be made to do: throttle, fail with 5xx, answer as the
//! real service answers errors (`X-Amzn-ErrorType`, `X-Amz-Function-Error`),
//! return log tails (`X-Amz-Log-Result`), hold each call for the ping's
//! delay by the thousand (benches/warm.rs), or drop a connection unanswered.
//! `forewarm probe`'s tests also use it as a plain HTTP endpoint.
//!
//! It speaks just enough HTTP/1.1 for the SDK-prepared requests forewarm
//! sends: a request head, a `Content-Length` body, keep-alive.
#![allow(dead_code)] // each test binary uses a part

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the endpoint answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Held this long before answering.
    pub hold: Duration,
    /// Close the connection after the hold instead of answering.
    pub drop: bool,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: body.into(),
            hold: Duration::ZERO,
            drop: false,
        }
    }

    /// A service error as Lambda sends it: status, `X-Amzn-ErrorType`, and a
    /// JSON body with the message.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply {
            status,
            headers: vec![(
                "x-amzn-ErrorType".into(),
                format!("{code}:http://internal.amazon.com/coral/"),
            )],
            body: serde_json::json!({"Type": "User", "message": message}).to_string(),
            hold: Duration::ZERO,
            drop: false,
        }
    }

    /// No answer: the connection closes after `hold`.
    pub fn dropped(hold: Duration) -> Reply {
        Reply {
            hold,
            drop: true,
            ..Reply::ok("")
        }
    }

    /// With another status.
    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// Held for `hold` before answering.
    pub fn after(mut self, hold: Duration) -> Reply {
        self.hold = hold;
        self
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// A shim's answer to `ping`, from sandbox `instance`, after holding
    /// for the ping's delay.
    pub fn shim(ping: &serde_json::Value, instance: &str) -> Reply {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let delay = ping["delay"].as_f64().unwrap_or(0.0);
        Reply {
            hold: Duration::from_secs_f64(delay),
            ..Reply::ok(format!(
                r#"{{"forewarm":{{"v":1,"instance":"{instance}","cold":false,"init_ms":0,"started_ms":{started},"served":0,"last_real_ms":null}}}}"#
            ))
        }
    }
}

/// A request as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Arrival order, from 0.
    pub index: usize,
    /// Which connection it came on, from 0.
    pub connection: usize,
    /// `POST /2015-03-31/functions/NAME/invocations?Qualifier=Q`.
    pub request_line: String,
    /// Lower-cased header names and values.
    pub headers: Vec<(String, String)>,
    /// The JSON body (null if not JSON).
    pub body: serde_json::Value,
}

type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

/// The endpoint; it stops when dropped.
pub struct InvokeStub {
    pub endpoint: String,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InvokeStub {
    /// Starts an endpoint that answers each request with `script`'s reply.
    pub fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> InvokeStub {
        let script: Arc<Script> = Arc::new(script);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let count = requests.clone();
        let accepted = connections.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    _ = accept(listener, script, count, accepted) => {}
                    _ = stopped => {}
                }
            });
        });
        InvokeStub {
            endpoint,
            requests,
            connections,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Requests answered or being answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for InvokeStub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    script: Arc<Script>,
    count: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let connection = accepted.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(serve(sock, connection, script.clone(), count.clone()));
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    connection: usize,
    script: Arc<Script>,
    count: Arc<AtomicUsize>,
) {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or_default();
        buf.drain(..head_end + len);
        let seen = Seen {
            index: count.fetch_add(1, Ordering::SeqCst),
            connection,
            request_line,
            headers,
            body,
        };
        let reply = script(&seen);
        tokio::time::sleep(reply.hold).await;
        if reply.drop {
            return;
        }
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\n",
            reply.status
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!(
            "content-length: {}\r\n\r\n{}",
            reply.body.len(),
            reply.body
        ));
        if sock.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A Lambda client for `endpoint`, with static credentials and the SDK's
/// standard retry settings (forewarm's pings follow its attempt count).
pub fn client(endpoint: &str) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::from_conf(config(endpoint).build())
}

/// The same with retries off (`RetryConfig::disabled()`).
pub fn client_without_retries(endpoint: &str) -> aws_sdk_lambda::Client {
    use aws_sdk_lambda::config::retry::RetryConfig;
    aws_sdk_lambda::Client::from_conf(
        config(endpoint)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

fn config(endpoint: &str) -> aws_sdk_lambda::config::Builder {
    use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
}
