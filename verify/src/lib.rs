//! Webhook secrets (placeholder until the scheme code moves here).

mod secret;

pub use secret::Secret;
