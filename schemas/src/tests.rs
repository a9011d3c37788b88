//! The contract holds: Rust types, JSON Schema files and example documents
//! agree with each other.

use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_json::value::RawValue;

use super::*;
use crate::envelope::VERSION;
use crate::webhook_item::{embeddable_json, is_json_media};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(crate_dir().join("json/envelope.v1.schema.json"))
        .expect("schema file is readable");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

fn examples() -> Vec<(PathBuf, String)> {
    let dir = crate_dir().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples folder exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter(|path| file_name(path).starts_with("envelope."))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the envelope examples, found {files:?}"
    );
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("example is readable");
            (path, text)
        })
        .collect()
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("")
}

fn assert_valid(validator: &jsonschema::Validator, document: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the schema: {errors:#?}"
    );
}

#[test]
fn every_example_matches_the_schema_and_the_types() {
    let validator = validator();
    for (path, text) in examples() {
        let what = file_name(&path).to_owned();
        let document: Value = serde_json::from_str(&text).expect("example is JSON");
        assert_valid(&validator, &document, &what);

        let envelope: Envelope = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{what} does not deserialize: {error}"));
        let back = serde_json::to_value(&envelope).expect("envelope serializes");
        assert_eq!(
            back, document,
            "{what} changes in a round trip through the types"
        );
    }
}

fn sample(encoding: PayloadEncoding, payload: Option<&RawValue>) -> Envelope<&RawValue> {
    Envelope {
        version: VERSION,
        id: "42_3f1a".into(),
        route: "github".into(),
        source: "github".into(),
        agent: None,
        event: Some("push".into()),
        subject: "tidegate.in.github.push".into(),
        received_at: "2026-11-23T18:20:01.123Z".into(),
        method: "POST".into(),
        path: "/v1/webhooks/connectors/github".into(),
        params: Default::default(),
        query: Default::default(),
        raw_query: None,
        headers: [("x-github-event".to_owned(), "push".to_owned())].into(),
        content_type: Some("application/json".into()),
        payload_encoding: encoding,
        payload,
        payload_ref: (encoding == PayloadEncoding::Object).then(|| PayloadRef {
            bucket: "TIDEGATE_PAYLOADS".into(),
            name: "42_3f1a".into(),
            size: 5,
            sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into(),
        }),
        github: Some(GithubFields {
            delivery_id: "3f1a".into(),
            hook_id: Some("42".into()),
            event: "push".into(),
            installation_id: Some(1),
            repository_id: Some(2),
            repository_full_name: Some("octo/repo".into()),
            git_ref: Some("refs/heads/main".into()),
            head_sha: Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246".into()),
        }),
    }
}

#[test]
fn every_encoding_written_by_the_types_matches_the_schema() {
    let validator = validator();
    let json = RawValue::from_string(r#"{"a": [1, 2.50, "x"]}"#.into()).expect("valid JSON");
    let base64 = RawValue::from_string(r#""aGVsbG8=""#.into()).expect("valid JSON");
    let cases = [
        (PayloadEncoding::Json, Some(&*json)),
        (PayloadEncoding::Base64, Some(&*base64)),
        (PayloadEncoding::Empty, None),
        (PayloadEncoding::Object, None),
    ];
    for (encoding, payload) in cases {
        let document = serde_json::to_value(sample(encoding, payload)).expect("serializes");
        assert_valid(&validator, &document, &format!("{encoding:?} envelope"));
    }
}

#[test]
fn json_payload_is_embedded_byte_for_byte() {
    let body = r#"{"z":1,  "a" : [ 1.0, 1e3 ,"\u00e9"] }"#;
    let payload: &RawValue = serde_json::from_str(body).expect("valid JSON");
    let text = serde_json::to_string(&sample(PayloadEncoding::Json, Some(payload))).expect("ser");
    assert!(text.contains(body), "payload was re-serialized: {text}");

    let read: Envelope = serde_json::from_str(&text).expect("reads back");
    assert_eq!(read.payload.expect("payload present").get(), body);
}

#[test]
fn schema_rejects_what_the_contract_forbids() {
    let validator = validator();
    let good = serde_json::to_value(sample(PayloadEncoding::Empty, None)).expect("serializes");
    let mut cases: Vec<(&str, Value)> = Vec::new();

    let mut unknown = good.clone();
    unknown["surprise"] = Value::Bool(true);
    cases.push(("unknown field", unknown));

    let mut version = good.clone();
    version["version"] = Value::from(2);
    cases.push(("other version", version));

    let mut json_without_payload = good.clone();
    json_without_payload["payload_encoding"] = Value::from("json");
    cases.push(("json encoding without payload", json_without_payload));

    let mut object_without_ref = good.clone();
    object_without_ref["payload_encoding"] = Value::from("object");
    cases.push(("object encoding without reference", object_without_ref));

    let mut bad_id = good.clone();
    bad_id["id"] = Value::from("a b");
    cases.push(("id with a space", bad_id));

    for (what, document) in cases {
        assert!(!validator.is_valid(&document), "schema accepted {what}");
    }
    assert!(validator.is_valid(&good));
}

/// Validates every `examples/<prefix>*.json` against `json/<schema>` and
/// round-trips it through `T`; returns how many were checked.
fn check_examples<T>(prefix: &str, schema: &str) -> usize
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let text = std::fs::read_to_string(crate_dir().join("json").join(schema))
        .expect("schema file is readable");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let mut seen = 0;
    for entry in std::fs::read_dir(crate_dir().join("examples")).expect("examples folder") {
        let path = entry.expect("entry").path();
        if !file_name(&path).starts_with(prefix) {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("readable");
        let document: Value = serde_json::from_str(&text).expect("JSON");
        assert_valid(&validator, &document, file_name(&path));
        let value: T = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{} does not deserialize: {error}", file_name(&path)));
        assert_eq!(
            serde_json::to_value(&value).expect("serializes"),
            document,
            "{} changes in a round trip through the types",
            file_name(&path)
        );
    }
    seen
}

#[test]
fn sync_reply_examples_match_the_schema_and_the_type() {
    assert_eq!(
        check_examples::<SyncReply>("sync-reply.", "sync-reply.v1.schema.json"),
        2
    );
}

#[test]
fn job_result_and_dead_letter_examples_match_their_schemas_and_types() {
    assert_eq!(
        check_examples::<JobResult>("job-result.", "job-result.v1.schema.json"),
        3
    );
    assert_eq!(
        check_examples::<DeadLetter>("dead-letter.", "dead-letter.v1.schema.json"),
        2
    );
}

#[test]
fn sync_target_examples_match_the_schema_the_type_and_the_rules() {
    assert_eq!(
        check_examples::<SyncTarget>("sync-target.", "sync-target.v1.schema.json"),
        1
    );
    let text = std::fs::read_to_string(crate_dir().join("examples/sync-target.openwork.json"))
        .expect("readable");
    let target: SyncTarget = serde_json::from_str(&text).expect("a sync target");
    assert_eq!(target.problems("example"), Vec::<String>::new());
}

/// The connector definition is written out in both schemas that carry it;
/// they must not drift apart.
#[test]
fn the_connector_definition_is_the_same_in_results_and_dead_letters() {
    let definition = |schema: &str| {
        let text = std::fs::read_to_string(crate_dir().join("json").join(schema))
            .expect("schema file is readable");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        schema["$defs"]["connector"].clone()
    };
    let in_results = definition("job-result.v1.schema.json");
    assert!(
        in_results.is_object(),
        "job-result.v1 defines the connector"
    );
    assert_eq!(in_results, definition("dead-letter.v1.schema.json"));
}

/// What the types write for a connector result is what the schema accepts,
/// and the schema refuses a contract with a field missing or mistyped.
#[test]
fn connector_results_written_by_the_types_match_the_schema() {
    let text = std::fs::read_to_string(crate_dir().join("json/job-result.v1.schema.json"))
        .expect("schema file is readable");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let result = JobResult {
        version: 1,
        delivery_id: "1_guid".into(),
        worker: "github-sync".into(),
        status: JobStatus::Skipped,
        key: None,
        attempts: 1,
        counts: Default::default(),
        failures: Vec::new(),
        error: None,
        detail: [("reason".to_owned(), "auto-import is off".to_owned())].into(),
        connector: Some(ConnectorSync {
            connector_type: GITHUB_CONNECTOR.into(),
            connector_instance_id: "inst".into(),
            connector_target_id: "plugins".into(),
            connector_sync_event_id: "plugins:7:6113728f27ae82c7b1a177c8d03f9e96e0adf246".into(),
            delivery_id: "guid".into(),
            installation_id: None,
            repository_id: Some(7),
            repository_full_name: "octocat/hello".into(),
            git_ref: "refs/heads/main".into(),
            head_sha: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into(),
        }),
        started_at: "2026-11-23T18:20:01.500Z".into(),
        completed_at: "2026-11-23T18:20:01.600Z".into(),
    };
    let document = serde_json::to_value(&result).expect("serializes");
    assert_valid(&validator, &document, "a skipped connector result");
    assert_eq!(document["connector"]["ref"], "refs/heads/main");
    for field in ["connectorSyncEventId", "headSha"] {
        let mut missing = document.clone();
        missing["connector"]
            .as_object_mut()
            .expect("an object")
            .remove(field);
        assert!(!validator.is_valid(&missing), "accepted without {field}");
    }
    let mut mistyped = document.clone();
    mistyped["connector"]["repositoryId"] = Value::from("7");
    assert!(
        !validator.is_valid(&mistyped),
        "accepted a string repositoryId"
    );
}

#[test]
fn plugin_protocol_examples_match_their_schemas_and_types() {
    assert_eq!(
        check_examples::<PluginRequest>("plugin-request.", "plugin-request.v1.schema.json"),
        2
    );
    assert_eq!(
        check_examples::<PluginResponse>("plugin-response.", "plugin-response.v1.schema.json"),
        2
    );
}

#[test]
fn plugin_response_schema_refuses_event_types_that_are_not_subject_tokens() {
    let text = std::fs::read_to_string(crate_dir().join("json/plugin-response.v1.schema.json"))
        .expect("schema file is readable");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let with_type = |event_type: &str| serde_json::json!({ "status": "ok", "events": [{ "type": event_type }] });
    assert!(validator.is_valid(&with_type("withings.authorized")));
    for hostile in ["", "a..b", "a.*", "a.>", "a b", ".a", "a."] {
        assert!(
            !validator.is_valid(&with_type(hostile)),
            "accepted event type {hostile:?}"
        );
    }
}

#[test]
fn webhook_item_examples_match_their_schemas_and_types() {
    assert_eq!(
        check_examples::<InboxItem>("inbox-item.", "inbox-item.v1.schema.json"),
        2
    );
    assert_eq!(
        check_examples::<PendingItems>("webhook-pending.", "webhook-pending.v1.schema.json"),
        1
    );
    assert_eq!(
        check_examples::<DeleteItems>(
            "webhook-delete-request.",
            "webhook-delete-request.v1.schema.json"
        ),
        1
    );
    assert_eq!(
        check_examples::<DeletedItems>(
            "webhook-delete-response.",
            "webhook-delete-response.v1.schema.json"
        ),
        1
    );
}

fn inbox_item(encoding: ItemEncoding, payload: Option<&RawValue>) -> InboxItem<&RawValue> {
    InboxItem {
        id: "0193f0c4-2b1e-7c52-9a4e-3f1d2c8b9a10".into(),
        agent_id: "flickclaw".into(),
        source: "putio".into(),
        received_at: "2026-11-23T18:21:00.000Z".into(),
        headers: Default::default(),
        content_type: None,
        encoding,
        payload,
    }
}

#[test]
fn inbox_items_written_by_the_type_match_the_schema() {
    let text = std::fs::read_to_string(crate_dir().join("json/inbox-item.v1.schema.json"))
        .expect("schema file is readable");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let body = r#"{"b": 1,  "a":[true]}"#;
    let json = embeddable_json(body.as_bytes()).expect("embeddable");
    let text = serde_json::to_string(&inbox_item(ItemEncoding::Json, Some(json))).expect("ser");
    assert!(text.contains(body), "payload was re-serialized: {text}");
    let base64 = RawValue::from_string(r#""aGVsbG8=""#.into()).expect("valid JSON");
    for (encoding, payload) in [
        (ItemEncoding::Json, Some(json)),
        (ItemEncoding::Base64, Some(&*base64)),
        (ItemEncoding::Empty, None),
    ] {
        let document = serde_json::to_value(inbox_item(encoding, payload)).expect("serializes");
        assert_valid(&validator, &document, &format!("{encoding:?} inbox item"));
    }
    let mut missing = serde_json::to_value(inbox_item(ItemEncoding::Empty, None)).expect("ser");
    missing["encoding"] = Value::from("base64");
    assert!(!validator.is_valid(&missing), "base64 without a payload");
}

#[test]
fn only_exact_json_values_are_embedded() {
    assert!(embeddable_json(br#"{"a":1}"#).is_some());
    assert!(embeddable_json(b"[1, 2]").is_some());
    assert!(embeddable_json(b" {\"a\":1}").is_none(), "leading space");
    assert!(
        embeddable_json(b"{\"a\":1}\n").is_none(),
        "trailing newline"
    );
    assert!(embeddable_json(b"null").is_none());
    assert!(embeddable_json(b"{\"transfer_id\": 12345,").is_none());
    assert!(embeddable_json(b"status=COMPLETED").is_none());
    assert!(is_json_media("application/json; charset=utf-8"));
    assert!(is_json_media("Application/Problem+JSON"));
    assert!(!is_json_media("text/plain"));
}
#[test]
fn workflow_examples_match_their_schemas_and_types() {
    assert_eq!(
        check_examples::<WorkflowRun>("workflow-run.", "workflow-run.v1.schema.json"),
        2
    );
    assert_eq!(
        check_examples::<PendingApproval>("workflow-approval.", "workflow-approval.v1.schema.json"),
        1
    );
    assert_eq!(
        check_examples::<RunDecision>("workflow-decision.", "workflow-decision.v1.schema.json"),
        1
    );
}

#[test]
fn run_keys_are_one_token_and_never_shared() {
    use crate::workflow::run_key;
    let ids = ["0193a4f2-7c1e", "42_3f1a", "a.b", "a=2Eb", "x:y@z"];
    let keys: Vec<String> = ids.iter().map(|id| run_key(id)).collect();
    for key in &keys {
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)),
            "{key}"
        );
    }
    assert_eq!(keys[0], "0193a4f2-7c1e");
    assert_eq!(keys[2], "a=2Eb");
    assert_ne!(
        keys[2], keys[3],
        "an id that looks encoded gets its own key"
    );
}

mod v2_headers {
    //! Envelope v2: the header set written by the types matches its JSON
    //! Schema and the example, and reads back into the same envelope.

    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;
    use crate::envelope::v2::{self, HeaderError};

    fn schema() -> Value {
        let text =
            std::fs::read_to_string(crate_dir().join("json/envelope-headers.v2.schema.json"))
                .expect("schema file is readable");
        serde_json::from_str(&text).expect("schema is JSON")
    }

    /// The header set against the schema, and each JSON-valued header
    /// against its `contentSchema` (an annotation validators skip).
    fn check(document: &Value, what: &str) {
        let schema = schema();
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("schema compiles");
        assert_valid(&validator, document, what);
        let properties = schema["properties"].as_object().expect("properties");
        let mut checked = 0;
        for (name, property) in properties {
            let (Some(content), Some(value)) = (property.get("contentSchema"), document.get(name))
            else {
                continue;
            };
            let inner: Value = serde_json::from_str(value.as_str().expect("a string"))
                .unwrap_or_else(|error| panic!("{what}: {name} is not JSON: {error}"));
            let validator = jsonschema::validator_for(content).expect("content schema compiles");
            assert_valid(&validator, &inner, &format!("{what}: {name}"));
            checked += 1;
        }
        assert!(checked >= 1, "{what}: Tidegate-Headers at least");
    }

    fn written<P>(envelope: &Envelope<P>) -> BTreeMap<String, String> {
        let mut headers = BTreeMap::new();
        headers.insert(
            crate::headers::MSG_ID.to_owned(),
            format!("{}:{}", envelope.route, envelope.id),
        );
        v2::write_headers(envelope, |name, value| {
            headers.insert(name.to_owned(), value.to_owned());
        })
        .expect("writes");
        headers
    }

    fn read(headers: &BTreeMap<String, String>, subject: &str) -> Envelope {
        v2::read_headers(
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
            subject,
        )
        .expect("reads")
    }

    fn full(encoding: PayloadEncoding) -> Envelope<&'static RawValue> {
        let mut envelope = sample(encoding, None);
        envelope.version = v2::VERSION;
        envelope.agent = Some("flickclaw".into());
        envelope.params = [("agentId".to_owned(), "flickclaw".to_owned())].into();
        envelope.raw_query = Some("source=putio&a=1&a=2&sp=%20x+y".into());
        envelope.query = [
            ("source".to_owned(), "putio".to_owned()),
            ("a".to_owned(), "2".to_owned()),
            ("sp".to_owned(), " x y".to_owned()),
        ]
        .into();
        envelope
    }

    #[test]
    fn the_example_matches_the_schema_and_reads_back() {
        let text = std::fs::read_to_string(
            crate_dir().join("examples/envelope-headers.v2.github-push.json"),
        )
        .expect("example is readable");
        let document: Value = serde_json::from_str(&text).expect("example is JSON");
        check(&document, "envelope-headers.v2.github-push.json");
        let headers: BTreeMap<String, String> =
            serde_json::from_value(document).expect("name to value");
        let envelope = read(&headers, "tidegate.in.github.push");
        assert_eq!(envelope.id, headers["Tidegate-Delivery-Id"]);
        let github = envelope.github.as_ref().expect("github fields");
        assert_eq!(github.installation_id, Some(42));
        assert_eq!(
            github.head_sha.as_deref(),
            Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
        );
        // Written again, the same headers come out.
        let mut again = written(&envelope);
        again.insert("Nats-Msg-Id".into(), headers["Nats-Msg-Id"].clone());
        assert_eq!(again, headers);
    }

    #[test]
    fn every_body_kind_matches_the_schema_and_reads_back_the_same_fields() {
        for encoding in [
            PayloadEncoding::Json,
            PayloadEncoding::Base64,
            PayloadEncoding::Empty,
            PayloadEncoding::Object,
        ] {
            let envelope = full(encoding);
            let headers = written(&envelope);
            let document = serde_json::to_value(&headers).expect("serializes");
            check(&document, &format!("{encoding:?} headers"));
            let back = read(&headers, &envelope.subject);
            let expected = serde_json::to_value(&envelope).expect("serializes");
            assert_eq!(
                serde_json::to_value(&back).expect("serializes"),
                expected,
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn values_a_header_cannot_carry_are_refused_not_mangled() {
        for bad in ["a\r\nNats-Msg-Id: x", " leading", "trailing\t"] {
            let mut envelope = full(PayloadEncoding::Json);
            envelope.agent = Some(bad.into());
            assert_eq!(
                v2::write_headers(&envelope, |_, _| {}),
                Err(HeaderError::Value("agent"))
            );
        }
        // Inside a JSON-valued header a line break is an escape: carried.
        let mut envelope = full(PayloadEncoding::Json);
        envelope.github.as_mut().expect("github").git_ref = Some("refs/heads/a\r\nb ".into());
        let headers = written(&envelope);
        assert_eq!(
            read(&headers, &envelope.subject).github,
            envelope.github.clone()
        );
    }

    #[test]
    fn the_v1_rendering_is_a_valid_v1_document_with_the_body() {
        let v1 = super::validator();
        let envelope = full(PayloadEncoding::Json);
        let body = br#"{"zen": "Keep it logically awesome."}"#;
        let json = v2::to_v1_json(&envelope, body);
        let document: Value = serde_json::from_slice(&json).expect("JSON");
        assert_valid(&v1, &document, "v1 rendering");
        assert_eq!(document["version"], 1);
        let read: Envelope = serde_json::from_slice(&json).expect("reads");
        assert_eq!(read.payload.expect("payload").get().as_bytes(), body);

        let bytes = v2::to_v1_json(&full(PayloadEncoding::Base64), b"\xff\x00");
        let document: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_valid(&v1, &document, "v1 rendering of bytes");
        assert_eq!(document["payload"], "/wA=");
    }
}
