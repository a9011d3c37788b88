//! Makes a target folder equal a commit's tree: files are created or
//! updated atomically (temp file + rename), files absent from the tree are
//! deleted. A path that fails is a per-file failure; nothing is ever
//! written outside the folder.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use super::git::{Git, GitError};

/// What a sync did to a folder.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Changes {
    pub(super) created: u64,
    pub(super) updated: u64,
    pub(super) deleted: u64,
    /// Unchanged files, symlinks and submodules.
    pub(super) skipped: u64,
    /// `(path, error)` for each path that could not be synced.
    pub(super) failures: Vec<(String, String)>,
}

/// Why a folder could not be synced at all (as opposed to one file).
#[derive(Debug, thiserror::Error)]
pub(super) enum MaterializeError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("cannot create the target folder {folder}: {source}")]
    Folder { folder: String, source: io::Error },
    #[error("a file task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What writing one file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileChange {
    Created,
    Updated,
    Unchanged,
}

/// Syncs `folder` to `commit`'s tree from `repository`: writes first (new
/// content appears as early as possible), deletions last.
pub(super) async fn materialize(
    git: &Git,
    repository: &Path,
    commit: &str,
    folder: &Path,
) -> Result<Changes, MaterializeError> {
    let entries = git.ls_tree(repository, commit).await?;
    tokio::fs::create_dir_all(folder)
        .await
        .map_err(|source| MaterializeError::Folder {
            folder: folder.display().to_string(),
            source,
        })?;
    let mut changes = Changes::default();
    // Paths in the tree: never deleted, even when writing them failed.
    let mut keep = HashSet::new();
    let mut blobs = git.blobs(repository)?;
    for entry in entries {
        let path = match String::from_utf8(entry.path) {
            Ok(path) => path,
            Err(error) => {
                let lossy = String::from_utf8_lossy(error.as_bytes()).into_owned();
                changes.failures.push((lossy, "path is not UTF-8".into()));
                continue;
            }
        };
        if let Err(reason) = validate_path(&path) {
            changes.failures.push((path, reason));
            continue;
        }
        let executable = match entry.mode.as_str() {
            "100644" => false,
            "100755" => true,
            // Symlinks and submodules are not materialized.
            "120000" | "160000" => {
                changes.skipped += 1;
                keep.insert(path);
                continue;
            }
            other => {
                changes
                    .failures
                    .push((path, format!("unsupported tree entry mode {other}")));
                continue;
            }
        };
        let content = blobs.read(&entry.object).await?;
        let root = folder.to_path_buf();
        let relative = path.clone();
        let written =
            tokio::task::spawn_blocking(move || write_file(&root, &relative, &content, executable))
                .await?;
        match written {
            Ok(FileChange::Created) => changes.created += 1,
            Ok(FileChange::Updated) => changes.updated += 1,
            Ok(FileChange::Unchanged) => changes.skipped += 1,
            Err(reason) => changes.failures.push((path.clone(), reason)),
        }
        keep.insert(path);
    }
    drop(blobs);
    let root = folder.to_path_buf();
    let pruned = tokio::task::spawn_blocking(move || prune(&root, &keep)).await?;
    changes.deleted = pruned.deleted;
    changes.failures.extend(pruned.failures);
    Ok(changes)
}

/// A tree path is written only when every component is a plain name: not
/// empty, not `.` or `..`, not `.git` (in any case).
pub(super) fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err("empty path component".into());
        }
        if component == "." || component == ".." {
            return Err(format!("`{component}` is not allowed in a path"));
        }
        if component.eq_ignore_ascii_case(".git") {
            return Err("`.git` is not allowed in a path".into());
        }
        if component.contains('\0') {
            return Err("NUL is not allowed in a path".into());
        }
    }
    Ok(())
}

/// Writes one validated `relative` path under `root`. Parent directories
/// are created one by one and must be real directories (never symlinks),
/// so a write cannot leave the folder.
fn write_file(
    root: &Path,
    relative: &str,
    content: &[u8],
    executable: bool,
) -> Result<FileChange, String> {
    let components: Vec<&str> = relative.split('/').collect();
    let (name, parents) = components
        .split_last()
        .expect("a validated path has a component");
    let mut directory = root.to_path_buf();
    for (index, parent) in parents.iter().enumerate() {
        directory.push(parent);
        let shown = || components[..=index].join("/");
        match fs::symlink_metadata(&directory) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => return Err(format!("`{}` is not a directory in the target", shown())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => fs::create_dir(&directory)
                .map_err(|error| format!("creating directory `{}`: {error}", shown()))?,
            Err(error) => return Err(format!("reading `{}`: {error}", shown())),
        }
    }
    let destination = directory.join(name);
    match fs::symlink_metadata(&destination) {
        Ok(metadata) if metadata.is_dir() => {
            Err("a directory is in the target where the tree has a file".into())
        }
        Ok(metadata) if metadata.is_file() => {
            let same = metadata.len() == content.len() as u64
                && fs::read(&destination).map_err(|error| format!("reading: {error}"))? == content;
            if !same {
                replace(&directory, &destination, content, executable)?;
                Ok(FileChange::Updated)
            } else if is_executable(&metadata) != executable {
                set_mode(&destination, executable)
                    .map_err(|error| format!("setting permissions: {error}"))?;
                Ok(FileChange::Updated)
            } else {
                Ok(FileChange::Unchanged)
            }
        }
        // A symlink or special file becomes a regular file (rename replaces
        // the link itself, never what it points to).
        Ok(_) => {
            replace(&directory, &destination, content, executable)?;
            Ok(FileChange::Updated)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            replace(&directory, &destination, content, executable)?;
            Ok(FileChange::Created)
        }
        Err(error) => Err(format!("reading: {error}")),
    }
}

/// Temp file in the same directory, then rename: readers see the old
/// content or the new, never a partial file. Not fsynced: after a power
/// loss the next sync of the folder compares and rewrites.
fn replace(
    directory: &Path,
    destination: &Path,
    content: &[u8],
    executable: bool,
) -> Result<(), String> {
    let temp = directory.join(format!(".tidegate-{:016x}.tmp", fastrand::u64(..)));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(content)?;
            drop(file);
            set_mode(&temp, executable)?;
            fs::rename(&temp, destination)
        });
    written.map_err(|error| {
        // Best effort: a leftover temp file is deleted by the next sync.
        drop(fs::remove_file(&temp));
        format!("writing: {error}")
    })
}

#[cfg(unix)]
fn set_mode(path: &Path, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _executable: bool) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn is_executable(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &fs::Metadata) -> bool {
    false
}

#[derive(Debug, Default)]
struct Pruned {
    deleted: u64,
    failures: Vec<(String, String)>,
}

/// Deletes every file, symlink or special file under `root` whose path is
/// not in `keep`, then directories left empty by that. `.git` entries are
/// never touched.
fn prune(root: &Path, keep: &HashSet<String>) -> Pruned {
    let mut pruned = Pruned::default();
    prune_directory(root, "", keep, &mut pruned);
    pruned
}

/// Returns whether anything below `directory` was deleted.
fn prune_directory(
    directory: &Path,
    prefix: &str,
    keep: &HashSet<String>,
    pruned: &mut Pruned,
) -> bool {
    let shown = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        }
    };
    let entries = match fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) => {
            pruned
                .failures
                .push((shown("."), format!("listing for deletion: {error}")));
            return false;
        }
    };
    let mut deleted_any = false;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                pruned
                    .failures
                    .push((shown("."), format!("listing for deletion: {error}")));
                continue;
            }
        };
        let name = entry.file_name();
        let relative = shown(&name.to_string_lossy());
        if name.to_string_lossy().eq_ignore_ascii_case(".git") {
            continue;
        }
        let path = entry.path();
        // `DirEntry::file_type` does not follow symlinks.
        let is_directory = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if is_directory {
            if prune_directory(&path, &relative, keep, pruned) {
                deleted_any = true;
                let empty = fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_none());
                if empty && let Err(error) = fs::remove_dir(&path) {
                    pruned
                        .failures
                        .push((relative, format!("deleting empty directory: {error}")));
                }
            }
            continue;
        }
        // A non-UTF-8 name can never be in the tree (tree paths are UTF-8).
        let in_tree = name.to_str().is_some() && keep.contains(&relative);
        if !in_tree {
            match fs::remove_file(&path) {
                Ok(()) => {
                    pruned.deleted += 1;
                    deleted_any = true;
                }
                Err(error) => pruned
                    .failures
                    .push((relative, format!("deleting: {error}"))),
            }
        }
    }
    deleted_any
}

#[cfg(test)]
mod tests;
