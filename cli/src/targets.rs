//! `tidegate targets`: list, add and remove the live connector sync
//! targets in the KV bucket `tidegate_sync_targets` (sync target v1, key =
//! target id). tidegate-github-sync watches the bucket and applies changes
//! without a restart. A target is checked with the same rules the worker
//! applies (`schemas::SyncTarget::problems`) and against the other live
//! targets; the worker also checks it against its TOML targets and its
//! `state_dir`, and logs a target it leaves out.

use anyhow::Context as _;
use async_nats::jetstream::kv;
use broker::catalog;
use broker::ensure::ensure_key_value;
use futures::TryStreamExt as _;
use schemas::SyncTarget;
use schemas::streams::SYNC_TARGETS_BUCKET;

use crate::common::Common;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub(crate) struct TargetsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: TargetsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TargetsCommand {
    /// Every live target, with the problems that keep an invalid one out.
    List,
    /// Add a target (or replace one with --replace).
    Add(AddArgs),
    /// Remove a target: its pushes are no longer synced (the folder stays).
    Remove {
        /// The target id.
        id: String,
    },
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// Target id (connectorTargetId): letters, digits, -, _, .
    #[arg(long)]
    id: String,
    /// Connector instance id (connectorInstanceId).
    #[arg(long)]
    instance: String,
    /// An owner/name pattern (`*` within a segment); repeat for more.
    #[arg(long = "repository", required = true, value_name = "OWNER/NAME")]
    repositories: Vec<String>,
    /// A branch pattern (`main`, `release/*`); repeat for more.
    #[arg(long = "branch", required = true, value_name = "PATTERN")]
    branches: Vec<String>,
    /// The folder on the worker's host; may use {owner} and {name}.
    #[arg(long)]
    path: String,
    /// Record pushes as skipped instead of syncing them.
    #[arg(long)]
    no_auto_import: bool,
    /// Overwrite a target with the same id.
    #[arg(long)]
    replace: bool,
}

pub(crate) async fn run(args: TargetsArgs) -> anyhow::Result<()> {
    let (connection, jetstream_settings) = args.common.connection().await?;
    let placement = jetstream_settings.placement(&connection.client.server_info());
    let store = ensure_key_value(&connection.jetstream, catalog::sync_targets(), placement)
        .await
        .with_context(|| format!("opening the KV bucket {SYNC_TARGETS_BUCKET}"))?;
    match args.command {
        TargetsCommand::List => list(&store, args.common.json).await,
        TargetsCommand::Add(add_args) => add(&store, add_args, args.common.json).await,
        TargetsCommand::Remove { id } => remove(&store, &id, args.common.json).await,
    }
}

/// One stored record: the target (when it parses), its revision, and what
/// is wrong with it.
struct Stored {
    key: String,
    revision: u64,
    target: Option<SyncTarget>,
    problems: Vec<String>,
}

/// Every record, in key order (the order the worker matches live targets
/// in), each checked as the worker checks it.
async fn read_all(store: &kv::Store) -> anyhow::Result<Vec<Stored>> {
    let mut keys: Vec<String> = store
        .keys()
        .await
        .context("listing targets")?
        .try_collect()
        .await
        .context("listing targets")?;
    keys.sort();
    let mut stored: Vec<Stored> = Vec::new();
    for key in keys {
        let Some(entry) = store
            .entry(key.as_str())
            .await
            .context("reading a target")?
        else {
            continue;
        };
        if entry.operation != kv::Operation::Put {
            continue;
        }
        let (target, mut problems) = match serde_json::from_slice::<SyncTarget>(&entry.value) {
            Ok(target) => {
                let problems = target.problems(&key);
                (Some(target), problems)
            }
            Err(error) => (None, vec![format!("{key}: not a sync target v1: {error}")]),
        };
        if let Some(target) = &target {
            if target.id != key {
                problems.push(format!("{key}.id: `{}` is not its key", target.id));
            }
            problems.extend(
                stored
                    .iter()
                    .filter_map(|earlier| {
                        earlier
                            .target
                            .as_ref()
                            .filter(|_| earlier.problems.is_empty())
                    })
                    .filter_map(|earlier| target.conflict(earlier))
                    .map(|why| format!("{key}: {why}")),
            );
        }
        stored.push(Stored {
            key,
            revision: entry.revision,
            target,
            problems,
        });
    }
    Ok(stored)
}

async fn list(store: &kv::Store, json: bool) -> anyhow::Result<()> {
    let stored = read_all(store).await?;
    if json {
        for record in &stored {
            let line = serde_json::json!({
                "id": record.key,
                "revision": record.revision,
                "target": record.target,
                "problems": record.problems,
            });
            println!("{line}");
        }
        return Ok(());
    }
    if stored.is_empty() {
        println!("no live targets in {SYNC_TARGETS_BUCKET}");
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID",
        "INSTANCE",
        "REPOSITORIES",
        "BRANCHES",
        "AUTO-IMPORT",
        "PATH",
        "STATE",
    ]);
    for record in &stored {
        let state = if record.problems.is_empty() {
            "valid".to_owned()
        } else {
            format!("invalid: {}", record.problems.join("; "))
        };
        let row = match &record.target {
            Some(target) => vec![
                record.key.clone(),
                target.instance.clone(),
                target.repositories.join(","),
                target.branches.join(","),
                if target.auto_import { "on" } else { "off" }.to_owned(),
                target.path.clone(),
                state,
            ],
            None => vec![
                record.key.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                state,
            ],
        };
        table.row(row);
    }
    print!("{}", table.render());
    Ok(())
}

async fn add(store: &kv::Store, args: AddArgs, json: bool) -> anyhow::Result<()> {
    let target = SyncTarget {
        id: args.id,
        instance: args.instance,
        repositories: args.repositories,
        branches: args.branches,
        path: args.path,
        auto_import: !args.no_auto_import,
    };
    let mut problems = target.problems("target");
    let others = read_all(store).await?;
    problems.extend(
        others
            .iter()
            .filter(|other| other.key != target.id || !args.replace)
            .filter_map(|other| other.target.as_ref())
            .filter_map(|other| target.conflict(other))
            .map(|why| format!("target: {why}")),
    );
    anyhow::ensure!(
        problems.is_empty(),
        "invalid target:\n  - {}{}",
        problems.join("\n  - "),
        if others.iter().any(|other| other.key == target.id) && !args.replace {
            "\n(--replace overwrites a target with the same id)"
        } else {
            ""
        }
    );
    let value = serde_json::to_vec(&target)?;
    let revision = if args.replace {
        store.put(target.id.as_str(), value.into()).await?
    } else {
        store
            .create(target.id.as_str(), value.into())
            .await
            .with_context(|| format!("adding target {}", target.id))?
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "id": target.id, "revision": revision, "target": target })
        );
    } else {
        println!(
            "target {} stored in {SYNC_TARGETS_BUCKET} (revision {revision}); running workers apply it now",
            target.id
        );
    }
    Ok(())
}

async fn remove(store: &kv::Store, id: &str, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(schemas::sync_target::is_id(id), "`{id}` is not a target id");
    let present = store.get(id).await.context("reading the target")?.is_some();
    anyhow::ensure!(present, "no live target `{id}` in {SYNC_TARGETS_BUCKET}");
    store.delete(id).await.context("removing the target")?;
    if json {
        println!("{}", serde_json::json!({ "id": id, "removed": true }));
    } else {
        println!(
            "target {id} removed; running workers stop syncing its pushes now (its folder is left as it is)"
        );
    }
    Ok(())
}
