use super::*;

const SECOND: u64 = 1_000_000_000;

fn rate(text: &str, burst: u64) -> Rate {
    Rate::parse(text, Some(burst)).expect("test rate is valid")
}

fn address(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

#[test]
fn rates() {
    let check = |text: &str, burst: Option<u64>, expected: Result<(u64, u64), &str>| {
        let found = Rate::parse(text, burst).map(|rate| {
            (
                rate.interval_nanos,
                rate.tolerance_nanos / rate.interval_nanos + 1,
            )
        });
        match expected {
            Ok(expected) => assert_eq!(found, Ok(expected), "{text}"),
            Err(why) => {
                let error = found.expect_err(text);
                assert!(error.contains(why), "{text}: {error}");
            }
        }
    };
    // (interval, burst)
    check("10/s", None, Ok((SECOND / 10, 10)));
    check("1000/s", Some(2000), Ok((SECOND / 1000, 2000)));
    check(" 600 / m ", Some(1), Ok((SECOND / 10, 1)));
    check("60/min", Some(5), Ok((SECOND, 5)));
    check("3600/h", None, Ok((SECOND, 3600)));
    check("1/10s", None, Ok((10 * SECOND, 1)));
    check("10", None, Err("not a rate"));
    check("ten/s", None, Err("not a rate"));
    check("10/fortnight", None, Err("not a rate"));
    check("-1/s", None, Err("not a rate"));
    check("0/s", None, Err("admits nothing"));
    check("10/s", Some(0), Err("burst must be at least 1"));
    check("2000000000/s", None, Err("faster than one per nanosecond"));
    check("1/1000d", Some(u64::MAX), Err("too large"));
}

#[test]
fn a_bucket_admits_its_burst_then_refills_at_its_rate() {
    let bucket = Bucket::new(rate("10/s", 3));
    let start = 5 * SECOND;
    for _ in 0..3 {
        assert_eq!(bucket.check(start), Ok(()));
    }
    // The fourth waits for one token: a tenth of a second.
    assert_eq!(bucket.check(start), Err(SECOND / 10));
    assert_eq!(bucket.check(start + SECOND / 20), Err(SECOND / 20));
    assert_eq!(bucket.check(start + SECOND / 10), Ok(()));
    assert_eq!(bucket.check(start + SECOND / 10), Err(SECOND / 10));
    // A long pause refills the burst, never more.
    let later = start + 60 * SECOND;
    for _ in 0..3 {
        assert_eq!(bucket.check(later), Ok(()));
    }
    assert!(bucket.check(later).is_err());
}

#[test]
fn a_slow_rate_waits_long() {
    let bucket = Bucket::new(rate("1/m", 1));
    assert_eq!(bucket.check(0), Ok(()));
    assert_eq!(bucket.check(SECOND), Err(59 * SECOND));
}

#[test]
fn each_client_has_its_own_bucket() {
    let buckets = ClientBuckets::new(rate("1/s", 2), 100);
    let (one, two) = (address("192.0.2.1"), address("192.0.2.2"));
    assert!(matches!(buckets.check(one, 0), Checked::Allowed));
    assert!(matches!(buckets.check(one, 0), Checked::Allowed));
    assert!(matches!(
        buckets.check(one, 0),
        Checked::Limited { wait_nanos: SECOND }
    ));
    assert!(matches!(buckets.check(two, 0), Checked::Allowed));
    assert!(matches!(buckets.check(one, SECOND), Checked::Allowed));
}

#[test]
fn ipv6_clients_share_a_bucket_per_64() {
    let buckets = ClientBuckets::new(rate("1/s", 1), 100);
    assert!(matches!(
        buckets.check(address("2001:db8:1:2::1"), 0),
        Checked::Allowed
    ));
    assert!(matches!(
        buckets.check(address("2001:db8:1:2:ffff::9"), 0),
        Checked::Limited { .. }
    ));
    assert!(matches!(
        buckets.check(address("2001:db8:1:3::1"), 0),
        Checked::Allowed
    ));
}

#[test]
fn a_flood_of_addresses_never_grows_the_table_past_its_bound() {
    let buckets = ClientBuckets::new(rate("1/s", 1), 2048);
    let max = buckets.per_shard * buckets.shards.len();
    assert!(max <= 2048 + buckets.shards.len(), "{max}");
    let mut untracked = 0;
    for index in 0..100_000u32 {
        let client = IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + index));
        if matches!(buckets.check(client, 0), Checked::Untracked) {
            untracked += 1;
        }
    }
    assert!(buckets.tracked() <= max, "{}", buckets.tracked());
    assert!(untracked >= 100_000 - max, "{untracked}");
    // Once their buckets are full again, old clients make room for new.
    let later = 10 * SECOND;
    assert!(matches!(
        buckets.check(address("192.0.2.1"), later),
        Checked::Allowed
    ));
    assert!(buckets.tracked() < max, "{}", buckets.tracked());
}

#[test]
fn a_full_table_still_limits_the_clients_it_tracks() {
    let buckets = ClientBuckets::new(rate("1/s", 1), 1);
    let (tracked, other) = (address("192.0.2.1"), address("192.0.2.2"));
    assert!(matches!(buckets.check(tracked, 0), Checked::Allowed));
    assert!(matches!(buckets.check(other, 0), Checked::Untracked));
    assert!(matches!(buckets.check(tracked, 0), Checked::Limited { .. }));
}

fn parts(peer: &str, forwarded_for: Option<&str>) -> Parts {
    let mut request = http::Request::builder().uri("/hook");
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    let (mut parts, ()) = request.body(()).expect("request").into_parts();
    let peer = SocketAddr::new(address(peer), 4711);
    parts.extensions.insert(ConnectInfo(peer));
    parts
}

fn list(nets: &[&str]) -> IpList {
    IpList::new(
        nets.iter()
            .map(|net| crate::client_ip::parse_net(net).expect("network"))
            .collect(),
    )
}

#[test]
fn admission_checks_the_allowlist_then_the_limits() {
    let admission = Admission::new(
        Some(list(&["192.0.2.0/24"])),
        Some(rate("1/h", 3)),
        Some((rate("1/h", 2), 10)),
    )
    .expect("something to check");
    let trusted = list(&["127.0.0.1/32"]);
    let code = |result: Result<(), IngressError>| result.err().map(|error| error.status().as_u16());

    let allowed = parts("192.0.2.1", None);
    assert_eq!(code(admission.check("r", &allowed, &trusted)), None);
    assert_eq!(code(admission.check("r", &allowed, &trusted)), None);
    assert_eq!(code(admission.check("r", &allowed, &trusted)), Some(429));
    // The header from an untrusted peer is ignored; from the proxy it counts.
    let spoofed = parts("203.0.113.1", Some("192.0.2.2"));
    assert_eq!(code(admission.check("r", &spoofed, &trusted)), Some(403));
    let proxied = parts("127.0.0.1", Some("192.0.2.2"));
    assert_eq!(code(admission.check("r", &proxied, &trusted)), None);
    // The route's three tokens are spent.
    let another = parts("192.0.2.3", None);
    match admission.check("r", &another, &trusted) {
        Err(IngressError::RateLimited { retry_after }) => {
            assert!(retry_after > Duration::from_secs(3000), "{retry_after:?}");
        }
        other => panic!("expected a per-route 429, got {other:?}"),
    }
    assert!(Admission::new(None, None, None).is_none());
}

#[test]
fn retry_after_is_whole_seconds_rounded_up() {
    use axum::response::IntoResponse;
    let check = |wait: Duration, expected: &str| {
        let response = IngressError::RateLimited { retry_after: wait }.into_response();
        assert_eq!(response.status(), 429);
        let header = response.headers()[http::header::RETRY_AFTER]
            .to_str()
            .expect("ascii");
        assert_eq!(header, expected, "{wait:?}");
    };
    check(Duration::ZERO, "1");
    check(Duration::from_millis(1), "1");
    check(Duration::from_secs(1), "1");
    check(Duration::from_millis(1001), "2");
    check(Duration::from_secs(59), "59");
}
