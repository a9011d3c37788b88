//! What `tidegate up` prints once everything is ready: the URLs, each
//! route, a copy-paste signed GitHub delivery and how to see it stored.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use http::Method;
use ingress::config::{Config, Mode, Normalize, Route};
use ingress::verify::Secrets;
use schemas::streams::DELIVERIES_STREAM;
use verify::github;

/// A push as GitHub sends it (the documented shape, trimmed of URLs a
/// reader does not need), to a repository the example github-sync targets
/// do not track: the forwarder delivers it to the dev sink and github-sync
/// reports it skipped. Contains no single quote, so it can be
/// single-quoted for the shell.
pub(crate) const SAMPLE_PUSH: &str = concat!(
    r#"{"ref":"refs/heads/main","#,
    r#""before":"9049f1265b7d61be4a8904a9a27120d2064dab3b","#,
    r#""after":"6dcb09b5b57875f334f61aebed695e2e4193db5e","#,
    r#""repository":{"id":1296269,"node_id":"MDEwOlJlcG9zaXRvcnkxMjk2MjY5","#,
    r#""name":"sample","full_name":"tidegate-dev/sample","private":false,"#,
    r#""owner":{"name":"tidegate-dev","login":"tidegate-dev","id":1,"type":"Organization"},"#,
    r#""html_url":"https://github.com/tidegate-dev/sample","#,
    r#""clone_url":"https://github.com/tidegate-dev/sample.git","#,
    r#""default_branch":"main","master_branch":"main"},"#,
    r#""pusher":{"name":"octocat","email":"octocat@github.com"},"#,
    r#""sender":{"login":"octocat","id":583231,"type":"User"},"#,
    r#""installation":{"id":1,"node_id":"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="},"#,
    r#""created":false,"deleted":false,"forced":false,"base_ref":null,"#,
    r#""compare":"https://github.com/tidegate-dev/sample/compare/9049f1265b7d...6dcb09b5b578","#,
    r#""commits":[{"id":"6dcb09b5b57875f334f61aebed695e2e4193db5e","#,
    r#""tree_id":"f9d2a07e9488b91af2641b26b9407fe22a451433","distinct":true,"#,
    r#""message":"Update README.md","timestamp":"2026-11-28T12:00:00Z","#,
    r#""url":"https://github.com/tidegate-dev/sample/commit/6dcb09b5b57875f334f61aebed695e2e4193db5e","#,
    r#""author":{"name":"Monalisa Octocat","email":"octocat@github.com","username":"octocat"},"#,
    r#""committer":{"name":"Monalisa Octocat","email":"octocat@github.com","username":"octocat"},"#,
    r#""added":[],"removed":[],"modified":["README.md"]}],"#,
    r#""head_commit":{"id":"6dcb09b5b57875f334f61aebed695e2e4193db5e","#,
    r#""tree_id":"f9d2a07e9488b91af2641b26b9407fe22a451433","distinct":true,"#,
    r#""message":"Update README.md","timestamp":"2026-11-28T12:00:00Z","#,
    r#""author":{"name":"Monalisa Octocat","email":"octocat@github.com","username":"octocat"},"#,
    r#""committer":{"name":"Monalisa Octocat","email":"octocat@github.com","username":"octocat"},"#,
    r#""added":[],"removed":[],"modified":["README.md"]}}"#
);

/// The NATS URL of the example config.
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The hook id sent with the sample delivery; any number does.
pub(crate) const SAMPLE_HOOK_ID: &str = "1";

/// Everything the banner shows.
#[derive(Debug)]
pub(crate) struct Banner<'a> {
    pub(crate) config: &'a Config,
    /// Where the ingress listens (the curl goes there, not to `public_url`).
    pub(crate) listen: SocketAddr,
    pub(crate) nats_url: &'a str,
    pub(crate) monitor_url: &'a str,
    pub(crate) data: &'a Path,
    pub(crate) secrets_file: &'a Path,
    /// Show a `nats` CLI command too (only when it is installed).
    pub(crate) nats_cli: bool,
    /// The dev sink's URL, when the forwarder runs.
    pub(crate) sink: Option<&'a str>,
    /// The worker processes running, by label.
    pub(crate) workers: &'a [&'a str],
    /// How to run this CLI (its path), for the follow-up commands.
    pub(crate) program: &'a Path,
}

impl Banner<'_> {
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        let local = format!("http://{}", self.listen);
        let line = |text: &mut String, line: String| {
            writeln!(text, "{line}").expect("writing to a String cannot fail");
        };
        line(&mut text, String::new());
        line(&mut text, "tidegate is up. Ctrl-C stops everything.".into());
        line(&mut text, String::new());
        line(
            &mut text,
            format!("  ingress  {local}  (/healthz /readyz /metrics)"),
        );
        line(
            &mut text,
            format!(
                "  nats     {}  (monitoring {})",
                self.nats_url, self.monitor_url
            ),
        );
        line(
            &mut text,
            format!(
                "  data     {}  (JetStream store, dev secrets in {})",
                self.data.display(),
                self.secrets_file.display()
            ),
        );
        if let Some(sink) = self.sink {
            line(
                &mut text,
                format!(
                    "  sink     {sink}  (the forwarder delivers every tidegate.in.> delivery here)"
                ),
            );
        }
        if !self.workers.is_empty() {
            line(&mut text, format!("  workers  {}", self.workers.join(", ")));
        }
        line(&mut text, String::new());
        line(&mut text, "routes".into());
        let width = self
            .config
            .routes
            .iter()
            .map(|route| route.name.len())
            .max()
            .unwrap_or(0);
        for route in &self.config.routes {
            let methods = route
                .methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(",");
            line(
                &mut text,
                format!(
                    "  {:<width$}  {methods:<4}  {}{}  ({})",
                    route.name,
                    self.config.public_url,
                    route.path,
                    describe(route)
                ),
            );
        }
        line(&mut text, String::new());
        match sample_route(self.config) {
            Some((route, secret)) => {
                line(
                    &mut text,
                    "send a signed GitHub push delivery (202 Accepted; sent again, it is stored once):"
                        .into(),
                );
                line(&mut text, sample_curl(&local, &route.path, secret));
                if self.sink.is_some() {
                    line(
                        &mut text,
                        "then follow it in the log: ingress | → forward | → sink | (signature ok)"
                            .into(),
                    );
                }
            }
            None => line(
                &mut text,
                "no GitHub route with a secret in this config, so no sample request".into(),
            ),
        }
        line(&mut text, String::new());
        line(
            &mut text,
            format!("see it stored in {DELIVERIES_STREAM} (\"messages\"):"),
        );
        line(
            &mut text,
            format!(
                "curl -s '{}/jsz?streams=true' | grep '\"messages\"'",
                self.monitor_url
            ),
        );
        if self.nats_cli {
            line(
                &mut text,
                format!(
                    "nats --server {} stream view {DELIVERIES_STREAM}",
                    self.nats_url
                ),
            );
        }
        // The operator commands read the example config, whose NATS URL is
        // the default port; name another one explicitly.
        let program = self.program.display();
        let nats = if self.nats_url == DEFAULT_NATS_URL {
            String::new()
        } else {
            format!(" --nats-url {}", self.nats_url)
        };
        line(&mut text, String::new());
        line(
            &mut text,
            format!("inspect: {program} status{nats}   |   {program} deliveries list{nats}"),
        );
        text
    }
}

/// The verifier, the mode and whether the route is switched off.
fn describe(route: &Route) -> String {
    let verifier = &route.verifier;
    let mut parts = vec![verifier.scheme.kind().to_owned()];
    if let Secrets::Fixed(secrets) = &verifier.secrets
        && secrets.is_empty()
        && verifier.open_when_unset
    {
        parts.push("no secret set: open".to_owned());
    }
    if route.mode == Mode::Sync {
        parts.push("sync".to_owned());
    }
    if !route.enabled {
        parts.push("disabled".to_owned());
    }
    parts.join(", ")
}

/// The first enabled async POST route that normalizes GitHub deliveries on
/// a fixed path, with the secret that signs for it.
fn sample_route(config: &Config) -> Option<(&Route, &[u8])> {
    config.routes.iter().find_map(|route| {
        let usable = route.enabled
            && route.mode == Mode::Async
            && route.normalize == Some(Normalize::Github)
            && route.methods.contains(&Method::POST)
            && !route.path.contains('{');
        let Secrets::Fixed(secrets) = &route.verifier.secrets else {
            return None;
        };
        let secret = secrets.first()?;
        usable.then_some((route.as_ref(), secret.expose()))
    })
}

/// A multi-line curl, each header on its own line; every value is plain
/// ASCII without quotes, so single quotes are safe.
fn sample_curl(base: &str, path: &str, secret: &[u8]) -> String {
    let delivery_id = uuid::Uuid::new_v4();
    let signature = github::signature(secret, SAMPLE_PUSH.as_bytes());
    [
        format!("curl -sS -i {base}{path}"),
        "-H 'Content-Type: application/json'".to_owned(),
        "-H 'X-GitHub-Event: push'".to_owned(),
        format!("-H 'X-GitHub-Delivery: {delivery_id}'"),
        format!("-H 'X-GitHub-Hook-ID: {SAMPLE_HOOK_ID}'"),
        format!("-H 'X-Hub-Signature-256: {signature}'"),
        format!("--data-raw '{SAMPLE_PUSH}'"),
    ]
    .join(" \\\n  ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const EXAMPLE: &str = include_str!("../../deploy/examples/tidegate.toml");

    fn example_config() -> Config {
        let env = HashMap::from([
            ("GITHUB_WEBHOOK_SECRET".to_owned(), "dev-secret".to_owned()),
            ("TIDEGATE_API_TOKEN".to_owned(), "dev-token".to_owned()),
        ]);
        Config::from_toml(EXAMPLE, &env).expect("the example config is valid")
    }

    #[test]
    fn sample_body_is_json_and_shell_safe() {
        let value: serde_json::Value =
            serde_json::from_str(SAMPLE_PUSH).expect("the sample is JSON");
        assert_eq!(value["ref"], "refs/heads/main");
        assert!(!SAMPLE_PUSH.contains('\''));
    }

    #[test]
    fn example_config_yields_a_signed_sample_request() {
        let config = example_config();
        let (route, secret) = sample_route(&config).expect("the example has a GitHub route");
        assert_eq!(route.name, "github");
        assert_eq!(secret, b"dev-secret");
        let curl = sample_curl("http://127.0.0.1:8080", &route.path, secret);
        let expected = github::signature(b"dev-secret", SAMPLE_PUSH.as_bytes());
        assert!(curl.contains(&format!("X-Hub-Signature-256: {expected}'")));
        assert!(
            curl.starts_with(
                "curl -sS -i http://127.0.0.1:8080/v1/webhooks/connectors/github \\\n"
            )
        );
    }

    #[test]
    fn lists_every_route_with_its_url() {
        let config = example_config();
        let banner = Banner {
            config: &config,
            listen: "127.0.0.1:8080".parse().expect("address"),
            nats_url: "nats://127.0.0.1:4222",
            monitor_url: "http://127.0.0.1:8222",
            data: Path::new("/data"),
            secrets_file: Path::new("/data/dev-secrets.env"),
            nats_cli: false,
            sink: Some("http://127.0.0.1:9000"),
            workers: &["forward"],
            program: Path::new("tidegate"),
        };
        let text = banner.render();
        for route in &config.routes {
            let url = format!("http://127.0.0.1:8080{}", route.path);
            assert!(text.contains(&url), "{url} missing from:\n{text}");
        }
        assert!(
            text.lines()
                .any(|line| line.trim_start().starts_with("workflow ") && line.contains(" POST ")),
            "{text}"
        );
        assert!(text.contains("(github, no secret set: open)"), "{text}");
        assert!(!text.contains("nats --server"));
        assert!(
            text.contains("  sink     http://127.0.0.1:9000  "),
            "{text}"
        );
        assert!(text.contains("  workers  forward\n"), "{text}");
        assert!(text.contains("→ sink |"), "{text}");
        assert!(text.contains("inspect: tidegate status"), "{text}");
    }
}
