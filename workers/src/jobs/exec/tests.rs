//! Unit tests: manifests (the seed's shorthand, full JSON Schema, bad
//! ones), input checks, query payloads, subjects, and the child process
//! limits (timeout kills the whole group, bounded output, clean env).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::input::{InputSchema, query_payload};
use super::manifest::{self, Access};
use super::plugin_and_command;
use super::process::{self, RunError, Spawn};

fn plugin_dir(name: &str, manifest: &str, script: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join(name);
    std::fs::create_dir(&dir).expect("plugin dir");
    std::fs::write(dir.join("manifest.yaml"), manifest).expect("manifest");
    let run = dir.join("run");
    std::fs::write(&run, script).expect("script");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    root
}

const SEED_MANIFEST: &str = r#"
name: withings
commands:
  - name: oauth_callback
    type: write
    description: "Handle Withings OAuth authorization callback. Exchanges code for tokens and stores in DB."
    input_schema:
      code: string    # required — authorization code from Withings
      state: string   # optional — CSRF state parameter
  - name: poll
    type: write
"#;

#[test]
fn the_seeds_manifest_loads_with_its_shorthand_schema() {
    let root = plugin_dir("withings", SEED_MANIFEST, "#!/bin/sh\n");
    let plugin = manifest::load(&root.path().join("withings")).expect("loads");
    let command = &plugin.commands["oauth_callback"];
    assert_eq!(command.access, Access::Write);
    assert!(command.callable());
    assert!(
        !plugin.commands["poll"].callable(),
        "lifecycle commands are not callable"
    );
    let schema = command.input.as_ref().expect("schema");
    schema
        .check(&json!({ "code": "ABC123", "state": "XYZ" }))
        .expect("valid");
    // ductile's shorthand types fields and requires none.
    schema.check(&json!({})).expect("nothing required");
    let error = schema
        .check(&json!({ "code": ["a", "b"] }))
        .expect_err("an array is not a string");
    assert!(error.contains("/code"), "{error}");
}

#[test]
fn shorthand_marks_required_fields_with_a_bang() {
    let schema =
        InputSchema::compile(&json!({ "code": "string!", "state": "string" })).expect("ok");
    let error = schema
        .check(&json!({ "state": "x" }))
        .expect_err("code is required");
    assert!(error.contains("\"code\" is a required property"), "{error}");
    assert!(InputSchema::compile(&json!({ "code": "text" })).is_err());
}

#[test]
fn a_full_json_schema_is_used_as_written() {
    let schema = InputSchema::compile(&json!({
        "type": "object",
        "properties": { "n": { "type": "integer", "minimum": 1 } },
        "required": ["n"],
        "additionalProperties": false
    }))
    .expect("compiles");
    schema.check(&json!({ "n": 2 })).expect("valid");
    assert!(schema.check(&json!({ "n": 0 })).is_err());
    assert!(schema.check(&json!({ "n": 1, "x": 1 })).is_err());
    assert!(InputSchema::compile(&json!({ "type": "nonsense" })).is_err());
}

#[test]
fn invalid_manifests_name_every_problem() {
    let check = |manifest: &str, expected: &[&str]| {
        let root = plugin_dir("demo", manifest, "#!/bin/sh\n");
        let error = manifest::load(&root.path().join("demo")).expect_err("invalid");
        for part in expected {
            assert!(error.contains(part), "{part:?} missing from {error}");
        }
    };
    check(
        "name: other\ncommands: [{name: a, type: read}]",
        &["must be the folder's name"],
    );
    check(
        "name: demo\ncommands: [{name: a, type: handle}, {name: 'b.c', type: read}]",
        &["`handle` is not read or write", "commands[1] (b.c).name"],
    );
    check("name: demo\ncommands: []", &["at least one command"]);
    check(
        "name: demo\nentrypoint: ../escape\ncommands: [{name: a, type: read}]",
        &["inside the plugin folder"],
    );
    check(
        "name: demo\ncommands: [{name: a, type: read, input_schema: {x: text}}]",
        &["input_schema"],
    );
}

#[test]
fn a_script_that_is_not_executable_is_reported() {
    let root = plugin_dir(
        "demo",
        "name: demo\ncommands: [{name: a, type: read}]",
        "#!/bin/sh\n",
    );
    let run = root.path().join("demo/run");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = manifest::load(&root.path().join("demo")).expect_err("not executable");
    assert!(error.contains("not executable"), "{error}");
}

#[test]
fn a_query_becomes_an_object_with_arrays_for_repeated_names() {
    let payload = query_payload("code=ABC123&state=X%20Y&scope=a&scope=b+c&scope=d&flag");
    assert_eq!(
        payload,
        json!({ "code": "ABC123", "state": "X Y", "scope": ["a", "b c", "d"], "flag": "" })
    );
    assert_eq!(query_payload(""), json!({}));
}

#[test]
fn subjects_name_exactly_a_plugin_and_a_command() {
    let prefix = "tidegate.sync.plugin";
    assert_eq!(
        plugin_and_command("tidegate.sync.plugin.withings.oauth_callback", prefix),
        Some(("withings", "oauth_callback"))
    );
    for bad in [
        "tidegate.sync.plugin.withings",
        "tidegate.sync.plugin.a.b.c",
        "tidegate.sync.pluginx.a.b",
        "tidegate.in.plugin.a.b",
    ] {
        assert_eq!(plugin_and_command(bad, prefix), None, "{bad}");
    }
}

fn spawn<'a>(program: &'a Path, cwd: &'a Path, timeout: Duration) -> Spawn<'a> {
    Spawn {
        program,
        cwd,
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("ONLY".into(), "this".into()),
        ],
        stdin: b"{\"hello\":1}".to_vec(),
        timeout,
        max_output: 1024,
        max_log: 1024,
        plugin: "demo",
        command: "test",
    }
}

fn script(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("run");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test]
async fn a_command_reads_stdin_and_sees_only_its_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let program = script(dir.path(), "cat; echo; env | sort; echo oops >&2");
    let finished = process::run(spawn(&program, dir.path(), Duration::from_secs(10)))
        .await
        .expect("runs");
    let stdout = String::from_utf8(finished.stdout).expect("utf-8");
    assert!(finished.status.success());
    assert!(stdout.starts_with("{\"hello\":1}\n"), "{stdout}");
    assert!(stdout.contains("ONLY=this"), "{stdout}");
    assert!(
        !stdout.contains("CARGO"),
        "the executor's environment leaked: {stdout}"
    );
}

#[tokio::test]
async fn output_over_the_limit_kills_the_command() {
    let dir = tempfile::tempdir().expect("dir");
    let program = script(dir.path(), "head -c 5000 /dev/zero; sleep 30");
    let started = Instant::now();
    let error = process::run(spawn(&program, dir.path(), Duration::from_secs(20)))
        .await
        .expect_err("too much output");
    assert!(matches!(error, RunError::OutputTooLarge(1024)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("grandchild.pid");
    // The grandchild survives its parent unless the group is killed.
    let program = script(
        dir.path(),
        &format!(
            "sh -c 'sleep 300 & echo $! > {}; wait' &\nsleep 300",
            pid_file.display()
        ),
    );
    let started = Instant::now();
    let error = process::run(spawn(&program, dir.path(), Duration::from_millis(700)))
        .await
        .expect_err("times out");
    assert!(matches!(error, RunError::TimedOut(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(8));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the grandchild wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "grandchild {pid} survived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn processes_left_behind_by_a_finished_command_are_killed() {
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("left.pid");
    let program = script(
        dir.path(),
        &format!("sleep 300 &\necho $! > {}\necho '{{}}'", pid_file.display()),
    );
    let finished = process::run(spawn(&program, dir.path(), Duration::from_secs(10)))
        .await
        .expect("finishes without waiting for its background child");
    assert!(finished.status.success());
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "background process {pid} survived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn settings(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<super::settings::Settings> {
    use figment::providers::{Format as _, Toml};
    let raw: super::ExecConfig = figment::Figment::from(Toml::string(toml))
        .extract()
        .expect("[exec] as written");
    let env = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    super::settings::Settings::compile(raw, &env)
}

#[test]
fn exec_settings_resolve_plugin_variables_and_config() {
    let compiled = settings(
        r#"
plugins_dir = "/plugins"
data_dir = "/data"
[plugins.withings]
timeout = "3s"
config = { redirect_uri = "https://example.com/cb", retries = 2 }
[plugins.withings.env]
WITHINGS_TOKEN_URL = "http://127.0.0.1:1/v2/oauth2"
WITHINGS_CLIENT_SECRET = { env = "SECRET_FOR_TEST" }
"#,
        &[("SECRET_FOR_TEST", "s3cret")],
    )
    .expect("valid");
    assert_eq!(compiled.timeout, Duration::from_secs(20));
    assert_eq!(compiled.max_output, 512 << 10);
    let withings = &compiled.plugins["withings"];
    assert_eq!(withings.timeout, Some(Duration::from_secs(3)));
    assert_eq!(
        withings.config,
        json!({ "redirect_uri": "https://example.com/cb", "retries": 2 })
    );
    let names: Vec<&str> = withings.env.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["WITHINGS_CLIENT_SECRET", "WITHINGS_TOKEN_URL"]);
    assert_eq!(withings.env[0].1.expose(), b"s3cret");
    assert!(
        !format!("{compiled:?}").contains("s3cret"),
        "a secret in Debug"
    );
}

#[test]
fn exec_settings_report_every_problem() {
    let error = settings(
        r#"
timeout = "soon"
sync_concurrency = 0
[plugins.withings.env]
WITHINGS_CLIENT_SECRET = { env = "UNSET_FOR_TEST" }
"#,
        &[],
    )
    .expect_err("invalid")
    .to_string();
    for part in [
        "exec.timeout",
        "exec.sync_concurrency",
        "exec.plugins_dir: required",
        "exec.data_dir: required",
        "exec.plugins.withings.env.WITHINGS_CLIENT_SECRET: environment variable UNSET_FOR_TEST is not set",
    ] {
        assert!(error.contains(part), "{part:?} missing from {error}");
    }
}
