//! The plugins folder, loaded at start-up and again on SIGHUP and every
//! `exec.reload_interval`: a changed manifest is read again; an invalid one
//! is reported and the last good version of that plugin keeps serving.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::manifest::{self, MANIFEST_FILE, Plugin};

/// Every plugin currently serving, by name.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    current: RwLock<Arc<BTreeMap<String, Arc<Plugin>>>>,
    /// What each folder looked like at the last scan.
    seen: Mutex<HashMap<PathBuf, Seen>>,
}

#[derive(Debug)]
struct Seen {
    fingerprint: u64,
    /// The last version that loaded, if any.
    good: Option<Arc<Plugin>>,
}

impl Registry {
    /// Loads `dir`; a folder that cannot be read is an error, invalid
    /// plugins are reported and left out.
    pub fn open(dir: &Path) -> anyhow::Result<Registry> {
        anyhow::ensure!(
            dir.is_dir(),
            "exec.plugins_dir: `{}` is not a folder",
            dir.display()
        );
        let registry = Registry {
            dir: dir.to_owned(),
            current: RwLock::new(Arc::new(BTreeMap::new())),
            seen: Mutex::new(HashMap::new()),
        };
        registry.reload();
        Ok(registry)
    }

    /// The plugin named `name`, as of the last scan.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.current
            .read()
            .expect("the registry lock is never poisoned")
            .get(name)
            .cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.current
            .read()
            .expect("the registry lock is never poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Scans the folder once; logs what changed.
    pub fn reload(&self) {
        let mut folders = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.join(MANIFEST_FILE).is_file())
                .collect::<Vec<_>>(),
            Err(error) => {
                error!(dir = %self.dir.display(), error = %error, "cannot read the plugins folder; plugins keep serving as loaded");
                return;
            }
        };
        folders.sort();
        let mut seen = self.seen.lock().expect("the scan lock is never poisoned");
        let mut plugins = BTreeMap::new();
        for folder in &folders {
            let fingerprint = fingerprint(folder);
            let entry = seen.entry(folder.clone()).or_insert(Seen {
                fingerprint: fingerprint.wrapping_add(1),
                good: None,
            });
            if entry.fingerprint != fingerprint {
                entry.fingerprint = fingerprint;
                match manifest::load(folder) {
                    Ok(plugin) => {
                        for warning in &plugin.warnings {
                            warn!(plugin = %plugin.name, warning = %warning, "manifest");
                        }
                        let commands: Vec<&str> =
                            plugin.commands.keys().map(String::as_str).collect();
                        info!(plugin = %plugin.name, commands = %commands.join(" "), reloaded = entry.good.is_some(), "plugin loaded");
                        entry.good = Some(Arc::new(plugin));
                    }
                    Err(why) if entry.good.is_some() => {
                        error!(folder = %folder.display(), error = %why, "invalid manifest; the last good version keeps serving");
                    }
                    Err(why) => {
                        error!(folder = %folder.display(), error = %why, "invalid manifest; plugin not loaded");
                    }
                }
            }
            if let Some(plugin) = &entry.good {
                plugins.insert(plugin.name.clone(), plugin.clone());
            }
        }
        seen.retain(|folder, entry| {
            let kept = folders.contains(folder);
            if !kept && let Some(plugin) = &entry.good {
                info!(plugin = %plugin.name, "plugin removed");
            }
            kept
        });
        *self
            .current
            .write()
            .expect("the registry lock is never poisoned") = Arc::new(plugins);
    }

    /// Reloads every `interval` (none when zero) and on each SIGHUP, until
    /// `shutdown`.
    pub async fn watch(
        self: Arc<Self>,
        mut hangup: Signal,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick(), if !interval.is_zero() => {}
                _ = hangup.recv() => info!("SIGHUP: reloading plugins"),
                () = shutdown.cancelled() => return,
            }
            let registry = self.clone();
            if let Err(error) = tokio::task::spawn_blocking(move || registry.reload()).await {
                error!(error = %error, "reloading plugins failed");
            }
        }
    }
}

/// Changes when the manifest or any top-level file of the folder changes
/// (content of the manifest; name, size, mode and time of the others).
fn fingerprint(folder: &Path) -> u64 {
    let mut hasher = DefaultHasher::new();
    std::fs::read(folder.join(MANIFEST_FILE))
        .unwrap_or_default()
        .hash(&mut hasher);
    if let Ok(entries) = std::fs::read_dir(folder) {
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                Some((
                    entry.file_name(),
                    metadata.len(),
                    std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()),
                    metadata.modified().ok(),
                ))
            })
            .collect();
        files.sort();
        files.hash(&mut hasher);
    }
    hasher.finish()
}
