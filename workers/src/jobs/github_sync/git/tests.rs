//! git output parsing, credentials in the environment, stderr excerpts.

use super::*;

#[test]
fn ls_tree_records() {
    let stdout = b"100644 blob aaaa\tREADME.md\x00100755 blob bbbb\tbin/run sh\x00160000 commit cccc\tvendor/lib\0";
    let entries = parse_ls_tree(stdout).expect("parses");
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1].mode, "100755");
    assert_eq!(entries[1].object, "bbbb");
    assert_eq!(entries[1].path, b"bin/run sh");
    assert_eq!(entries[2].mode, "160000");
    assert!(parse_ls_tree(b"100644 blob aaaa README\0").is_err());
    assert!(parse_ls_tree(b"").expect("empty tree").is_empty());
}

#[test]
fn auth_goes_to_the_environment_scoped_to_its_base() {
    let token = Secret::new("ghs_secret").expect("non-empty");
    let auth = GitAuth::new("https://github.com/", &token);
    assert!(!format!("{auth:?}").contains("ghs_"));
    let mut command = Command::new("git");
    auth.apply(&mut command);
    let env: std::collections::HashMap<_, _> = command
        .as_std()
        .get_envs()
        .map(|(name, value)| (name.to_owned(), value.map(ToOwned::to_owned)))
        .collect();
    let get = |name: &str| env[std::ffi::OsStr::new(name)].clone().expect("set");
    assert_eq!(
        get("GIT_CONFIG_KEY_0"),
        "http.https://github.com/.extraHeader"
    );
    // base64("x-access-token:ghs_secret")
    assert_eq!(
        get("GIT_CONFIG_VALUE_0"),
        "Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hzX3NlY3JldA=="
    );
    assert_eq!(command.as_std().get_args().count(), 0, "nothing in argv");
}

#[test]
fn stderr_excerpts_keep_the_end() {
    assert_eq!(excerpt(b"fatal: a\n  b\n"), "fatal: a b");
    let long = "x".repeat(1_000) + " the reason";
    let short = excerpt(long.as_bytes());
    assert!(short.ends_with("the reason"), "{short}");
    assert!(short.chars().count() <= STDERR_EXCERPT + 2);
}
