//! The consumer API's leases, all in JetStream. Each agent and source has
//! one durable consumer (`broker::catalog::api_consumer`): fetching from it
//! leases items for its `ack_wait` (the visibility timeout), and JetStream
//! hands a leased item to nobody else until then. Since every item belongs
//! to exactly one such consumer, no combination of filters leases an item
//! twice. Each lease's ack subject is recorded in `tidegate_api_leases`
//! under the item id, so whichever replica gets the `DELETE` can ack it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message, kv, stream};
use broker::catalog;
use broker::ensure::{ensure_consumer, ensure_key_value};
use futures::{StreamExt as _, TryStreamExt as _};
use schemas::streams::{AGENT_PREFIX, API_CONSUMER_PREFIX, DELIVERIES_STREAM};
use tokio::sync::OnceCell;

use crate::nats::Broker;

/// At most this many agent/source pairs are read per request.
const MAX_PAIRS: usize = 10_000;

/// Handles this process reuses; the state itself is in JetStream, and any
/// replica finds the same consumers by name.
#[derive(Debug, Default)]
pub struct Leases {
    /// Consumers ensured by this process, by name.
    consumers: Mutex<HashMap<String, PullConsumer>>,
    bucket: OnceCell<kv::Store>,
}

/// One agent and source: one consumer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pair {
    pub(super) agent: String,
    pub(super) source: String,
}

/// Why the broker could not do its part; the request answers 503.
#[derive(Debug, thiserror::Error)]
pub(super) enum LeaseError {
    #[error("{what} timed out")]
    TimedOut { what: &'static str },
    #[error("{what}: {detail}")]
    Broker { what: &'static str, detail: String },
}

/// What acking an item's recorded lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acked {
    /// The server confirmed the ack: the item is processed.
    Deleted,
    /// No lease recorded: deleted before, never handed out, or not an id.
    Unknown,
}

impl Leases {
    /// The agent/source pairs with stored deliveries, narrowed by the
    /// filters. Only pairs with deliveries get a consumer: a poller cannot
    /// make the API create consumers by naming pairs.
    pub(super) async fn pairs(
        &self,
        broker: &Broker,
        agent: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<Pair>, LeaseError> {
        let filter = format!(
            "{AGENT_PREFIX}.{}.{}",
            agent.unwrap_or("*"),
            source.unwrap_or("*")
        );
        let listing = async {
            let stream = stream_handle(broker).await?;
            let subjects = stream
                .info_with_subjects(&filter)
                .await
                .map_err(|error| broker_error("reading the stream's subjects", error))?;
            subjects
                .take(MAX_PAIRS)
                .map_err(|error| broker_error("reading the stream's subjects", error))
                .try_filter_map(|(subject, _)| async move { Ok(pair_of(&subject)) })
                .try_collect::<Vec<Pair>>()
                .await
        };
        let mut pairs = bounded(broker, "reading the stream's subjects", listing).await?;
        pairs.sort();
        Ok(pairs)
    }

    /// The pair's consumer, created or brought in line the first time this
    /// process uses it.
    pub(super) async fn consumer(
        &self,
        broker: &Broker,
        pair: &Pair,
        visibility_timeout: Duration,
    ) -> Result<PullConsumer, LeaseError> {
        let name = catalog::api_consumer_name(&pair.agent, &pair.source);
        if let Some(consumer) = self.cached(&name) {
            return Ok(consumer);
        }
        let config = catalog::api_consumer(&pair.agent, &pair.source, visibility_timeout);
        let ensured = async {
            let stream = stream_handle(broker).await?;
            ensure_consumer(&stream, config)
                .await
                .map_err(|error| broker_error("ensuring the API consumer", error))
        };
        let consumer = bounded(broker, "ensuring the API consumer", ensured).await?;
        self.consumers
            .lock()
            .expect("never poisoned: no code panics while holding it")
            .insert(name, consumer.clone());
        Ok(consumer)
    }

    /// Forgets a consumer whose fetch failed, so the next request ensures
    /// it again (it may have been deleted).
    pub(super) fn forget(&self, pair: &Pair) {
        let name = catalog::api_consumer_name(&pair.agent, &pair.source);
        self.consumers
            .lock()
            .expect("never poisoned: no code panics while holding it")
            .remove(&name);
    }

    fn cached(&self, name: &str) -> Option<PullConsumer> {
        self.consumers
            .lock()
            .expect("never poisoned: no code panics while holding it")
            .get(name)
            .cloned()
    }

    /// Leases up to `count` items of one pair: what is available now, oldest
    /// first (redeliveries of lapsed leases come first).
    pub(super) async fn fetch(
        &self,
        broker: &Broker,
        consumer: &PullConsumer,
        count: usize,
    ) -> Result<Vec<Message>, LeaseError> {
        let fetched = async {
            let mut batch = consumer
                .fetch()
                .max_messages(count)
                .messages()
                .await
                .map_err(|error| broker_error("fetching items", error))?;
            let mut messages = Vec::with_capacity(count);
            while let Some(message) = batch.next().await {
                match message {
                    Ok(message) => messages.push(message),
                    // The batch ended early (max_ack_pending, a leader
                    // change): what arrived is leased and returned.
                    Err(error) if !messages.is_empty() => {
                        tracing::debug!(error = %error, "fetch ended early");
                        break;
                    }
                    Err(error) => return Err(broker_error("fetching items", error)),
                }
            }
            Ok(messages)
        };
        bounded(broker, "fetching items", fetched).await
    }

    /// Records each leased item's ack subject under its id, so any replica
    /// can complete a `DELETE`.
    pub(super) async fn record(
        &self,
        broker: &Broker,
        leases: &[(u64, String)],
    ) -> Result<(), LeaseError> {
        let bucket = self.bucket(broker).await?.clone();
        let puts = futures::stream::iter(leases.to_vec())
            .map(move |(id, ack_subject)| {
                let bucket = bucket.clone();
                async move {
                    bucket
                        .put(id.to_string(), ack_subject.into())
                        .await
                        .map(drop)
                        .map_err(|error| broker_error("recording a lease", error))
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>();
        bounded(broker, "recording leases", puts).await.map(drop)
    }

    /// Acks the latest lease of item `id` and confirms it with the server,
    /// then removes the record. A recorded lease that already lapsed still
    /// acks the item: it is processed either way.
    pub(super) async fn ack(&self, broker: &Broker, id: u64) -> Result<Acked, LeaseError> {
        let bucket = self.bucket(broker).await?;
        let key = id.to_string();
        let recorded = bounded(broker, "reading a lease", async {
            bucket
                .get(key.as_str())
                .await
                .map_err(|error| broker_error("reading a lease", error))
        })
        .await?;
        let Some(recorded) = recorded else {
            return Ok(Acked::Unknown);
        };
        let ack_subject = String::from_utf8(recorded.to_vec())
            .ok()
            .filter(|subject| is_api_ack_subject(subject));
        let Some(ack_subject) = ack_subject else {
            // Not written by this code: never publish to it.
            tracing::warn!(
                item = id,
                "ignoring a lease record that is not an API ack subject"
            );
            return Ok(Acked::Unknown);
        };
        let client = &broker.connection.client;
        let consumer = consumer_of(&ack_subject).to_owned();
        let acked = bounded(broker, "acknowledging an item", async {
            match client.request(ack_subject, AckKind::Ack.into()).await {
                Ok(_) => Ok(Acked::Deleted),
                // Nobody took the ack: the consumer was deleted (so was the
                // lease; a recreated consumer hands the item out anew), or
                // it is moving between servers (try again later).
                Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {
                    if consumer_exists(broker, &consumer).await? {
                        Err(broker_error("acknowledging an item", error))
                    } else {
                        Ok(Acked::Unknown)
                    }
                }
                Err(error) => Err(broker_error("acknowledging an item", error)),
            }
        })
        .await?;
        bounded(broker, "removing a lease", async {
            bucket
                .delete(key.as_str())
                .await
                .map_err(|error| broker_error("removing a lease", error))
        })
        .await?;
        Ok(acked)
    }

    /// Releases items fetched but not handed out (a later step failed), so
    /// they are pending again at once.
    pub(super) async fn release(&self, messages: &[Message]) {
        for message in messages {
            if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                tracing::warn!(error = %error, "releasing an item failed; it returns after the visibility timeout");
            }
        }
    }

    async fn bucket(&self, broker: &Broker) -> Result<&kv::Store, LeaseError> {
        self.bucket
            .get_or_try_init(|| async {
                let server = broker.connection.client.server_info();
                let placement = broker.config.jetstream.placement(&server);
                bounded(broker, "ensuring the lease bucket", async {
                    ensure_key_value(
                        &broker.connection.jetstream,
                        catalog::api_leases(),
                        placement,
                    )
                    .await
                    .map_err(|error| broker_error("ensuring the lease bucket", error))
                })
                .await
            })
            .await
    }
}

/// `tidegate.in.agent.<agent>.<source>` → the pair; other shapes are not
/// the API's.
pub(super) fn pair_of(subject: &str) -> Option<Pair> {
    let rest = subject.strip_prefix(AGENT_PREFIX)?.strip_prefix('.')?;
    let (agent, source) = rest.split_once('.')?;
    (!source.contains('.')).then(|| Pair {
        agent: agent.to_owned(),
        source: source.to_owned(),
    })
}

/// An ack subject of one of the API's consumers on the deliveries stream
/// (`$JS.ACK.<stream>.<consumer>.…`, or with a domain and account hash,
/// `$JS.ACK.<domain>.<account>.<stream>.<consumer>.…`): nothing else is
/// ever published to.
pub(super) fn is_api_ack_subject(subject: &str) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    let (stream, consumer, rest) = match tokens.as_slice() {
        ["$JS", "ACK", stream, consumer, rest @ ..] if rest.len() == 5 => (stream, consumer, rest),
        ["$JS", "ACK", _, _, stream, consumer, rest @ ..] if rest.len() >= 5 => {
            (stream, consumer, rest)
        }
        _ => return false,
    };
    *stream == DELIVERIES_STREAM
        && consumer.starts_with(API_CONSUMER_PREFIX)
        && consumer.len() > API_CONSUMER_PREFIX.len()
        && consumer
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        && rest[..5]
            .iter()
            .all(|token| !token.is_empty() && token.bytes().all(|byte| byte.is_ascii_digit()))
}

/// The consumer token of an ack subject `is_api_ack_subject` accepted.
fn consumer_of(ack_subject: &str) -> &str {
    ack_subject
        .split('.')
        .find(|token| token.starts_with(API_CONSUMER_PREFIX))
        .unwrap_or_default()
}

async fn consumer_exists(broker: &Broker, name: &str) -> Result<bool, LeaseError> {
    let stream = stream_handle(broker).await?;
    match stream.consumer_info(name).await {
        Ok(_) => Ok(true),
        Err(error)
            if error.kind() == async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound =>
        {
            Ok(false)
        }
        Err(error) => Err(broker_error("reading an API consumer", error)),
    }
}

async fn stream_handle(broker: &Broker) -> Result<stream::Stream, LeaseError> {
    broker
        .connection
        .jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .map_err(|error| broker_error("opening the deliveries stream", error))
}

/// Every broker step is bounded by `nats.publish_timeout`.
async fn bounded<T>(
    broker: &Broker,
    what: &'static str,
    step: impl Future<Output = Result<T, LeaseError>>,
) -> Result<T, LeaseError> {
    tokio::time::timeout(broker.config.nats.publish_timeout, step)
        .await
        .map_err(|_| LeaseError::TimedOut { what })?
}

fn broker_error(what: &'static str, error: impl std::fmt::Display) -> LeaseError {
    LeaseError::Broker {
        what,
        detail: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_agent_subjects_make_pairs() {
        let pair = |agent: &str, source: &str| Pair {
            agent: agent.into(),
            source: source.into(),
        };
        assert_eq!(
            pair_of("tidegate.in.agent.flickclaw.putio"),
            Some(pair("flickclaw", "putio"))
        );
        assert_eq!(pair_of("tidegate.in.agent.flickclaw"), None);
        assert_eq!(pair_of("tidegate.in.agent.a.b.c"), None);
        assert_eq!(pair_of("tidegate.in.agents.a.b"), None);
        assert_eq!(pair_of("tidegate.in.github.push"), None);
    }

    #[test]
    fn only_api_ack_subjects_are_published_to() {
        let consumer = catalog::api_consumer_name("flickclaw", "putio");
        let good = format!("$JS.ACK.TIDEGATE_DELIVERIES.{consumer}.1.42.7.1700000000000000000.0");
        assert!(is_api_ack_subject(&good));
        let domain = format!(
            "$JS.ACK.hub.ACCHASH.TIDEGATE_DELIVERIES.{consumer}.1.42.7.1700000000000000000.0.tok"
        );
        assert!(is_api_ack_subject(&domain));
        for bad in [
            "$JS.ACK.TIDEGATE_DELIVERIES.forward.1.42.7.1700000000000000000.0".to_owned(),
            format!("$JS.ACK.OTHER.{consumer}.1.42.7.1700000000000000000.0"),
            format!("$JS.ACK.TIDEGATE_DELIVERIES.{consumer}.1.42.*.1700000000000000000.0"),
            format!("$JS.ACK.TIDEGATE_DELIVERIES.{consumer}.>"),
            "$JS.API.STREAM.DELETE.TIDEGATE_DELIVERIES".to_owned(),
            "tidegate.in.agent.flickclaw.putio".to_owned(),
            format!("$JS.ACK.TIDEGATE_DELIVERIES.{consumer}.1.42.7.170000 0.0"),
        ] {
            assert!(!is_api_ack_subject(&bad), "{bad}");
        }
    }
}
