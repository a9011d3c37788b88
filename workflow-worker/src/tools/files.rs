//! `read_file` and `write_file`, confined to the configured roots: no `..`,
//! no symbolic link anywhere below a root (each component is checked, and
//! the file is opened with `O_NOFOLLOW`), writes atomic (a temp file
//! renamed into place).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use workflows::args::{ReadFileArgs, WriteFileArgs};

use super::{Failure, Output};

pub fn read(roots: &[PathBuf], args: &ReadFileArgs, max_read: u64) -> Result<Output, Failure> {
    let path = confine(roots, &args.path, false).map_err(Failure::new)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|error| Failure::new(format!("opening {}: {error}", args.path)))?;
    let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    if size > max_read {
        return Err(Failure::new(format!(
            "{} has {size} bytes; read_file reads at most {max_read} (workflow.files.max_read)",
            args.path
        )));
    }
    let mut bytes = Vec::new();
    file.take(max_read)
        .read_to_end(&mut bytes)
        .map_err(|error| Failure::new(format!("reading {}: {error}", args.path)))?;
    Ok(Output::text(String::from_utf8_lossy(&bytes).into_owned()))
}

pub fn write(roots: &[PathBuf], args: &WriteFileArgs) -> Result<Output, Failure> {
    let path = confine(roots, &args.path, true).map_err(Failure::new)?;
    let failed = |error: std::io::Error| Failure::new(format!("writing {}: {error}", args.path));
    if args.append {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(failed)?;
        file.write_all(args.content.as_bytes()).map_err(failed)?;
        file.sync_data().map_err(failed)?;
    } else {
        atomic_write(&path, args.content.as_bytes()).map_err(failed)?;
    }
    Ok(Output::text(format!(
        "wrote {} bytes to {}",
        args.content.len(),
        path.display()
    )))
}

/// Writes a temp file beside `path` and renames it into place.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file");
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        drop(std::fs::remove_file(&temp));
    }
    result
}

/// The real path of `requested` inside one of `roots` (canonical
/// folders). Relative paths are under the first root. Every component
/// below the root must be a real folder (created when `create`), never a
/// symbolic link; the last may not be a link either.
pub fn confine(roots: &[PathBuf], requested: &str, create: bool) -> Result<PathBuf, String> {
    let requested_path = Path::new(requested);
    if requested.is_empty()
        || requested_path
            .components()
            .any(|component| matches!(component, Component::ParentDir))
    {
        return Err(format!("path `{requested}` is empty or contains .."));
    }
    let first = roots
        .first()
        .ok_or_else(|| "no file roots are configured (workflow.files.roots)".to_owned())?;
    let absolute = if requested_path.is_absolute() {
        requested_path.to_path_buf()
    } else {
        first.join(requested_path)
    };
    let (root, rest) = roots
        .iter()
        .find_map(|root| {
            absolute
                .strip_prefix(root)
                .ok()
                .map(|rest| (root, rest.to_path_buf()))
        })
        .ok_or_else(|| {
            let allowed: Vec<String> = roots
                .iter()
                .map(|root| root.display().to_string())
                .collect();
            format!(
                "path `{requested}` is outside the file roots ({})",
                allowed.join(", ")
            )
        })?;
    let parts: Vec<_> = rest
        .components()
        .filter(|component| matches!(component, Component::Normal(_)))
        .collect();
    let Some((last, folders)) = parts.split_last() else {
        return Err(format!("path `{requested}` names a root, not a file"));
    };
    let mut current = root.clone();
    for folder in folders {
        current.push(folder);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!("path `{requested}` goes through a symbolic link"));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "path `{requested}`: {} is not a folder",
                    current.display()
                ));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&current)
                    .map_err(|error| format!("creating {}: {error}", current.display()))?;
            }
            Err(error) => return Err(format!("path `{requested}`: {error}")),
        }
    }
    current.push(last);
    if let Ok(meta) = std::fs::symlink_metadata(&current)
        && meta.file_type().is_symlink()
    {
        return Err(format!("path `{requested}` is a symbolic link"));
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_roots() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let outside = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink(outside.path(), root.join("link")).expect("symlink");
        std::fs::write(outside.path().join("secret"), "no").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("file-link"))
            .expect("symlink");
        let roots = [root.clone()];
        let check = |path: &str, create: bool| confine(&roots, path, create);

        assert_eq!(check("a/b.txt", true).unwrap(), root.join("a/b.txt"));
        assert!(root.join("a").is_dir(), "folders are created for writes");
        assert_eq!(
            check(root.join("c.txt").to_str().unwrap(), false).unwrap(),
            root.join("c.txt")
        );
        for (bad, why) in [
            ("../escape", ".."),
            ("a/../../escape", ".."),
            ("/etc/passwd", "outside the file roots"),
            ("link/secret", "symbolic link"),
            ("link/new/file", "symbolic link"),
            ("file-link", "symbolic link"),
            ("", "empty"),
        ] {
            let error = check(bad, true).expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(
            !outside.path().join("new").exists(),
            "nothing created outside"
        );
    }

    #[test]
    fn writes_replace_or_append_and_reads_are_bounded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let roots = [std::fs::canonicalize(dir.path()).expect("canonical")];
        let write_args = |content: &str, append: bool| WriteFileArgs {
            path: "notes/today.md".into(),
            content: content.into(),
            append,
        };
        write(&roots, &write_args("one\n", false)).expect("write");
        write(&roots, &write_args("two\n", true)).expect("append");
        let read_args = ReadFileArgs {
            path: "notes/today.md".into(),
        };
        assert_eq!(
            read(&roots, &read_args, 100).expect("read").text,
            "one\ntwo\n"
        );
        write(&roots, &write_args("three\n", false)).expect("replace");
        assert_eq!(read(&roots, &read_args, 100).expect("read").text, "three\n");
        let too_big = read(&roots, &read_args, 3).expect_err("too large");
        assert!(too_big.error.contains("at most 3"), "{}", too_big.error);
    }
}
