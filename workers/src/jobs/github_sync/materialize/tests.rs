//! Materializing against real temporary git repositories.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::jobs::github_sync::test_repo::Repo;

fn git() -> Git {
    Git {
        timeout: Duration::from_secs(30),
        allow_protocol: "file".into(),
    }
}

async fn sync(repo: &Repo, commit: &str, folder: &Path) -> Changes {
    materialize(&git(), &repo.git_dir(), commit, folder)
        .await
        .expect("materialized")
}

fn counts(changes: &Changes) -> [u64; 4] {
    [
        changes.created,
        changes.updated,
        changes.deleted,
        changes.skipped,
    ]
}

/// Every file under `root`: path → (content, executable).
fn snapshot(root: &Path) -> BTreeMap<String, (String, bool)> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, (String, bool)>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let metadata = fs::symlink_metadata(&path).expect("metadata");
            if metadata.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                let content = fs::read_to_string(&path).unwrap_or_default();
                files.insert(
                    relative,
                    (content, metadata.permissions().mode() & 0o111 != 0),
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

#[tokio::test]
async fn creates_updates_deletes_and_skips() {
    let repo = Repo::new();
    repo.write("README.md", "hello\n", false);
    repo.write("bin/run.sh", "#!/bin/sh\necho run\n", true);
    repo.write("docs/guide/intro.md", "intro\n", false);
    repo.write("keep.txt", "same\n", false);
    let first = repo.commit();
    let target = tempfile::tempdir().expect("target");
    let folder = target.path().join("out");

    let changes = sync(&repo, &first, &folder).await;
    assert_eq!(counts(&changes), [4, 0, 0, 0], "{changes:?}");
    assert!(changes.failures.is_empty());
    assert_eq!(snapshot(&folder), snapshot(repo.dir.path()));
    assert!(snapshot(&folder)["bin/run.sh"].1, "executable bit set");

    // Modify one, delete one (its directory becomes empty), add one.
    repo.write("README.md", "hello again\n", false);
    repo.remove("docs/guide/intro.md");
    repo.write("skills/new.md", "new\n", false);
    let second = repo.commit();
    let changes = sync(&repo, &second, &folder).await;
    assert_eq!(counts(&changes), [1, 1, 1, 2], "{changes:?}");
    assert_eq!(snapshot(&folder), snapshot(repo.dir.path()));
    assert!(!folder.join("docs").exists(), "empty directories removed");

    // The same commit again changes nothing.
    let changes = sync(&repo, &second, &folder).await;
    assert_eq!(counts(&changes), [0, 0, 0, 4], "{changes:?}");
}

#[tokio::test]
async fn a_mode_change_alone_is_an_update() {
    let repo = Repo::new();
    repo.write("tool", "#!/bin/sh\n", false);
    let first = repo.commit();
    let target = tempfile::tempdir().expect("target");
    sync(&repo, &first, target.path()).await;
    assert!(!snapshot(target.path())["tool"].1);

    repo.write("tool", "#!/bin/sh\n", true);
    let second = repo.commit();
    let changes = sync(&repo, &second, target.path()).await;
    assert_eq!(counts(&changes), [0, 1, 0, 0], "{changes:?}");
    assert!(snapshot(target.path())["tool"].1);
}

#[tokio::test]
async fn a_directory_where_the_tree_has_a_file_is_a_per_file_failure() {
    let repo = Repo::new();
    repo.write("plugin.json", "{}\n", false);
    repo.write("other.md", "other\n", false);
    let commit = repo.commit();
    let target = tempfile::tempdir().expect("target");
    fs::create_dir_all(target.path().join("plugin.json")).expect("mkdir");
    fs::write(target.path().join("plugin.json/stale.txt"), "stale").expect("write");

    let changes = sync(&repo, &commit, target.path()).await;
    assert_eq!(changes.failures.len(), 1, "{changes:?}");
    assert_eq!(changes.failures[0].0, "plugin.json");
    assert!(changes.failures[0].1.contains("directory"), "{changes:?}");
    assert_eq!(counts(&changes), [1, 0, 1, 0], "{changes:?}");
    // The stale directory was emptied and removed: the next sync succeeds.
    let changes = sync(&repo, &commit, target.path()).await;
    assert!(changes.failures.is_empty(), "{changes:?}");
    assert_eq!(snapshot(target.path()), snapshot(repo.dir.path()));
}

#[tokio::test]
async fn a_symlinked_directory_in_the_target_is_never_written_through() {
    let repo = Repo::new();
    repo.write("docs/a.md", "a\n", false);
    let commit = repo.commit();
    let outside = tempfile::tempdir().expect("outside");
    let target = tempfile::tempdir().expect("target");
    std::os::unix::fs::symlink(outside.path(), target.path().join("docs")).expect("symlink");

    let changes = sync(&repo, &commit, target.path()).await;
    assert_eq!(changes.failures.len(), 1, "{changes:?}");
    assert!(
        changes.failures[0].1.contains("not a directory"),
        "{changes:?}"
    );
    assert!(
        fs::read_dir(outside.path())
            .expect("read_dir")
            .next()
            .is_none(),
        "nothing written outside the target"
    );
    // The link itself is not in the tree: it is deleted, not followed.
    assert!(outside.path().exists());
    assert!(fs::symlink_metadata(target.path().join("docs")).is_err());
}

#[tokio::test]
async fn symlinks_and_submodules_are_skipped() {
    let repo = Repo::new();
    repo.write("real.md", "real\n", false);
    std::os::unix::fs::symlink("real.md", repo.dir.path().join("link.md")).expect("symlink");
    repo.git(&["add", "--all"]);
    let submodule = "1111111111111111111111111111111111111111";
    repo.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{submodule},vendor/lib"),
    ]);
    // Committed as is: `add --all` would drop the gitlink (no work tree).
    repo.git(&["commit", "--quiet", "-m", "links"]);
    let commit = repo.git(&["rev-parse", "HEAD"]);
    let target = tempfile::tempdir().expect("target");

    let changes = sync(&repo, &commit, target.path()).await;
    assert_eq!(counts(&changes), [1, 0, 0, 2], "{changes:?}");
    assert!(changes.failures.is_empty());
    assert!(!target.path().join("link.md").exists());
    assert!(!target.path().join("vendor").exists());
}

#[tokio::test]
async fn hostile_tree_paths_are_failures_and_stay_inside_the_target() {
    let repo = Repo::new();
    let blob = |content: &str| {
        let file = repo.dir.path().join("blob.tmp");
        fs::write(&file, content).expect("write");
        repo.git(&["hash-object", "-w", "blob.tmp"])
    };
    let (escape, ok) = (blob("escaped\n"), blob("ok\n"));
    let mktree = |entries: String| {
        let mut child = Command::new("git")
            .arg("mktree")
            .current_dir(repo.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("git mktree");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(entries.as_bytes())
            .expect("entries");
        let output = child.wait_with_output().expect("mktree output");
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    };
    let parent = mktree(format!("100644 blob {escape}\tescape.txt\n"));
    let tree = mktree(format!(
        "040000 tree {parent}\t..\n100644 blob {escape}\t.git\n100644 blob {escape}\t.GIT\n100644 blob {ok}\tok.txt\n"
    ));
    let commit = repo.git(&["commit-tree", &tree, "-m", "hostile"]);
    let base = tempfile::tempdir().expect("base");
    let folder = base.path().join("target");

    let changes = sync(&repo, &commit, &folder).await;
    assert_eq!(counts(&changes), [1, 0, 0, 0], "{changes:?}");
    let mut failed: Vec<&str> = changes
        .failures
        .iter()
        .map(|(path, _)| path.as_str())
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, ["../escape.txt", ".GIT", ".git"]);
    assert!(!base.path().join("escape.txt").exists());
    assert_eq!(
        fs::read_dir(base.path()).expect("read_dir").count(),
        1,
        "only the target folder"
    );
}

#[test]
fn path_validation() {
    let check = |path: &str, valid: bool| {
        assert_eq!(validate_path(path).is_ok(), valid, "{path:?}");
    };
    check("README.md", true);
    check("a/b/c.txt", true);
    check(".github/workflows/ci.yml", true);
    check(".gitignore", true);
    check("..data", true);
    check("", false);
    check("/etc/passwd", false);
    check("a//b", false);
    check("a/", false);
    check(".", false);
    check("a/./b", false);
    check("../x", false);
    check("a/../../x", false);
    check(".git", false);
    check("sub/.git/config", false);
    check("sub/.Git/hooks/pre-commit", false);
    check("nul\0byte", false);
}
