//! Builds the envelope of one GitHub delivery N times, for instruction
//! counts under callgrind (not a timed benchmark):
//! `valgrind --tool=callgrind target/release/examples/github_normalize <payload.json> [N]`.
//! The GitHub field scan is `normalize::github::normalize`'s share of it.

use std::collections::HashMap;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, header};
use ingress::config::Config;
use ingress::envelope::{self, Incoming};

const ROUTE: &str = "[[routes]]\nname = \"github\"\npath = \"/github\"\nsubject = \"github.{event}\"\n\
                     normalize = \"github\"\n[routes.verifier]\nkind = \"github\"\nif_unset = \"open\"\n";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "github_push.json".to_owned());
    let calls: usize = args.next().map_or(Ok(1000), |n| n.parse())?;
    let body = bytes::Bytes::from(std::fs::read(&path)?);
    let config = Config::from_toml(ROUTE, &HashMap::new())?;
    let route = &config.routes[0];
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-github-event", HeaderValue::from_static("push"));
    headers.insert(
        "x-github-delivery",
        HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    );
    let incoming = Incoming {
        route,
        method: &Method::POST,
        path: "/github",
        params: &[],
        query: &[],
        raw_query: None,
        headers: &headers,
        body: &body,
        received_at: SystemTime::UNIX_EPOCH,
    };
    let mut bytes = 0;
    for _ in 0..calls {
        let built = envelope::build(
            &incoming,
            "id",
            Some("push"),
            "github".into(),
            None,
            "github.push",
        )?;
        bytes += built.data.len();
    }
    anyhow::ensure!(
        bytes == calls * body.len(),
        "every envelope carries the body"
    );
    Ok(())
}
