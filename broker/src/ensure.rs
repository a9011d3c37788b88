//! Create or update every declared stream, bucket and consumer: one
//! `ensure` per kind. Missing → created (KV buckets with
//! `create_key_value`, object stores with `create_object_store`); present →
//! the settings tidegate owns are brought in line and each change is
//! logged. Nothing is ever deleted: a change that would drop stored
//! messages (limits below the current usage, a shorter `max_age`, fewer
//! replicas) is refused with an error naming the setting, unless the
//! operator set `jetstream.allow_shrink`.

use std::time::Duration;

use async_nats::ServerInfo;
use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use tracing::{info, warn};

use crate::settings::{JetStreamSettings, Replicas};

/// Where and how boldly to ensure: the replica count resolved for this
/// server, and whether shrinking is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub replicas: usize,
    pub allow_shrink: bool,
}

impl JetStreamSettings {
    /// `auto` is 3 on a cluster and 1 on a single server.
    pub fn placement(&self, server: &ServerInfo) -> Placement {
        let replicas = match self.replicas {
            Replicas::Fixed(count) => count,
            Replicas::Auto if server.cluster.is_some() => 3,
            Replicas::Auto => 1,
        };
        Placement {
            replicas,
            allow_shrink: self.allow_shrink,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error(
        "refusing to change {name}: {setting} would drop stored messages ({detail}); \
         set jetstream.allow_shrink = true (TIDEGATE_JETSTREAM__ALLOW_SHRINK=true) for one start to apply it anyway"
    )]
    WouldDropData {
        name: String,
        setting: &'static str,
        detail: String,
    },
    #[error(
        "{name} uses {current:?} storage, tidegate declares {desired:?}; the server cannot change it in place"
    )]
    Storage {
        name: String,
        current: stream::StorageType,
        desired: stream::StorageType,
    },
    #[error("{what} {name}: {source}")]
    Broker {
        what: &'static str,
        name: String,
        #[source]
        source: async_nats::Error,
    },
}

impl EnsureError {
    fn broker(what: &'static str, name: &str, source: impl Into<async_nats::Error>) -> Self {
        EnsureError::Broker {
            what,
            name: name.to_owned(),
            source: source.into(),
        }
    }
}

/// Creates the stream or brings the settings tidegate owns in line.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    mut desired: stream::Config,
    placement: Placement,
) -> Result<stream::Stream, EnsureError> {
    desired.num_replicas = placement.replicas;
    let name = desired.name.clone();
    match existing(jetstream, &name).await? {
        None => match jetstream.create_stream(desired.clone()).await {
            Ok(stream) => {
                info!(stream = %name, replicas = placement.replicas, "created stream");
                Ok(stream)
            }
            // Another process created it meanwhile: bring it in line.
            Err(error) if is_already_in_use(&error) => update(jetstream, &desired, placement).await,
            Err(error) => Err(EnsureError::broker("creating stream", &name, error)),
        },
        Some(_) => update(jetstream, &desired, placement).await,
    }
}

/// Creates the KV bucket with `create_key_value`, or brings its stream in
/// line like [`ensure_stream`].
pub async fn ensure_key_value(
    jetstream: &jetstream::Context,
    mut desired: kv::Config,
    placement: Placement,
) -> Result<kv::Store, EnsureError> {
    desired.num_replicas = placement.replicas;
    let bucket = desired.bucket.clone();
    let stream_name = format!("KV_{bucket}");
    if existing(jetstream, &stream_name).await?.is_none() {
        match jetstream.create_key_value(desired.clone()).await {
            Ok(store) => {
                info!(bucket = %bucket, replicas = placement.replicas, "created KV bucket");
                return Ok(store);
            }
            Err(error) if existing(jetstream, &stream_name).await?.is_some() => {
                // Another process created it meanwhile.
                drop(error);
            }
            Err(error) => return Err(EnsureError::broker("creating KV bucket", &bucket, error)),
        }
    }
    update(jetstream, &kv_stream(&desired), placement).await?;
    jetstream
        .get_key_value(&bucket)
        .await
        .map_err(|error| EnsureError::broker("opening KV bucket", &bucket, error))
}

/// Creates the object store with `create_object_store`, or brings its
/// stream in line like [`ensure_stream`].
pub async fn ensure_object_store(
    jetstream: &jetstream::Context,
    mut desired: object_store::Config,
    placement: Placement,
) -> Result<object_store::ObjectStore, EnsureError> {
    desired.num_replicas = placement.replicas;
    let bucket = desired.bucket.clone();
    let stream_name = format!("OBJ_{bucket}");
    if existing(jetstream, &stream_name).await?.is_none() {
        match jetstream.create_object_store(desired.clone()).await {
            Ok(store) => {
                info!(bucket = %bucket, replicas = placement.replicas, "created object store");
                return Ok(store);
            }
            Err(error) if existing(jetstream, &stream_name).await?.is_some() => drop(error),
            Err(error) => {
                return Err(EnsureError::broker("creating object store", &bucket, error));
            }
        }
    }
    update(jetstream, &object_stream(&desired), placement).await?;
    jetstream
        .get_object_store(&bucket)
        .await
        .map_err(|error| EnsureError::broker("opening object store", &bucket, error))
}

/// Creates the durable consumer, or updates the settings tidegate owns
/// (its start position cannot change and is kept).
pub async fn ensure_consumer(
    stream: &stream::Stream,
    desired: consumer::pull::Config,
) -> Result<consumer::PullConsumer, EnsureError> {
    let name = desired.durable_name.clone().unwrap_or_default();
    let current = match stream.consumer_info(&name).await {
        Ok(info) => Some(info.config.clone()),
        Err(error) if error.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => None,
        Err(error) => return Err(EnsureError::broker("reading consumer", &name, error)),
    };
    let Some(current) = current else {
        let consumer = stream
            .create_consumer(desired)
            .await
            .map_err(|error| EnsureError::broker("creating consumer", &name, error))?;
        info!(consumer = %name, "created consumer");
        return Ok(consumer);
    };
    let mut changes = Vec::new();
    let mut compare = |field: &'static str, now: String, wanted: String| {
        if now != wanted {
            changes.push(format!("{field} {now} → {wanted}"));
        }
    };
    compare(
        "filter_subject",
        format!("{:?}", current.filter_subject),
        format!("{:?}", desired.filter_subject),
    );
    compare(
        "filter_subjects",
        format!("{:?}", current.filter_subjects),
        format!("{:?}", desired.filter_subjects),
    );
    compare("ack_wait", human(current.ack_wait), human(desired.ack_wait));
    compare(
        "max_deliver",
        current.max_deliver.to_string(),
        desired.max_deliver.to_string(),
    );
    compare(
        "max_ack_pending",
        current.max_ack_pending.to_string(),
        desired.max_ack_pending.to_string(),
    );
    if changes.is_empty() {
        return stream
            .get_consumer(&name)
            .await
            .map_err(|error| EnsureError::broker("opening consumer", &name, error));
    }
    let updated = consumer::pull::Config {
        deliver_policy: current.deliver_policy,
        ..desired
    };
    let consumer = stream
        .update_consumer(updated)
        .await
        .map_err(|error| EnsureError::broker("updating consumer", &name, error))?;
    info!(consumer = %name, changes = %changes.join(", "), "updated consumer settings");
    Ok(consumer)
}

/// The stream's current info, `None` when it does not exist.
async fn existing(
    jetstream: &jetstream::Context,
    name: &str,
) -> Result<Option<stream::Info>, EnsureError> {
    match jetstream.get_stream(name).await {
        Ok(mut stream) => stream
            .info()
            .await
            .map(|info| Some(info.clone()))
            .map_err(|error| EnsureError::broker("reading stream", name, error)),
        Err(error) if crate::is_stream_not_found(&error) => Ok(None),
        Err(error) => Err(EnsureError::broker("reading stream", name, error)),
    }
}

fn is_already_in_use(error: &jetstream::context::CreateStreamError) -> bool {
    matches!(error.kind(), jetstream::context::CreateStreamErrorKind::JetStream(inner)
        if inner.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST)
}

/// Applies the owned settings of `desired` to the existing stream.
async fn update(
    jetstream: &jetstream::Context,
    desired: &stream::Config,
    placement: Placement,
) -> Result<stream::Stream, EnsureError> {
    let name = desired.name.clone();
    let info = existing(jetstream, &name)
        .await?
        .ok_or_else(|| EnsureError::broker("reading stream", &name, "it disappeared"))?;
    let current = &info.config;
    if current.storage != desired.storage {
        return Err(EnsureError::Storage {
            name,
            current: current.storage,
            desired: desired.storage,
        });
    }
    let updated = owned_settings(current, desired);
    let changes = changes(current, &updated);
    if changes.is_empty() {
        return stream_handle(jetstream, &name).await;
    }
    if !placement.allow_shrink {
        refuse_loss(&info, &updated)?;
    }
    jetstream
        .update_stream(updated)
        .await
        .map_err(|error| EnsureError::broker("updating stream", &name, error))?;
    info!(stream = %name, changes = %changes.join(", "), "updated stream settings");
    stream_handle(jetstream, &name).await
}

async fn stream_handle(
    jetstream: &jetstream::Context,
    name: &str,
) -> Result<stream::Stream, EnsureError> {
    jetstream
        .get_stream(name)
        .await
        .map_err(|error| EnsureError::broker("opening stream", name, error))
}

/// `current` with the settings tidegate owns taken from `desired`;
/// subjects are only ever added. Everything else (placement, compression,
/// mirrors, metadata an operator set) is left alone.
fn owned_settings(current: &stream::Config, desired: &stream::Config) -> stream::Config {
    let mut updated = current.clone();
    for subject in &desired.subjects {
        if !updated.subjects.contains(subject) {
            updated.subjects.push(subject.clone());
        }
    }
    // The server stores 0 ("no limit" in a request) as -1, and fills a
    // zero duplicate window with its default.
    let unlimited = |value: i64| if value <= 0 { -1 } else { value };
    updated.max_age = desired.max_age;
    updated.max_bytes = unlimited(desired.max_bytes);
    updated.max_messages = unlimited(desired.max_messages);
    updated.max_messages_per_subject = unlimited(desired.max_messages_per_subject);
    if !desired.duplicate_window.is_zero() {
        updated.duplicate_window = desired.duplicate_window;
    }
    updated.discard = desired.discard;
    updated.num_replicas = desired.num_replicas;
    updated.allow_direct = desired.allow_direct;
    // A TTL once allowed cannot be switched off again.
    updated.allow_message_ttl |= desired.allow_message_ttl;
    if desired.subject_delete_marker_ttl.is_some() {
        updated.subject_delete_marker_ttl = desired.subject_delete_marker_ttl;
    }
    if desired.description.is_some() {
        updated.description.clone_from(&desired.description);
    }
    updated
}

/// Human-readable changes between two stream configs, setting by setting.
fn changes(current: &stream::Config, updated: &stream::Config) -> Vec<String> {
    let mut changes = Vec::new();
    let mut note = |field: &str, before: String, after: String| {
        if before != after {
            changes.push(format!("{field} {before} → {after}"));
        }
    };
    note(
        "subjects",
        current.subjects.join(" "),
        updated.subjects.join(" "),
    );
    note("max_age", human(current.max_age), human(updated.max_age));
    note(
        "max_bytes",
        limit(current.max_bytes),
        limit(updated.max_bytes),
    );
    note(
        "max_msgs",
        limit(current.max_messages),
        limit(updated.max_messages),
    );
    note(
        "max_msgs_per_subject",
        limit(current.max_messages_per_subject),
        limit(updated.max_messages_per_subject),
    );
    note(
        "duplicate_window",
        human(current.duplicate_window),
        human(updated.duplicate_window),
    );
    note(
        "discard",
        format!("{:?}", current.discard),
        format!("{:?}", updated.discard),
    );
    note(
        "replicas",
        current.num_replicas.to_string(),
        updated.num_replicas.to_string(),
    );
    note(
        "allow_direct",
        current.allow_direct.to_string(),
        updated.allow_direct.to_string(),
    );
    note(
        "allow_msg_ttl",
        current.allow_message_ttl.to_string(),
        updated.allow_message_ttl.to_string(),
    );
    note(
        "subject_delete_marker_ttl",
        format!("{:?}", current.subject_delete_marker_ttl),
        format!("{:?}", updated.subject_delete_marker_ttl),
    );
    note(
        "description",
        format!("{:?}", current.description),
        format!("{:?}", updated.description),
    );
    changes
}

/// Refuses an update that would make the server drop stored messages.
fn refuse_loss(info: &stream::Info, updated: &stream::Config) -> Result<(), EnsureError> {
    let current = &info.config;
    let state = &info.state;
    let name = current.name.clone();
    let refuse = |setting: &'static str, detail: String| {
        Err(EnsureError::WouldDropData {
            name: name.clone(),
            setting,
            detail,
        })
    };
    if updated.num_replicas < current.num_replicas {
        return refuse(
            "replicas",
            format!(
                "{} placed, {} configured",
                current.num_replicas, updated.num_replicas
            ),
        );
    }
    if updated.max_bytes >= 0 && state.bytes > updated.max_bytes.unsigned_abs() {
        return refuse(
            "max_bytes",
            format!(
                "{} stored, new limit {}",
                state.bytes,
                limit(updated.max_bytes)
            ),
        );
    }
    if updated.max_messages >= 0 && state.messages > updated.max_messages.unsigned_abs() {
        return refuse(
            "max_msgs",
            format!(
                "{} stored, new limit {}",
                state.messages, updated.max_messages
            ),
        );
    }
    let per_subject_lowered = updated.max_messages_per_subject >= 0
        && (current.max_messages_per_subject < 0
            || updated.max_messages_per_subject < current.max_messages_per_subject);
    if per_subject_lowered && state.messages > 0 {
        return refuse(
            "max_msgs_per_subject",
            format!(
                "{} → {} with {} messages stored",
                limit(current.max_messages_per_subject),
                limit(updated.max_messages_per_subject),
                state.messages
            ),
        );
    }
    let age_shortened = !updated.max_age.is_zero()
        && (current.max_age.is_zero() || updated.max_age < current.max_age);
    if age_shortened && state.messages > 0 {
        let oldest = time::OffsetDateTime::now_utc() - state.first_timestamp;
        let oldest = Duration::try_from(oldest).unwrap_or_default();
        if oldest > updated.max_age {
            return refuse(
                "max_age",
                format!(
                    "the oldest message is {} old, new limit {}",
                    human(oldest),
                    human(updated.max_age)
                ),
            );
        }
    }
    if updated.num_replicas > current.num_replicas {
        warn!(stream = %name, from = current.num_replicas, to = updated.num_replicas, "raising the replica count; the server copies the stream to the new peers");
    }
    Ok(())
}

fn human(duration: Duration) -> String {
    if duration.is_zero() {
        "unlimited".to_owned()
    } else {
        humantime::format_duration(Duration::from_secs(duration.as_secs().max(1))).to_string()
    }
}

fn limit(value: i64) -> String {
    if value < 0 {
        "unlimited".to_owned()
    } else {
        value.to_string()
    }
}

/// The stream `create_key_value` makes for `config` (the owned settings).
fn kv_stream(config: &kv::Config) -> stream::Config {
    stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history.max(1),
        max_bytes: config.max_bytes,
        max_age: config.max_age,
        storage: config.storage,
        num_replicas: config.num_replicas.max(1),
        discard: stream::DiscardPolicy::New,
        allow_direct: true,
        allow_message_ttl: config.limit_markers.is_some(),
        subject_delete_marker_ttl: config.limit_markers,
        ..Default::default()
    }
}

/// The stream `create_object_store` makes for `config` (the owned
/// settings).
fn object_stream(config: &object_store::Config) -> stream::Config {
    stream::Config {
        name: format!("OBJ_{}", config.bucket),
        description: config.description.clone(),
        subjects: vec![
            format!("$O.{}.C.>", config.bucket),
            format!("$O.{}.M.>", config.bucket),
        ],
        max_bytes: config.max_bytes,
        max_age: config.max_age,
        storage: config.storage,
        num_replicas: config.num_replicas.max(1),
        discard: stream::DiscardPolicy::New,
        allow_direct: true,
        ..Default::default()
    }
}
