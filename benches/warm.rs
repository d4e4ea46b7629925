//! Fan-out overhead of a warm: N = 1,000 pings against a local Invoke
//! endpoint that holds each call for the ping's delay (a minimal HTTP server
//! in this process), reported as wall time minus the delay. Target: under
//! 100 ms. Run with `cargo bench --bench warm`.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use forewarm::aws::{LambdaWarmer, WarmerConfig};
use forewarm::ports::{FunctionRef, WarmPlan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers every invoke like a forewarm shim, after holding for its delay.
async fn serve(listener: tokio::net::TcpListener) {
    let mut next = 0u64;
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        next += 1;
        let id = next;
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(2048);
            loop {
                // Read one request: headers, then Content-Length bytes.
                let mut chunk = [0u8; 2048];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body: serde_json::Value =
                    serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or_default();
                buf.drain(..head_end + len);
                let started = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis();
                let delay = body["delay"].as_f64().unwrap_or(0.0);
                tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                let reply = format!(
                    r#"{{"forewarm":{{"v":1,"instance":"c{id}","cold":false,"init_ms":0,"started_ms":{started},"served":0,"last_real_ms":null}}}}"#
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                    reply.len()
                );
                if sock.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener));
        use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_lambda::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("t", "t", None, None, "static"))
            .endpoint_url(endpoint)
            .build();
        let client = aws_sdk_lambda::Client::from_conf(conf);
        let fut = client.invoke().function_name("x").send();
        println!("size of one invoke future: {} bytes", std::mem::size_of_val(&fut));
        drop(fut);
        let warmer = LambdaWarmer::new(client, WarmerConfig::default());
        for n in [1u32, 100, 1_000] {
            let mut overheads = Vec::new();
            for round in 0..5 {
                let plan = WarmPlan { function: FunctionRef::unqualified("bench"), n, delay_ms: 300, run: format!("b{round}"), at_ms: 0 };
                let t = Instant::now();
                let r = warmer.warm_one(&plan).await.unwrap();
                let wall = t.elapsed().as_millis() as i64;
                assert_eq!(r.summary().ok, n);
                overheads.push(wall - 300);
            }
            overheads.sort_unstable();
            println!("warm n={n:>5} delay=300ms: fan-out overhead (wall - delay) median {} ms, min {} ms, max {} ms", overheads[2], overheads[0], overheads[4]);
        }
    });
}
