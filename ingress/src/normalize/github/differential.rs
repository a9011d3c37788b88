//! `normalize` (the one-pass scan) against `oracle::normalize` (serde_json):
//! the same verdict for every input and the same fields when accepted, on
//! hand-picked edge cases, realistic events and generated documents.

use http::HeaderMap;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use schemas::GithubFields;
use serde_json::json;

use super::{DELIVERY_HEADER, EVENT_HEADER, HOOK_ID_HEADER, normalize, oracle};

fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(DELIVERY_HEADER, "72d3162e".parse().expect("valid"));
    headers.insert(EVENT_HEADER, "push".parse().expect("valid"));
    headers.insert(HOOK_ID_HEADER, "9".parse().expect("valid"));
    headers
}

/// Both readings of `json`, which must agree; the fields when accepted.
fn check(json: &[u8]) -> Option<GithubFields> {
    let headers = headers();
    let scanned = normalize(&headers, json);
    let parsed = oracle::normalize(&headers, json);
    match (&scanned, &parsed) {
        (Ok(scanned), Ok(parsed)) => assert_eq!(scanned, parsed, "{}", show(json)),
        (Err(_), Err(_)) => {}
        _ => panic!("scan {scanned:?}, serde {parsed:?} on {}", show(json)),
    }
    scanned.ok()
}

fn show(json: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(json))
}

#[test]
fn edge_cases_agree_with_serde() {
    let accepted: &[&[u8]] = &[
        b"{}",
        b" {} \n",
        b"[]",
        b"{\"ref\":null,\"after\":null,\"installation\":null,\"repository\":null,\"pull_request\":null}",
        b"{\"re\\u0066\":\"refs/heads/\\u006dain\",\"after\":\"\\ud83d\\ude00\"}",
        b"{\"ref\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}",
        b"{\"installation\":{\"id\":18446744073709551615,\"id2\":1e400}}",
        b"{\"installation\":[7]}",
        b"{\"repository\":{\"full_name\":\"o/r\",\"id\":0}}",
        b"{\"repository\":[1,null]}",
        b"{\"repository\":[1,\"o/r\"]}",
        b"{\"pull_request\":{\"head\":{\"sha\":\"abc\"}}}",
        b"{\"pull_request\":{}}",
        b"{\"pull_request\":{\"head\":null}}",
        b"{\"pull_request\":[[\"abc\"]]}",
        b"{\"pull_request\":[null]}",
        b"[\"refs/heads/main\",\"abc\",[1],[2,null],[null]]",
        b"[null,null]",
        b"{\"after\":\"a\",\"pull_request\":{\"head\":{\"sha\":\"b\"}}}",
        b"{\"other\":\"\xff\xfe\"}",
        b"{\"other\":{\"\xff\":[1,2,{\"ref\":5}]},\"ref\":\"x\"}",
    ];
    for json in accepted {
        assert!(check(json).is_some(), "accepted: {}", show(json));
    }
    let refused: &[&[u8]] = &[
        b"",
        b"   ",
        b"\xef\xbb\xbf{}",
        b"null",
        b"1",
        b"\"{}\"",
        b"true",
        b"{} {}",
        b"{}x",
        b"{",
        b"{\"ref\":\"a\",}",
        b"{,\"ref\":\"a\"}",
        b"{\"ref\":\"a\" \"after\":\"b\"}",
        b"{\"ref\"}",
        b"{\"ref\":}",
        b"{ref:1}",
        b"{\"ref\":1}",
        b"{\"ref\":true}",
        b"{\"ref\":[]}",
        b"{\"ref\":nul}",
        b"{\"ref\":\"a\",\"ref\":\"b\"}",
        b"{\"ref\":null,\"ref\":null}",
        b"{\"re\\u0066\":\"a\",\"ref\":\"b\"}",
        b"{\"ref\":\"\\ud800\"}",
        b"{\"ref\":\"\\udc00\"}",
        b"{\"ref\":\"\xff\"}",
        b"{\"ref\":\"a\x01\"}",
        b"{\"r\xffef\":1}",
        b"{\"\\ud800\":1}",
        b"{\"other\":\"\xff\",\"\\ud800x\":1}",
        b"{\"installation\":{}}",
        b"{\"installation\":{\"id\":null}}",
        b"{\"installation\":{\"id\":-1}}",
        b"{\"installation\":{\"id\":-0}}",
        b"{\"installation\":{\"id\":1.0}}",
        b"{\"installation\":{\"id\":1e3}}",
        b"{\"installation\":{\"id\":01}}",
        b"{\"installation\":{\"id\":18446744073709551616}}",
        b"{\"installation\":{\"id\":\"7\"}}",
        b"{\"installation\":{\"id\":1,\"id\":2}}",
        b"{\"installation\":7}",
        b"{\"installation\":\"7\"}",
        b"{\"installation\":[]}",
        b"{\"installation\":[1,2]}",
        b"{\"installation\":[1,]}",
        b"{\"repository\":{\"full_name\":\"o/r\"}}",
        b"{\"repository\":[1]}",
        b"{\"repository\":{\"id\":1,\"full_name\":2}}",
        b"{\"pull_request\":[]}",
        b"{\"pull_request\":{\"head\":{\"sha\":1}}}",
        b"{\"pull_request\":{\"head\":[]}}",
        b"{\"pull_request\":{\"head\":\"abc\"}}",
        b"[null,null,null,null,null,null]",
        b"[1]",
        b"[null,]",
        b"[,null]",
        b"{\"other\":1e}",
        b"{\"other\":-}",
        b"{\"other\":\"\\x\"}",
        b"{\"other\":\"a\nb\"}",
        b"{\"other\":[1,]}",
        b"{\"other\":[}",
    ];
    for json in refused {
        assert!(check(json).is_none(), "refused: {}", show(json));
    }
}

#[test]
fn nesting_in_skipped_values_has_no_limit_in_either() {
    for depth in [127, 128, 129, 5_000] {
        let deep = format!(
            "{{\"commits\":{}1{},\"ref\":\"r\"}}",
            "[{\"k\":".repeat(depth),
            "}]".repeat(depth)
        );
        let fields = check(deep.as_bytes()).expect("accepted at any depth");
        assert_eq!(fields.git_ref.as_deref(), Some("r"));
        let unbalanced = deep.replacen("}]", "}", 1);
        assert!(check(unbalanced.as_bytes()).is_none());
    }
}

#[test]
fn realistic_events_agree_with_serde() {
    let push = json!({
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "repository": {
            "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "Hello-World",
            "full_name": "octocat/Hello-World", "private": false,
            "owner": { "login": "octocat", "id": 1, "site_admin": false, "email": null },
            "description": "caf\u{e9} \u{1f600} \"quoted\"\n", "topics": [], "size": 1.5e3,
        },
        "pusher": { "name": "mona-lisa", "email": "mona@example.com" },
        "installation": { "id": 39128801, "node_id": "MDIzOkludGVncmF0aW9u" },
        "created": false, "deleted": false, "forced": false, "base_ref": null,
        "commits": [{ "id": "0d1a26e6", "message": "Fix\n\nall", "added": [], "modified": ["a.rs"] }],
    });
    let fields = check(&serde_json::to_vec(&push).expect("serializes")).expect("accepted");
    assert_eq!(fields.installation_id, Some(39128801));
    assert_eq!(fields.repository_id, Some(1296269));
    assert_eq!(
        fields.repository_full_name.as_deref(),
        Some("octocat/Hello-World")
    );
    assert_eq!(
        fields.head_sha.as_deref(),
        Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")
    );
    check(&serde_json::to_vec_pretty(&push).expect("serializes")).expect("accepted");

    let pull_request = json!({
        "action": "opened", "number": 2,
        "pull_request": { "id": 1, "head": { "ref": "feature", "sha": "e5bd3914", "repo": null } },
        "repository": { "id": 7, "full_name": null },
    });
    let fields = check(&serde_json::to_vec(&pull_request).expect("serializes")).expect("accepted");
    assert_eq!(fields.head_sha.as_deref(), Some("e5bd3914"));
    assert_eq!(fields.repository_full_name, None);
}

/// A document to render: raw scalars (right or wrong), strings (content as
/// written between the quotes), arrays and objects.
#[derive(Debug, Clone)]
enum Node {
    Raw(&'static [u8]),
    Text(&'static [u8]),
    Array(Vec<Node>),
    Object(Vec<(&'static [u8], Node)>),
}

impl Node {
    fn render(&self, out: &mut Vec<u8>) {
        match self {
            Node::Raw(bytes) => out.extend_from_slice(bytes),
            Node::Text(content) => {
                out.push(b'"');
                out.extend_from_slice(content);
                out.push(b'"');
            }
            Node::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    item.render(out);
                }
                out.push(b']');
            }
            Node::Object(members) => {
                out.push(b'{');
                for (index, (name, value)) in members.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    Node::Text(name).render(out);
                    out.push(b':');
                    value.render(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// Well-formed scalars, then ones serde_json refuses or refuses as a u64.
const RAW: &[&[u8]] = &[
    b"null",
    b"true",
    b"false",
    b"0",
    b"7",
    b"42",
    b"18446744073709551615",
    b"-1",
    b"1.0",
    b"1e2",
    b"1e400",
    b"-0",
];
const RAW_BAD: &[&[u8]] = &[b"18446744073709551616", b"01", b"-", b"1.", b"nul", b"1e"];
const IDS: &[&[u8]] = &[b"0", b"7", b"42", b"18446744073709551615"];
/// String contents: valid ones, then ones serde_json refuses in a string
/// it decodes (the first three are fine where it skips the string).
const TEXT: &[&[u8]] = &[
    b"",
    b"main",
    b"refs/heads/main",
    b"octocat/Hello-World-with-a-longer-name",
    b"a\\nb",
    b"\\\"q\\\"",
    b"\\u00e9",
    b"\\ud83d\\ude00",
    b"\xc3\xa9",
    b"\\/",
];
const TEXT_BAD: &[&[u8]] = &[
    b"\xff",
    b"\\ud800",
    b"\\udc00x",
    b"\\ud83d\\u0041",
    b"a\x01",
    b"\\q",
    b"\\u12",
];
const NAMES: &[&[u8]] = &[
    b"ref",
    b"after",
    b"installation",
    b"repository",
    b"pull_request",
    b"head",
    b"sha",
    b"id",
    b"full_name",
    b"re\\u0066",
    b"\\u0069d",
    b"other",
    b"\xff",
    b"\\ud800",
    b"",
];

fn scalar() -> BoxedStrategy<Node> {
    prop_oneof![
        8 => prop::sample::select(RAW).prop_map(Node::Raw),
        8 => prop::sample::select(TEXT).prop_map(Node::Text),
        1 => prop::sample::select(RAW_BAD).prop_map(Node::Raw),
        1 => prop::sample::select(TEXT_BAD).prop_map(Node::Text),
    ]
    .boxed()
}

/// Mostly a string (or `null`), as a wanted string field.
fn text() -> BoxedStrategy<Node> {
    prop_oneof![
        8 => prop::sample::select(TEXT).prop_map(Node::Text),
        1 => Just(Node::Raw(b"null")),
        1 => scalar(),
    ]
    .boxed()
}

/// Mostly a valid u64, as an `id`.
fn id() -> BoxedStrategy<Node> {
    prop_oneof![8 => prop::sample::select(IDS).prop_map(Node::Raw), 2 => scalar()].boxed()
}

/// Any value, wanted member names likely at every level.
fn node() -> BoxedStrategy<Node> {
    scalar()
        .prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Array),
                prop::collection::vec((prop::sample::select(NAMES), inner), 0..6)
                    .prop_map(Node::Object),
            ]
        })
        .boxed()
}

/// A struct of the given members, as an object (often) or an array.
fn shaped(members: Vec<(&'static [u8], BoxedStrategy<Node>)>) -> BoxedStrategy<Node> {
    let values: Vec<BoxedStrategy<Node>> = members.iter().map(|(_, value)| value.clone()).collect();
    let names: Vec<&'static [u8]> = members.iter().map(|(name, _)| *name).collect();
    let object = prop::collection::vec(
        (0..members.len() + 1).prop_flat_map(move |index| match values.get(index) {
            Some(value) => (Just(names[index]), value.clone()).boxed(),
            None => (prop::sample::select(NAMES), node()).boxed(),
        }),
        0..5,
    )
    .prop_map(Node::Object);
    let in_order: Vec<BoxedStrategy<Node>> = members.into_iter().map(|(_, value)| value).collect();
    let array = (in_order, 0..8usize).prop_map(|(mut items, keep)| {
        items.truncate(keep);
        Node::Array(items)
    });
    prop_oneof![4 => object, 1 => array, 1 => node()].boxed()
}

fn event() -> BoxedStrategy<Node> {
    let head = shaped(vec![(b"sha", text())]);
    let pull_request = shaped(vec![(b"head", head)]);
    shaped(vec![
        (b"ref", text()),
        (b"after", text()),
        (b"installation", shaped(vec![(b"id", id())])),
        (
            b"repository",
            shaped(vec![(b"id", id()), (b"full_name", text())]),
        ),
        (b"pull_request", pull_request),
    ])
}

/// Small damage to a rendered document: a byte removed, inserted or the
/// text cut short.
#[derive(Debug, Clone)]
enum Edit {
    Remove(usize),
    Insert(usize, u8),
    Cut(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop::sample::select(&b" \n\t\r,:\"\\[]{}n0-.e\xff\x01"[..]);
    prop_oneof![
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), byte).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<usize>().prop_map(Edit::Cut),
    ]
}

fn document() -> impl Strategy<Value = Vec<u8>> {
    (event(), prop::collection::vec(edit(), 0..3)).prop_map(|(event, edits)| {
        let mut bytes = Vec::new();
        event.render(&mut bytes);
        for edit in edits {
            let len = bytes.len() + 1;
            match edit {
                Edit::Remove(at) if !bytes.is_empty() => {
                    bytes.remove(at % bytes.len());
                }
                Edit::Insert(at, byte) => bytes.insert(at % len, byte),
                Edit::Cut(at) => bytes.truncate(at % len),
                Edit::Remove(_) => {}
            }
        }
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn generated_documents_agree_with_serde(json in document()) {
        check(&json);
    }
}

/// A fixed sample, counted: both verdicts must be well represented, or the
/// generator tests little.
#[test]
fn a_fixed_sample_agrees_and_covers_both_verdicts() {
    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let (mut accepted, mut with_fields) = (0, 0);
    const SAMPLE: usize = 6_000;
    for _ in 0..SAMPLE {
        let json = strategy.new_tree(&mut runner).expect("generates").current();
        if let Some(fields) = check(&json) {
            accepted += 1;
            with_fields += usize::from(
                fields.installation_id.is_some()
                    || fields.repository_id.is_some()
                    || fields.head_sha.is_some(),
            );
        }
    }
    eprintln!("{SAMPLE} documents: {accepted} accepted by both, {with_fields} with a nested field");
    assert!(accepted > SAMPLE / 10, "{accepted} of {SAMPLE} accepted");
    assert!(
        accepted < SAMPLE * 9 / 10,
        "{accepted} of {SAMPLE} accepted"
    );
    assert!(
        with_fields > SAMPLE / 40,
        "{with_fields} of {SAMPLE} with nested fields"
    );
}
