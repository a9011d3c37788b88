//! The inbox file's content and the deliveries the job refuses before it
//! touches the broker or the disk.

use bytes::Bytes;
use schemas::{InboxItem, ItemEncoding};

use super::*;

fn delivery(content_type: &str, body: &[u8]) -> Delivery {
    let (encoding, payload) = match schemas::webhook_item::embeddable_json(body) {
        Some(raw) if content_type == "application/json" => ("json", raw.get().to_owned()),
        _ => {
            use base64::Engine as _;
            let text = base64::engine::general_purpose::STANDARD.encode(body);
            ("base64", serde_json::to_string(&text).expect("a string"))
        }
    };
    let raw = format!(
        r#"{{"version":1,"id":"0193f0c4-2b1e","route":"agent","source":"putio",
            "agent":"flickclaw","subject":"tidegate.in.agent.flickclaw.putio",
            "received_at":"2026-11-23T18:21:00.123Z","method":"POST",
            "path":"/api/webhook/flickclaw","headers":{{"user-agent":"put.io"}},
            "content_type":"{content_type}","payload_encoding":"{encoding}","payload":{payload}}}"#
    );
    let raw = Bytes::from(raw);
    Delivery {
        envelope: crate::runtime::delivery::parse("tidegate.in.agent.flickclaw.putio", None, &raw)
            .expect("an envelope")
            .envelope,
        payload: Bytes::copy_from_slice(body),
        v1_document: Some(raw),
        subject: "tidegate.in.agent.flickclaw.putio".into(),
        stream_sequence: 7,
        attempt: 1,
    }
}

#[test]
fn json_bodies_are_written_byte_for_byte() {
    let body = br#"{
  "transfer_id": 12345,
  "status": "COMPLETED"
}"#;
    // Surrounding whitespace aside, an indented body is one JSON value.
    let bytes = file::render(&delivery("application/json", body), "flickclaw").expect("rendered");
    let text = String::from_utf8(bytes).expect("UTF-8");
    assert!(text.ends_with("}\n"));
    let item: InboxItem = serde_json::from_str(&text).expect("an inbox item");
    assert_eq!(item.encoding, ItemEncoding::Json);
    assert_eq!(item.payload.expect("payload").get().as_bytes(), body);
    assert_eq!(item.id, "0193f0c4-2b1e");
    assert_eq!(item.agent_id, "flickclaw");
    assert_eq!(item.source, "putio");
    assert_eq!(item.received_at, "2026-11-23T18:21:00.123Z");
    assert_eq!(item.headers["user-agent"], "put.io");
}

#[test]
fn other_bodies_are_base64() {
    use base64::Engine as _;
    for (content_type, body) in [
        ("application/json", &b"{\"transfer_id\": 12345,"[..]),
        ("text/plain", b"status=COMPLETED\n"),
        ("application/octet-stream", &[0, 159, 146, 150, 255]),
    ] {
        let bytes = file::render(&delivery(content_type, body), "flickclaw").expect("rendered");
        let item: InboxItem = serde_json::from_slice(&bytes).expect("an inbox item");
        assert_eq!(item.encoding, ItemEncoding::Base64, "{content_type}");
        let text: String =
            serde_json::from_str(item.payload.expect("payload").get()).expect("a string");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64");
        assert_eq!(decoded, body);
    }
}

fn inbox(agents: &str) -> Inbox {
    use figment::providers::Format as _;
    let config: InboxConfig = figment::Figment::from(figment::providers::Toml::string(agents))
        .extract()
        .expect("valid section");
    Inbox {
        settings: Settings::parse(config, &HashMap::new()).expect("valid settings"),
        progress: None,
    }
}

#[tokio::test]
async fn unmapped_agents_and_missing_workspaces_are_dead_lettered() {
    let unmapped = inbox("[agents.stewardclaw]\nworkspace = \"/\"\n");
    let outcome = unmapped.handle(&delivery("application/json", b"{}")).await;
    assert!(
        matches!(&outcome, Outcome::Fail(error) if error.contains("no workspace is configured for agent flickclaw")),
        "{outcome:?}"
    );
    let missing = inbox("[agents.flickclaw]\nworkspace = \"/nonexistent/flickclaw\"\n");
    let outcome = missing.handle(&delivery("application/json", b"{}")).await;
    assert!(
        matches!(&outcome, Outcome::Fail(error) if error.contains("/nonexistent/flickclaw") && error.contains("does not exist")),
        "{outcome:?}"
    );
}

#[test]
fn the_agent_comes_from_the_envelope_or_the_subject() {
    let mut delivery = delivery("application/json", b"{}");
    assert_eq!(agent_of(&delivery), Some("flickclaw"));
    delivery.envelope.agent = None;
    delivery.subject = "tidegate.in.agent.stewardclaw.github".into();
    assert_eq!(agent_of(&delivery), Some("stewardclaw"));
    delivery.subject = "tidegate.in.github.push".into();
    assert_eq!(agent_of(&delivery), None);
}
