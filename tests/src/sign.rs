//! Signing requests exactly as providers do, written independently of the
//! ingress's verifiers so that tests don't check the code against itself.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// GitHub's `X-Hub-Signature-256` value for `body`.
pub fn github(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The Standard Webhooks `webhook-signature` value (`v1,<base64>`) for a
/// `whsec_<base64>` secret, as the specification describes it.
pub fn standard_webhooks(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let base64 = base64::engine::general_purpose::STANDARD;
    let key = base64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64.encode(mac.finalize().into_bytes()))
}
