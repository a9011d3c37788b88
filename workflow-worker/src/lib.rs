//! `tidegate-workflow` (the assistant seed): runs the workflow a webhook
//! names, step by step, from a run record in JetStream KV. `job` starts
//! runs from deliveries; `runner` moves them forward; `gate`, `control`
//! and `sweep` pause, resume, cancel and expire them at approval gates;
//! `tools` and `template` do the steps' work; `notify` tells people.
//! Its own crate: only this worker needs a template engine.

pub mod config;
pub mod context;
pub mod control;
pub mod gate;
pub mod job;
pub mod notify;
pub mod runner;
pub mod store;
pub mod sweep;
pub mod template;
pub mod tools;

pub use config::WorkflowConfig;
pub use job::WorkflowJob;
