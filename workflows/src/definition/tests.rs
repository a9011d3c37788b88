//! Workflow files: the seed's examples parse as written; every invalid
//! shape is refused with the key named.

use std::time::Duration;

use super::*;

const DEPLOY_NOTIFY: &str = r#"
# data/workflows/deploy-notify.yaml
name: deploy-notify
description: Notify on deployment events
trigger: webhook
enabled: true
steps:
  - name: log-event
    tool: shell_exec
    args:
      command: "echo 'Deployment received'"

  - name: record-in-memory
    tool: memory_store
    args:
      section: "Deployments"
      fact: "Deployment event received"
"#;

#[test]
fn the_seeds_deploy_notify_parses_with_the_defaults() {
    let workflow = Workflow::parse(DEPLOY_NOTIFY, Some("deploy-notify")).expect("valid");
    assert_eq!(workflow.name, "deploy-notify");
    assert_eq!(workflow.trigger, "webhook");
    assert!(workflow.enabled);
    assert_eq!(workflow.mode, Mode::Sync);
    assert_eq!(workflow.timeout, DEFAULT_TIMEOUT);
    let tools: Vec<Tool> = workflow.steps.iter().map(|step| step.tool).collect();
    assert_eq!(tools, [Tool::ShellExec, Tool::MemoryStore]);
    assert_eq!(
        workflow.steps[0].args["command"],
        "echo 'Deployment received'"
    );
    assert!(!workflow.steps[1].requires_approval);
}

#[test]
fn our_fields_parse() {
    let text = r#"
name: review
mode: queued
timeout: 5s
steps:
  - name: fetch
    tool: http_request
    args: { method: POST, url: "http://x/{{ payload.id }}", body: { a: "{{ run_id }}" } }
    timeout: 90
    continue_on_error: true
  - name: review
    tool: read_file
    args: { path: "/tmp/review.md" }
    requires_approval: true
    timeout: 2m
"#;
    let workflow = Workflow::parse(text, None).expect("valid");
    assert_eq!(workflow.mode, Mode::Queued);
    assert_eq!(workflow.timeout, Duration::from_secs(5));
    assert_eq!(workflow.steps[0].timeout, Some(Duration::from_secs(90)));
    assert!(workflow.steps[0].continue_on_error);
    assert!(workflow.steps[1].requires_approval);
    assert_eq!(workflow.steps[1].timeout, Some(Duration::from_secs(120)));
}

fn problems(text: &str, file: Option<&str>) -> String {
    Workflow::parse(text, file)
        .expect_err("invalid")
        .problems
        .join("\n")
}

#[test]
fn invalid_files_name_every_problem() {
    let cases: [(&str, Option<&str>, &[&str]); 8] = [
        (
            "name: a\nsteps: []\n",
            None,
            &["steps: a workflow needs at least one step"],
        ),
        (
            "name: other\nsteps: [{name: s, tool: notify, args: {message: hi}}]\n",
            Some("deploy"),
            &["differs from the file name `deploy`"],
        ),
        (
            "name: a.b\nsteps: [{name: s, tool: notify, args: {message: hi}}]\n",
            None,
            &["name: `a.b` must be"],
        ),
        (
            "name: a\nsteps: [{name: s, tool: teleport}]\n",
            None,
            &["steps[0] (s).tool: `teleport` is not a tool"],
        ),
        (
            "name: a\nsteps: [{name: s, tool: shell_exec, args: {}}]\n",
            None,
            &["steps[0] (s).args: set command"],
        ),
        (
            "name: a\nsteps: [{name: s, tool: shell_exec, args: {command: x, argv: [y]}}]\n",
            None,
            &["not both"],
        ),
        (
            "name: a\nmode: later\ntimeout: soon\nsteps:\n  - {name: s, tool: notify, args: {message: hi}}\n  - {name: s, tool: http_request, args: {url: u, verb: GET}}\n",
            None,
            &[
                "mode: `later` is not sync or queued",
                "timeout: `soon` is not a duration",
                "steps[1] (s).name: another step has this name",
                "unknown field `verb`",
            ],
        ),
        (
            "name: a\nsurprise: 1\nsteps: [{name: s, tool: notify, args: {message: hi}}]\n",
            None,
            &["unknown field `surprise`"],
        ),
    ];
    for (text, file, expected) in cases {
        let found = problems(text, file);
        for needle in expected {
            assert!(found.contains(needle), "{text}\n→ {found}\nlacks {needle}");
        }
    }
}

#[test]
fn names_are_url_segments_and_subject_tokens() {
    for good in ["deploy-notify", "a", "A_1", "x9-y"] {
        assert!(is_valid_name(good), "{good}");
        assert!(schemas::streams::is_subject_token(good), "{good}");
    }
    for bad in ["", "-a", "a.b", "a b", "a/b", "a*", "é", &"a".repeat(65)] {
        assert!(!is_valid_name(bad), "{bad}");
    }
}
