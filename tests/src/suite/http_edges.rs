//! The HTTP edge: disabled routes, slow and greedy clients, health and
//! metrics endpoints, and graceful shutdown draining in-flight requests.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::json;
use crate::{NatsServer, TestIngress};

const OPEN_ROUTES: &str = r#"
[http]
header_read_timeout = "1s"
body_timeout = "1s"
shutdown_grace = "10s"

[[routes]]
name = "open"
path = "/hooks/{name}"
subject = "open.{name}"
body_limit = "1KiB"
[routes.verifier]
kind = "none"

[[routes]]
name = "off"
path = "/off"
subject = "off"
enabled = false
[routes.verifier]
kind = "none"
"#;

async fn start() -> (NatsServer, TestIngress) {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTES, &[]).await;
    (nats, ingress)
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> String {
    let mut buffer = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut buffer))
        .await
        .expect("the server closed the connection in time")
        .expect("reading the response");
    String::from_utf8_lossy(&buffer).into_owned()
}

#[tokio::test]
async fn a_disabled_route_answers_409_and_stores_nothing() {
    let (nats, ingress) = start().await;
    let response = ingress
        .http
        .post(ingress.url("/off"))
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 409);
    assert_eq!(json(response).await["error"], "route_disabled");
    assert!(nats.stored_deliveries().await.is_empty());
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    let (nats, ingress) = start().await;
    let mut stream = TcpStream::connect(ingress.address).await.expect("connect");
    // Declares 10 MB but sends none of it: the answer must not wait for it.
    stream
        .write_all(b"POST /hooks/a HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut head))
        .await
        .expect("answered without the body")
        .expect("read");
    assert_eq!(&head, b"HTTP/1.1 413");
    assert!(nats.stored_deliveries().await.is_empty());
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let (_nats, ingress) = start().await;
    let mut stream = TcpStream::connect(ingress.address).await.expect("connect");
    stream
        .write_all(b"POST /hooks/a HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_and_stores_nothing() {
    let (nats, ingress) = start().await;
    let mut stream = TcpStream::connect(ingress.address).await.expect("connect");
    stream
        .write_all(b"POST /hooks/a HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"partial\":")
        .await
        .expect("write");
    let response = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(nats.stored_deliveries().await.is_empty());
}

#[tokio::test]
async fn shutdown_drains_a_request_in_flight() {
    let (nats, ingress) = start().await;
    let body = br#"{"slow":true}"#;
    let mut stream = TcpStream::connect(ingress.address).await.expect("connect");
    let head = format!(
        "POST /hooks/drain HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream
        .write_all(&body[..5])
        .await
        .expect("write half the body");
    // Give the server time to start handling the request, then stop it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(ingress.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&body[5..]).await.expect("write the rest");
    let response = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    stopping
        .await
        .expect("join")
        .expect("the ingress stopped cleanly");
    assert_eq!(nats.stored_deliveries().await.len(), 1);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let (_nats, ingress) = start().await;
    let get = |path: &str| ingress.http.get(ingress.url(path)).send();
    assert_eq!(get("/healthz").await.expect("sent").status(), 200);
    let ready = get("/readyz").await.expect("sent");
    assert_eq!(ready.status(), 200);
    assert_eq!(json(ready).await["nats"], "connected");

    let stored = ingress
        .http
        .post(ingress.url("/hooks/m"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(stored.status(), 202);
    let metrics = get("/metrics")
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    for expected in [
        r#"tidegate_ingress_requests_total{route="open",status="202"} 1"#,
        r#"tidegate_ingress_deliveries_total{route="open",outcome="stored"} 1"#,
        "tidegate_ingress_publish_seconds_bucket",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
}
