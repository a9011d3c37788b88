//! The registry: lookups by state, reloads that pick up new files, and a
//! broken file that keeps its last good version serving.

use std::path::Path;

use super::*;

fn write(folder: &Path, file: &str, text: &str) {
    std::fs::write(folder.join(file), text).expect("writing a workflow file");
}

fn workflow(name: &str, enabled: bool, message: &str) -> String {
    format!(
        "name: {name}\nenabled: {enabled}\nsteps:\n  - name: say\n    tool: notify\n    args:\n      message: \"{message}\"\n"
    )
}

fn message(registry: &Registry, name: &str) -> String {
    match registry.lookup(name) {
        Lookup::Enabled(loaded) => loaded.workflow.steps[0].args["message"]
            .as_str()
            .expect("a string")
            .to_owned(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_missing_folder_is_not_ready_until_it_appears() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("workflows");
    let registry = Registry::new(&folder);
    assert!(matches!(registry.lookup("a"), Lookup::NotReady(_)));
    registry.scan();
    match registry.lookup("a") {
        Lookup::NotReady(why) => assert!(why.contains("workflows"), "{why}"),
        other => panic!("{other:?}"),
    }
    std::fs::create_dir(&folder).expect("mkdir");
    write(&folder, "a.yaml", &workflow("a", true, "hi"));
    assert!(registry.scan());
    assert_eq!(message(&registry, "a"), "hi");
}

#[test]
fn lookups_tell_unknown_disabled_and_enabled_apart() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "on.yaml", &workflow("on", true, "x"));
    write(dir.path(), "off.yml", &workflow("off", false, "x"));
    write(dir.path(), "notes.txt", "not a workflow");
    let registry = Registry::load(dir.path());
    assert!(matches!(registry.lookup("on"), Lookup::Enabled(_)));
    assert!(matches!(registry.lookup("off"), Lookup::Disabled(_)));
    assert!(matches!(registry.lookup("notes"), Lookup::Unknown));
    assert!(matches!(registry.lookup("missing"), Lookup::Unknown));
    assert!(registry.snapshot().problems.is_empty());
}

#[test]
fn a_broken_file_keeps_its_last_good_version_and_new_files_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "a.yaml", &workflow("a", true, "first"));
    let registry = Registry::load(dir.path());
    assert_eq!(message(&registry, "a"), "first");
    assert!(!registry.scan(), "nothing changed");

    write(dir.path(), "a.yaml", "name: a\nsteps: [oops\n");
    write(dir.path(), "b.yaml", &workflow("b", true, "new"));
    write(dir.path(), "c.yaml", "name: c\nsteps: []\n");
    assert!(registry.scan());
    assert_eq!(message(&registry, "a"), "first", "last good version serves");
    assert_eq!(message(&registry, "b"), "new");
    assert!(matches!(registry.lookup("c"), Lookup::Unknown));
    let problems = registry.snapshot().problems.clone();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].file.ends_with("a.yaml") && problems[0].serving_last_good);
    assert!(problems[1].file.ends_with("c.yaml") && !problems[1].serving_last_good);

    write(dir.path(), "a.yaml", &workflow("a", true, "second, fixed"));
    registry.scan();
    assert_eq!(message(&registry, "a"), "second, fixed");
    assert_eq!(registry.snapshot().problems.len(), 1);

    std::fs::remove_file(dir.path().join("b.yaml")).expect("rm");
    registry.scan();
    assert!(matches!(registry.lookup("b"), Lookup::Unknown));
}

#[test]
fn reload_reads_files_whose_stamp_did_not_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a.yaml");
    write(dir.path(), "a.yaml", &workflow("a", true, "one"));
    let registry = Registry::load(dir.path());
    let modified = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .expect("mtime");
    // Same length, same time stamp: only a forced reload sees the edit.
    write(dir.path(), "a.yaml", &workflow("a", true, "two"));
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|handle| handle.set_modified(modified))
        .expect("restoring the time stamp");
    assert!(!registry.scan());
    assert_eq!(message(&registry, "a"), "one");
    assert!(registry.reload());
    assert_eq!(message(&registry, "a"), "two");
}

#[test]
fn a_file_and_its_name_must_agree() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "a.yaml", &workflow("b", true, "x"));
    let registry = Registry::load(dir.path());
    assert!(matches!(registry.lookup("b"), Lookup::Unknown));
    assert!(matches!(registry.lookup("a"), Lookup::Unknown));
    let problems = &registry.snapshot().problems;
    assert!(
        problems[0].error.contains("differs from the file name"),
        "{problems:?}"
    );
}
