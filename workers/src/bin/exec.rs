//! `tidegate-exec`: runs plugin commands, synchronously for requests on
//! `tidegate.sync.plugin.>` and queued for deliveries on
//! `tidegate.in.plugin.>`.

use workers::jobs::exec::{Exec, ExecConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    workers::main_for::<ExecConfig, _>("exec", Exec::new).await
}
