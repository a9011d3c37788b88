//! The integration suite: one module per feature.
