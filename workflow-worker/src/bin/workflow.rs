//! `tidegate-workflow`: runs webhook-triggered workflows.

use workflow_worker::{WorkflowConfig, WorkflowJob};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    workers::main_for::<WorkflowConfig, _>("workflow", WorkflowJob::new).await
}
