//! Child processes for dev mode: find a program, spawn it in its own process
//! group, stream its output with a `name |` prefix, signal it, await its exit.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

/// Folders searched after `PATH`: Debian installs nats-server in /usr/sbin,
/// which is not on a regular user's `PATH`.
const SBIN_FOLDERS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// How long a child's output may keep flowing after it exited (a grandchild
/// holding the pipe open must not stall shutdown).
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// Where lines go: stdout, with coloured prefixes only on a terminal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    colour: bool,
}

/// A child's name in the output and its colour (ANSI SGR code).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Label {
    pub(crate) name: &'static str,
    pub(crate) colour: &'static str,
}

impl Output {
    /// Colours when stdout is a terminal and `NO_COLOR` is unset.
    pub(crate) fn detect() -> Output {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Output { colour }
    }

    pub(crate) fn colour(self) -> bool {
        self.colour
    }

    /// A line of `up`'s own, unprefixed.
    pub(crate) fn note(self, text: &str) {
        self.write(text.as_bytes());
    }

    /// A line under `label`'s prefix, as if a child had written it (the
    /// in-process dev sink).
    pub(crate) fn line(self, label: Label, text: &str) {
        let mut prefixed = self.prefix(label);
        prefixed.push_str(text);
        self.write(prefixed.as_bytes());
    }

    /// A block written at once, so child lines cannot interleave with it.
    pub(crate) fn block(self, text: &str) {
        self.write(text.trim_end().as_bytes());
    }

    fn prefix(self, label: Label) -> String {
        if self.colour {
            format!("\x1b[{}m{:<7} |\x1b[0m ", label.colour, label.name)
        } else {
            format!("{:<7} | ", label.name)
        }
    }

    fn write(self, line: &[u8]) {
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (`| head`) must not stop the pipeline; drop the line.
        drop(
            stdout
                .write_all(line)
                .and_then(|()| stdout.write_all(b"\n"))
                .and_then(|()| stdout.flush()),
        );
    }
}

/// `name` on `PATH`, then in the sbin folders.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_FOLDERS.iter().map(PathBuf::from))
        .map(|folder| folder.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// How a child is asked to stop, and how long it gets before SIGKILL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shutdown {
    pub(crate) signal: Signal,
    pub(crate) grace: Duration,
}

/// A running (or exited) child. Dropping it leaves the process alone: `up`
/// stops every child explicitly, in order.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) label: Label,
    pub(crate) shutdown: Shutdown,
    /// Whether its exit stops dev mode (see [`Child::optional`]).
    pub(crate) required: bool,
    pid: Pid,
    /// `None` while running; then how it ended.
    exit: watch::Receiver<Option<Exit>>,
}

/// How a child ended.
#[derive(Debug, Clone)]
pub(crate) struct Exit(Result<ExitStatus, String>);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok(status) => write!(f, "{status}"),
            Err(error) => write!(f, "unknown status: {error}"),
        }
    }
}

/// Spawns `command` with its output prefixed by `label`. The child gets its
/// own process group, so a terminal's Ctrl-C reaches only `tidegate`, which
/// then stops the children in order.
pub(crate) fn spawn(
    output: Output,
    label: Label,
    shutdown: Shutdown,
    mut command: Command,
) -> anyhow::Result<Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", label.name))?;
    let pid = child.id().expect("a child that was just spawned has a pid");
    let prefix = output.prefix(label);
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let pumps = [
        tokio::spawn(pump(output, prefix.clone(), stdout)),
        tokio::spawn(pump(output, prefix, stderr)),
    ];
    let (sender, exit) = watch::channel(None);
    tokio::spawn(async move {
        let status = child.wait().await.map_err(|error| error.to_string());
        for pump in pumps {
            drop(tokio::time::timeout(OUTPUT_DRAIN, pump).await);
        }
        sender.send_replace(Some(Exit(status)));
    });
    Ok(Child {
        label,
        shutdown,
        required: true,
        pid: Pid::from_raw(i32::try_from(pid).expect("pids fit in i32")),
        exit,
    })
}

impl Child {
    /// A child whose exit is reported but does not stop the others.
    pub(crate) fn optional(mut self) -> Child {
        self.required = false;
        self
    }

    /// Resolves when the child has exited, independently of `self`.
    pub(crate) fn on_exit(&self) -> impl Future<Output = Exit> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            let exit = exit
                .wait_for(Option::is_some)
                .await
                .expect("the waiter task sends the exit before it ends");
            exit.clone().expect("waited for Some")
        }
    }

    /// Waits until the child has exited (and its output is written).
    pub(crate) async fn exited(&self) -> Exit {
        let mut exit = self.exit.clone();
        let exit = exit
            .wait_for(Option::is_some)
            .await
            .expect("the waiter task sends the exit before it ends");
        exit.clone().expect("waited for Some")
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Sends `signal` unless the child has already exited.
    pub(crate) fn signal(&self, signal: Signal) {
        if !self.has_exited() {
            // ESRCH: it exited in between; nothing left to signal.
            let _ = kill(self.pid, signal);
        }
    }
}

/// Copies `stream` to stdout line by line, each line prefixed.
async fn pump(output: Output, prefix: String, stream: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while line
                    .last()
                    .is_some_and(|byte| matches!(byte, b'\n' | b'\r'))
                {
                    line.pop();
                }
                let mut prefixed = prefix.clone().into_bytes();
                prefixed.extend_from_slice(&line);
                output.write(&prefixed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_and_nothing_else() {
        assert!(find_program("sh").is_some());
        assert_eq!(find_program("tidegate-no-such-program"), None);
    }

    #[test]
    fn prefixes_are_aligned_and_plain_without_colour() {
        let output = Output { colour: false };
        let label = |name| Label { name, colour: "36" };
        assert_eq!(output.prefix(label("nats")), "nats    | ");
        assert_eq!(output.prefix(label("ingress")), "ingress | ");
        let coloured = Output { colour: true }.prefix(label("nats"));
        assert_eq!(coloured, "\x1b[36mnats    |\x1b[0m ");
    }

    #[tokio::test]
    async fn reports_the_exit_status() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let label = Label {
            name: "sh",
            colour: "0",
        };
        let shutdown = Shutdown {
            signal: Signal::SIGTERM,
            grace: Duration::ZERO,
        };
        let child = spawn(Output { colour: false }, label, shutdown, command).expect("sh runs");
        let exit = child.exited().await;
        assert_eq!(exit.0.expect("waited").code(), Some(3));
        assert!(child.has_exited());
    }
}
