//! The GitHub field scan against serde_json, through `envelope::build` on a
//! `normalize = "github"` route with a JSON body: the delivery is refused
//! exactly when serde_json refuses the body as the GitHub fields it used to
//! read (`ingress::github_fields_oracle`), and accepted deliveries carry the
//! same fields.
#![no_main]

use std::sync::{Arc, LazyLock};

use http::{HeaderMap, HeaderValue, Method, header};
use ingress::config::Route;
use ingress::envelope::{self, Incoming};
use libfuzzer_sys::fuzz_target;
use tidegate_fuzz::{at, route_from};

static ROUTE: LazyLock<Arc<Route>> = LazyLock::new(|| {
    route_from(
        "[[routes]]\nname = \"github\"\npath = \"/github\"\nsubject = \"github.{event}\"\n\
         normalize = \"github\"\n[routes.verifier]\nkind = \"github\"\nif_unset = \"open\"\n",
        &[],
    )
});

static HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-github-event", HeaderValue::from_static("push"));
    headers.insert("x-github-delivery", HeaderValue::from_static("72d3162e"));
    headers
});

fuzz_target!(|body: &[u8]| {
    let data = bytes::Bytes::copy_from_slice(body);
    let incoming = Incoming {
        route: &ROUTE,
        method: &Method::POST,
        path: "/github",
        params: &[],
        query: &[],
        raw_query: None,
        headers: &HEADERS,
        body: &data,
        received_at: at(0),
    };
    let built = envelope::build(
        &incoming,
        "fuzz-delivery",
        Some("push"),
        "github".to_owned(),
        None,
        "github.push",
    );
    // The serde_json reading the scan replaced (`normalize/github/oracle.rs`).
    let oracle = ingress::github_fields_oracle(&HEADERS, body);
    match (built, oracle) {
        (Ok(built), Some(fields)) => {
            assert_eq!(built.github, Some(fields), "scan and serde_json disagree")
        }
        (Err(error), None) => assert!(error.status().is_client_error(), "{error:?}"),
        (built, oracle) => panic!(
            "scan and serde_json disagree: {:?} vs {:?}",
            built.map(|built| built.github),
            oracle
        ),
    }
});
