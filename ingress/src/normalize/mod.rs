//! Provider-specific normalization of a verified delivery.

pub(crate) mod github;
mod github_payload;
mod json_scan;
