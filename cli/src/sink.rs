//! The dev sink of `tidegate up`: a loopback HTTP receiver the forwarder
//! delivers to. It checks each request's Standard Webhooks signature and
//! logs one `sink |` line per webhook, so a delivery can be followed end to end.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use ingress::verify::sign_standard_webhooks;
use serde::Deserialize;

use crate::process::{Label, Output};

pub(crate) const SINK: Label = Label {
    name: "sink",
    colour: "32",
};

/// What the sink needs for every request.
struct Sink {
    /// The decoded Standard Webhooks key (no `whsec_`, no base64).
    key: Vec<u8>,
    output: Output,
}

/// Decodes a `whsec_<base64>` secret into its key.
pub(crate) fn decode_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
}

/// Serves until the process ends; answers 204 to a correctly signed
/// request and 401 otherwise (which the forwarder dead-letters).
pub(crate) async fn serve(listener: tokio::net::TcpListener, key: Vec<u8>, output: Output) {
    let router = axum::Router::new()
        .fallback(receive)
        .with_state(Arc::new(Sink { key, output }));
    if let Err(error) = axum::serve(listener, router).await {
        output.line(SINK, &format!("stopped: {error}"));
    }
}

async fn receive(
    State(sink): State<Arc<Sink>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let verdict = verify(&sink.key, &headers, &body);
    let line = format!(
        "{method} {}  {}  {} bytes  {}",
        uri.path(),
        describe(&headers, &body),
        body.len(),
        match verdict {
            Ok(()) => "signature ok".to_owned(),
            Err(why) => format!("REFUSED: {why}"),
        }
    );
    sink.output.line(SINK, &line);
    match verdict {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

/// Checks `webhook-signature` (any of its space-separated `v1,` values)
/// over `{webhook-id}.{webhook-timestamp}.{body}`.
fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return Err("missing webhook-id, webhook-timestamp or webhook-signature");
    };
    let timestamp: u64 = timestamp
        .parse()
        .map_err(|_| "webhook-timestamp is not a number")?;
    let expected = sign_standard_webhooks(key, id, timestamp, body);
    if signatures.split(' ').any(|signature| signature == expected) {
        Ok(())
    } else {
        Err("bad signature")
    }
}

/// `envelope <id> route github event push` for envelopes, else the
/// `webhook-id` and content type of an original body.
fn describe(headers: &HeaderMap, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Summary {
        id: String,
        route: String,
        subject: String,
        #[serde(default)]
        event: Option<String>,
    }
    if let Ok(summary) = serde_json::from_slice::<Summary>(body) {
        let event = summary
            .event
            .map(|event| format!(" event {event}"))
            .unwrap_or_default();
        return format!(
            "envelope {} route {}{event} subject {}",
            summary.id, summary.route, summary.subject
        );
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    format!(
        "webhook-id {} content-type {}",
        header("webhook-id"),
        header("content-type")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", id.parse().expect("value"));
        headers.insert("webhook-timestamp", timestamp.parse().expect("value"));
        headers.insert("webhook-signature", signature.parse().expect("value"));
        headers
    }

    #[test]
    fn checks_standard_webhooks_signatures() {
        let key = decode_key(SECRET).expect("valid secret");
        let body =
            br#"{"id":"d-1","route":"github","subject":"tidegate.in.github.push","event":"push"}"#;
        let good = sign_standard_webhooks(&key, "d-1", 1_700_000_000, body);
        let check = |headers: &HeaderMap| verify(&key, headers, body);
        assert_eq!(check(&headers("d-1", "1700000000", &good)), Ok(()));
        let rotated = format!("v1,AAAA {good}");
        assert_eq!(check(&headers("d-1", "1700000000", &rotated)), Ok(()));
        assert_eq!(
            check(&headers("d-2", "1700000000", &good)),
            Err("bad signature")
        );
        assert!(check(&HeaderMap::new()).is_err());
        assert_eq!(
            describe(&HeaderMap::new(), body),
            "envelope d-1 route github event push subject tidegate.in.github.push"
        );
        assert_eq!(decode_key("whsec_"), None);
    }
}
