//! The wire contract between the ingress, the workers and anything else that
//! reads the stream: envelope v1, stream and subject layout, header names.
//! Depends only on serde so that every binary can share it cheaply.

pub mod connector;
pub mod envelope;
pub mod headers;
pub mod job_result;
pub mod plugin;
pub mod streams;
pub mod sync_reply;
pub mod sync_target;
pub mod webhook_item;
pub mod workflow;

pub use connector::{ConnectorSync, GITHUB_CONNECTOR};
pub use envelope::{Envelope, GithubFields, PayloadEncoding, PayloadRef};
pub use job_result::{DeadLetter, ItemFailure, JobResult, JobStatus};
pub use plugin::{PluginEvent, PluginRequest, PluginResponse, PluginStatus};
pub use sync_reply::SyncReply;
pub use sync_target::SyncTarget;
pub use webhook_item::{
    DeleteItems, DeletedItems, InboxItem, ItemEncoding, PendingItem, PendingItems,
};
pub use workflow::{
    ApprovalDecision, ApprovalState, DecisionKind, Lease, PendingApproval, RunDecision, RunStatus,
    RunTrigger, StepResult, StepStatus, WorkflowRun,
};

#[cfg(test)]
mod tests;
