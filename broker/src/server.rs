//! Finding a nats-server binary for dev mode and the test harness, the
//! same way `deploy/tools/install.sh` installs one: `TIDEGATE_NATS_SERVER`,
//! then the project's `.tools/bin/nats-server`, then `nats-server` on
//! `PATH` (and Debian's `/usr/sbin`) — each only if it is at least
//! [`MIN_SERVER_VERSION`](crate::MIN_SERVER_VERSION).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::connect::{MIN_SERVER_VERSION, parse_version};

/// Variable naming a nats-server binary to use instead of searching.
pub const SERVER_VARIABLE: &str = "TIDEGATE_NATS_SERVER";

/// A found binary and its version.
#[derive(Debug, Clone)]
pub struct FoundServer {
    pub path: PathBuf,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error(
        "no nats-server >= {minimum} found ({tried}); run deploy/tools/install.sh, which installs 2.15.1 into .tools/bin, or set {SERVER_VARIABLE}"
    )]
    NotFound { minimum: String, tried: String },
}

/// The first supported binary: `$TIDEGATE_NATS_SERVER`, then
/// `<root>/.tools/bin/nats-server` for each of `roots`, then `PATH`.
pub fn locate(roots: &[&Path]) -> Result<FoundServer, LocateError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os(SERVER_VARIABLE) {
        candidates.push(PathBuf::from(path));
    } else {
        candidates.extend(roots.iter().map(|root| root.join(".tools/bin/nats-server")));
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("nats-server")));
        }
        candidates.push(PathBuf::from("/usr/sbin/nats-server"));
    }
    let mut tried = Vec::new();
    for path in candidates {
        if !path.is_file() {
            continue;
        }
        match version_of(&path) {
            Some(version)
                if parse_version(&version).is_some_and(|found| found >= MIN_SERVER_VERSION) =>
            {
                return Ok(FoundServer { path, version });
            }
            Some(version) => tried.push(format!("{} is {version}", path.display())),
            None => tried.push(format!("{} does not run", path.display())),
        }
    }
    let (major, minor, patch) = MIN_SERVER_VERSION;
    Err(LocateError::NotFound {
        minimum: format!("{major}.{minor}.{patch}"),
        tried: if tried.is_empty() {
            "none installed".to_owned()
        } else {
            tried.join("; ")
        },
    })
}

/// `nats-server --version` → `2.15.1`.
pub fn version_of(path: &Path) -> Option<String> {
    let output = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().last()?.trim_start_matches('v');
    parse_version(version).map(|_| version.to_owned())
}
