//! Abuse controls against the real ingress and broker: per-client and
//! per-route rate limits (429 + Retry-After), `allow_ips` (403), and client
//! addresses taken from forwarding headers only when a trusted proxy sent them.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{envelope, json};
use crate::{NatsServer, TestIngress};

/// All test traffic comes from 127.0.0.1; trusting it lets a test speak for
/// any client through `X-Forwarded-For`, as a real proxy would.
const TRUSTED_LOOPBACK: &str = r#"
[http]
trusted_proxies = ["127.0.0.1/32"]
"#;

/// Slow rates, so that no token comes back while a test runs.
const LIMITED_ROUTES: &str = r#"
[[routes]]
name = "per-client"
path = "/per-client"
subject = "per-client"
[routes.rate_limit]
per_client = { rate = "1/m", burst = 2 }
[routes.verifier]
kind = "none"

[[routes]]
name = "per-route"
path = "/per-route"
subject = "per-route"
[routes.rate_limit]
per_route = { rate = "1/m", burst = 3 }
[routes.verifier]
kind = "none"
"#;

const ALLOWLISTED_ROUTES: &str = r#"
[[routes]]
name = "partners"
path = "/partners"
subject = "partners"
allow_ips = ["192.0.2.0/24", "2001:db8::/32"]
[routes.verifier]
kind = "none"

[[routes]]
name = "local"
path = "/local"
subject = "local"
allow_ips = ["127.0.0.1/32", "::1/128"]
[routes.verifier]
kind = "none"
"#;

/// Posts `{}` to `path`, claiming `client` through `X-Forwarded-For`.
async fn post(ingress: &TestIngress, path: &str, client: Option<&str>) -> reqwest::Response {
    let mut request = ingress
        .http
        .post(ingress.url(path))
        .header("content-type", "application/json")
        .body("{}");
    if let Some(client) = client {
        request = request.header("x-forwarded-for", client);
    }
    request.send().await.expect("sent")
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("Retry-After is whole seconds")
}

fn subjects(messages: &[async_nats::jetstream::message::StreamMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|message| envelope(&message).subject)
        .collect()
}

#[tokio::test]
async fn a_client_over_its_limit_gets_429_while_another_is_admitted() {
    let nats = NatsServer::start().await;
    let ingress =
        TestIngress::start(&nats, &format!("{TRUSTED_LOOPBACK}{LIMITED_ROUTES}"), &[]).await;
    let greedy = Some("192.0.2.1");
    for _ in 0..2 {
        assert_eq!(post(&ingress, "/per-client", greedy).await.status(), 202);
    }
    let refused = post(&ingress, "/per-client", greedy).await;
    assert_eq!(refused.status(), 429);
    // One token per minute: the next one is about a minute away.
    let seconds = retry_after(&refused);
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    assert_eq!(json(refused).await["error"], "rate_limited");

    // Another address behind the same proxy has its own bucket, and so
    // does the proxy itself.
    assert_eq!(
        post(&ingress, "/per-client", Some("192.0.2.2"))
            .await
            .status(),
        202
    );
    assert_eq!(post(&ingress, "/per-client", None).await.status(), 202);
    // Spoofed entries left of the proxy's own cannot buy a fresh bucket.
    assert_eq!(
        post(&ingress, "/per-client", Some("203.0.113.9, 192.0.2.1"))
            .await
            .status(),
        429
    );
    assert_eq!(nats.stored_deliveries().await.len(), 4);

    let metrics = ingress.metrics().await;
    for expected in [
        r#"tidegate_ingress_requests_total{route="per-client",status="202"} 4"#,
        r#"tidegate_ingress_requests_total{route="per-client",status="429"} 2"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_route_over_its_limit_refuses_every_client() {
    let nats = NatsServer::start().await;
    let ingress =
        TestIngress::start(&nats, &format!("{TRUSTED_LOOPBACK}{LIMITED_ROUTES}"), &[]).await;
    for client in ["192.0.2.1", "192.0.2.2", "2001:db8::1"] {
        assert_eq!(
            post(&ingress, "/per-route", Some(client)).await.status(),
            202
        );
    }
    let refused = post(&ingress, "/per-route", Some("192.0.2.3")).await;
    assert_eq!(refused.status(), 429);
    let seconds = retry_after(&refused);
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    // The other route's limits are its own.
    assert_eq!(
        post(&ingress, "/per-client", Some("192.0.2.3"))
            .await
            .status(),
        202
    );
    let stored = nats.stored_deliveries().await;
    let per_route = subjects(&stored)
        .iter()
        .filter(|subject| subject.ends_with(".per-route"))
        .count();
    assert_eq!((stored.len(), per_route), (4, 3));
}

#[tokio::test]
async fn an_allowlisted_route_admits_only_its_networks() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(
        &nats,
        &format!("{TRUSTED_LOOPBACK}{ALLOWLISTED_ROUTES}"),
        &[],
    )
    .await;
    for outsider in [Some("198.51.100.7"), Some("2001:db9::1"), None] {
        let refused = post(&ingress, "/partners", outsider).await;
        assert_eq!(refused.status(), 403, "{outsider:?}");
        assert_eq!(json(refused).await["error"], "ip_not_allowed");
    }
    assert!(nats.stored_deliveries().await.is_empty());

    assert_eq!(
        post(&ingress, "/partners", Some("192.0.2.44"))
            .await
            .status(),
        202
    );
    assert_eq!(
        post(&ingress, "/partners", Some("198.51.100.7, 2001:db8:5::1"))
            .await
            .status(),
        202
    );
    // Cloudflare's header, from a trusted proxy, names the client too.
    let cloudflare = ingress
        .http
        .post(ingress.url("/partners"))
        .header("cf-connecting-ip", "192.0.2.45")
        .header("x-forwarded-for", "198.51.100.7")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(cloudflare.status(), 202);
    assert_eq!(nats.stored_deliveries().await.len(), 3);
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_change_nothing() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, ALLOWLISTED_ROUTES, &[]).await;
    let spoofed = ingress
        .http
        .post(ingress.url("/partners"))
        .header("x-forwarded-for", "192.0.2.44")
        .header("cf-connecting-ip", "192.0.2.44")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(spoofed.status(), 403);
    assert!(nats.stored_deliveries().await.is_empty());
    // The TCP peer is what counts: loopback may use the local route,
    // whatever the headers claim.
    assert_eq!(
        post(&ingress, "/local", Some("198.51.100.7"))
            .await
            .status(),
        202
    );
    let stored = nats.stored_deliveries().await;
    assert_eq!(subjects(&stored), ["tidegate.in.local"]);
}

#[tokio::test]
async fn a_refused_client_is_answered_before_its_body_is_read() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, ALLOWLISTED_ROUTES, &[]).await;
    let mut stream = TcpStream::connect(ingress.address).await.expect("connect");
    // Declares a body within every limit but sends none of it.
    stream
        .write_all(b"POST /partners HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut head))
        .await
        .expect("answered without the body")
        .expect("read");
    assert_eq!(&head, b"HTTP/1.1 403");
    assert!(nats.stored_deliveries().await.is_empty());
}
