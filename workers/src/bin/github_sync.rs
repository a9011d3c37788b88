//! `tidegate-github-sync`: syncs pushed commits of tracked repositories into
//! local folders and records GitHub App installation state.

use workers::jobs::github_sync::{GithubSync, GithubSyncConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    workers::main_for::<GithubSyncConfig, _>("github_sync", GithubSync::new).await
}
