//! The delivery side: each `tidegate.in.workflow.<name>` delivery starts
//! (or, redelivered, continues) the run whose id is its delivery id. The
//! runtime acks, retries and reports; this maps a run to an `Outcome`.

use std::collections::HashMap;
use std::sync::Arc;

use broker::catalog;
use broker::ensure::{ensure_consumer, ensure_key_value, ensure_stream};
use schemas::{
    RunStatus, RunTrigger, StepResult, StepStatus, WorkflowRun, workflow::WORKFLOW_VERSION,
};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use workers::{Delivery, Job, Outcome, Report, Setup};
use workflows::{Loaded, Lookup, Registry, run_key};

use crate::config::{Settings, WorkflowConfig};
use crate::context::TriggerData;
use crate::notify::Notifier;
use crate::runner::{Advanced, RunError, Runner, now_text};
use crate::store::{Store, StoreError};
use crate::template::Templates;
use crate::tools::Tools;
use crate::{control, sweep};

/// `tidegate-workflow`'s job.
pub struct WorkflowJob {
    settings: Arc<Settings>,
    registry: Arc<Registry>,
    notifier: Arc<Notifier>,
    http: reqwest::Client,
    /// Set by `prepare`, once the buckets exist.
    runner: OnceCell<Arc<Runner>>,
    control: OnceCell<async_nats::jetstream::consumer::PullConsumer>,
}

impl WorkflowJob {
    pub fn new(config: WorkflowConfig) -> anyhow::Result<WorkflowJob> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let (settings, channels) = config.compile(&env)?;
        let registry = Arc::new(Registry::load(&settings.folder));
        let http = reqwest::Client::builder()
            .user_agent(concat!("tidegate-workflow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WorkflowJob {
            registry,
            notifier: Arc::new(Notifier::new(channels)?),
            settings: Arc::new(settings),
            http,
            runner: OnceCell::new(),
            control: OnceCell::new(),
        })
    }

    fn runner(&self) -> Option<&Arc<Runner>> {
        self.runner.get()
    }
}

impl Job for WorkflowJob {
    async fn prepare(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        let jetstream = setup.jetstream;
        let runs = ensure_key_value(
            jetstream,
            catalog::workflow_runs(self.settings.runs_max_age),
            setup.placement,
        )
        .await?;
        let approvals =
            ensure_key_value(jetstream, catalog::workflow_approvals(), setup.placement).await?;
        let stream = ensure_stream(jetstream, catalog::workflow_control(), setup.placement).await?;
        let consumer = ensure_consumer(
            &stream,
            catalog::workflow_control_consumer(control::CONSUMER_PREFIX, control::ACK_WAIT),
        )
        .await?;
        drop(self.control.set(consumer));
        let runner = Runner {
            store: Store {
                runs,
                approvals,
                timeout: std::time::Duration::from_secs(5),
            },
            tools: Tools {
                settings: self.settings.clone(),
                http: self.http.clone(),
                nats: jetstream.client(),
                notifier: self.notifier.clone(),
            },
            templates: Templates::new(),
            settings: self.settings.clone(),
            notifier: self.notifier.clone(),
            jetstream: jetstream.clone(),
            instance: uuid::Uuid::now_v7().simple().to_string(),
        };
        drop(self.runner.set(Arc::new(runner)));
        Ok(())
    }

    fn background(&self, shutdown: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(workflows::watch::watch(
            self.registry.clone(),
            workflows::watch::DEFAULT_INTERVAL,
            shutdown.clone(),
        ))];
        if let (Some(runner), Some(consumer)) = (self.runner(), self.control.get()) {
            tasks.push(tokio::spawn(control::run(
                runner.clone(),
                consumer.clone(),
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(sweep::run(runner.clone(), shutdown.clone())));
        }
        tasks
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let Some(runner) = self.runner() else {
            return Outcome::retry("the workflow buckets are not ready");
        };
        let envelope = &delivery.envelope;
        let Some(name) = envelope.params.get("workflow") else {
            return Outcome::Fail(
                "the delivery names no workflow (no `workflow` path parameter)".into(),
            );
        };
        let key = run_key(&envelope.id);
        let existing = match runner.store.load(&key).await {
            Ok(existing) => existing,
            Err(StoreError::Invalid(why)) => {
                return Outcome::Fail(format!("run {}: {why}", envelope.id));
            }
            Err(error) => return Outcome::retry(error.to_string()),
        };
        if existing.is_none() {
            let loaded = match self.registry.lookup(name) {
                Lookup::Enabled(loaded) => loaded,
                Lookup::Disabled(_) => {
                    return Outcome::Skip(format!("workflow {name} is disabled"));
                }
                Lookup::Unknown => {
                    return Outcome::Fail(format!(
                        "no workflow {name} in {} (the ingress accepted it: do both read the same folder?)",
                        self.settings.folder.display()
                    ));
                }
                Lookup::NotReady(why) => return Outcome::retry(why),
            };
            let run = new_run(delivery, &loaded);
            match runner.store.create(&key, &run).await {
                Ok(_) | Err(StoreError::Conflict) => {}
                Err(error) => return Outcome::retry(error.to_string()),
            }
        }
        let trigger = TriggerData::new(envelope, &delivery.payload);
        match runner.advance(&key, Some(&trigger)).await {
            Ok(Advanced::Settled(run)) => Outcome::Done(report(&run)),
            Ok(Advanced::Busy(wait)) => Outcome::Retry {
                error: "another worker is running this workflow run".into(),
                after: Some(wait),
            },
            Err(error @ RunError::Missing(_)) => Outcome::Fail(error.to_string()),
            Err(error) if error.is_transient() => Outcome::retry(error.to_string()),
            Err(error) => Outcome::Fail(error.to_string()),
        }
    }
}

/// A fresh run record: every step pending, the workflow's text kept.
fn new_run(delivery: &Delivery, loaded: &Loaded) -> WorkflowRun {
    let envelope = &delivery.envelope;
    let now = now_text();
    WorkflowRun {
        version: WORKFLOW_VERSION,
        run_id: envelope.id.clone(),
        workflow: loaded.workflow.name.clone(),
        status: RunStatus::Running,
        trigger: RunTrigger {
            delivery_id: envelope.id.clone(),
            subject: delivery.subject.clone(),
            stream_sequence: delivery.stream_sequence,
            received_at: envelope.received_at.clone(),
            event: envelope.event.clone(),
        },
        definition: loaded.source.clone(),
        next_step: 0,
        steps: loaded
            .workflow
            .steps
            .iter()
            .map(|step| StepResult {
                name: step.name.clone(),
                tool: step.tool.as_str().to_owned(),
                status: StepStatus::Pending,
                output: None,
                error: None,
                exit_code: None,
                http_status: None,
                started_at: None,
                finished_at: None,
            })
            .collect(),
        approvals: Vec::new(),
        error: None,
        lease: None,
        notified: Vec::new(),
        created_at: now.clone(),
        updated_at: now,
        finished_at: None,
    }
}

/// The job result: the run's status, and each failed step as a failure.
fn report(run: &WorkflowRun) -> Report {
    let count = |status: StepStatus| {
        run.steps
            .iter()
            .filter(|step| step.status == status)
            .count() as u64
    };
    let mut report = Report::default()
        .count("steps_succeeded", count(StepStatus::Success))
        .count("steps_failed", count(StepStatus::Failed))
        .count("steps_skipped", count(StepStatus::Skipped))
        .detail("workflow", run.workflow.clone())
        .detail("run_id", run.run_id.clone())
        .detail("run_status", run.status.as_str());
    for step in &run.steps {
        if step.status == StepStatus::Failed {
            report.failure(step.name.clone(), step.error.clone().unwrap_or_default());
        }
    }
    report
}
