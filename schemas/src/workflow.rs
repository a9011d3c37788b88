//! Workflow run v1, pending approval v1 and run decision v1: the records
//! the workflow worker keeps in JetStream KV and the control messages that
//! resume or cancel a paused run. The ingress, the CLI and any other
//! reader see runs only through these types.

use serde::{Deserialize, Serialize};

/// Version of every record in this module.
pub const WORKFLOW_VERSION: u32 = 1;

/// One run of a workflow, stored in the KV bucket `tidegate_workflow_runs`
/// under its run key. Written after every step (compare-and-set on the
/// entry's revision), so it is both the run's durable state and its
/// result report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub version: u32,
    /// The delivery id of the webhook that started it.
    pub run_id: String,
    pub workflow: String,
    pub status: RunStatus,
    pub trigger: RunTrigger,
    /// The workflow file's text when the run started: the run follows it
    /// to the end even if the file changes or disappears meanwhile.
    pub definition: String,
    /// Index of the first step that has not completed.
    pub next_step: usize,
    /// One entry per step of the definition, in order.
    pub steps: Vec<StepResult>,
    /// Every approval gate the run reached, oldest first; the last one is
    /// the current gate while `status` is `awaiting_approval`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalState>,
    /// Why the run failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The worker process running a step right now, and until when its
    /// claim holds without renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Notifications already sent (`approval:<step index>`, `finished`),
    /// so a resumed run does not send them twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified: Vec<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
    /// RFC 3339 UTC, once completed, failed or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Steps are being run (or will be, after a worker restart).
    Running,
    /// Stopped before a `requires_approval` step until someone decides.
    AwaitingApproval,
    /// Every step ran; some may have failed with `continue_on_error`.
    Completed,
    /// A step failed without `continue_on_error`.
    Failed,
    /// Rejected, or its approval expired.
    Cancelled,
}

impl RunStatus {
    /// Completed, failed or cancelled: nothing more will happen.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// The delivery that started a run: where to read its envelope again
/// when the run resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTrigger {
    pub delivery_id: String,
    /// The subject it was stored on in `TIDEGATE_DELIVERIES`.
    pub subject: String,
    /// Its sequence in `TIDEGATE_DELIVERIES`.
    pub stream_sequence: u64,
    /// RFC 3339 UTC.
    pub received_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub tool: String,
    pub status: StepStatus,
    /// What the step produced (stdout, a response body, a file's text),
    /// cut to the worker's `max_output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `shell_exec`: the exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `http_request`: the response status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// How one step ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not reached yet.
    Pending,
    /// Started, not finished: running now, or interrupted by a crash.
    Running,
    Success,
    Failed,
    /// Never run: the run failed or was cancelled before it.
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Success => "success",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// One approval gate a run reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    pub step: String,
    pub step_index: usize,
    /// RFC 3339 UTC.
    pub requested_at: String,
    /// RFC 3339 UTC; past it, the run is cancelled.
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApprovalDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who decided (the CLI's user, or `api`), as they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

/// How an approval gate was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    Approved,
    Rejected,
    Expired,
}

/// A worker's claim on a run while it runs a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    /// RFC 3339 UTC.
    pub until: String,
}

/// A run waiting for a decision, in the KV bucket
/// `tidegate_workflow_approvals` under the run key; removed once decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    pub version: u32,
    pub run_id: String,
    pub workflow: String,
    pub step: String,
    pub step_index: usize,
    /// RFC 3339 UTC.
    pub requested_at: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

/// Published on `tidegate.workflow.control.<run key>` (stream
/// `TIDEGATE_WORKFLOW_CONTROL`) to settle an approval gate; the workflow
/// worker consumes it and runs the remaining steps, or cancels the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDecision {
    pub version: u32,
    pub run_id: String,
    pub decision: DecisionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// RFC 3339 UTC.
    pub at: String,
}

/// What an operator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Approve,
    Reject,
}

/// A run id as a KV key and subject token: bytes outside `A-Z a-z 0-9 _ -`
/// are written `=XX` (upper-case hex), so ids with `.` or `:` stay one
/// token and two ids never share a key.
pub fn run_key(run_id: &str) -> String {
    let mut key = String::with_capacity(run_id.len());
    for byte in run_id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("={byte:02X}"));
        }
    }
    key
}
