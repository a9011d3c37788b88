//! An inbox file: its deterministic name, its content (inbox item v1, the
//! body byte for byte), and an atomic write that never replaces a file
//! already there.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use broker::item::item_payload;
use schemas::{Envelope, InboxItem};

use crate::Delivery;

/// `<workspace>/inbox/webhooks`.
pub(super) fn inbox_dir(workspace: &Path) -> PathBuf {
    workspace.join("inbox").join("webhooks")
}

/// `<received_at>_<id>.json` with the time compacted to
/// `YYYYMMDDTHHMMSS.mmmZ`: sorts by arrival, and a redelivery of the same
/// delivery always names the same file.
pub(super) fn file_name(envelope: &Envelope) -> String {
    let received: String = envelope
        .received_at
        .chars()
        .filter(|character| !matches!(character, '-' | ':'))
        .collect();
    format!("{received}_{}.json", envelope.id)
}

/// The file's bytes: the item as indented JSON (the payload's own bytes
/// inside, untouched) and a final newline.
pub(super) fn render(delivery: &Delivery, agent: &str) -> Result<Vec<u8>, String> {
    let envelope = &delivery.envelope;
    // For `object` payloads the runtime already fetched the body.
    let payload = item_payload(envelope, &delivery.payload);
    let item = InboxItem {
        id: envelope.id.clone(),
        agent_id: agent.to_owned(),
        source: envelope.source.clone(),
        received_at: envelope.received_at.clone(),
        headers: envelope.headers.clone(),
        content_type: envelope.content_type.clone(),
        encoding: payload.encoding,
        payload: payload.payload,
    };
    let mut bytes = serde_json::to_vec_pretty(&item).map_err(|error| error.to_string())?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// What [`write`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// The file is new.
    Created,
    /// A file with these exact bytes was there (an earlier attempt).
    Existed,
    /// A file with other bytes was there; it was left alone.
    Differs,
}

/// Writes `bytes` to `dir/name` atomically: a temporary file in the same
/// folder, fsync, rename, fsync of the folder. A file already there is
/// left as it is. Blocking: run it off the async threads.
pub(super) fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<Written> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(existing) if existing == bytes => return Ok(Written::Existed),
        Ok(_) => return Ok(Written::Differs),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    // Hidden and unique: agents skip dot files, and two writers never share
    // a temporary file.
    let temporary = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        // Checked above: only a concurrent attempt at the same delivery,
        // with the same bytes, could have created it since.
        fs::rename(&temporary, &path)?;
        File::open(dir)?.sync_all()?;
        Ok(Written::Created)
    })();
    if result.is_err() {
        drop(fs::remove_file(&temporary));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_arrival_and_are_stable() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"version":1,"id":"0193f0c4-2b1e","route":"agent","source":"putio",
                "agent":"flickclaw","subject":"tidegate.in.agent.flickclaw.putio",
                "received_at":"2026-11-23T18:21:00.123Z","method":"POST",
                "path":"/api/webhook/flickclaw","headers":{},"payload_encoding":"empty"}"#,
        )
        .expect("an envelope");
        assert_eq!(
            file_name(&envelope),
            "20261123T182100.123Z_0193f0c4-2b1e.json"
        );
    }

    #[test]
    fn a_file_is_written_once_and_never_replaced() {
        let workspace = tempfile::tempdir().expect("temp dir");
        let dir = inbox_dir(workspace.path());
        let name = "20261123T182100.123Z_d1.json";
        assert_eq!(
            write(&dir, name, b"{\"a\":1}\n").expect("written"),
            Written::Created
        );
        assert_eq!(
            write(&dir, name, b"{\"a\":1}\n").expect("checked"),
            Written::Existed
        );
        assert_eq!(
            write(&dir, name, b"other").expect("checked"),
            Written::Differs
        );
        assert_eq!(fs::read(dir.join(name)).expect("readable"), b"{\"a\":1}\n");
        let entries: Vec<_> = fs::read_dir(&dir)
            .expect("listable")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(entries, [name], "no temporary file is left behind");
    }
}
