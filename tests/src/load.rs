//! Steady load for the fault suite, and the loss audit: a sender that
//! posts signed GitHub pushes to one or more ingresses, logging every
//! delivery id with the status it got, and an audit that compares that log
//! with what the stream holds.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::sign;

/// One delivery attempt as the sender saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    /// The HTTP status, or 0 when no answer came (connection refused or
    /// reset, timeout).
    pub status: u16,
    /// The `Retry-After` of a 503.
    pub retry_after: Option<String>,
}

/// Posts a signed push every `interval` per worker task, round-robin over
/// `targets` (full URLs of the GitHub route), until stopped. Delivery ids
/// are `<prefix>-<task>-<n>`: give each sender of a test its own prefix.
pub struct Sender {
    log: Arc<Mutex<Vec<Sent>>>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Sender {
    pub fn start(
        prefix: &str,
        targets: Vec<String>,
        secret: &str,
        tasks: usize,
        interval: Duration,
    ) -> Sender {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client");
        let mut set = JoinSet::new();
        for task in 0..tasks {
            let (log, stop, http, targets) =
                (log.clone(), stop.clone(), http.clone(), targets.clone());
            let (secret, prefix) = (secret.to_owned(), prefix.to_owned());
            set.spawn(async move {
                let mut sequence = 0usize;
                while !stop.is_cancelled() {
                    let id = format!("{prefix}-{task}-{sequence}");
                    let target = &targets[(task + sequence) % targets.len()];
                    sequence += 1;
                    let sent = post(&http, target, &secret, &id).await;
                    log.lock().expect("not poisoned").push(sent);
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = stop.cancelled() => {}
                    }
                }
            });
        }
        Sender {
            log,
            stop,
            tasks: set,
        }
    }

    /// Attempts so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.log.lock().expect("not poisoned").clone()
    }

    /// 2xx answers so far.
    pub fn accepted(&self) -> usize {
        self.sent()
            .iter()
            .filter(|sent| is_2xx(sent.status))
            .count()
    }

    /// Stops, waits for requests in flight, and returns the whole log.
    pub async fn stop(mut self) -> Vec<Sent> {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.sent()
    }
}

async fn post(http: &reqwest::Client, target: &str, secret: &str, id: &str) -> Sent {
    let body = format!(
        r#"{{"ref":"refs/heads/main","after":"6dcb09b5b57875f334f61aebed695e2e4193db5e","repository":{{"id":1296269,"full_name":"tidegate-dev/load"}},"installation":{{"id":1}},"delivery":"{id}"}}"#
    );
    let response = http
        .post(target)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", id)
        .header("x-hub-signature-256", sign::github(secret, body.as_bytes()))
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => Sent {
            id: id.to_owned(),
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        },
        Err(_) => Sent {
            id: id.to_owned(),
            status: 0,
            retry_after: None,
        },
    }
}

fn is_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The sender's log against the stream: nothing acknowledged may be
/// missing, nothing stored twice, and every refusal a 503 with
/// `Retry-After` (or no answer at all, when the ingress itself died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub sent: usize,
    pub accepted: usize,
    pub unavailable: usize,
    /// No answer (connection refused or reset, timeout).
    pub unanswered: usize,
    /// Any other status, or a 503 without `Retry-After`.
    pub other: usize,
    pub stored: usize,
    /// Acknowledged (2xx) but not in the stream.
    pub lost: Vec<String>,
    /// Stored more than once.
    pub duplicated: Vec<String>,
}

impl Audit {
    /// `stored` are the delivery ids of the stream's messages.
    pub fn new(sent: &[Sent], stored: &[String]) -> Audit {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in stored {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        let mut lost: Vec<String> = sent
            .iter()
            .filter(|sent| is_2xx(sent.status) && !counts.contains_key(sent.id.as_str()))
            .map(|sent| sent.id.clone())
            .collect();
        lost.sort();
        lost.dedup();
        let mut duplicated: Vec<String> = counts
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(id, _)| (*id).to_owned())
            .collect();
        duplicated.sort();
        Audit {
            sent: sent.len(),
            accepted: sent.iter().filter(|sent| is_2xx(sent.status)).count(),
            unavailable: sent
                .iter()
                .filter(|sent| sent.status == 503 && sent.retry_after.is_some())
                .count(),
            unanswered: sent.iter().filter(|sent| sent.status == 0).count(),
            other: sent
                .iter()
                .filter(|sent| {
                    !(is_2xx(sent.status)
                        || sent.status == 0
                        || (sent.status == 503 && sent.retry_after.is_some()))
                })
                .count(),
            stored: stored.len(),
            lost,
            duplicated,
        }
    }

    /// Panics, with the table, unless nothing acknowledged was lost,
    /// nothing duplicated and every refusal was a 503 with `Retry-After`
    /// or no answer.
    pub fn assert_clean(&self, what: &str) {
        eprintln!("{what}\n{self}");
        assert!(self.accepted > 0, "{what}: nothing was accepted\n{self}");
        assert!(
            self.lost.is_empty(),
            "{what}: acknowledged deliveries lost\n{self}"
        );
        assert!(self.duplicated.is_empty(), "{what}: duplicates\n{self}");
        assert_eq!(
            self.other, 0,
            "{what}: answers other than 2xx or 503 + Retry-After\n{self}"
        );
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| sent | 2xx | 503 | no answer | other | stored | lost | duplicated |"
        )?;
        writeln!(f, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.sent,
            self.accepted,
            self.unavailable,
            self.unanswered,
            self.other,
            self.stored,
            self.lost.len(),
            self.duplicated.len()
        )?;
        if !self.lost.is_empty() {
            write!(f, "\nlost: {:?}", self.lost)?;
        }
        if !self.duplicated.is_empty() {
            write!(f, "\nduplicated: {:?}", self.duplicated)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str, status: u16) -> Sent {
        Sent {
            id: id.to_owned(),
            status,
            retry_after: (status == 503).then(|| "1".to_owned()),
        }
    }

    #[test]
    fn the_audit_finds_losses_duplicates_and_odd_answers() {
        let log = [
            sent("a", 202),
            sent("b", 202),
            sent("c", 503),
            sent("d", 0),
            sent("e", 500),
            sent("b", 200),
        ];
        let stored = ["a".to_owned(), "c".to_owned(), "c".to_owned()];
        let audit = Audit::new(&log, &stored);
        assert_eq!(audit.sent, 6);
        assert_eq!(audit.accepted, 3);
        assert_eq!(audit.unavailable, 1);
        assert_eq!(audit.unanswered, 1);
        assert_eq!(audit.other, 1);
        assert_eq!(audit.lost, ["b"]);
        assert_eq!(audit.duplicated, ["c"]);
    }
}
