//! Run records and pending approvals in JetStream KV. Every write of a run
//! is a compare-and-set on the revision it was read at, so two replicas
//! can never both move one run forward.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures::TryStreamExt;
use schemas::{PendingApproval, WorkflowRun};

/// Why a read or write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The broker did not answer or refused: try again later.
    #[error("the workflow buckets are unavailable: {0}")]
    Broker(String),
    /// Someone else wrote the record since it was read.
    #[error("the run record changed meanwhile")]
    Conflict,
    /// The stored value is not a record of ours.
    #[error("the stored record cannot be read: {0}")]
    Invalid(String),
}

/// The two buckets.
#[derive(Clone)]
pub struct Store {
    pub runs: kv::Store,
    pub approvals: kv::Store,
    /// Bound on every KV call.
    pub timeout: Duration,
}

impl Store {
    /// The run and the revision it was read at.
    pub async fn load(&self, key: &str) -> Result<Option<(WorkflowRun, u64)>, StoreError> {
        let entry = self
            .bounded(self.runs.entry(key))
            .await?
            .map_err(|error| StoreError::Broker(error.to_string()))?;
        match entry {
            Some(entry) if entry.operation == Operation::Put => {
                let run = serde_json::from_slice(&entry.value)
                    .map_err(|error| StoreError::Invalid(error.to_string()))?;
                Ok(Some((run, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Creates the record; `Conflict` when it exists already.
    pub async fn create(&self, key: &str, run: &WorkflowRun) -> Result<u64, StoreError> {
        let value = serde_json::to_vec(run).expect("a run record always serializes");
        match self.bounded(self.runs.create(key, value.into())).await? {
            Ok(revision) => Ok(revision),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                Err(StoreError::Conflict)
            }
            Err(error) => Err(StoreError::Broker(error.to_string())),
        }
    }

    /// Writes the record if it is still at `revision`; the new revision.
    pub async fn save(
        &self,
        key: &str,
        run: &WorkflowRun,
        revision: u64,
    ) -> Result<u64, StoreError> {
        let value = serde_json::to_vec(run).expect("a run record always serializes");
        match self
            .bounded(self.runs.update(key, value.into(), revision))
            .await?
        {
            Ok(revision) => Ok(revision),
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(StoreError::Conflict)
            }
            Err(error) => Err(StoreError::Broker(error.to_string())),
        }
    }

    pub async fn put_approval(
        &self,
        key: &str,
        pending: &PendingApproval,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_vec(pending).expect("an approval always serializes");
        self.bounded(self.approvals.put(key, value.into()))
            .await?
            .map(drop)
            .map_err(|error| StoreError::Broker(error.to_string()))
    }

    pub async fn delete_approval(&self, key: &str) -> Result<(), StoreError> {
        self.bounded(self.approvals.delete(key))
            .await?
            .map_err(|error| StoreError::Broker(error.to_string()))
    }

    /// Every pending approval, by run key.
    pub async fn pending(&self) -> Result<Vec<(String, PendingApproval)>, StoreError> {
        let keys: Vec<String> = self
            .bounded(async {
                let keys = self
                    .approvals
                    .keys()
                    .await
                    .map_err(|error| StoreError::Broker(error.to_string()))?;
                keys.try_collect()
                    .await
                    .map_err(|error| StoreError::Broker(error.to_string()))
            })
            .await??;
        let mut pending = Vec::new();
        for key in keys {
            let entry = self
                .bounded(self.approvals.entry(key.as_str()))
                .await?
                .map_err(|error| StoreError::Broker(error.to_string()))?;
            if let Some(entry) = entry.filter(|entry| entry.operation == Operation::Put)
                && let Ok(approval) = serde_json::from_slice(&entry.value)
            {
                pending.push((key, approval));
            }
        }
        Ok(pending)
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = T>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Broker(format!("no answer within {:?}", self.timeout)))
    }
}
