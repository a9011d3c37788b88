//! `http_request`: method, URL, headers and body (a string as is, anything
//! else as JSON), within the step's timeout; the response body is read up
//! to `workflow.http.max_response`. A non-2xx answer fails the step, with
//! the body kept as its output.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use workflows::args::HttpArgs;

use super::{Failure, Output};

/// Whether repeating the request is harmless (RFC 9110 idempotent
/// methods): a resumed run repeats an interrupted one.
pub fn is_idempotent(args: &HttpArgs) -> bool {
    let method = args.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"].contains(&method.as_str())
}

pub async fn run(
    client: &reqwest::Client,
    args: HttpArgs,
    timeout: Duration,
    max_response: u64,
    max_output: usize,
) -> Result<Output, Failure> {
    let method = args.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| Failure::new(format!("`{method}` is not an HTTP method")))?;
    let url = reqwest::Url::parse(&args.url)
        .map_err(|error| Failure::new(format!("url `{}`: {error}", args.url)))?;
    if !["http", "https"].contains(&url.scheme()) {
        return Err(Failure::new(format!("url `{url}`: only http and https")));
    }
    let mut request = client.request(method, url).timeout(timeout);
    for (name, value) in &args.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request = match args.body {
        None => request,
        Some(serde_json::Value::String(text)) => request.body(text),
        Some(value) => request.json(&value),
    };
    let response = request
        .send()
        .await
        .map_err(|error| Failure::new(describe(&error)))?;
    let status = response.status();
    let mut body = Vec::new();
    let mut dropped = 0u64;
    let mut stream = response.bytes_stream();
    let read = tokio::time::timeout(timeout, async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| describe(&error))?;
            let room = usize::try_from(max_response)
                .unwrap_or(usize::MAX)
                .saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            dropped += (chunk.len().saturating_sub(room)) as u64;
            if room == 0 {
                // Past the limit: stop reading.
                break;
            }
        }
        Ok::<(), String>(())
    })
    .await;
    match read {
        Err(_) => return Err(Failure::new("timed out reading the response body")),
        Ok(Err(why)) => return Err(Failure::new(why)),
        Ok(Ok(())) => {}
    }
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if dropped > 0 {
        text.push_str("\n…[response cut at workflow.http.max_response]");
    }
    let text = super::bound(text, max_output);
    if status.is_success() {
        Ok(Output {
            text,
            exit_code: None,
            http_status: Some(status.as_u16()),
        })
    } else {
        Err(Failure {
            error: format!("the server answered {status}"),
            output: Some(text),
            exit_code: None,
            http_status: Some(status.as_u16()),
        })
    }
}

/// The error and its causes, without the URL (it may carry a token).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
