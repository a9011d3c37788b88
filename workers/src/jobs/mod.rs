//! Business logic only: each job maps a delivery to an `Outcome`.

pub mod exec;
pub mod forward;
pub mod github_sync;
pub mod inbox;
