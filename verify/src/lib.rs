//! Signing and verification of every webhook scheme tidegate knows, in one
//! place for every binary: the ingress verifies, the forwarder and the CLI
//! sign. Pure: no I/O, no clock of its own, no environment.
//!
//! A [`Scheme`] both [`verify`](Scheme::verify)s a request (its raw body
//! bytes and headers, against several secrets for rotation, at a given
//! time) and [`sign`](Scheme::sign)s a message, producing the headers its
//! provider would send. Every comparison of secret material is constant-time.

mod error;
mod scheme;
mod secret;
mod shared_secret;
mod tag;
mod timestamp;

pub mod bearer;
pub mod github;
pub mod gitlab;
pub mod shopify;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;

pub use error::{Fault, SignError, UnknownKind, VerifyError};
pub use scheme::{DEFAULT_TOLERANCE, Message, Scheme};
pub use secret::Secret;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
