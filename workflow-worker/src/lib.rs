//! The workflow worker (assistant seed).
