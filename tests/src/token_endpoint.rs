//! A fake Withings token endpoint (`POST /v2/oauth2`, form
//! `action=requesttoken`): a real local HTTP server answering in Withings'
//! shape — always HTTP 200, `{"status": 0, "body": {...}}` on success and a
//! non-zero `status` with an `error` otherwise — and recording each form.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Json;
use serde_json::{Value, json};

/// The authorization code the fake accepts; any other is refused.
pub const GOOD_CODE: &str = "ABC123";
/// The Withings user id of the accepted code.
pub const USERID: &str = "363";

#[derive(Default)]
struct Inner {
    forms: Mutex<Vec<HashMap<String, String>>>,
    /// Tokens issued so far, to make each one different.
    issued: Mutex<u32>,
}

#[derive(Clone)]
pub struct TokenEndpoint {
    pub address: SocketAddr,
    inner: Arc<Inner>,
}

impl TokenEndpoint {
    pub async fn start() -> TokenEndpoint {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .route("/v2/oauth2", axum::routing::post(request_token))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        TokenEndpoint { address, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v2/oauth2", self.address)
    }

    /// Every form received, in order.
    pub fn forms(&self) -> Vec<HashMap<String, String>> {
        self.inner.forms.lock().expect("lock").clone()
    }
}

async fn request_token(State(inner): State<Arc<Inner>>, body: Bytes) -> Json<Value> {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    inner.forms.lock().expect("lock").push(form.clone());
    let field = |name: &str| form.get(name).map(String::as_str);
    let valid = field("action") == Some("requesttoken")
        && field("client_id").is_some()
        && field("client_secret").is_some()
        && match field("grant_type") {
            Some("authorization_code") => {
                field("code") == Some(GOOD_CODE) && field("redirect_uri").is_some()
            }
            Some("refresh_token") => {
                field("refresh_token").is_some_and(|t| t.starts_with("refresh-"))
            }
            _ => false,
        };
    if !valid {
        return Json(json!({ "status": 503, "error": "Invalid Params: invalid code" }));
    }
    let serial = {
        let mut issued = inner.issued.lock().expect("lock");
        *issued += 1;
        *issued
    };
    Json(json!({
        "status": 0,
        "body": {
            "userid": USERID,
            "access_token": format!("access-{serial}"),
            "refresh_token": format!("refresh-{serial}"),
            "expires_in": 10800,
            "scope": "user.info,user.metrics",
            "csrf_token": "PACnnxwHTaBQOzF7bQqwFUUotIuvtzSM",
            "token_type": "Bearer"
        }
    }))
}
