//! The pings' transport: sends Invoke requests the SDK has prepared.
//!
//! A warm keeps one HTTP/1.1 connection per ping in flight (Invoke answers
//! only when the ping's hold ends), so what one in-flight ping costs, times
//! a thousand, is the controller's memory. Through the SDK a ping costs
//! about 42 KiB: its orchestrator (config layers, interceptor contexts, a
//! 5.5 KiB future) and its default hyper client (two 8 KiB read buffers per
//! connection). So the SDK still does everything that needs judgement
//! (endpoint rules, credentials, SigV4 signing: see
//! [`super::lambda::LambdaWarmer`]), and this module only moves the signed
//! bytes: the same hyper, rustls (aws-lc-rs) and native roots as the SDK's
//! client, with read buffers sized for a ping's answer, and a cap on how
//! much of an answer is read.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Bytes read from a connection at a time. An Invoke answer's head is about
/// 400 bytes and a ping's reply about 250; a larger answer takes more reads,
/// it is never cut short.
const READ_BUF_BYTES: usize = 1_024;
/// The SDK's default connect timeout, kept.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);
/// How long an idle connection stays pooled: longer than the schedule's one
/// minute, so a tick reuses the previous tick's connections (and TLS
/// sessions) while the controller's sandbox lives.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// The most of an answer read. A ping's reply is a few hundred bytes; a
/// function that ignores the ping and returns its real (up to 6 MB) answer
/// must not cost the controller that much per ping.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An HTTP answer, read in full.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// The headers.
    pub(crate) headers: http::HeaderMap,
    /// The body (at most [`MAX_ANSWER_BYTES`]).
    pub(crate) body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The connection failed (refused, reset, TLS): worth another try.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The answer was longer than [`MAX_ANSWER_BYTES`].
    #[error("answer longer than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
}

/// A pooled HTTP/1.1 client for prepared requests.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Transport {
    /// Builds the client with the system's root certificates. With none to
    /// be found it still builds, as the SDK's client does, and TLS
    /// connections then fail with a certificate error a person can read.
    pub(crate) fn new() -> Transport {
        Transport::build(Some(READ_BUF_BYTES), usize::MAX)
    }

    /// A client for `forewarm probe`'s real requests: hyper's default read
    /// buffers (answers of any size), and with `reuse` false no connection
    /// is kept once its answer is read, so every request opens its own (as
    /// a fresh client would, and as the platform sees a burst of them).
    #[cfg(feature = "cli")]
    pub(crate) fn for_probe(reuse: bool) -> Transport {
        Transport::build(None, if reuse { usize::MAX } else { 0 })
    }

    fn build(read_buf: Option<usize>, max_idle_per_host: usize) -> Transport {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(provider.clone()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no root certificates found; HTTPS pings will fail");
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("aws-lc-rs supports the default TLS versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
            }
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(tcp);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(max_idle_per_host);
        if let Some(bytes) = read_buf {
            builder.http1_read_buf_exact_size(bytes);
        }
        let client = builder.build(https);
        Transport { client }
    }

    /// Sends `request` and reads the answer.
    pub(crate) async fn send(&self, request: http::Request<Bytes>) -> Result<Answer, SendError> {
        let response = self
            .client
            .request(request.map(Full::new))
            .await
            .map_err(|e| SendError::Connection(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    SendError::TooLarge
                } else {
                    SendError::Connection(e.to_string())
                }
            })?
            .to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Sends `request` and reads its whole answer, keeping only the
    /// status: a probe's latency runs to the answer's last byte. The error
    /// is left whole, for [`super::probe`] to tell its kind.
    #[cfg(feature = "cli")]
    pub(crate) async fn send_discarding(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
        let response = self.client.request(request.map(Full::new)).await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame?;
        }
        Ok(status)
    }
}

impl Default for Transport {
    fn default() -> Self {
        Transport::new()
    }
}

/// An error and its causes on one line ("client error (Connect): tcp
/// connect error: Connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
