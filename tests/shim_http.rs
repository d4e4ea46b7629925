//! The shim around a `lambda_http` function: `warm(Adapter::from(service))`.
//! Pings are answered by the shim; API Gateway events reach the HTTP handler.
#![cfg(feature = "shim")]

use lambda_http::{Body, Request, Response, service_fn};
use lambda_runtime::{Context, LambdaEvent, Service};
use serde_json::{Value, json};

async fn hello(req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(Response::builder()
        .status(200)
        .body(Body::from(format!("hello {}", req.uri().path())))?)
}

fn event(v: Value) -> LambdaEvent<Box<serde_json::value::RawValue>> {
    LambdaEvent::new(
        serde_json::value::RawValue::from_string(v.to_string()).unwrap(),
        Context::default(),
    )
}

#[tokio::test]
async fn http_functions_answer_pings_and_serve_requests() {
    let mut shim = forewarm::shim::warm(lambda_http::Adapter::from(service_fn(hello)));

    let ping = shim
        .call(event(json!({"warmer": true, "delay": 0})))
        .await
        .unwrap();
    let ping = serde_json::to_value(&ping).unwrap();
    assert_eq!(ping["forewarm"]["cold"], true);

    let apigw = json!({
        "version": "2.0", "routeKey": "GET /orders", "rawPath": "/orders", "rawQueryString": "",
        "headers": {"host": "example.com"},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "example.com", "domainPrefix": "example",
            "http": {"method": "GET", "path": "/orders", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
            "requestId": "r", "routeKey": "GET /orders", "stage": "$default", "time": "26/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0},
        "body": "{\"warmer\": true}", "isBase64Encoded": false
    });
    let resp = serde_json::to_value(shim.call(event(apigw)).await.unwrap()).unwrap();
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(resp["body"], "hello /orders");
}
