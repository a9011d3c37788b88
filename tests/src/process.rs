//! Worker binaries as real processes, so tests can SIGKILL them mid-job.
//! The binaries are built next to the test executable by the README's test
//! command (`cargo build --workspace --bins` first).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

pub struct WorkerProcess {
    child: Option<Child>,
    _dir: TempDir,
}

/// `target/<profile>/<name>`, next to the `deps/` folder the test runs from.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

impl WorkerProcess {
    /// Starts `name` with `config` (TOML) and extra environment variables.
    pub fn start(name: &str, config: &str, env: &[(&str, &str)]) -> WorkerProcess {
        WorkerProcess::launch(None, name, config, env)
    }

    /// Starts `name` inside network namespace `netns` (a host of a
    /// partition test).
    pub fn start_in(netns: &str, name: &str, config: &str, env: &[(&str, &str)]) -> WorkerProcess {
        WorkerProcess::launch(Some(netns), name, config, env)
    }

    fn launch(
        netns: Option<&str>,
        name: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("worker.toml");
        std::fs::write(&file, config).expect("writing the worker config");
        let log = std::env::var_os("TEST_LOG").is_some();
        let mut command = match netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(binary(name));
                command
            }
            None => Command::new(binary(name)),
        };
        let child = command
            .arg("--config")
            .arg(&file)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(if log { Stdio::inherit() } else { Stdio::null() })
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .unwrap_or_else(|error| panic!("starting {name}: {error}"));
        WorkerProcess {
            child: Some(child),
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// SIGKILL: no shutdown, in-flight jobs are abandoned.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.kill());
            drop(child.wait());
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        child.wait().expect("waiting for the worker")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
