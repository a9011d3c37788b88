//! A fake forward target: a real local HTTP server that records every
//! request and answers from a script the test can change mid-run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

/// How to answer: per delivery id, a list of statuses for successive
/// attempts (the last one repeats); others get `default`.
#[derive(Debug, Clone)]
pub struct Script {
    pub default: u16,
    pub per_id: HashMap<String, Vec<u16>>,
    /// Held this long before answering (to SIGKILL a worker mid-job).
    pub hold: Duration,
    pub retry_after: Option<String>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            default: 200,
            per_id: HashMap::new(),
            hold: Duration::ZERO,
            retry_after: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
    /// Ids whose 2xx answer was written: each is one completed effect.
    completed: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct Receiver {
    pub address: SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start(script: Script) -> Receiver {
        let inner = Arc::new(Inner {
            script: Mutex::new(script),
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(handle))
            // Targets of large deliveries accept what the ingress accepts.
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { address, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    pub fn set_script(&self, script: Script) {
        *self.inner.script.lock().expect("lock") = script;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().expect("lock").clone()
    }

    pub fn completed(&self) -> Vec<String> {
        self.inner.completed.lock().expect("lock").clone()
    }

    pub fn attempts_for(&self, id: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|received| received.id == id)
            .collect()
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let id = headers
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, hold, retry_after) = {
        let script = inner.script.lock().expect("lock");
        let attempt = inner
            .received
            .lock()
            .expect("lock")
            .iter()
            .filter(|received| received.id == id)
            .count();
        let status = script
            .per_id
            .get(&id)
            .map(|statuses| statuses[attempt.min(statuses.len() - 1)])
            .unwrap_or(script.default);
        (status, script.hold, script.retry_after.clone())
    };
    inner.received.lock().expect("lock").push(Received {
        id: id.clone(),
        headers,
        body,
        at: Instant::now(),
    });
    // If the worker dies while we hold, hyper drops this future and the
    // effect below is never recorded: only answered requests count.
    tokio::time::sleep(hold).await;
    let status = StatusCode::from_u16(status).expect("scripted status is valid");
    if status.is_success() {
        inner.completed.lock().expect("lock").push(id);
    }
    let mut response = status.into_response();
    if let Some(after) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().expect("valid header"));
    }
    response
}
