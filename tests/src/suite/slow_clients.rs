//! Slow and greedy clients: 500 connections that send nothing or trickle a
//! request head that never ends must not slow down ordinary deliveries.
//! A robustness check with a generous bound, not a benchmark.

use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{GITHUB_ROUTE, GITHUB_SECRET};
use crate::{NatsServer, TestIngress, eventually, sign};

const PATH: &str = "/v1/webhooks/connectors/github";
const IDLE: usize = 250;
const TRICKLING: usize = 250;
/// Deliveries per phase, spread over this many clients (connections).
const DELIVERIES: usize = 50;
const CLIENTS: usize = 5;
const P99_BOUND: Duration = Duration::from_millis(500);

#[tokio::test]
async fn five_hundred_slow_connections_do_not_delay_deliveries() {
    // 500 client sockets and the ingress's 500 accepted ones live in this
    // process, plus the harness's own.
    raise_open_file_limit(2 * (IDLE + TRICKLING) + 200);
    let nats = NatsServer::start().await;
    // The default `header_read_timeout` (10s) keeps the slow connections
    // open for the whole measurement.
    let ingress = TestIngress::start(
        &nats,
        GITHUB_ROUTE,
        &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
    )
    .await;

    let quiet = deliver_all(&ingress, "quiet").await;

    let open_before = open_files();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(ingress.address).await.expect("connect"));
    }
    let mut trickling = Vec::with_capacity(TRICKLING);
    for _ in 0..TRICKLING {
        let mut stream = TcpStream::connect(ingress.address).await.expect("connect");
        stream
            .write_all(format!("POST {PATH} HTTP/1.1\r\nhost: x\r\nx-slow: ").as_bytes())
            .await
            .expect("write a partial head");
        trickling.push(stream);
    }
    let stop = CancellationToken::new();
    let trickle = tokio::spawn(trickle(trickling, stop.clone()));
    // The ingress has accepted them all: one more descriptor per connection
    // on its side of the loopback. The quiet phase's connections may close
    // meanwhile, hence the allowance.
    let wanted = open_before + 2 * (IDLE + TRICKLING) - 2 * CLIENTS;
    eventually(
        Duration::from_secs(10),
        "the ingress to accept 500 connections",
        || async { (open_files() >= wanted).then_some(()) },
    )
    .await;

    let loaded = deliver_all(&ingress, "loaded").await;
    eprintln!(
        "p99 without slow connections {:?}, with 500: {:?}",
        p99(&quiet),
        p99(&loaded)
    );
    for (phase, latencies) in [("quiet", &quiet), ("loaded", &loaded)] {
        assert!(
            p99(latencies) < P99_BOUND,
            "{phase}: p99 {:?} is not below {P99_BOUND:?}",
            p99(latencies)
        );
    }

    // The slow connections were held, not dropped, while deliveries ran:
    // an idle one that the server closed would be readable (end of file).
    let closed = join_all(idle.iter().map(|stream| async move {
        let readable = tokio::time::timeout(Duration::from_millis(50), stream.readable()).await;
        readable.is_ok() && matches!(stream.try_read(&mut [0u8; 1]), Ok(0))
    }))
    .await;
    assert!(
        !closed.contains(&true),
        "an idle connection was closed early"
    );
    stop.cancel();
    let trickling = trickle.await.expect("the trickle task ends");
    assert_eq!(
        trickling, TRICKLING,
        "a trickling connection was closed early"
    );
}

/// Sends `DELIVERIES` signed pushes over `CLIENTS` fresh connections and
/// returns each one's latency. Every one must be accepted with 202.
async fn deliver_all(ingress: &TestIngress, phase: &str) -> Vec<Duration> {
    let per_client = DELIVERIES / CLIENTS;
    let clients = (0..CLIENTS).map(|client| async move {
        let http = reqwest::Client::new();
        let mut latencies = Vec::with_capacity(per_client);
        for index in 0..per_client {
            let guid = format!("{phase}-{client}-{index}");
            let body = format!(r#"{{"ref":"refs/heads/main","after":"{guid}"}}"#);
            let started = Instant::now();
            let response = http
                .post(ingress.url(PATH))
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-github-delivery", &guid)
                .header(
                    "x-hub-signature-256",
                    sign::github(GITHUB_SECRET, body.as_bytes()),
                )
                .body(body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("the ingress answers");
            latencies.push(started.elapsed());
            assert_eq!(response.status(), 202, "{guid}");
        }
        latencies
    });
    join_all(clients).await.into_iter().flatten().collect()
}

/// Writes one more byte of a header value to every stream, ten times a
/// second, until `stop`; returns how many streams were still writable.
async fn trickle(mut streams: Vec<TcpStream>, stop: CancellationToken) -> usize {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        for stream in &mut streams {
            // A closed connection fails the write; it is counted below.
            drop(stream.write_all(b"a").await);
        }
    }
    let mut open = 0;
    for stream in &mut streams {
        if stream.write_all(b"a").await.is_ok() && stream.flush().await.is_ok() {
            open += 1;
        }
    }
    open
}

fn p99(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let index = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
    sorted[index]
}

/// Descriptors open in this process (Linux).
fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("listing /proc/self/fd")
        .count()
}

/// Raises the soft `RLIMIT_NOFILE` to at least `needed` (up to the hard
/// limit); fails the test if the hard limit is too low to run it.
fn raise_open_file_limit(needed: usize) {
    let needed = needed as libc::rlim_t;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit(RLIMIT_NOFILE) failed");
    if limit.rlim_cur >= needed {
        return;
    }
    assert!(
        limit.rlim_max >= needed,
        "this test needs {needed} open files; the hard limit is {}",
        limit.rlim_max
    );
    limit.rlim_cur = needed;
    // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the
    // hard limit needs no privilege.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0, "setrlimit(RLIMIT_NOFILE) failed");
}
