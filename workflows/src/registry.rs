//! The set of workflows in a folder: loaded once, then rescanned (by the
//! watcher) so a new or changed file takes effect without a restart. A
//! file that becomes invalid is reported and its last good version keeps
//! serving; a deleted file's workflow goes away.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tracing::{error, info, warn};

use crate::definition::{MAX_FILE_BYTES, Workflow};

/// A workflow and the file text it came from.
#[derive(Debug, PartialEq)]
pub struct Loaded {
    pub workflow: Workflow,
    /// The file's text (runs keep it, so a resumed run follows the version
    /// it started with).
    pub source: String,
    pub file: PathBuf,
}

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub error: String,
    /// Whether an earlier good version of the file is still serving.
    pub serving_last_good: bool,
}

/// What the registry holds at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The folder has been read at least once.
    pub loaded: bool,
    /// Why the folder cannot be read (while not loaded, or since a rescan
    /// failed: the last set keeps serving).
    pub folder_error: Option<String>,
    pub workflows: BTreeMap<String, Arc<Loaded>>,
    pub problems: Vec<Problem>,
}

/// The answer for one workflow name.
#[derive(Debug)]
pub enum Lookup {
    /// The folder has never been read: the workflow system is not ready.
    NotReady(String),
    Unknown,
    Disabled(Arc<Loaded>),
    Enabled(Arc<Loaded>),
}

/// A folder of workflow files. Cheap to read from any thread; `scan`
/// replaces the snapshot as a whole.
#[derive(Debug)]
pub struct Registry {
    folder: PathBuf,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Per file: its modification time and length when last read, and the
    /// last good workflow it held.
    files: Mutex<HashMap<PathBuf, FileState>>,
}

#[derive(Debug, Clone)]
struct FileState {
    stamp: (Option<SystemTime>, u64),
    good: Option<Arc<Loaded>>,
    error: Option<String>,
}

impl Registry {
    /// A registry for `folder` that has not read it yet (`Lookup::NotReady`
    /// until the first `scan`).
    pub fn new(folder: impl Into<PathBuf>) -> Registry {
        Registry {
            folder: folder.into(),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// A registry that has read `folder` once.
    pub fn load(folder: impl Into<PathBuf>) -> Registry {
        let registry = Registry::new(folder);
        registry.scan();
        registry
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .expect("the snapshot lock is never held across a panic")
            .clone()
    }

    pub fn lookup(&self, name: &str) -> Lookup {
        let snapshot = self.snapshot();
        if !snapshot.loaded {
            let why = snapshot
                .folder_error
                .clone()
                .unwrap_or_else(|| "the workflows folder has not been read yet".to_owned());
            return Lookup::NotReady(why);
        }
        match snapshot.workflows.get(name) {
            None => Lookup::Unknown,
            Some(loaded) if loaded.workflow.enabled => Lookup::Enabled(loaded.clone()),
            Some(loaded) => Lookup::Disabled(loaded.clone()),
        }
    }

    /// Reads the folder again: unchanged files (same modification time and
    /// length) are kept without reading them, changed ones parsed; returns
    /// whether anything changed. Problems are logged when they first
    /// appear.
    pub fn scan(&self) -> bool {
        self.scan_files(false)
    }

    /// Like [`scan`](Self::scan), but reads every file again whatever its
    /// time stamp (SIGHUP: an edit within the file system's time
    /// resolution is not missed).
    pub fn reload(&self) -> bool {
        self.scan_files(true)
    }

    fn scan_files(&self, force: bool) -> bool {
        let mut files = self
            .files
            .lock()
            .expect("the files lock is never held across a panic");
        let previous = self.snapshot();
        let paths = match workflow_files(&self.folder) {
            Ok(paths) => paths,
            Err(why) => {
                if previous.folder_error.as_deref() != Some(why.as_str()) {
                    error!(folder = %self.folder.display(), error = %why, "cannot read the workflows folder");
                }
                let next = Snapshot {
                    loaded: previous.loaded,
                    folder_error: Some(why),
                    workflows: previous.workflows.clone(),
                    problems: previous.problems.clone(),
                };
                self.replace(next);
                return false;
            }
        };
        let mut changed = !previous.loaded || previous.folder_error.is_some();
        files.retain(|path, _| {
            let kept = paths.contains(path);
            if !kept {
                info!(file = %path.display(), "workflow file removed");
                changed = true;
            }
            kept
        });
        for path in &paths {
            let stamp = stamp(path);
            if !force && files.get(path).is_some_and(|state| state.stamp == stamp) {
                continue;
            }
            changed = true;
            let previous_good = files.get(path).and_then(|state| state.good.clone());
            let state = match read(path) {
                Ok(loaded) => {
                    info!(file = %path.display(), workflow = %loaded.workflow.name, enabled = loaded.workflow.enabled, "workflow loaded");
                    FileState {
                        stamp,
                        good: Some(Arc::new(loaded)),
                        error: None,
                    }
                }
                Err(why) => {
                    if previous_good.is_some() {
                        error!(file = %path.display(), error = %why, "invalid workflow file; its last good version keeps serving");
                    } else {
                        error!(file = %path.display(), error = %why, "invalid workflow file; not served");
                    }
                    FileState {
                        stamp,
                        good: previous_good,
                        error: Some(why),
                    }
                }
            };
            files.insert(path.clone(), state);
        }
        if !changed {
            return false;
        }
        let mut workflows: BTreeMap<String, Arc<Loaded>> = BTreeMap::new();
        let mut problems = Vec::new();
        for path in &paths {
            let Some(state) = files.get(path) else {
                continue;
            };
            if let Some(error) = &state.error {
                problems.push(Problem {
                    file: path.clone(),
                    error: error.clone(),
                    serving_last_good: state.good.is_some(),
                });
            }
            let Some(good) = &state.good else { continue };
            let name = good.workflow.name.clone();
            if let Some(first) = workflows.get(&name) {
                let why = format!(
                    "workflow `{name}` is also defined by {}; that file wins",
                    first.file.display()
                );
                warn!(file = %path.display(), error = %why, "duplicate workflow");
                problems.push(Problem {
                    file: path.clone(),
                    error: why,
                    serving_last_good: false,
                });
                continue;
            }
            workflows.insert(name, good.clone());
        }
        self.replace(Snapshot {
            loaded: true,
            folder_error: None,
            workflows,
            problems,
        });
        true
    }

    fn replace(&self, snapshot: Snapshot) {
        *self
            .snapshot
            .write()
            .expect("the snapshot lock is never held across a panic") = Arc::new(snapshot);
    }
}

/// `*.yaml` and `*.yml` files directly in `folder`, sorted.
fn workflow_files(folder: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(folder)
        .map_err(|error| format!("reading {}: {error}", folder.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
                && path.is_file()
        })
        .collect();
    paths.sort();
    Ok(paths)
}

fn stamp(path: &Path) -> (Option<SystemTime>, u64) {
    match std::fs::metadata(path) {
        Ok(metadata) => (metadata.modified().ok(), metadata.len()),
        Err(_) => (None, 0),
    }
}

fn read(path: &Path) -> Result<Loaded, String> {
    let size = std::fs::metadata(path)
        .map_err(|error| format!("reading: {error}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "the file has {size} bytes; a workflow file may have at most {MAX_FILE_BYTES}"
        ));
    }
    let source = std::fs::read_to_string(path).map_err(|error| format!("reading: {error}"))?;
    let stem = path.file_stem().and_then(|stem| stem.to_str());
    let workflow = Workflow::parse(&source, stem).map_err(|error| error.to_string())?;
    Ok(Loaded {
        workflow,
        source,
        file: path.to_owned(),
    })
}

#[cfg(test)]
mod tests;
