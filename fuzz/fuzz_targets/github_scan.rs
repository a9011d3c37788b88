//! The GitHub field scan against serde_json, through `envelope::build` on a
//! `normalize = "github"` route with a JSON body: the delivery is refused
//! exactly when serde_json refuses the body as the GitHub fields it used to
//! read (the structs below), and accepted deliveries carry the same fields.
#![no_main]

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use http::{HeaderMap, HeaderValue, Method, header};
use ingress::config::Route;
use ingress::envelope::{self, Incoming};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
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

// The oracle: the serde_json structs `normalize/github.rs` read before the
// scan replaced them (`ingress/src/normalize/github/oracle.rs`).
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(default, borrow, rename = "ref")]
    git_ref: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    after: Option<Cow<'a, str>>,
    #[serde(default)]
    installation: Option<Id>,
    #[serde(default, borrow)]
    repository: Option<Repository<'a>>,
    #[serde(default, borrow)]
    pull_request: Option<PullRequest<'a>>,
}

#[derive(Deserialize)]
struct Id {
    id: u64,
}

#[derive(Deserialize)]
struct Repository<'a> {
    id: u64,
    #[serde(borrow)]
    full_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PullRequest<'a> {
    #[serde(borrow)]
    head: Option<Head<'a>>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    sha: Option<Cow<'a, str>>,
}

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
    let oracle = serde_json::from_slice::<Fields<'_>>(body);
    let (built, fields) = match (built, oracle) {
        (Ok(built), Ok(fields)) => (built, fields),
        (Err(error), Err(_)) => {
            assert!(error.status().is_client_error(), "{error:?}");
            return;
        }
        (built, oracle) => panic!(
            "scan and serde_json disagree: {:?} vs {:?}",
            built.map(|built| built.github),
            oracle.map(drop)
        ),
    };
    let github = built.github.expect("a github route normalizes");
    let repository = fields.repository.as_ref();
    assert_eq!(github.git_ref.as_deref(), fields.git_ref.as_deref());
    assert_eq!(
        github.installation_id,
        fields.installation.map(|installation| installation.id)
    );
    assert_eq!(
        github.repository_id,
        repository.map(|repository| repository.id)
    );
    assert_eq!(
        github.repository_full_name.as_deref(),
        repository.and_then(|repository| repository.full_name.as_deref())
    );
    let head_sha = fields.after.or_else(|| {
        fields
            .pull_request
            .and_then(|pull_request| pull_request.head)
            .and_then(|head| head.sha)
    });
    assert_eq!(github.head_sha.as_deref(), head_sha.as_deref());
});
