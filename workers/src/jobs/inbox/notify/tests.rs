//! The notify command: templates, a clean environment, failures with their
//! stderr, and a timeout that kills the whole process group.

use std::time::Instant;

use super::*;

fn values(file: &str) -> Values<'_> {
    Values {
        pairs: [
            ("agent", "flickclaw"),
            ("source", "putio"),
            ("id", "d-1"),
            ("file", file),
            ("filename", "x.json"),
            ("inbox", "/w/inbox/webhooks"),
            ("workspace", "/w"),
            ("received_at", "2026-11-23T18:21:00.000Z"),
        ],
    }
}

fn notify(script: &str, timeout: Duration) -> Notify {
    Notify {
        args: ["/bin/sh", "-c", script, "notify", "{agent}", "{file}"]
            .iter()
            .map(|text| Arg::parse(text).expect("valid"))
            .collect(),
        timeout,
        env: vec![
            ("DECLARED".to_owned(), "yes".to_owned()),
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ],
    }
}

#[test]
fn templates_fill_placeholders_and_keep_braces() {
    let check = |text: &str, expected: &str| {
        let arg = Arg::parse(text).expect("valid");
        assert_eq!(arg.render(&values("/w/f.json")), expected, "{text}");
    };
    check("{agent}", "flickclaw");
    check("--file={file}", "--file=/w/f.json");
    check("{source}/{id}", "putio/d-1");
    check("{{literal}}", "{literal}");
    check("plain", "plain");
    for bad in ["{nope}", "{agent", "a}b", "{}"] {
        assert!(Arg::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_command_gets_its_values_and_a_clean_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let script = format!("(echo \"$1 $2\"; env | sort) > '{}'", out.display());
    notify(&script, Duration::from_secs(10))
        .run(dir.path(), &values("/w/f.json"))
        .await
        .expect("the command succeeds");
    let written = std::fs::read_to_string(&out).expect("the command wrote its output");
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("flickclaw /w/f.json"));
    let names: Vec<&str> = lines
        .filter_map(|line| line.split('=').next())
        .filter(|name| !["PWD", "SHLVL", "_", "OLDPWD"].contains(name))
        .collect();
    assert_eq!(
        names,
        [
            "DECLARED",
            "PATH",
            "TIDEGATE_AGENT",
            "TIDEGATE_FILE",
            "TIDEGATE_FILENAME",
            "TIDEGATE_ID",
            "TIDEGATE_INBOX",
            "TIDEGATE_RECEIVED_AT",
            "TIDEGATE_SOURCE",
            "TIDEGATE_WORKSPACE",
        ],
        "{written}"
    );
}

#[tokio::test]
async fn a_failure_says_how_it_ended() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = notify(
        "echo 'session refused' >&2; exit 3",
        Duration::from_secs(10),
    )
    .run(dir.path(), &values("/w/f.json"))
    .await
    .expect_err("exit 3 fails");
    assert!(
        matches!(&error, NotifyError::Failed { status, stderr, .. }
            if status == "exited with status 3" && stderr == "session refused"),
        "{error}"
    );
    let missing = Notify {
        args: vec![Arg::parse("/nonexistent/spawn").expect("valid")],
        ..notify("", Duration::from_secs(1))
    };
    assert!(matches!(
        missing.run(dir.path(), &values("f")).await,
        Err(NotifyError::Spawn { .. })
    ));
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pids = dir.path().join("pids");
    // A background grandchild in the same group, then the command itself
    // hangs: both must be gone after the timeout.
    let script = format!(
        "sleep 60 & echo $! > '{0}'; echo $$ >> '{0}'; sleep 60",
        pids.display()
    );
    let started = Instant::now();
    let error = notify(&script, Duration::from_millis(500))
        .run(dir.path(), &values("f"))
        .await
        .expect_err("it times out");
    assert!(matches!(error, NotifyError::TimedOut { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let pids: Vec<libc::pid_t> = std::fs::read_to_string(&pids)
        .expect("the script wrote its pids")
        .lines()
        .map(|line| line.trim().parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in pids {
        // A killed grandchild is reaped by init; until then it is a zombie.
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "process {pid} survived the timeout"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Running and not a zombie.
fn alive(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
