//! `memory_store` (the seed's): append `- <fact>` under `## <section>` of a
//! Markdown memory file, creating the section at the end when it is
//! missing. Writers in this process take turns; across processes on one
//! host, an exclusive `flock` on `<file>.lock`. The file is replaced
//! atomically.

use std::path::Path;

use workflows::args::MemoryArgs;

use super::files::atomic_write;
use super::{Failure, Output};

/// Appends the fact. `resumed`: the step may have run before a crash; if
/// the section already ends with this fact, it is not added twice.
pub fn store(file: &Path, args: &MemoryArgs, resumed: bool) -> Result<Output, Failure> {
    let section = args.section.trim();
    let fact = args.fact.trim().replace('\n', " ");
    if section.is_empty() || section.contains('\n') || fact.is_empty() {
        return Err(Failure::new(
            "section and fact must be non-empty, and the section one line",
        ));
    }
    if let Some(parent) = file
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|error| Failure::new(format!("creating {}: {error}", parent.display())))?;
    }
    let _lock = FileLock::acquire(&file.with_extension("md.lock"))
        .map_err(|error| Failure::new(format!("locking the memory file: {error}")))?;
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(Failure::new(format!("reading {}: {error}", file.display()))),
    };
    let line = format!("- {fact}");
    let (updated, added) = append(&text, section, &line, resumed);
    if added {
        atomic_write(file, updated.as_bytes())
            .map_err(|error| Failure::new(format!("writing {}: {error}", file.display())))?;
        Ok(Output::text(format!("stored under ## {section}: {fact}")))
    } else {
        Ok(Output::text(format!(
            "already stored under ## {section}: {fact}"
        )))
    }
}

/// The text with `line` at the end of `## section`; `false` when `skip_if_last`
/// and the section already ends with it.
fn append(text: &str, section: &str, line: &str, skip_if_last: bool) -> (String, bool) {
    let header = format!("## {section}");
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|candidate| candidate.trim_end() == header)
    else {
        let mut updated = text.trim_end().to_owned();
        if !updated.is_empty() {
            updated.push_str("\n\n");
        }
        updated.push_str(&format!("{header}\n{line}\n"));
        return (updated, true);
    };
    let end = lines[start + 1..]
        .iter()
        .position(|candidate| candidate.starts_with("# ") || candidate.starts_with("## "))
        .map_or(lines.len(), |offset| start + 1 + offset);
    // After the section's last non-blank line.
    let mut insert_at = end;
    while insert_at > start + 1 && lines[insert_at - 1].trim().is_empty() {
        insert_at -= 1;
    }
    if skip_if_last && insert_at > start + 1 && lines[insert_at - 1].trim_end() == line {
        return (text.to_owned(), false);
    }
    let mut updated: Vec<&str> = lines[..insert_at].to_vec();
    updated.push(line);
    updated.extend_from_slice(&lines[insert_at..]);
    (updated.join("\n") + "\n", true)
}

/// An exclusive `flock`, released on drop.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> std::io::Result<FileLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a descriptor we own; it blocks until the lock is ours.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor we locked.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_go_under_their_section() {
        let check = |text: &str, expected: &str| {
            let (updated, added) = append(text, "Deployments", "- received", false);
            assert!(added);
            assert_eq!(updated, expected, "from {text:?}");
        };
        check("", "## Deployments\n- received\n");
        check("# Memory\n", "# Memory\n\n## Deployments\n- received\n");
        check(
            "## Deployments\n- first\n\n## Other\n- x\n",
            "## Deployments\n- first\n- received\n\n## Other\n- x\n",
        );
        check(
            "## Other\n- x\n## Deployments\n",
            "## Other\n- x\n## Deployments\n- received\n",
        );
    }

    #[test]
    fn a_resumed_step_does_not_store_its_fact_twice() {
        let text = "## Deployments\n- received\n";
        assert!(!append(text, "Deployments", "- received", true).1);
        assert!(append(text, "Deployments", "- received", false).1);
        assert!(append(text, "Deployments", "- other", true).1);
    }

    #[test]
    fn store_creates_the_file_and_keeps_other_sections() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("data/memory.md");
        let args = |section: &str, fact: &str| MemoryArgs {
            section: section.into(),
            fact: fact.into(),
        };
        store(
            &file,
            &args("Deployments", "Deployment event received"),
            false,
        )
        .expect("store");
        store(&file, &args("People", "Ana likes tea"), false).expect("store");
        store(&file, &args("Deployments", "second"), false).expect("store");
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            "## Deployments\n- Deployment event received\n- second\n\n## People\n- Ana likes tea\n"
        );
    }
}
