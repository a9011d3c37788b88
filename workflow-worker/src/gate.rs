//! Approval gates: a run stops before a `requires_approval` step (pending
//! approval written first, then the run record, so a crash in between
//! only repeats the gate), a decision resumes or cancels it, and an
//! approval past its `expires_at` cancels the run with the reason.
//! Notifications go out once per event (`notified`), at least once.

use std::time::SystemTime;

use schemas::{
    ApprovalDecision, ApprovalState, DecisionKind, PendingApproval, RunDecision, RunStatus,
    WorkflowRun, workflow::WORKFLOW_VERSION,
};
use tracing::{info, warn};
use workflows::Step;

use crate::notify::{About, message};
use crate::runner::{Advanced, RunError, Runner, now_text, skip_rest, text};
use crate::store::StoreError;

/// What became of a decision.
#[derive(Debug)]
pub enum Decided {
    /// Applied; the run went on (or was cancelled) to here.
    Applied(Advanced),
    /// The run is not at a gate yet (it is still reaching it): try later.
    NotYet,
    /// Nothing to decide: the run finished, or there is no such run.
    Moot(String),
}

impl Runner {
    /// Stops the run before `step` until someone decides.
    pub(crate) async fn pause(
        &self,
        key: &str,
        run: &mut WorkflowRun,
        revision: u64,
        step: &Step,
        index: usize,
    ) -> Result<(), RunError> {
        let requested = SystemTime::now();
        let pending = PendingApproval {
            version: WORKFLOW_VERSION,
            run_id: run.run_id.clone(),
            workflow: run.workflow.clone(),
            step: step.name.clone(),
            step_index: index,
            requested_at: text(requested),
            expires_at: text(requested + self.settings.approval_ttl),
        };
        self.store.put_approval(key, &pending).await?;
        run.status = RunStatus::AwaitingApproval;
        run.lease = None;
        run.approvals.push(ApprovalState {
            step: pending.step,
            step_index: index,
            requested_at: pending.requested_at,
            expires_at: pending.expires_at,
            decision: None,
            reason: None,
            decided_by: None,
            decided_at: None,
        });
        run.updated_at = now_text();
        info!(run_id = %run.run_id, step = %step.name, "run waits for approval");
        self.write(key, run, revision).await
    }

    /// Applies an operator's decision.
    pub async fn decide(&self, key: &str, decision: &RunDecision) -> Result<Decided, RunError> {
        loop {
            let Some((mut run, revision)) = self.store.load(key).await? else {
                return Ok(Decided::Moot(format!("no run {}", decision.run_id)));
            };
            match run.status {
                RunStatus::AwaitingApproval => {}
                RunStatus::Running => return Ok(Decided::NotYet),
                finished => {
                    return Ok(Decided::Moot(format!("the run is {}", finished.as_str())));
                }
            }
            let expired = gate_expired(&run);
            let approve = decision.decision == DecisionKind::Approve && !expired;
            {
                let gate = run.approvals.last_mut().expect("a waiting run has a gate");
                gate.decided_at = Some(now_text());
                gate.decided_by.clone_from(&decision.by);
                gate.reason.clone_from(&decision.reason);
                gate.decision = Some(if expired {
                    ApprovalDecision::Expired
                } else if approve {
                    ApprovalDecision::Approved
                } else {
                    ApprovalDecision::Rejected
                });
            }
            if approve {
                run.status = RunStatus::Running;
                run.updated_at = now_text();
            } else {
                cancel(&mut run, expired, decision.reason.as_deref());
            }
            match self.store.save(key, &run, revision).await {
                Ok(_) => {}
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
            self.forget_approval(key).await;
            info!(run_id = %run.run_id, approved = approve, expired, "approval decided");
            return Ok(Decided::Applied(self.advance(key, None).await?));
        }
    }

    /// Cancels the run if its approval has expired; `false` if it had not.
    pub async fn expire(&self, key: &str) -> Result<bool, RunError> {
        loop {
            let Some((mut run, revision)) = self.store.load(key).await? else {
                self.forget_approval(key).await;
                return Ok(false);
            };
            if run.status != RunStatus::AwaitingApproval {
                // A decided run whose pending entry outlived it.
                if run.status.is_finished() {
                    self.forget_approval(key).await;
                }
                return Ok(false);
            }
            if !gate_expired(&run) {
                return Ok(false);
            }
            if let Some(gate) = run.approvals.last_mut() {
                gate.decision = Some(ApprovalDecision::Expired);
                gate.decided_at = Some(now_text());
            }
            cancel(&mut run, true, None);
            match self.store.save(key, &run, revision).await {
                Ok(_) => {}
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
            self.forget_approval(key).await;
            info!(run_id = %run.run_id, "approval expired; run cancelled");
            self.advance(key, None).await?;
            return Ok(true);
        }
    }

    /// Removes the pending entry of a run that is no longer waiting (a
    /// crash between settling the run and removing it).
    pub async fn tidy(&self, key: &str) -> Result<bool, RunError> {
        match self.store.load(key).await? {
            Some((run, _)) if run.status == RunStatus::AwaitingApproval => Ok(false),
            Some((run, _)) if run.status == RunStatus::Running => Ok(false),
            _ => {
                self.forget_approval(key).await;
                Ok(true)
            }
        }
    }

    async fn forget_approval(&self, key: &str) {
        if let Err(error) = self.store.delete_approval(key).await {
            warn!(run_key = %key, error = %error, "removing the pending approval failed; the sweep retries");
        }
    }

    /// Sends the run's summary once for `event`, then records that it did.
    pub(crate) async fn announce(
        &self,
        key: &str,
        mut run: WorkflowRun,
        revision: u64,
        event: String,
    ) -> WorkflowRun {
        if self.notifier.is_empty() || run.notified.contains(&event) {
            return run;
        }
        let summary = message::summary(&run);
        let about = About {
            workflow: &run.workflow,
            run_id: &run.run_id,
            status: run.status.as_str(),
        };
        if let Err(why) = self.notifier.send(&summary, &[], about).await {
            warn!(run_id = %run.run_id, error = %why, "sending the notification failed");
        }
        run.notified.push(event);
        if let Err(error) = self.store.save(key, &run, revision).await {
            warn!(run_id = %run.run_id, error = %error, "recording the notification failed; it may be sent again");
        }
        run
    }
}

fn gate_expired(run: &WorkflowRun) -> bool {
    run.approvals
        .last()
        .and_then(|gate| humantime::parse_rfc3339(&gate.expires_at).ok())
        .is_some_and(|expires| expires <= SystemTime::now())
}

fn cancel(run: &mut WorkflowRun, expired: bool, reason: Option<&str>) {
    let step = run
        .approvals
        .last()
        .map(|gate| gate.step.clone())
        .unwrap_or_default();
    let expires = run
        .approvals
        .last()
        .map(|gate| gate.expires_at.clone())
        .unwrap_or_default();
    let why = if expired {
        format!("the approval of step {step} expired at {expires}")
    } else {
        match reason {
            Some(reason) => format!("step {step} was rejected: {reason}"),
            None => format!("step {step} was rejected"),
        }
    };
    skip_rest(run);
    run.status = RunStatus::Cancelled;
    run.error = Some(why);
    run.lease = None;
    run.finished_at = Some(now_text());
    run.updated_at = now_text();
}
