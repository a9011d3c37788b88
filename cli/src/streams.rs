//! `tidegate streams ensure`: creates or updates the deliveries stream and
//! the payload bucket from the configuration, exactly as the ingress does
//! at start-up. The ingress never recreates them while it runs (a deleted
//! stream means someone must look); this brings them back, and provisions
//! them with credentials the ingress itself may not have.

use anyhow::Context as _;
use broker::catalog;
use broker::ensure::{ensure_object_store, ensure_stream};
use broker::settings::RawStream;
use ingress::config::Config;
use schemas::streams::{DELIVERIES_STREAM, PAYLOADS_BUCKET};

use crate::common::Common;

#[derive(Debug, clap::Args)]
pub(crate) struct StreamsArgs {
    #[command(subcommand)]
    command: StreamsCommand,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Subcommand)]
enum StreamsCommand {
    /// Create or update TIDEGATE_DELIVERIES and TIDEGATE_PAYLOADS from the
    /// configuration's [stream] and [jetstream] settings.
    Ensure,
}

pub(crate) async fn run(args: StreamsArgs) -> anyhow::Result<()> {
    let StreamsCommand::Ensure = args.command;
    let common = &args.common;
    let file = common.config.is_file().then_some(common.config.as_path());
    let figment = Config::figment(file);
    let raw: RawStream = if figment.find_value("stream").is_ok() {
        figment
            .focus("stream")
            .extract()
            .with_context(|| format!("reading [stream] from {}", common.config.display()))?
    } else {
        RawStream::default()
    };
    let mut problems = Vec::new();
    let settings = raw.compile(&mut problems);
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
    let (connection, jetstream) = common.connection().await?;
    let placement = jetstream.placement(&connection.client.server_info());
    ensure_stream(
        &connection.jetstream,
        catalog::deliveries(&settings),
        placement,
    )
    .await?;
    ensure_object_store(
        &connection.jetstream,
        catalog::payloads(&settings),
        placement,
    )
    .await?;
    println!(
        "{DELIVERIES_STREAM} and {PAYLOADS_BUCKET} are in place ({} replica{})",
        placement.replicas,
        if placement.replicas == 1 { "" } else { "s" }
    );
    Ok(())
}
