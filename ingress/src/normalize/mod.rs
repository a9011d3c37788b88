//! Provider-specific normalization of a verified delivery.

pub mod github;
