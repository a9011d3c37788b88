//! Temporary git work repositories for the sync's unit tests, built with
//! the git CLI.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;

/// A work repository whose commits the tests sync.
pub(super) struct Repo {
    pub(super) dir: tempfile::TempDir,
}

impl Repo {
    pub(super) fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    pub(super) fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args([
                "-c",
                "user.name=Sync Test",
                "-c",
                "user.email=sync@example.com",
            ])
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("GIT_DIR")
            .output()
            .expect("running git");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    pub(super) fn write(&self, path: &str, content: &str, executable: bool) {
        let file = self.dir.path().join(path);
        fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        fs::write(&file, content).expect("write");
        let mode = if executable { 0o755 } else { 0o644 };
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    pub(super) fn remove(&self, path: &str) {
        fs::remove_file(self.dir.path().join(path)).expect("remove");
    }

    pub(super) fn commit(&self) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", "change"]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub(super) fn git_dir(&self) -> PathBuf {
        self.dir.path().join(".git")
    }
}
