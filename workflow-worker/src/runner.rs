//! Moving a run forward, one step at a time, from its record in KV. Before
//! a step's effect the record says "started" (with a lease naming this
//! process); after it, "finished" with the output and the next step. So a
//! resumed run (another replica, after a crash) continues after the last
//! finished step and never repeats one. A step found started but never
//! finished was interrupted: it runs again only when repeating it is
//! harmless (`tools::may_repeat`), and is otherwise reported failed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use schemas::{Lease, RunStatus, StepStatus, WorkflowRun};
use tracing::{debug, error, info, warn};
use workflows::{Step, Tool, Workflow};

use crate::config::Settings;
use crate::context::{self, TriggerData, TriggerError};
use crate::notify::Notifier;
use crate::store::{Store, StoreError};
use crate::template::Templates;
use crate::tools::{self, Failure, Output, StepIdentity, Tools};

/// Everything a run needs; shared by the delivery job, the decision
/// consumer and the expiry sweep.
pub struct Runner {
    pub store: Store,
    pub tools: Tools,
    pub templates: Templates,
    pub settings: Arc<Settings>,
    pub notifier: Arc<Notifier>,
    pub jetstream: jetstream::Context,
    /// This process, as lease owner.
    pub instance: String,
}

/// Where `advance` left a run.
#[derive(Debug)]
pub enum Advanced {
    /// Finished, or waiting for an approval.
    Settled(Box<WorkflowRun>),
    /// Another process holds the run's lease for this much longer.
    Busy(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {0} has no record")]
    Missing(String),
    #[error(transparent)]
    Trigger(#[from] TriggerError),
}

impl RunError {
    /// Whether trying again later could help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RunError::Store(StoreError::Broker(_) | StoreError::Conflict)
                | RunError::Trigger(TriggerError::Unavailable(_))
        )
    }
}

impl Runner {
    /// Runs steps until the run finishes, reaches an approval gate, or is
    /// held by another process. `trigger` is the starting webhook when the
    /// caller has it (else it is read from the stream when needed).
    pub async fn advance(
        &self,
        key: &str,
        trigger: Option<&TriggerData>,
    ) -> Result<Advanced, RunError> {
        let mut fetched: Option<TriggerData> = None;
        loop {
            let (mut run, revision) = self
                .store
                .load(key)
                .await?
                .ok_or_else(|| RunError::Missing(key.to_owned()))?;
            match run.status {
                RunStatus::Running => {}
                RunStatus::AwaitingApproval => {
                    let index = run
                        .approvals
                        .last()
                        .map_or(run.next_step, |gate| gate.step_index);
                    let run = self
                        .announce(key, run, revision, format!("approval:{index}"))
                        .await;
                    return Ok(Advanced::Settled(Box::new(run)));
                }
                _ => {
                    let run = self
                        .announce(key, run, revision, "finished".to_owned())
                        .await;
                    return Ok(Advanced::Settled(Box::new(run)));
                }
            }
            if let Some(wait) = held_elsewhere(&run, &self.instance) {
                return Ok(Advanced::Busy(wait));
            }
            let workflow = match Workflow::parse(&run.definition, None) {
                Ok(workflow) if workflow.steps.len() == run.steps.len() => workflow,
                Ok(_) => {
                    fail_run(
                        &mut run,
                        "the run's definition does not match its steps".into(),
                    );
                    self.write(key, &run, revision).await?;
                    continue;
                }
                Err(why) => {
                    fail_run(
                        &mut run,
                        format!("the run's definition does not parse: {why}"),
                    );
                    self.write(key, &run, revision).await?;
                    continue;
                }
            };
            let index = run.next_step;
            let Some(step) = workflow.steps.get(index) else {
                run.status = RunStatus::Completed;
                run.lease = None;
                run.finished_at = Some(now_text());
                run.updated_at = now_text();
                self.write(key, &run, revision).await?;
                info!(run_id = %run.run_id, workflow = %run.workflow, "run completed");
                continue;
            };
            if step.requires_approval && !approved(&run, index) {
                self.pause(key, &mut run, revision, step, index).await?;
                continue;
            }
            let data = match (trigger, &fetched) {
                (Some(data), _) | (None, Some(data)) => data.clone(),
                (None, None) => {
                    match context::fetch(&self.jetstream, &run.trigger, self.store.timeout).await {
                        Ok(data) => {
                            fetched = Some(data.clone());
                            data
                        }
                        Err(TriggerError::Gone(why)) => {
                            fail_run(
                                &mut run,
                                format!("the webhook that started the run is gone: {why}"),
                            );
                            self.write(key, &run, revision).await?;
                            continue;
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            };
            let scope = context::for_step(&run, &data, &self.settings.secrets, index);
            let rendered =
                self.templates
                    .render_args(&step.args, &scope, step.tool == Tool::ShellExec);
            let resumed = run.steps[index].status == StepStatus::Running;
            let repeatable = rendered
                .as_ref()
                .is_ok_and(|args| tools::may_repeat(step.tool, args));
            if resumed && !repeatable {
                warn!(run_id = %run.run_id, step = %step.name, "step was interrupted; not repeating it");
                let failure = Failure::new(
                    "interrupted: the worker stopped while this step ran, so it may or may not have taken effect; it is not repeated (a shell step that may run twice can say idempotent: true)",
                );
                self.settle(&mut run, step, index, Err(failure));
                self.write(key, &run, revision).await?;
                continue;
            }
            let rendered = match rendered {
                Ok(rendered) => rendered,
                Err(why) => {
                    self.settle(&mut run, step, index, Err(Failure::new(why)));
                    self.write(key, &run, revision).await?;
                    continue;
                }
            };
            // "Started" goes on record before the effect.
            let started = now_text();
            run.steps[index].status = StepStatus::Running;
            run.steps[index].started_at = Some(started.clone());
            run.lease = Some(self.lease());
            run.updated_at = started;
            let mut revision = match self.store.save(key, &run, revision).await {
                Ok(revision) => revision,
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            };
            debug!(run_id = %run.run_id, step = %step.name, tool = step.tool.as_str(), resumed, "running step");
            let result = self
                .execute(
                    key,
                    &mut run,
                    &mut revision,
                    step,
                    index,
                    &rendered,
                    resumed,
                )
                .await;
            self.settle(&mut run, step, index, result);
            run.lease = None;
            self.write_after_effect(key, &run, revision).await?;
        }
    }

    /// Runs the tool, renewing the lease every third of its length.
    #[allow(clippy::too_many_arguments)] // one call site; the parts are all different
    async fn execute(
        &self,
        key: &str,
        run: &mut WorkflowRun,
        revision: &mut u64,
        step: &Step,
        index: usize,
        args: &serde_json::Value,
        resumed: bool,
    ) -> Result<Output, Failure> {
        let (run_id, workflow) = (run.run_id.clone(), run.workflow.clone());
        let identity = StepIdentity {
            run_id: &run_id,
            workflow: &workflow,
            step_index: index,
            resumed,
        };
        let timeout = step.timeout.unwrap_or(self.settings.step_timeout);
        let tool = self.tools.run(step.tool, args, timeout, &identity);
        tokio::pin!(tool);
        let every = (self.settings.lease / 3).max(Duration::from_millis(100));
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                result = &mut tool => return result,
                _ = renew.tick() => {
                    run.lease = Some(self.lease());
                    match self.store.save(key, run, *revision).await {
                        Ok(next) => *revision = next,
                        Err(error) => warn!(run_id = %run_id, error = %error, "renewing the run's lease failed"),
                    }
                }
            }
        }
    }

    /// Records a step's result and what follows from it.
    fn settle(
        &self,
        run: &mut WorkflowRun,
        step: &Step,
        index: usize,
        result: Result<Output, Failure>,
    ) {
        let secrets = &self.settings.secrets;
        let limit = self.settings.max_output;
        let clean = |text: String| tools::bound(context::redact(text, secrets), limit);
        let record = &mut run.steps[index];
        record.finished_at = Some(now_text());
        match result {
            Ok(output) => {
                record.status = StepStatus::Success;
                record.output = Some(clean(output.text));
                record.error = None;
                record.exit_code = output.exit_code;
                record.http_status = output.http_status;
                run.next_step = index + 1;
            }
            Err(failure) => {
                record.status = StepStatus::Failed;
                record.output = failure.output.map(clean);
                let error = clean(failure.error);
                record.error = Some(error.clone());
                record.exit_code = failure.exit_code;
                record.http_status = failure.http_status;
                info!(run_id = %run.run_id, step = %step.name, error = %error, continue_on_error = step.continue_on_error, "step failed");
                if step.continue_on_error {
                    run.next_step = index + 1;
                } else {
                    fail_run(run, format!("step {} failed: {error}", step.name));
                }
            }
        }
        run.updated_at = now_text();
    }

    /// Writes the record; a conflict means someone else moved the run
    /// (the loop reads it again).
    pub(crate) async fn write(
        &self,
        key: &str,
        run: &WorkflowRun,
        revision: u64,
    ) -> Result<(), RunError> {
        match self.store.save(key, run, revision).await {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Writes a step's result, trying a few times: giving up here would
    /// leave a finished step looking interrupted.
    async fn write_after_effect(
        &self,
        key: &str,
        run: &WorkflowRun,
        revision: u64,
    ) -> Result<(), RunError> {
        let mut attempt = 0;
        loop {
            match self.store.save(key, run, revision).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => {
                    error!(run_id = %run.run_id, "the run record changed while a step ran (the lease lapsed?); this result is dropped");
                    return Ok(());
                }
                Err(error) if attempt < 5 => {
                    attempt += 1;
                    warn!(run_id = %run.run_id, error = %error, attempt, "recording the step's result failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn lease(&self) -> Lease {
        Lease {
            owner: self.instance.clone(),
            until: text(SystemTime::now() + self.settings.lease),
        }
    }
}

/// The run failed: the rest of its steps are skipped.
pub(crate) fn fail_run(run: &mut WorkflowRun, error: String) {
    skip_rest(run);
    run.status = RunStatus::Failed;
    run.error = Some(error);
    run.lease = None;
    run.finished_at = Some(now_text());
    run.updated_at = now_text();
}

/// Steps not yet run become skipped.
pub(crate) fn skip_rest(run: &mut WorkflowRun) {
    for step in &mut run.steps {
        if step.status == StepStatus::Pending {
            step.status = StepStatus::Skipped;
        }
    }
}

fn approved(run: &WorkflowRun, index: usize) -> bool {
    run.approvals.iter().any(|gate| {
        gate.step_index == index && gate.decision == Some(schemas::ApprovalDecision::Approved)
    })
}

/// How much longer another process's lease holds, if it does.
fn held_elsewhere(run: &WorkflowRun, instance: &str) -> Option<Duration> {
    let lease = run.lease.as_ref()?;
    if lease.owner == instance {
        return None;
    }
    let until = humantime::parse_rfc3339(&lease.until).ok()?;
    until
        .duration_since(SystemTime::now())
        .ok()
        .filter(|left| !left.is_zero())
}

pub(crate) fn now_text() -> String {
    text(SystemTime::now())
}

pub(crate) fn text(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
