//! Approvals expire: every `workflow.sweep_interval`, each replica looks
//! at the pending approvals and cancels runs whose approval is past its
//! `expires_at` (compare-and-set: one replica wins, the others see a
//! settled run). Pending entries whose run was settled meanwhile are
//! removed.

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::runner::Runner;

pub async fn run(runner: Arc<Runner>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(runner.settings.sweep_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let pending = match runner.store.pending().await {
            Ok(pending) => pending,
            Err(error) => {
                warn!(error = %error, "listing pending approvals failed");
                continue;
            }
        };
        for (key, approval) in pending {
            let due = humantime::parse_rfc3339(&approval.expires_at)
                .map_or(true, |expires| expires <= SystemTime::now());
            // Not due yet: only a settled run's leftover entry needs work.
            let result = if due {
                runner.expire(&key).await
            } else {
                runner.tidy(&key).await
            };
            if let Err(error) = result {
                warn!(run_id = %approval.run_id, error = %error, "checking a pending approval failed");
            }
        }
    }
}
