//! Reads a stream range in order with bounded memory: an ordered consumer
//! from a start position up to an end sequence fixed in advance, so messages
//! published while the scan runs (a replay's own output) are never read.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::Ordered, pull::OrderedConfig},
};
use futures::StreamExt;
use schemas::streams::DELIVERIES_STREAM;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest wait for the next message. The server sends idle heartbeats
/// every few seconds, so silence this long means the broker is gone.
const NEXT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a scan begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The first message in the stream.
    First,
    /// The first message at or after this sequence.
    Sequence(u64),
    /// The first message stored at or after this time.
    Time(OffsetDateTime),
}

impl Start {
    /// `sequence 12`, `the first message stored at or after <time>`; `None`
    /// for the first message.
    pub(crate) fn describe(&self) -> Option<String> {
        match self {
            Start::First => None,
            Start::Sequence(sequence) => Some(format!("sequence {sequence}")),
            Start::Time(time) => Some(format!(
                "the first message stored at or after {}",
                rfc3339(*time)
            )),
        }
    }
}

/// One message read by a scan.
pub(crate) struct Scanned {
    pub(crate) message: jetstream::Message,
    pub(crate) sequence: u64,
    /// When the stream stored it.
    pub(crate) stored_at: OffsetDateTime,
}

/// An ordered read of `[start, end]` of one stream, optionally filtered by
/// subject. Holds at most one pull batch (a few hundred messages) in memory.
pub(crate) struct Scan {
    messages: Option<Ordered>,
    end: u64,
    expected: u64,
}

impl Scan {
    /// Opens the scan. `end` is inclusive; messages after it are not read.
    pub(crate) async fn open(
        jetstream: &jetstream::Context,
        stream: &str,
        filter: Option<&str>,
        start: Start,
        end: u64,
    ) -> anyhow::Result<Scan> {
        let handle = jetstream
            .get_stream(stream)
            .await
            .with_context(|| format!("opening stream {stream}"))?;
        let deliver_policy = match start {
            Start::First => DeliverPolicy::All,
            Start::Sequence(sequence) => DeliverPolicy::ByStartSequence {
                start_sequence: sequence.max(1),
            },
            Start::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
        };
        let consumer = handle
            .create_consumer(OrderedConfig {
                description: Some("tidegate cli scan".to_owned()),
                filter_subject: filter.unwrap_or_default().to_owned(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating a reader on stream {stream}"))?;
        let info = consumer.cached_info();
        // Pending counts to the end of the stream now; the scan stops at
        // `end`, which may come sooner.
        let before_start = info.delivered.stream_sequence;
        let expected = info.num_pending.min(end.saturating_sub(before_start));
        if expected == 0 || end == 0 {
            return Ok(Scan {
                messages: None,
                end,
                expected: 0,
            });
        }
        let messages = consumer
            .messages()
            .await
            .with_context(|| format!("reading stream {stream}"))?;
        Ok(Scan {
            messages: Some(messages),
            end,
            expected,
        })
    }

    /// Messages matching the filter from the start to the end of the stream
    /// when the scan opened: an upper bound of what it will read.
    pub(crate) fn expected(&self) -> u64 {
        self.expected
    }

    /// The next message, or `None` once the end is reached.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<Scanned>> {
        let Some(messages) = self.messages.as_mut() else {
            return Ok(None);
        };
        let next = tokio::time::timeout(NEXT_TIMEOUT, messages.next())
            .await
            .map_err(|_| anyhow::anyhow!("no message from the broker for {NEXT_TIMEOUT:?}"))?;
        let message = next
            .context("the stream reader ended before the end of the range")?
            .context("reading the next message")?;
        let info = message
            .info()
            .map_err(|error| anyhow::anyhow!("message without JetStream metadata: {error}"))?;
        let (sequence, pending, stored_at) = (info.stream_sequence, info.pending, info.published);
        if sequence > self.end {
            self.messages = None;
            return Ok(None);
        }
        if sequence == self.end || pending == 0 {
            // The last one: nothing selected follows it.
            self.messages = None;
        }
        Ok(Some(Scanned {
            message,
            sequence,
            stored_at,
        }))
    }
}

/// RFC 3339 with milliseconds, in UTC.
pub(crate) fn rfc3339(time: OffsetDateTime) -> String {
    let time = to_millis(time);
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

/// `time` in UTC, cut to the milliseconds the commands print: a time
/// copied from a listing compares equal to the row it came from.
pub(crate) fn to_millis(time: OffsetDateTime) -> OffsetDateTime {
    let time = time.to_offset(time::UtcOffset::UTC);
    time.replace_nanosecond(u32::from(time.millisecond()) * 1_000_000)
        .unwrap_or(time)
}

/// `--since` / `--until`: RFC 3339 (`2024-05-01T12:00:00Z`, any offset) or
/// a duration ago (`2h`, `30m`, `1d 12h`, optionally followed by `ago`).
pub(crate) fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(time) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
        return Ok(time);
    }
    let ago = text.trim().trim_end_matches("ago").trim();
    let duration = humantime::parse_duration(ago).map_err(|_| {
        format!(
            "{text:?} is neither an RFC 3339 time (2024-05-01T12:00:00Z) nor a duration ago (2h, 30m)"
        )
    })?;
    let duration =
        time::Duration::try_from(duration).map_err(|_| format!("{text:?} is too long ago"))?;
    OffsetDateTime::now_utc()
        .checked_sub(duration)
        .ok_or_else(|| format!("{text:?} is too long ago"))
}

/// The deliveries stream's last sequence: where a selection ends.
pub(crate) async fn last_sequence(jetstream: &jetstream::Context) -> anyhow::Result<u64> {
    let mut stream = jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .with_context(|| format!("opening stream {DELIVERIES_STREAM}"))?;
    let info = stream
        .info()
        .await
        .with_context(|| format!("reading the state of {DELIVERIES_STREAM}"))?;
    Ok(info.state.last_sequence)
}
