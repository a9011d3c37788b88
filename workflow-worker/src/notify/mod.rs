//! Notification channels: a generic webhook (JSON POST), a Slack-compatible
//! incoming webhook, the Telegram Bot API and ntfy. Base URLs are
//! configurable (tests point them at local servers); tokens and secret
//! URLs come from `SecretSource`s and never reach a log or an error.

pub mod message;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use broker::settings::SecretSource;
use serde::Deserialize;
use serde_json::json;
use verify::Secret;

/// Longest wait for a notification service.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `[[workflow.notify]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    /// Name for `notify` steps' `channels`; the kind when unset.
    #[serde(default)]
    pub name: Option<String>,
    /// `webhook`, `slack`, `telegram` or `ntfy`.
    pub kind: String,
    /// webhook, slack: the URL (a Slack incoming-webhook URL is itself a
    /// secret: give it as `{ env = "..." }`).
    #[serde(default)]
    pub url: Option<UrlSource>,
    /// telegram (default https://api.telegram.org), ntfy (default https://ntfy.sh).
    #[serde(default)]
    pub base_url: Option<String>,
    /// telegram: the bot token; ntfy and webhook: a bearer token.
    #[serde(default)]
    pub token: Option<SecretSource>,
    /// telegram.
    #[serde(default)]
    pub chat_id: Option<String>,
    /// ntfy.
    #[serde(default)]
    pub topic: Option<String>,
    /// Extra headers (webhook).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A URL written inline, or read from a secret source.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum UrlSource {
    Plain(String),
    Secret(SecretSource),
}

/// One configured channel.
#[derive(Debug)]
pub struct Channel {
    pub name: String,
    target: Target,
}

#[derive(Debug)]
enum Target {
    Webhook {
        url: Secret,
        token: Option<Secret>,
        headers: BTreeMap<String, String>,
    },
    Slack {
        url: Secret,
    },
    Telegram {
        base_url: String,
        token: Secret,
        chat_id: String,
    },
    Ntfy {
        base_url: String,
        topic: String,
        token: Option<Secret>,
    },
}

impl RawChannel {
    pub fn compile(self, index: usize, env: &HashMap<String, String>) -> Result<Channel, String> {
        let key = format!("workflow.notify[{index}]");
        let url = |source: Option<UrlSource>| -> Result<Secret, String> {
            match source {
                None => Err(format!("{key}.url: required for kind {}", self.kind)),
                Some(UrlSource::Plain(url)) => {
                    Secret::new(url).ok_or_else(|| format!("{key}.url: is empty"))
                }
                Some(UrlSource::Secret(source)) => source
                    .require(env)
                    .map_err(|why| format!("{key}.url: {why}")),
            }
        };
        let token = |source: &Option<SecretSource>| -> Result<Option<Secret>, String> {
            source
                .as_ref()
                .map(|source| source.require(env))
                .transpose()
                .map_err(|why| format!("{key}.token: {why}"))
        };
        let base = |given: &Option<String>, default: &str| {
            given
                .clone()
                .unwrap_or_else(|| default.to_owned())
                .trim_end_matches('/')
                .to_owned()
        };
        let target = match self.kind.as_str() {
            "webhook" => Target::Webhook {
                token: token(&self.token)?,
                headers: self.headers.clone(),
                url: url(self.url)?,
            },
            "slack" => Target::Slack {
                url: url(self.url)?,
            },
            "telegram" => Target::Telegram {
                base_url: base(&self.base_url, "https://api.telegram.org"),
                token: token(&self.token)?
                    .ok_or_else(|| format!("{key}.token: the bot token is required"))?,
                chat_id: self
                    .chat_id
                    .clone()
                    .ok_or_else(|| format!("{key}.chat_id: required for telegram"))?,
            },
            "ntfy" => Target::Ntfy {
                base_url: base(&self.base_url, "https://ntfy.sh"),
                topic: self
                    .topic
                    .clone()
                    .filter(|topic| {
                        !topic.is_empty()
                            && topic
                                .bytes()
                                .all(|byte| byte.is_ascii_alphanumeric() || b"-_".contains(&byte))
                    })
                    .ok_or_else(|| format!("{key}.topic: required for ntfy (A-Z a-z 0-9 - _)"))?,
                token: token(&self.token)?,
            },
            other => {
                return Err(format!(
                    "{key}.kind: `{other}` is not webhook, slack, telegram or ntfy"
                ));
            }
        };
        Ok(Channel {
            name: self.name.unwrap_or(self.kind),
            target,
        })
    }
}

/// What a notification is about, for channels that take structured data.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    pub workflow: &'a str,
    pub run_id: &'a str,
    pub status: &'a str,
}

/// Sends to configured channels, each within a timeout.
#[derive(Debug)]
pub struct Notifier {
    client: reqwest::Client,
    channels: Vec<Channel>,
}

impl Notifier {
    pub fn new(channels: Vec<Channel>) -> anyhow::Result<Notifier> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tidegate-workflow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Notifier { client, channels })
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Sends `text` to the named channels (every channel when `names` is
    /// empty). Returns how many were reached, or every failure.
    pub async fn send(
        &self,
        text: &str,
        names: &[String],
        about: About<'_>,
    ) -> Result<usize, String> {
        if let Some(unknown) = names
            .iter()
            .find(|name| !self.channels.iter().any(|channel| &channel.name == *name))
        {
            return Err(format!("no notification channel named `{unknown}`"));
        }
        let chosen: Vec<&Channel> = self
            .channels
            .iter()
            .filter(|channel| names.is_empty() || names.contains(&channel.name))
            .collect();
        let sends = chosen
            .iter()
            .map(|channel| self.send_one(channel, text, about));
        let results = futures::future::join_all(sends).await;
        let failures: Vec<String> = chosen
            .iter()
            .zip(results)
            .filter_map(|(channel, result)| {
                result.err().map(|why| format!("{}: {why}", channel.name))
            })
            .collect();
        if failures.is_empty() {
            Ok(chosen.len())
        } else {
            Err(failures.join("; "))
        }
    }

    async fn send_one(
        &self,
        channel: &Channel,
        text: &str,
        about: About<'_>,
    ) -> Result<(), String> {
        let request = match &channel.target {
            Target::Webhook {
                url,
                token,
                headers,
            } => {
                let mut request = self.client.post(secret_text(url)?).json(&json!({
                    "text": text,
                    "workflow": about.workflow,
                    "run_id": about.run_id,
                    "status": about.status,
                }));
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                if let Some(token) = token {
                    request = request.bearer_auth(secret_text(token)?);
                }
                request
            }
            Target::Slack { url } => self
                .client
                .post(secret_text(url)?)
                .json(&json!({ "text": text })),
            Target::Telegram {
                base_url,
                token,
                chat_id,
            } => self
                .client
                .post(format!("{base_url}/bot{}/sendMessage", secret_text(token)?))
                .json(&json!({ "chat_id": chat_id, "text": telegram_text(text) })),
            Target::Ntfy {
                base_url,
                topic,
                token,
            } => {
                let mut request = self
                    .client
                    .post(format!("{base_url}/{topic}"))
                    .header("Title", format!("tidegate workflow {}", about.workflow))
                    .body(text.to_owned());
                if let Some(token) = token {
                    request = request.bearer_auth(secret_text(token)?);
                }
                request
            }
        };
        // Errors carry the URL, which holds the token (Telegram) or is the
        // secret (Slack): drop it.
        let response = request
            .send()
            .await
            .map_err(|error| error.without_url().to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

fn secret_text(secret: &Secret) -> Result<&str, String> {
    std::str::from_utf8(secret.expose()).map_err(|_| "the secret is not UTF-8".to_owned())
}

/// Telegram refuses messages over 4096 characters.
fn telegram_text(text: &str) -> String {
    const LIMIT: usize = 4000;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(LIMIT).collect();
        cut.push_str("\n…");
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(toml: &str, env: &[(&str, &str)]) -> Result<Channel, String> {
        use figment::providers::Format as _;
        let raw: RawChannel = figment::Figment::from(figment::providers::Toml::string(toml))
            .extract()
            .expect("a channel table");
        let env = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        raw.compile(0, &env)
    }

    #[test]
    fn channels_name_what_they_miss_and_never_show_secrets() {
        let error = compile("kind = \"telegram\"\nchat_id = \"1\"", &[]).expect_err("no token");
        assert!(error.contains("workflow.notify[0].token"), "{error}");
        let error =
            compile("kind = \"slack\"\nurl = { env = \"SLACK_URL\" }", &[]).expect_err("unset");
        assert!(error.contains("SLACK_URL is not set"), "{error}");
        let error = compile("kind = \"ntfy\"\ntopic = \"a/b\"", &[]).expect_err("topic");
        assert!(error.contains("topic"), "{error}");
        let error = compile("kind = \"pager\"", &[]).expect_err("kind");
        assert!(error.contains("`pager` is not"), "{error}");
        let channel = compile(
            "kind = \"telegram\"\ntoken = { env = \"BOT\" }\nchat_id = \"7\"",
            &[("BOT", "123:very-secret")],
        )
        .expect("valid");
        assert_eq!(channel.name, "telegram");
        assert!(!format!("{channel:?}").contains("very-secret"));
    }
}
