use super::*;

fn list(nets: &[&str]) -> IpList {
    IpList::new(
        nets.iter()
            .map(|net| parse_net(net).expect("test network is valid"))
            .collect(),
    )
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::try_from(*name).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    headers
}

const PROXIES: [&str; 3] = ["127.0.0.1/32", "10.0.0.0/8", "2001:db8:cf::/48"];

#[test]
fn client_addresses() {
    let check = |peer: &str, pairs: &[(&str, &str)], trusted: &[&str], expected: &str| {
        let peer: IpAddr = peer.parse().expect("peer");
        let found = client_ip(peer, &headers(pairs), &list(trusted));
        assert_eq!(found.to_string(), expected, "peer {peer}, {pairs:?}");
    };
    let cf = "cf-connecting-ip";
    let xff = "x-forwarded-for";

    // No trusted proxies: the peer, whatever the headers say.
    check("203.0.113.7", &[], &[], "203.0.113.7");
    check(
        "203.0.113.7",
        &[(cf, "192.0.2.1"), (xff, "192.0.2.1")],
        &[],
        "203.0.113.7",
    );
    // An untrusted peer's headers are ignored (spoofing).
    check(
        "203.0.113.7",
        &[(cf, "10.1.1.1"), (xff, "10.1.1.1")],
        &PROXIES,
        "203.0.113.7",
    );
    // A trusted peer with no headers is the client.
    check("127.0.0.1", &[], &PROXIES, "127.0.0.1");

    // CF-Connecting-IP from a trusted peer wins over X-Forwarded-For.
    check(
        "127.0.0.1",
        &[(cf, "198.51.100.4"), (xff, "192.0.2.9")],
        &PROXIES,
        "198.51.100.4",
    );
    check(
        "127.0.0.1",
        &[(cf, "2001:db8::77")],
        &PROXIES,
        "2001:db8::77",
    );
    // Unreadable CF-Connecting-IP: fall back to X-Forwarded-For.
    check(
        "127.0.0.1",
        &[(cf, "unknown"), (xff, "192.0.2.9")],
        &PROXIES,
        "192.0.2.9",
    );

    // X-Forwarded-For: the right-most entry that is not a trusted proxy.
    check("127.0.0.1", &[(xff, "192.0.2.9")], &PROXIES, "192.0.2.9");
    check(
        "127.0.0.1",
        &[(xff, "192.0.2.9, 10.0.0.5, 10.2.3.4")],
        &PROXIES,
        "192.0.2.9",
    );
    // Spoofed entries left of the real client are never reached.
    check(
        "127.0.0.1",
        &[(xff, "10.9.9.9, 1.2.3.4, 192.0.2.9, 10.0.0.5")],
        &PROXIES,
        "192.0.2.9",
    );
    check(
        "127.0.0.1",
        &[(xff, "not-an-address, 192.0.2.9")],
        &PROXIES,
        "192.0.2.9",
    );
    // Several header lines are one list, the last line right-most.
    check(
        "127.0.0.1",
        &[(xff, "1.2.3.4"), (xff, "192.0.2.9, 10.0.0.5")],
        &PROXIES,
        "192.0.2.9",
    );
    check(
        "127.0.0.1",
        &[(xff, "1.2.3.4, 192.0.2.9"), (xff, "10.0.0.5")],
        &PROXIES,
        "192.0.2.9",
    );
    // Every entry trusted: the left-most of them.
    check(
        "127.0.0.1",
        &[(xff, "10.0.0.1, 10.0.0.5")],
        &PROXIES,
        "10.0.0.1",
    );
    // Garbage in the trusted part of the chain: the nearest known hop.
    check(
        "127.0.0.1",
        &[(xff, "192.0.2.9, garbage, 10.0.0.5")],
        &PROXIES,
        "10.0.0.5",
    );
    check("127.0.0.1", &[(xff, "garbage")], &PROXIES, "127.0.0.1");
    check("127.0.0.1", &[(xff, "")], &PROXIES, "127.0.0.1");
    check(
        "127.0.0.1",
        &[(xff, " , 192.0.2.9 ,")],
        &PROXIES,
        "192.0.2.9",
    );
    check(
        "127.0.0.1",
        &[(xff, "192.0.2.9:4711")],
        &PROXIES,
        "192.0.2.9",
    );

    // IPv6 entries, bracketed or with a port, and IPv6 proxies.
    check(
        "127.0.0.1",
        &[(xff, "2001:db8:1::5, 2001:db8:cf::1")],
        &PROXIES,
        "2001:db8:1::5",
    );
    check(
        "2001:db8:cf::2",
        &[(xff, "[2001:db8:1::5]:443")],
        &PROXIES,
        "2001:db8:1::5",
    );
    check(
        "2001:db8:cf::2",
        &[(xff, "[2001:db8:1::6]")],
        &PROXIES,
        "2001:db8:1::6",
    );
    check("::1", &[(xff, "192.0.2.9")], &PROXIES, "::1");
    // An IPv4 peer seen through a dual-stack socket is still IPv4.
    check(
        "::ffff:127.0.0.1",
        &[(xff, "192.0.2.9")],
        &PROXIES,
        "192.0.2.9",
    );
    check("::ffff:203.0.113.7", &[], &[], "203.0.113.7");
    check(
        "127.0.0.1",
        &[(xff, "::ffff:192.0.2.9")],
        &PROXIES,
        "192.0.2.9",
    );
}

#[test]
fn networks() {
    let check = |text: &str, expected: Result<&str, &str>| {
        let found = parse_net(text).map(|net| net.to_string());
        match expected {
            Ok(net) => assert_eq!(found.as_deref(), Ok(net), "{text}"),
            Err(why) => {
                let error = found.expect_err(text);
                assert!(error.contains(why), "{text}: {error}");
            }
        }
    };
    check("10.0.0.0/8", Ok("10.0.0.0/8"));
    check(" 192.0.2.1/32 ", Ok("192.0.2.1/32"));
    check("192.0.2.1", Ok("192.0.2.1/32"));
    check("::1", Ok("::1/128"));
    check("2001:db8::/32", Ok("2001:db8::/32"));
    check("0.0.0.0/0", Ok("0.0.0.0/0"));
    check(
        "10.0.0.1/8",
        Err("host bits set; the network is 10.0.0.0/8"),
    );
    check("10.0.0.0/33", Err("not a network"));
    check("10.0.0/8", Err("not a network"));
    check("localhost", Err("not a network"));
    check("", Err("not a network"));
}

#[test]
fn matching() {
    let allowed = list(&["10.0.0.0/8", "192.0.2.1/32", "::1/128", "2001:db8::/32"]);
    let check = |address: &str, expected: bool| {
        let address: IpAddr = address.parse().expect("address");
        assert_eq!(allowed.contains(address), expected, "{address}");
    };
    check("10.0.0.0", true);
    check("10.255.255.255", true);
    check("11.0.0.0", false);
    check("9.255.255.255", false);
    check("192.0.2.1", true);
    check("192.0.2.2", false);
    check("::1", true);
    check("::2", false);
    check("2001:db8:ffff::1", true);
    check("2001:db9::1", false);
    // An IPv4 network never contains an IPv6 address, mapped or not;
    // `client_ip` canonicalizes first.
    check("::ffff:10.0.0.1", false);
    assert!(!IpList::default().contains("10.0.0.1".parse().expect("address")));
}
