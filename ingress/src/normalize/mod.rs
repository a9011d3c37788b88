//! Provider-specific normalization of a verified delivery.

pub(crate) mod github;
