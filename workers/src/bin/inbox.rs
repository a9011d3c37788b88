//! `tidegate-inbox`: writes each delivery routed to an agent into the
//! agent's `inbox/webhooks/` folder and runs its notify command.

use workers::jobs::inbox::{Inbox, InboxConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    workers::main_for::<InboxConfig, _>("inbox", Inbox::new).await
}
