//! The text of a run's notifications, in the seed's shape:
//!
//! ```text
//! Webhook 'deploy-notify' triggered workflow:
//!   log-event: success
//!   record-in-memory: success
//! ```

use schemas::{RunStatus, StepStatus, WorkflowRun};

/// The run's steps and how it stands; for a paused run, how to decide.
pub fn summary(run: &WorkflowRun) -> String {
    let mut text = format!("Webhook '{}' triggered workflow:\n", run.workflow);
    let gate = run
        .approvals
        .last()
        .filter(|_| run.status == RunStatus::AwaitingApproval);
    for (index, step) in run.steps.iter().enumerate() {
        let status = match gate {
            Some(gate) if gate.step_index == index => "awaiting approval",
            _ if step.status == StepStatus::Pending => continue,
            _ => step.status.as_str(),
        };
        text.push_str(&format!("  {}: {status}\n", step.name));
    }
    match run.status {
        RunStatus::Completed => {}
        RunStatus::AwaitingApproval => {
            if let Some(gate) = gate {
                text.push_str(&format!(
                    "Run {} waits for approval of step '{}' until {}:\n  tidegate approvals approve {}\n  tidegate approvals reject {} --reason \"...\"\n",
                    run.run_id, gate.step, gate.expires_at, run.run_id, run.run_id
                ));
            }
        }
        other => {
            text.push_str(&format!("Run {}: {}", run.run_id, other.as_str()));
            if let Some(error) = &run.error {
                text.push_str(&format!(" ({error})"));
            }
            text.push('\n');
        }
    }
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use schemas::{ApprovalState, RunTrigger, StepResult};

    use super::*;

    fn step(name: &str, status: StepStatus) -> StepResult {
        StepResult {
            name: name.into(),
            tool: "shell_exec".into(),
            status,
            output: None,
            error: None,
            exit_code: None,
            http_status: None,
            started_at: None,
            finished_at: None,
        }
    }

    fn run(status: RunStatus, steps: Vec<StepResult>) -> WorkflowRun {
        WorkflowRun {
            version: 1,
            run_id: "r1".into(),
            workflow: "deploy-notify".into(),
            status,
            trigger: RunTrigger {
                delivery_id: "r1".into(),
                subject: "tidegate.in.workflow.deploy-notify".into(),
                stream_sequence: 1,
                received_at: "2026-01-01T00:00:00Z".into(),
                event: None,
            },
            definition: String::new(),
            next_step: 0,
            steps,
            approvals: Vec::new(),
            error: None,
            lease: None,
            notified: Vec::new(),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
        }
    }

    #[test]
    fn a_completed_run_reads_like_the_seed() {
        let done = run(
            RunStatus::Completed,
            vec![
                step("log-event", StepStatus::Success),
                step("record-in-memory", StepStatus::Success),
            ],
        );
        assert_eq!(
            summary(&done),
            "Webhook 'deploy-notify' triggered workflow:\n  log-event: success\n  record-in-memory: success"
        );
    }

    #[test]
    fn failures_and_gates_say_what_to_do() {
        let mut failed = run(
            RunStatus::Failed,
            vec![
                step("a", StepStatus::Failed),
                step("b", StepStatus::Skipped),
            ],
        );
        failed.error = Some("step a failed".into());
        assert!(
            summary(&failed).ends_with("  a: failed\n  b: skipped\nRun r1: failed (step a failed)")
        );

        let mut paused = run(
            RunStatus::AwaitingApproval,
            vec![
                step("a", StepStatus::Success),
                step("review", StepStatus::Pending),
            ],
        );
        paused.approvals.push(ApprovalState {
            step: "review".into(),
            step_index: 1,
            requested_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-02T00:00:00Z".into(),
            decision: None,
            reason: None,
            decided_by: None,
            decided_at: None,
        });
        let text = summary(&paused);
        assert!(text.contains("  review: awaiting approval\n"), "{text}");
        assert!(text.contains("tidegate approvals approve r1"), "{text}");
    }
}
