//! Idempotency lookups, batched: every job asks whether its key completed,
//! and one task answers the questions that arrive while a lookup is in
//! flight with one batched direct get (`multi_last`, nats-server ≥ 2.11)
//! per stream holding records — the results stream for delivery-id keys,
//! the KV bucket's for the others (`dedupe::Record`) — instead of one
//! request per job. A KV key counts as completed when its last record is a
//! value (not a delete, purge or expiry marker); a delivery when its last
//! result records a completion (`broker::results::is_completion`).
//!
//! Versions before the results held the record wrote delivery-id keys to
//! the bucket too: while the bucket holds any record of this worker
//! (checked at the first lookup and every [`LEGACY_RECHECK`]), a
//! delivery-id key is also looked up there, so no record written before an
//! upgrade is missed until all have expired. A lookup that fails answers
//! "not completed": running again is safer than losing work.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, StatusCode, Subscriber};
use futures::StreamExt;
use schemas::streams::{IDEMPOTENCY_BUCKET, RESULTS_STREAM};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::dedupe::{self, Record};

/// Keys asked in one request at most; more wait for the next one.
const MAX_BATCH: usize = 64;

/// How often the bucket is checked again for records of earlier versions.
const LEGACY_RECHECK: Duration = Duration::from_secs(300);

/// The handle jobs ask through. The answering task ends when it is
/// dropped.
pub struct Lookups {
    worker: String,
    questions: mpsc::Sender<Question>,
}

struct Question {
    record: Record,
    /// The subject of the record in its stream.
    subject: String,
    /// For a delivery-id key: its subject in the bucket, where earlier
    /// versions recorded it.
    legacy_subject: Option<String>,
    answer: oneshot::Sender<bool>,
}

impl Lookups {
    /// Starts the answering task for `worker`; each request waits at most
    /// `timeout`. At most `queue` questions wait for the next request.
    pub fn start(client: Client, worker: &str, timeout: Duration, queue: usize) -> Lookups {
        let (questions, receiver) = mpsc::channel(queue.max(1));
        tokio::spawn(serve(client, worker.to_owned(), receiver, timeout));
        Lookups {
            worker: worker.to_owned(),
            questions,
        }
    }

    /// Whether `key`, the idempotency key of the delivery `delivery_id`,
    /// already completed.
    pub async fn is_completed(&self, key: &str, delivery_id: &str) -> bool {
        let bucket_subject = || {
            format!(
                "$KV.{IDEMPOTENCY_BUCKET}.{}",
                dedupe::bucket_key(&self.worker, key)
            )
        };
        let record = Record::of(key, delivery_id);
        let (subject, legacy_subject) = match record {
            Record::Result => (
                broker::results::subject(&self.worker, delivery_id),
                Some(bucket_subject()),
            ),
            Record::Bucket => (bucket_subject(), None),
        };
        let (answer, answered) = oneshot::channel();
        let question = Question {
            record,
            subject,
            legacy_subject,
            answer,
        };
        if self.questions.send(question).await.is_err() {
            return false;
        }
        answered.await.unwrap_or(false)
    }
}

async fn serve(
    client: Client,
    worker: String,
    mut questions: mpsc::Receiver<Question>,
    timeout: Duration,
) {
    // One reply subject per request, under one subscription: an answer
    // that arrives after its request timed out is recognised and dropped.
    let mut asker = Asker {
        client,
        inbox: String::new(),
        replies: None,
        request: 0,
        timeout,
    };
    asker.inbox = asker.client.new_inbox();
    // Whether the bucket may hold records of earlier versions, and when
    // that was last checked.
    let mut legacy: Option<(bool, Instant)> = None;
    while let Some(first) = questions.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match questions.try_recv() {
                Ok(question) => batch.push(question),
                Err(_) => break,
            }
        }
        let check_legacy = batch
            .iter()
            .any(|question| question.legacy_subject.is_some())
            && legacy.is_none_or(|(_, checked)| checked.elapsed() >= LEGACY_RECHECK);
        if check_legacy {
            let present = asker.legacy_present(&worker).await;
            if present && legacy.is_none() {
                info!(
                    "the idempotency bucket holds records of this worker: delivery ids are looked up there too until they expire"
                );
            }
            legacy = Some((present, Instant::now()));
        }
        let with_legacy = legacy.is_some_and(|(present, _)| present);
        let mut results = HashSet::new();
        let mut bucket = HashSet::new();
        for question in &batch {
            match question.record {
                Record::Result => {
                    results.insert(question.subject.as_str());
                }
                Record::Bucket => {
                    bucket.insert(question.subject.as_str());
                }
            }
            if with_legacy && let Some(subject) = &question.legacy_subject {
                bucket.insert(subject.as_str());
            }
        }
        let mut completed = asker
            .completed(RESULTS_STREAM, &results, Record::Result)
            .await;
        completed.extend(
            asker
                .completed(&format!("KV_{IDEMPOTENCY_BUCKET}"), &bucket, Record::Bucket)
                .await,
        );
        for question in batch {
            let done = completed.contains(&question.subject)
                || (with_legacy
                    && question
                        .legacy_subject
                        .as_ref()
                        .is_some_and(|subject| completed.contains(subject)));
            // A job that stopped waiting (shutdown) needs no answer.
            let _ = question.answer.send(done);
        }
    }
}

/// Sends batched direct gets and reads their answers.
struct Asker {
    client: Client,
    inbox: String,
    replies: Option<Subscriber>,
    request: u64,
    timeout: Duration,
}

impl Asker {
    /// The subjects among `subjects` (of `stream`) whose last record is a
    /// completion; none when the lookup fails.
    async fn completed(
        &mut self,
        stream: &str,
        subjects: &HashSet<&str>,
        record: Record,
    ) -> HashSet<String> {
        if subjects.is_empty() {
            return HashSet::new();
        }
        let subjects: Vec<&str> = subjects.iter().copied().collect();
        let request = serde_json::json!({ "multi_last": subjects, "batch": subjects.len() });
        self.ask(stream, &request, record)
            .await
            .unwrap_or_else(|error| {
                warn!(error = %error, "idempotency lookup failed; running the jobs");
                HashSet::new()
            })
    }

    /// Whether the bucket holds any value of `worker`: one is enough to
    /// say so. A failed check (too many to answer, no answer) says yes.
    async fn legacy_present(&mut self, worker: &str) -> bool {
        let request = serde_json::json!({
            "multi_last": [format!("$KV.{IDEMPOTENCY_BUCKET}.{worker}.>")],
            "batch": 1,
        });
        let stream = format!("KV_{IDEMPOTENCY_BUCKET}");
        match self.ask(&stream, &request, Record::Bucket).await {
            Ok(found) => !found.is_empty(),
            Err(error) => {
                warn!(error = %error, "checking the idempotency bucket for earlier records failed; looking there too");
                true
            }
        }
    }

    async fn ask(
        &mut self,
        stream: &str,
        request: &serde_json::Value,
        record: Record,
    ) -> anyhow::Result<HashSet<String>> {
        if self.replies.is_none() {
            self.replies = Some(self.client.subscribe(format!("{}.*", self.inbox)).await?);
        }
        let replies = self.replies.as_mut().expect("subscribed above");
        self.request += 1;
        let reply = format!("{}.{}", self.inbox, self.request);
        ask(
            &self.client,
            replies,
            &reply,
            stream,
            request,
            record,
            self.timeout,
        )
        .await
    }
}

/// One batched direct get: the subjects whose last record is a
/// completion.
async fn ask(
    client: &Client,
    replies: &mut Subscriber,
    reply: &str,
    stream: &str,
    request: &serde_json::Value,
    record: Record,
    timeout: Duration,
) -> anyhow::Result<HashSet<String>> {
    client
        .publish_with_reply(
            format!("$JS.API.DIRECT.GET.{stream}"),
            reply.to_owned(),
            serde_json::to_vec(request)?.into(),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut completed = HashSet::new();
    loop {
        let message = tokio::time::timeout_at(deadline, replies.next())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the reply subscription ended"))?;
        if message.subject.as_str() != reply {
            continue;
        }
        match answer(&message, record) {
            Answer::Record(Some(subject)) => {
                completed.insert(subject);
            }
            Answer::Record(None) => {}
            Answer::End => return Ok(completed),
            Answer::Error(error) => anyhow::bail!(error),
        }
    }
}

enum Answer {
    /// A stored record: its subject when it records a completion.
    Record(Option<String>),
    /// The end of the batch, or nothing found.
    End,
    Error(String),
}

fn answer(message: &Message, record: Record) -> Answer {
    match message.status {
        None => Answer::Record(
            message
                .headers
                .as_ref()
                .filter(|headers| match record {
                    Record::Bucket => is_value(headers),
                    Record::Result => {
                        broker::results::is_completion(Some(headers), &message.payload)
                    }
                })
                .and_then(|headers| headers.get("Nats-Subject"))
                .map(|subject| subject.as_str().to_owned()),
        ),
        // 204 ends a batch; 404: none of the subjects has a record.
        Some(status) if status.as_u16() == 204 || status == StatusCode::NOT_FOUND => Answer::End,
        Some(status) => Answer::Error(format!(
            "{} {}",
            status.as_u16(),
            message.description.as_deref().unwrap_or("")
        )),
    }
}

/// A KV record that holds a value: no delete or purge operation, no
/// expiry marker.
fn is_value(headers: &HeaderMap) -> bool {
    let operation = headers.get("KV-Operation").map(|value| value.as_str());
    matches!(operation, None | Some("PUT")) && headers.get("Nats-Marker-Reason").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_markers() {
        let mut headers = HeaderMap::new();
        assert!(is_value(&headers));
        headers.insert("KV-Operation", "PUT");
        assert!(is_value(&headers));
        headers.insert("KV-Operation", "DEL");
        assert!(!is_value(&headers));
        headers.insert("KV-Operation", "PURGE");
        assert!(!is_value(&headers));
        let mut marker = HeaderMap::new();
        marker.insert("Nats-Marker-Reason", "MaxAge");
        assert!(!is_value(&marker));
    }
}
