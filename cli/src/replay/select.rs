//! Which deliveries a replay takes. The command line is resolved once into
//! absolute values (times, the end sequence) and stored with the replay, so
//! a resumed replay selects exactly what the first run would have.

use std::borrow::Cow;
use std::collections::HashSet;

use schemas::headers::{DELIVERY_ID, REPLAY_OF};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::scan::{Scanned, Start};

/// Subjects a replay reads when neither `--subject` nor `--worker` narrows
/// them: the deliveries workers consume (ignored deliveries only when a
/// filter names them).
pub(crate) const DEFAULT_SUBJECT: &str = "tidegate.in.>";

/// The resolved selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Selection {
    /// Only these delivery ids (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) ids: Vec<String>,
    /// Subject filter, NATS wildcards allowed.
    pub(crate) subject: String,
    /// Stored at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) since: Option<OffsetDateTime>,
    /// Stored before this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) until: Option<OffsetDateTime>,
    #[serde(default)]
    pub(crate) from_sequence: Option<u64>,
    /// Inclusive; never beyond the stream's last sequence when the replay
    /// started (see [`crate::replay::checkpoint::Checkpoint::end_sequence`]).
    #[serde(default)]
    pub(crate) to_sequence: Option<u64>,
    /// Also take messages that are themselves replays.
    #[serde(default)]
    pub(crate) include_replays: bool,
}

/// What to do with one scanned message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Take,
    Skip,
    /// Past `until`: nothing later can match.
    Stop,
}

impl Selection {
    /// Where the scan starts, given the last sequence already done (0 when
    /// starting afresh).
    pub(crate) fn start(&self, done_through: u64) -> Start {
        let from = self.from_sequence.unwrap_or(0).max(done_through + 1);
        if from > 1 {
            return Start::Sequence(from);
        }
        match self.since {
            Some(since) => Start::Time(since),
            None => Start::First,
        }
    }

    /// The last sequence the selection can reach, given the stream's last
    /// sequence now.
    pub(crate) fn end(&self, last_in_stream: u64) -> u64 {
        self.to_sequence
            .map_or(last_in_stream, |to| to.min(last_in_stream))
    }

    pub(crate) fn matcher(&self) -> Matcher<'_> {
        Matcher {
            selection: self,
            ids: self.ids.iter().map(String::as_str).collect(),
        }
    }
}

/// A selection ready to test messages against.
pub(crate) struct Matcher<'a> {
    selection: &'a Selection,
    ids: HashSet<&'a str>,
}

impl Matcher<'_> {
    pub(crate) fn verdict(&self, scanned: &Scanned) -> Verdict {
        let selection = self.selection;
        if selection
            .until
            .is_some_and(|until| scanned.stored_at >= until)
        {
            return Verdict::Stop;
        }
        let too_early = selection
            .since
            .is_some_and(|since| scanned.stored_at < since)
            || selection
                .from_sequence
                .is_some_and(|from| scanned.sequence < from);
        if too_early {
            return Verdict::Skip;
        }
        if !selection.include_replays && header(scanned, REPLAY_OF).is_some() {
            return Verdict::Skip;
        }
        if !self.ids.is_empty() {
            let id = delivery_id(scanned);
            if !id.as_deref().is_some_and(|id| self.ids.contains(id)) {
                return Verdict::Skip;
            }
        }
        Verdict::Take
    }
}

/// A header of the scanned message.
pub(crate) fn header<'a>(scanned: &'a Scanned, name: &str) -> Option<&'a str> {
    scanned
        .message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(name))
        .map(|value| value.as_str())
}

/// The delivery id: the header the ingress sets, or else the envelope's `id`.
pub(crate) fn delivery_id(scanned: &Scanned) -> Option<Cow<'_, str>> {
    if let Some(id) = header(scanned, DELIVERY_ID) {
        return Some(Cow::Borrowed(id));
    }
    #[derive(Deserialize)]
    struct OnlyId<'a> {
        #[serde(borrow)]
        id: Cow<'a, str>,
    }
    serde_json::from_slice::<OnlyId<'_>>(&scanned.message.payload)
        .ok()
        .map(|only| only.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::parse_time;

    fn selection() -> Selection {
        Selection {
            ids: Vec::new(),
            subject: DEFAULT_SUBJECT.to_owned(),
            since: None,
            until: None,
            from_sequence: None,
            to_sequence: None,
            include_replays: false,
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let exact = parse_time("2024-05-01T12:00:00+02:00").expect("rfc 3339");
        assert_eq!(exact.unix_timestamp(), 1_714_557_600);
        for text in ["2h", "2h ago", " 2h "] {
            let ago = OffsetDateTime::now_utc() - parse_time(text).expect(text);
            assert!(
                (ago - time::Duration::hours(2)).abs() < time::Duration::seconds(5),
                "{text}: {ago}"
            );
        }
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2024-05-01").is_err());
    }

    #[test]
    fn the_start_is_the_latest_of_from_sequence_and_progress() {
        let since = parse_time("2024-05-01T12:00:00Z").expect("time");
        let check = |from_sequence, since, done_through, expected| {
            let selection = Selection {
                from_sequence,
                since,
                ..selection()
            };
            assert_eq!(selection.start(done_through), expected);
        };
        check(None, None, 0, Start::First);
        check(None, Some(since), 0, Start::Time(since));
        check(Some(7), Some(since), 0, Start::Sequence(7));
        check(Some(7), None, 20, Start::Sequence(21));
        check(None, Some(since), 20, Start::Sequence(21));
    }

    #[test]
    fn the_end_never_passes_the_stream_end_at_the_start() {
        assert_eq!(selection().end(100), 100);
        let to = |to_sequence| Selection {
            to_sequence: Some(to_sequence),
            ..selection()
        };
        assert_eq!(to(40).end(100), 40);
        assert_eq!(to(400).end(100), 100);
    }
}
