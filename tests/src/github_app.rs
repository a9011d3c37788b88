//! A fake GitHub for App tests, on one local HTTP server: the REST
//! endpoint that exchanges an App JWT for an installation access token
//! (`POST /app/installations/{id}/access_tokens`), checking the JWT's RS256
//! signature with the App's public key through the `openssl` CLI (an oracle
//! independent of the worker's signing code) and its `iss`/`iat`/`exp`;
//! and private repositories over git's smart HTTP under `/git/`, served by
//! `git http-backend` only to requests carrying an unexpired token.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

mod git_http;

/// An RSA key pair made by `openssl`, as an App's private key is.
pub struct AppKey {
    /// PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), the format GitHub issues.
    pub private_pem: String,
    public_pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl AppKey {
    pub fn generate() -> AppKey {
        let dir = tempfile::tempdir().expect("temp dir");
        let private = dir.path().join("private.pem");
        let public = dir.path().join("public.pem");
        openssl(&["genrsa", "-traditional", "-out", path(&private), "2048"]);
        openssl(&[
            "rsa",
            "-in",
            path(&private),
            "-pubout",
            "-out",
            path(&public),
        ]);
        AppKey {
            private_pem: std::fs::read_to_string(&private).expect("the private key"),
            public_pem: public,
            _dir: dir,
        }
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn openssl(args: &[&str]) -> std::process::Output {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (App key tests need it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// How an installation answers token requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installation {
    Active,
    /// 403 "This installation has been suspended".
    Suspended,
}

/// One token the fake issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub installation: u64,
    pub expires_at: SystemTime,
}

/// One token request as the fake judged it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub installation: u64,
    pub status: u16,
    /// Why a JWT was refused.
    pub refused: Option<String>,
}

/// One git request: the repository path, the token it carried, the answer.
#[derive(Debug, Clone)]
pub struct GitRequest {
    pub path: String,
    pub token: Option<String>,
    pub status: u16,
}

struct Inner {
    app_id: u64,
    public_pem: PathBuf,
    token_lifetime: Mutex<Duration>,
    installations: Mutex<HashMap<u64, Installation>>,
    issued: Mutex<Vec<Issued>>,
    token_requests: Mutex<Vec<TokenRequest>>,
    git_root: PathBuf,
    git_requests: Mutex<Vec<GitRequest>>,
    /// Held before answering a fetch's pack request (slow syncs).
    git_hold: Mutex<Duration>,
    /// Repositories (`owner/name`) that answer 500.
    git_broken: Mutex<HashSet<String>>,
}

/// The fake: API at [`FakeGithub::api_url`], repositories at
/// [`FakeGithub::git_url`].
pub struct FakeGithub {
    pub address: SocketAddr,
    inner: Arc<Inner>,
    _root: tempfile::TempDir,
}

impl FakeGithub {
    /// Serves App `app_id` whose public key is `key`'s.
    pub async fn start(app_id: u64, key: &AppKey) -> FakeGithub {
        let root = tempfile::tempdir().expect("temp dir");
        let inner = Arc::new(Inner {
            app_id,
            public_pem: key.public_pem.clone(),
            token_lifetime: Mutex::new(Duration::from_secs(3600)),
            installations: Mutex::default(),
            issued: Mutex::default(),
            token_requests: Mutex::default(),
            git_root: root.path().to_path_buf(),
            git_requests: Mutex::default(),
            git_hold: Mutex::new(Duration::ZERO),
            git_broken: Mutex::default(),
        });
        let app = axum::Router::new()
            .route(
                "/app/installations/{id}/access_tokens",
                axum::routing::post(access_tokens),
            )
            .route("/git/{*path}", axum::routing::any(git_http::serve))
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeGithub {
            address,
            inner,
            _root: root,
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn git_url(&self) -> String {
        format!("http://{}/git", self.address)
    }

    /// The clone URL of `owner/name`.
    pub fn clone_url(&self, full_name: &str) -> String {
        format!("{}/{full_name}.git", self.git_url())
    }

    /// The bare repository behind `owner/name`, created on first use.
    pub fn repository(&self, full_name: &str) -> PathBuf {
        let path = self.inner.git_root.join(format!("{full_name}.git"));
        if !path.exists() {
            std::fs::create_dir_all(&path).expect("mkdir");
            let status = Command::new("git")
                .args(["init", "--quiet", "--bare", "--initial-branch=main"])
                .arg(&path)
                .status()
                .expect("running git");
            assert!(status.success(), "git init --bare");
        }
        path
    }

    pub fn set_installation(&self, id: u64, installation: Installation) {
        lock(&self.inner.installations).insert(id, installation);
    }

    /// Tokens issued from now on live this long.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.inner.token_lifetime) = lifetime;
    }

    /// Fetches' pack requests are answered after `hold`.
    pub fn set_git_hold(&self, hold: Duration) {
        *lock(&self.inner.git_hold) = hold;
    }

    /// `owner/name` answers 500 to every git request.
    pub fn break_repository(&self, full_name: &str) {
        lock(&self.inner.git_broken).insert(full_name.to_owned());
    }

    pub fn issued(&self) -> Vec<Issued> {
        lock(&self.inner.issued).clone()
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        lock(&self.inner.token_requests).clone()
    }

    pub fn git_requests(&self) -> Vec<GitRequest> {
        lock(&self.inner.git_requests).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("fake GitHub lock")
}

async fn access_tokens(
    State(inner): State<Arc<Inner>>,
    UrlPath(installation): UrlPath<u64>,
    headers: HeaderMap,
) -> Response {
    let bad_headers = headers.get("accept").map(|v| v.as_bytes())
        != Some(b"application/vnd.github+json")
        || headers.get("x-github-api-version").map(|v| v.as_bytes()) != Some(b"2022-11-28")
        || headers.get("user-agent").is_none();
    let jwt = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let verdict = match jwt {
        _ if bad_headers => Err("missing Accept, X-GitHub-Api-Version or User-Agent".to_owned()),
        None => Err("no bearer JWT".to_owned()),
        Some(jwt) => {
            let inner = inner.clone();
            tokio::task::spawn_blocking(move || check_jwt(&inner, &jwt))
                .await
                .expect("the JWT check ran")
        }
    };
    let record = |status: u16, refused: Option<String>| {
        lock(&inner.token_requests).push(TokenRequest {
            installation,
            status,
            refused,
        });
    };
    if let Err(why) = verdict {
        record(401, Some(why));
        return answer(
            401,
            json!({"message": "A JSON web token could not be decoded"}),
        );
    }
    let state = lock(&inner.installations).get(&installation).copied();
    match state {
        None => {
            record(404, None);
            answer(404, json!({"message": "Not Found"}))
        }
        Some(Installation::Suspended) => {
            record(403, None);
            answer(
                403,
                json!({"message": "This installation has been suspended"}),
            )
        }
        Some(Installation::Active) => {
            record(201, None);
            let lifetime = *lock(&inner.token_lifetime);
            // GitHub's expires_at has whole seconds.
            let expires_at = UNIX_EPOCH
                + Duration::from_secs(
                    (SystemTime::now() + lifetime)
                        .duration_since(UNIX_EPOCH)
                        .expect("now")
                        .as_secs(),
                );
            let token = format!("ghs_{}", uuid::Uuid::now_v7().simple());
            lock(&inner.issued).push(Issued {
                token: token.clone(),
                installation,
                expires_at,
            });
            answer(
                201,
                json!({
                    "token": token,
                    "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
                    "permissions": {"contents": "read", "metadata": "read"},
                    "repository_selection": "selected",
                }),
            )
        }
    }
}

fn answer(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).expect("valid status"),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// RS256 over `header.claims` with the App's public key (openssl), then
/// the claims GitHub requires.
fn check_jwt(inner: &Inner, jwt: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not three parts".into());
    };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|error| format!("base64url: {error}"))
    };
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let input = dir.path().join("input");
    let signature_file = dir.path().join("signature");
    std::fs::write(&input, format!("{}.{}", parts[0], parts[1])).map_err(|e| e.to_string())?;
    std::fs::write(&signature_file, decode(signature)?).map_err(|e| e.to_string())?;
    let verified = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            path(&inner.public_pem),
            "-signature",
            path(&signature_file),
            path(&input),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !verified.status.success() {
        return Err("the RS256 signature does not verify with the App's public key".into());
    }
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("now")
        .as_secs();
    let number = |name: &str| {
        claims[name]
            .as_u64()
            .ok_or(format!("{name} is not a number"))
    };
    let (iat, exp) = (number("iat")?, number("exp")?);
    let iss_matches = claims["iss"].as_u64() == Some(inner.app_id)
        || claims["iss"].as_str() == Some(inner.app_id.to_string().as_str());
    if !iss_matches {
        return Err(format!("iss {} is not the App", claims["iss"]));
    }
    if iat > now + 1 || iat + 120 < now {
        return Err(format!("iat {iat} is not about now ({now})"));
    }
    if exp <= now || exp - iat > 600 {
        return Err(format!(
            "exp {exp} is past or more than 10 minutes after iat {iat}"
        ));
    }
    Ok(())
}

impl Inner {
    /// Whether `token` was issued and has not expired.
    fn token_valid(&self, token: &str) -> bool {
        lock(&self.issued)
            .iter()
            .any(|issued| issued.token == token && SystemTime::now() < issued.expires_at)
    }
}
