//! The fake's private repositories: git's smart HTTP protocol served by
//! `git http-backend` (CGI), behind a check that the request carries an
//! installation token the fake issued and that has not expired, as GitHub
//! does (`Authorization: Basic base64(x-access-token:<token>)`).

use std::process::Stdio;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::io::AsyncWriteExt as _;

use super::{GitRequest, Inner, lock};

pub(super) async fn serve(
    State(inner): State<Arc<Inner>>,
    UrlPath(path): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|text| text.strip_prefix("x-access-token:").map(str::to_owned));
    let full_name = path.split(".git/").next().unwrap_or_default().to_owned();
    let record = |status: u16| {
        lock(&inner.git_requests).push(GitRequest {
            path: path.clone(),
            token: token.clone(),
            status,
        });
    };
    if !token
        .as_deref()
        .is_some_and(|token| inner.token_valid(token))
    {
        record(401);
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"GitHub\"")],
            "Invalid username or token",
        )
            .into_response();
    }
    if lock(&inner.git_broken).contains(&full_name) {
        record(500);
        return (StatusCode::INTERNAL_SERVER_ERROR, "broken on purpose").into_response();
    }
    let response = cgi(&inner, &method, &path, &uri, &headers, body).await;
    record(response.status().as_u16());
    // Held after git answered (and the request was recorded), so a slow
    // fetch works with the refs as they were when it asked.
    if method == Method::POST && path.ends_with("/git-upload-pack") {
        let hold = *lock(&inner.git_hold);
        tokio::time::sleep(hold).await;
    }
    response
}

/// Runs `git http-backend` for one request and turns its CGI output into
/// the response.
async fn cgi(
    inner: &Inner,
    method: &Method,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &inner.git_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", format!("/{path}"))
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("git http-backend starts");
    let mut stdin = child.stdin.take().expect("piped");
    let writer = tokio::spawn(async move {
        drop(stdin.write_all(&body).await);
    });
    let output = child
        .wait_with_output()
        .await
        .expect("git http-backend runs");
    drop(writer.await);
    let Some(split) = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        })
    else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "git http-backend: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        )
            .into_response();
    };
    let (head, rest) = output.stdout.split_at(split.0);
    let mut status = StatusCode::OK;
    let mut response_headers = Vec::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok());
            status = code
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(status);
        } else {
            response_headers.push((name.trim().to_owned(), value));
        }
    }
    let mut response = (status, rest[split.1..].to_vec()).into_response();
    for (name, value) in response_headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name),
            axum::http::HeaderValue::try_from(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
