//! The wire contract between the ingress, the workers and anything else that
//! reads the stream: envelope v1, stream and subject layout, header names.
//! Depends only on serde so that every binary can share it cheaply.

pub mod envelope;
pub mod headers;
pub mod job_result;
pub mod streams;
pub mod sync_reply;
pub mod workflow;

pub use envelope::{Envelope, GithubFields, PayloadEncoding, PayloadRef};
pub use job_result::{DeadLetter, ItemFailure, JobResult, JobStatus};
pub use sync_reply::SyncReply;
pub use workflow::{
    ApprovalDecision, ApprovalState, DecisionKind, Lease, PendingApproval, RunDecision, RunStatus,
    RunTrigger, StepResult, StepStatus, WorkflowRun,
};

#[cfg(test)]
mod tests;
