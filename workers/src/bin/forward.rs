//! `tidegate-forward`: delivers envelopes to internal URLs with retries.

use workers::jobs::forward::{Forward, ForwardConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    workers::main_for::<ForwardConfig, _>("forward", Forward::new).await
}
