//! Compiles `http.trusted_proxies`, `http.rate_limit` and each route's
//! `allow_ips` and `rate_limit` into the `IpList` and `Admission` values
//! that `client_ip.rs` and `limit.rs` check per request.

use super::raw::RawRoute;
use crate::client_ip::{IpList, parse_net};
use crate::limit::{Admission, DEFAULT_MAX_CLIENTS, Rate};
use crate::limit::{RawRate, RawRateLimit};

/// Parsed rate limits: the `http.rate_limit` default, or a route's own.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Limits {
    per_route: Option<Rate>,
    per_client: Option<(Rate, usize)>,
}

/// A list of networks; each bad entry is reported as `key[index]`.
pub(super) fn ip_list(key: &str, entries: &[String], problems: &mut Vec<String>) -> IpList {
    IpList::new(
        entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                parse_net(entry)
                    .map_err(|why| problems.push(format!("{key}[{index}]: {why}")))
                    .ok()
            })
            .collect(),
    )
}

pub(super) fn limits(key: &str, raw: &RawRateLimit, problems: &mut Vec<String>) -> Limits {
    let per_route = raw.per_route.as_ref().and_then(|rate| {
        if rate.max_clients.is_some() {
            problems.push(format!(
                "{key}.per_route.max_clients: only per_client tracks clients"
            ));
        }
        compile_rate(&format!("{key}.per_route"), rate, problems)
    });
    let per_client = raw.per_client.as_ref().and_then(|rate| {
        let key = format!("{key}.per_client");
        let max_clients = match rate.max_clients {
            None => Some(DEFAULT_MAX_CLIENTS),
            Some(count) if count >= 1 => usize::try_from(count).ok(),
            Some(_) => None,
        };
        if max_clients.is_none() {
            problems.push(format!("{key}.max_clients: must be at least 1"));
        }
        Some((compile_rate(&key, rate, problems)?, max_clients?))
    });
    Limits {
        per_route,
        per_client,
    }
}

/// A route's controls: its own `rate_limit` replaces the default whole.
pub(super) fn admission(
    key: &str,
    route: &RawRoute,
    default_limits: Limits,
    problems: &mut Vec<String>,
) -> Option<Admission> {
    let allow_ips = route.allow_ips.as_ref().map(|entries| {
        if entries.is_empty() {
            problems.push(format!(
                "{key}.allow_ips: lists no network; remove the key to allow every address"
            ));
        }
        ip_list(&format!("{key}.allow_ips"), entries, problems)
    });
    let limits = route.rate_limit.as_ref().map_or(default_limits, |raw| {
        limits(&format!("{key}.rate_limit"), raw, problems)
    });
    Admission::new(allow_ips, limits.per_route, limits.per_client)
}

fn compile_rate(key: &str, raw: &RawRate, problems: &mut Vec<String>) -> Option<Rate> {
    let burst = match raw.burst {
        None => None,
        Some(burst) if burst >= 1 => u64::try_from(burst).ok(),
        Some(_) => {
            problems.push(format!("{key}.burst: must be at least 1"));
            return None;
        }
    };
    Rate::parse(&raw.rate, burst)
        .map_err(|why| problems.push(format!("{key}.rate: {why}")))
        .ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Config;

    const OPEN: &str = "\n[routes.verifier]\nkind = \"none\"\n";

    fn route(name: &str, settings: &str) -> String {
        format!(
            "[[routes]]\nname = \"{name}\"\npath = \"/{name}\"\nsubject = \"{name}\"\n{settings}{OPEN}"
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml(text, &HashMap::new()) {
            Ok(_) => Vec::new(),
            Err(error) => error.problems,
        }
    }

    #[test]
    fn bad_networks_and_rates_are_reported_by_key() {
        let text = format!(
            "[http]\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0.1/8\"]\n\
             [http.rate_limit]\nper_client = {{ rate = \"often\" }}\n{}{}{}",
            route(
                "a",
                "allow_ips = [\"10.0.0.0/8\", \"::1/129\"]\n\
                 [routes.rate_limit]\n\
                 per_route = { rate = \"10/s\", max_clients = 5 }\n\
                 per_client = { rate = \"10/s\", burst = -1, max_clients = 0, surprise = 1 }\n",
            ),
            route("b", "allow_ips = []\n"),
            route("c", "[routes.rate_limit]\nper_route = { rate = \"0/s\" }\n"),
        );
        let found = problems(&text);
        let expected = [
            "http.trusted_proxies[1]: `10.0.0.1/8` has host bits set",
            "http.rate_limit.per_client.rate: `often` is not a rate",
            "routes[0] (a).allow_ips[1]: `::1/129` is not a network",
            "routes[0] (a).rate_limit.per_route.max_clients: only per_client",
            "routes[0] (a).rate_limit.per_client.max_clients: must be at least 1",
            "routes[0] (a).rate_limit.per_client.burst: must be at least 1",
            "per_client.?.surprise: unknown key",
            "routes[1] (b).allow_ips: lists no network",
            "routes[2] (c).rate_limit.per_route.rate: `0/s` admits nothing",
        ];
        for expected in expected {
            assert!(
                found.iter().any(|problem| problem.contains(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn routes_take_the_default_limits_unless_they_set_their_own() {
        let text = format!(
            "[http]\ntrusted_proxies = [\"127.0.0.1\", \"2001:db8::/32\"]\n\
             [http.rate_limit]\nper_client = {{ rate = \"10/s\", burst = 20 }}\n{}{}{}{}",
            route("inherits", ""),
            route(
                "own",
                "[routes.rate_limit]\nper_route = { rate = \"1000/s\", burst = 2000 }\n",
            ),
            route("off", "rate_limit = {}\n"),
            route(
                "allowlist",
                "allow_ips = [\"192.0.2.1\"]\nrate_limit = {}\n"
            ),
        );
        let config = Config::from_toml(&text, &HashMap::new()).expect("valid");
        assert!(!config.http.trusted_proxies.is_empty());
        let admission = |index: usize| config.routes[index].admission.as_ref();
        let inherits = admission(0).expect("default limits");
        assert!(inherits.per_client.is_some() && inherits.per_route.is_none());
        let own = admission(1).expect("own limits");
        assert!(own.per_client.is_none() && own.per_route.is_some());
        assert!(admission(2).is_none(), "nothing to check: no admission");
        let allowlist = admission(3).expect("allowlist");
        assert!(allowlist.allow_ips.is_some() && allowlist.per_client.is_none());

        let plain = Config::from_toml(&route("plain", ""), &HashMap::new()).expect("valid");
        assert!(plain.routes[0].admission.is_none());
        assert!(plain.http.trusted_proxies.is_empty());
    }

    #[test]
    fn the_examples_commented_abuse_settings_load() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/tidegate.toml"
        );
        let example = std::fs::read_to_string(path).expect("example config is readable");
        let keys = [
            "trusted_proxies =",
            "[http.rate_limit]",
            "per_route =",
            "per_client =",
            "allow_ips =",
            "[routes.rate_limit]",
        ];
        let uncommented: Vec<&str> = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if keys.iter().any(|key| rest.starts_with(key)) => rest,
                _ => line,
            })
            .collect();
        let env = [("GITHUB_WEBHOOK_SECRET", "s"), ("TIDEGATE_API_TOKEN", "t")]
            .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let config = Config::from_toml(&uncommented.join("\n"), &HashMap::from(env))
            .expect("the example is valid with its abuse settings");
        assert!(!config.http.trusted_proxies.is_empty());
        let admission = |name: &str| {
            let route = config.routes.iter().find(|route| route.name == name);
            route
                .and_then(|route| route.admission.as_ref())
                .expect(name)
        };
        assert!(admission("github").allow_ips.is_some());
        assert!(
            admission("agent").per_route.is_some(),
            "the default applies"
        );
        let plugin = admission("plugin");
        assert!(plugin.per_client.is_some() && plugin.per_route.is_none());
    }
}
