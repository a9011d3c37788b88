//! `POST /app/installations/{id}/access_tokens`: an App JWT in, an
//! installation access token and its expiry out, every answer classified
//! (suspended or deleted installations skip, a refused JWT fails, the
//! rest is retried).

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use verify::Secret;

use super::TokenError;

/// GitHub's media type and API version, as its REST docs ask.
const ACCEPT: &str = "application/vnd.github+json";
const API_VERSION: &str = "2022-11-28";
const USER_AGENT: &str = "tidegate-github-sync";
/// Longest GitHub message kept in an error.
const MESSAGE_EXCERPT: usize = 200;

/// A minted installation token.
pub(super) struct Issued {
    pub(super) token: Secret,
    pub(super) expires_at: SystemTime,
}

#[derive(Deserialize)]
struct Created {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// Exchanges `jwt` for a token of `installation`.
pub(super) async fn access_token(
    client: &reqwest::Client,
    api_url: &str,
    jwt: &str,
    installation: u64,
) -> Result<Issued, TokenError> {
    let url = format!("{api_url}/app/installations/{installation}/access_tokens");
    let response = client
        .post(&url)
        .bearer_auth(jwt)
        .header("accept", ACCEPT)
        .header("x-github-api-version", API_VERSION)
        .header("user-agent", USER_AGENT)
        .send()
        .await
        .map_err(|error| TokenError::Retry {
            error: format!(
                "requesting an installation token for installation {installation}: {}",
                without_url(&error)
            ),
            after: None,
        })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let rate_limited = response
        .headers()
        .get("x-ratelimit-remaining")
        .is_some_and(|value| value.as_bytes() == b"0");
    let body = response.bytes().await.map_err(|error| TokenError::Retry {
        error: format!(
            "reading the installation token for installation {installation}: {}",
            without_url(&error)
        ),
        after: None,
    })?;
    if status.as_u16() == 201 {
        return issued(&body).map_err(|why| TokenError::Retry {
            error: format!(
                "GitHub's installation token answer for installation {installation}: {why}"
            ),
            after: None,
        });
    }
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .ok()
        .and_then(|body| body.message)
        .map(|message| message.chars().take(MESSAGE_EXCERPT).collect::<String>())
        .unwrap_or_default();
    let said = |code: u16| format!("GitHub answered {code} {message:?}");
    Err(match status.as_u16() {
        401 => TokenError::Fail(format!(
            "GitHub refused the App JWT for installation {installation} ({}): check github_sync.app.id and github_sync.app.private_key",
            said(401)
        )),
        403 if rate_limited || retry_after.is_some() => TokenError::Retry {
            error: format!(
                "installation token for installation {installation}: rate limited ({})",
                said(403)
            ),
            after: retry_after,
        },
        403 => TokenError::Skip(format!(
            "installation {installation} is suspended or may not sync ({})",
            said(403)
        )),
        404 => TokenError::Skip(format!(
            "installation {installation} does not exist for this App: deleted, or another App's ({})",
            said(404)
        )),
        code @ (408 | 429 | 500..=599) => TokenError::Retry {
            error: format!(
                "installation token for installation {installation}: {}",
                said(code)
            ),
            after: retry_after,
        },
        code => TokenError::Fail(format!(
            "installation token for installation {installation}: {}",
            said(code)
        )),
    })
}

fn issued(body: &[u8]) -> Result<Issued, String> {
    let created: Created = serde_json::from_slice(body)
        .map_err(|error| format!("not JSON with token and expires_at: {error}"))?;
    let expires_at = humantime::parse_rfc3339_weak(&created.expires_at)
        .map_err(|_| format!("expires_at `{}` is not a time", created.expires_at))?;
    let token = Secret::new(created.token).ok_or("the token is empty")?;
    Ok(Issued { token, expires_at })
}

/// reqwest's errors name the URL; ours say which installation instead.
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    match std::error::Error::source(error) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_answers_are_read() {
        let Ok(read) =
            issued(br#"{"token":"ghs_x","expires_at":"2030-07-11T22:14:10Z","permissions":{}}"#)
        else {
            panic!("a token");
        };
        assert_eq!(read.token.expose(), b"ghs_x");
        assert_eq!(
            humantime::format_rfc3339(read.expires_at).to_string(),
            "2030-07-11T22:14:10Z"
        );
        assert!(issued(br#"{"token":"","expires_at":"2030-07-11T22:14:10Z"}"#).is_err());
        assert!(issued(br#"{"token":"x","expires_at":"soon"}"#).is_err());
    }
}
