//! Idempotency lookups, batched: every job asks whether its key completed,
//! and one task answers the questions that arrive while a lookup is in
//! flight with a single batched direct get (`multi_last`, nats-server ≥
//! 2.11) of the keys' last records in the bucket's stream, instead of one
//! request per job. A key counts as completed when its last record is a
//! value (not a delete, purge or expiry marker). A lookup that fails
//! answers "not completed": running again is safer than losing work.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, StatusCode, Subscriber};
use futures::StreamExt;
use schemas::streams::IDEMPOTENCY_BUCKET;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::dedupe;

/// Keys asked in one request at most; more wait for the next one.
const MAX_BATCH: usize = 64;

/// The handle jobs ask through. The answering task ends when it is
/// dropped.
pub struct Lookups {
    questions: mpsc::Sender<Question>,
}

struct Question {
    subject: String,
    answer: oneshot::Sender<bool>,
}

impl Lookups {
    /// Starts the answering task; each request waits at most `timeout`.
    /// At most `queue` questions wait for the next request.
    pub fn start(client: Client, timeout: Duration, queue: usize) -> Lookups {
        let (questions, receiver) = mpsc::channel(queue.max(1));
        tokio::spawn(serve(client, receiver, timeout));
        Lookups { questions }
    }

    /// Whether `key` already completed for `worker`.
    pub async fn is_completed(&self, worker: &str, key: &str) -> bool {
        let subject = format!(
            "$KV.{IDEMPOTENCY_BUCKET}.{}",
            dedupe::bucket_key(worker, key)
        );
        let (answer, answered) = oneshot::channel();
        if self
            .questions
            .send(Question { subject, answer })
            .await
            .is_err()
        {
            return false;
        }
        answered.await.unwrap_or(false)
    }
}

async fn serve(client: Client, mut questions: mpsc::Receiver<Question>, timeout: Duration) {
    // One reply subject per request, under one subscription: an answer
    // that arrives after its request timed out is recognised and dropped.
    let inbox = client.new_inbox();
    let mut replies = None;
    let mut request = 0u64;
    while let Some(first) = questions.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match questions.try_recv() {
                Ok(question) => batch.push(question),
                Err(_) => break,
            }
        }
        if replies.is_none() {
            match client.subscribe(format!("{inbox}.*")).await {
                Ok(subscriber) => replies = Some(subscriber),
                Err(error) => warn!(error = %error, "idempotency lookups cannot subscribe"),
            }
        }
        request += 1;
        let completed = match replies.as_mut() {
            Some(replies) => {
                let reply = format!("{inbox}.{request}");
                let subjects: Vec<&str> = batch
                    .iter()
                    .map(|question| question.subject.as_str())
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                ask(&client, replies, &reply, &subjects, timeout)
                    .await
                    .unwrap_or_else(|error| {
                        warn!(error = %error, "idempotency lookup failed; running the jobs");
                        HashSet::new()
                    })
            }
            None => HashSet::new(),
        };
        for question in batch {
            let done = completed.contains(&question.subject);
            // A job that stopped waiting (shutdown) needs no answer.
            let _ = question.answer.send(done);
        }
    }
}

/// One batched direct get: the subjects whose last record is a value.
async fn ask(
    client: &Client,
    replies: &mut Subscriber,
    reply: &str,
    subjects: &[&str],
    timeout: Duration,
) -> anyhow::Result<HashSet<String>> {
    let request = serde_json::json!({ "multi_last": subjects, "batch": subjects.len() });
    client
        .publish_with_reply(
            format!("$JS.API.DIRECT.GET.KV_{IDEMPOTENCY_BUCKET}"),
            reply.to_owned(),
            serde_json::to_vec(&request)?.into(),
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
        match answer(&message) {
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
    /// A stored record: its subject when it holds a value.
    Record(Option<String>),
    /// The end of the batch, or nothing found.
    End,
    Error(String),
}

fn answer(message: &Message) -> Answer {
    match message.status {
        None => Answer::Record(
            message
                .headers
                .as_ref()
                .filter(|headers| is_value(headers))
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
