//! Configuration: figment layers (TOML file, then `TIDEGATE_*` environment
//! variables) parsed once into typed values. Everything downstream trusts
//! these types; every invalid key is reported at start-up, all at once.

mod admission;
mod lenient;
mod raw;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use http::{HeaderName, Method, StatusCode};

use crate::limit::Admission;
use crate::nats::BrokerConfig;
use crate::secret::Secret;
use crate::serve::HttpConfig;
use crate::subject::{Template, Var};
use crate::telemetry::LogConfig;
use crate::verify::{
    DEFAULT_TOLERANCE, Scheme, Secrets, Verifier, decode_standard_webhooks_secret,
};
use broker::settings::{parse_duration, parse_size};
pub use lenient::Lenient;
use raw::{RawConfig, RawRoute, RawSecretSource, RawVerifier};

/// Paths the ingress serves itself; routes may not use them.
pub const RESERVED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Top-level keys that `TIDEGATE_*` variables may set. Other `TIDEGATE_`
/// variables (`TIDEGATE_CONFIG`, secrets such as `TIDEGATE_API_TOKEN`) are
/// not configuration keys and are left alone. `TIDEGATE_NATS_URL` sets
/// `nats.url`.
const ENV_KEYS: [&str; 8] = [
    "listen",
    "public_url",
    "nats",
    "jetstream",
    "stream",
    "http",
    "log",
    "routes",
];

/// Keys of earlier versions, with where they went.
const MOVED_KEYS: [(&str, &str); 4] = [
    (
        "nats_url",
        "moved to [nats] url (TIDEGATE_NATS_URL still sets it)",
    ),
    ("nats.credentials_file", "renamed to nats.creds"),
    ("nats.retry_after", "moved to http.retry_after"),
    (
        "stream.replicas",
        "moved to jetstream.replicas (every stream and bucket)",
    ),
];

/// The whole ingress configuration, validated; each component's part is
/// typed by that component (`serve`, `telemetry`, `broker`).
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Base URL printed for routes (`http://<listen>` unless configured).
    pub public_url: String,
    pub broker: BrokerConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub routes: Vec<Arc<Route>>,
}

/// One configured webhook endpoint.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// axum path syntax: `/api/webhook/{agentId}`.
    pub path: String,
    pub methods: Vec<Method>,
    pub mode: Mode,
    /// Rendered under `tidegate.in.` (async) or `tidegate.sync.` (sync).
    pub subject: Template,
    /// Source name; the route name when not configured.
    pub source: Template,
    pub agent: Option<Template>,
    pub delivery_id: DeliveryIdSource,
    pub event: Option<ValueSource>,
    /// Events acted on; others are stored as ignored and answered 200.
    /// `None` accepts every event.
    pub events: Option<HashSet<String>>,
    pub normalize: Option<Normalize>,
    pub body_limit: u64,
    /// Accepted media types (essence, lower case); `None` accepts any.
    pub content_types: Option<Vec<String>>,
    pub enabled: bool,
    /// Reply timeout of a sync route (then 504).
    pub timeout: Duration,
    /// Headers never copied into the envelope (credentials).
    pub drop_headers: HashSet<HeaderName>,
    pub verifier: Verifier,
    /// `allow_ips` and rate limits, checked before the body is read;
    /// `None` (nothing configured) costs a request one branch.
    pub admission: Option<Admission>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Publish to JetStream; answer after the PubAck.
    Async,
    /// NATS request/reply; the worker's reply is the response.
    Sync,
}

/// Where a delivery's id (its `Nats-Msg-Id` dedupe key) comes from. Routes
/// that set no `delivery_id` get the one their provider implies: see
/// `default_delivery_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryIdSource {
    /// `<X-GitHub-Hook-ID>_<X-GitHub-Delivery>`.
    Github,
    /// A provider header such as `X-Shopify-Webhook-Id`.
    Header(HeaderName),
    /// The first of these headers that is present (`webhook-id`, else
    /// `svix-id`).
    FirstHeader(Vec<HeaderName>),
    /// A top-level string field of the JSON body (Stripe's event `id`),
    /// read only after verification.
    JsonField(String),
    /// A generated UUIDv7: no de-duplication.
    Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    Header(HeaderName),
    Query(String),
    Param(String),
    Fixed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    Github,
}

/// Every problem found in a configuration, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Body limit of a `normalize = "github"` route that sets none: GitHub caps
/// webhook payloads at 25 MB. Bodies past the broker's `max_payload` go to
/// the object store (`object.rs`).
const GITHUB_BODY_LIMIT: u64 = 25 << 20;

/// Headers that carry credentials in some scheme; never stored.
const CREDENTIAL_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-webhook-secret",
    "x-gitlab-token",
    "x-api-key",
    "x-auth-token",
];

impl Config {
    /// Figment layers for a file (optional) and the environment.
    pub fn figment(file: Option<&Path>) -> Figment {
        broker::settings::figment(file, &ENV_KEYS)
    }

    /// Parses and validates. `env` is the process environment (secrets named
    /// by `env = ...` and `secret_env` templates are looked up there).
    pub fn load(figment: &Figment, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let raw = parse_raw(figment, &mut problems)?;
        let config = compile(raw, env, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Parses a TOML string (tests and examples).
    pub fn from_toml(text: &str, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::load(&Figment::from(Toml::string(text)), env)
    }
}

/// The figment's values as raw keys; unknown keys become problems.
fn parse_raw(figment: &Figment, problems: &mut Vec<String>) -> Result<RawConfig, ConfigError> {
    let value: figment::value::Value = figment.extract().map_err(|error| ConfigError {
        problems: error.into_iter().map(|error| error.to_string()).collect(),
    })?;
    serde_ignored::deserialize(&value, |path| {
        let path = path.to_string();
        match MOVED_KEYS.iter().find(|(key, _)| *key == path) {
            Some((_, moved)) => problems.push(format!("{path}: {moved}")),
            None => problems.push(format!("{path}: unknown key")),
        }
    })
    .map_err(|error| ConfigError {
        problems: vec![error.to_string()],
    })
}

/// Collects problems as it goes and returns a config that is only used when
/// none were found.
fn compile(raw: RawConfig, env: &HashMap<String, String>, problems: &mut Vec<String>) -> Config {
    let listen = ok(
        problems,
        "listen",
        raw.listen
            .parse::<SocketAddr>()
            .map_err(|_| format!("`{}` is not an address such as 127.0.0.1:8080", raw.listen)),
    );
    let broker = BrokerConfig {
        nats: raw.nats.compile("tidegate-ingress", env, problems),
        jetstream: raw.jetstream.compile(problems),
        stream: raw.stream.compile(problems),
    };
    let http = raw.http.compile(problems);
    let log = raw.log.compile(problems);
    let default_limits = raw
        .http
        .rate_limit
        .as_ref()
        .map(|limits| admission::limits("http.rate_limit", limits, problems))
        .unwrap_or_default();
    let default_body_limit = ok(
        problems,
        "http.body_limit",
        parse_size(&raw.http.body_limit),
    )
    .flatten()
    .unwrap_or(1 << 20);
    let public_url = raw
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", raw.listen))
        .trim_end_matches('/')
        .to_owned();

    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    let mut routes = Vec::new();
    for (index, route) in raw.routes.into_iter().enumerate() {
        let key = format!("routes[{index}] ({})", route.name);
        if !names.insert(route.name.clone()) {
            problems.push(format!("{key}.name: another route has this name"));
        }
        if !paths.insert(route.path.clone()) {
            problems.push(format!("{key}.path: another route has this path"));
        }
        let admission = admission::admission(&key, &route, default_limits, problems);
        if let Some(mut route) = compile_route(&key, route, default_body_limit, env, problems) {
            route.admission = admission;
            routes.push(Arc::new(route));
        }
    }

    Config {
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        public_url,
        broker,
        http,
        log,
        routes,
    }
}

/// Records a problem for `key` and returns `None`, or passes the value on.
fn ok<T>(problems: &mut Vec<String>, key: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|why| problems.push(format!("{key}: {why}")))
        .ok()
}

fn compile_route(
    key: &str,
    raw: RawRoute,
    default_body_limit: u64,
    env: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> Option<Route> {
    let before = problems.len();
    let mut problem = |field: &str, why: String| problems.push(format!("{key}.{field}: {why}"));

    if let Err(why) = crate::subject::check_token(&raw.name) {
        problem("name", format!("`{}` {why}", raw.name));
    }
    let params = path_params(&raw.path).unwrap_or_else(|why| {
        problem("path", why);
        Vec::new()
    });
    if RESERVED_PATHS.contains(&raw.path.as_str()) {
        problem(
            "path",
            format!("`{}` is served by the ingress itself", raw.path),
        );
    }
    let mut methods = Vec::new();
    for method in &raw.methods {
        match Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
            Ok(method) => methods.push(method),
            Err(_) => problem("methods", format!("`{method}` is not an HTTP method")),
        }
    }
    if methods.is_empty() {
        problem("methods", "name at least one method".into());
    }
    let mode = match raw.mode.as_deref() {
        None | Some("async") => Mode::Async,
        Some("sync") => Mode::Sync,
        Some(other) => {
            problem("mode", format!("`{other}` is not async or sync"));
            Mode::Async
        }
    };
    let event = raw
        .event
        .as_deref()
        .map(parse_value_source)
        .transpose()
        .unwrap_or_else(|why| {
            problem("event", why);
            None
        });
    let normalize = match raw.normalize.as_deref() {
        None => None,
        Some("github") => Some(Normalize::Github),
        Some(other) => {
            problem(
                "normalize",
                format!("`{other}` is not a known normalization (github)"),
            );
            None
        }
    };
    let has_event = event.is_some() || normalize == Some(Normalize::Github);
    let mut template = |field: &str, text: &str| -> Option<Template> {
        compile_template(text, &params, has_event)
            .map_err(|why| problem(field, why))
            .ok()
    };
    let subject = template("subject", &raw.subject);
    let source = template("source", raw.source.as_deref().unwrap_or(&raw.name));
    let agent = raw
        .agent
        .as_deref()
        .and_then(|text| template("agent", text));
    if let Some(subject) = &subject
        && let Err(why) = subject.check_subject_shape()
    {
        problem("subject", why);
    }
    let delivery_id = match raw.delivery_id.as_deref() {
        None if normalize == Some(Normalize::Github) => DeliveryIdSource::Github,
        None => default_delivery_id(raw.verifier.as_ref().map(|verifier| verifier.kind.as_str())),
        Some("uuid") => DeliveryIdSource::Uuid,
        Some("github") => DeliveryIdSource::Github,
        Some(other) => match (
            other.strip_prefix("header:").map(HeaderName::try_from),
            other.strip_prefix("json:"),
        ) {
            (Some(Ok(header)), _) => DeliveryIdSource::Header(header),
            (_, Some(field)) if !field.is_empty() => DeliveryIdSource::JsonField(field.to_owned()),
            _ => {
                problem(
                    "delivery_id",
                    format!("`{other}` is not github, uuid, header:<name> or json:<field>"),
                );
                DeliveryIdSource::Uuid
            }
        },
    };
    let body_limit = match raw.body_limit.as_deref().map(parse_size) {
        None if normalize == Some(Normalize::Github) => GITHUB_BODY_LIMIT,
        None => default_body_limit,
        Some(Ok(Some(limit))) => limit,
        Some(Ok(None)) => {
            problem("body_limit", "must be a finite size".into());
            0
        }
        Some(Err(why)) => {
            problem("body_limit", why);
            0
        }
    };
    let timeout = raw
        .timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .unwrap_or_else(|why| {
            problem("timeout", why);
            None
        })
        .unwrap_or(Duration::from_secs(30));
    let mut drop_headers: HashSet<HeaderName> = CREDENTIAL_HEADERS
        .iter()
        .map(|name| HeaderName::from_static(name))
        .collect();
    for name in &raw.drop_headers {
        match HeaderName::try_from(name.as_str()) {
            Ok(header) => {
                drop_headers.insert(header);
            }
            Err(_) => problem("drop_headers", format!("`{name}` is not a header name")),
        }
    }
    let verifier = match raw.verifier {
        None => {
            problem(
                "verifier",
                "every route names a verifier; write kind = \"none\" for an open route".into(),
            );
            None
        }
        Some(verifier) => {
            compile_verifier(&format!("{key}.verifier"), verifier, &params, env, problems)
        }
    };
    if let Some(verifier) = &verifier
        && let Some(header) = verifier.scheme.credential_header()
    {
        drop_headers.insert(header.clone());
    }
    let content_types = raw.content_types.map(|types| {
        types
            .iter()
            .map(|media| media.trim().to_ascii_lowercase())
            .collect()
    });

    if problems.len() > before {
        return None;
    }
    Some(Route {
        name: raw.name,
        path: raw.path,
        methods,
        mode,
        subject: subject?,
        source: source?,
        agent,
        delivery_id,
        event,
        events: raw.events.map(|events| events.into_iter().collect()),
        normalize,
        body_limit,
        content_types,
        enabled: raw.enabled,
        timeout,
        drop_headers,
        verifier: verifier?,
        // Filled in by `compile`, which holds the `http.rate_limit` default.
        admission: None,
    })
}

/// The delivery id a provider implies when a route sets none. Slack sends
/// no id with slash commands or interactions (Events API routes can set
/// `json:event_id`), and GitLab's `Idempotency-Key` is missing before 17.4
/// (routes on newer servers can set `header:idempotency-key`); both
/// default to a UUID, like GitHub-style signing without `normalize`.
fn default_delivery_id(verifier_kind: Option<&str>) -> DeliveryIdSource {
    match verifier_kind {
        Some("standard_webhooks") => DeliveryIdSource::FirstHeader(vec![
            HeaderName::from_static("webhook-id"),
            HeaderName::from_static("svix-id"),
        ]),
        Some("stripe") => DeliveryIdSource::JsonField("id".into()),
        Some("shopify") => {
            DeliveryIdSource::Header(HeaderName::from_static("x-shopify-webhook-id"))
        }
        _ => DeliveryIdSource::Uuid,
    }
}

const VERIFIER_KINDS: &str =
    "none, github, standard_webhooks, stripe, slack, shopify, gitlab, shared_secret, bearer";

fn compile_verifier(
    key: &str,
    raw: RawVerifier,
    params: &[String],
    env: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> Option<Verifier> {
    let before = problems.len();
    let tolerance = match raw.tolerance.as_deref().map(parse_duration) {
        None => DEFAULT_TOLERANCE,
        Some(Ok(tolerance)) if tolerance >= Duration::from_secs(1) => tolerance,
        Some(Ok(_)) => {
            problems.push(format!("{key}.tolerance: must be at least 1s"));
            DEFAULT_TOLERANCE
        }
        Some(Err(why)) => {
            problems.push(format!("{key}.tolerance: {why}"));
            DEFAULT_TOLERANCE
        }
    };
    let scheme = match raw.kind.as_str() {
        "none" => Scheme::None,
        "github" => Scheme::Github {
            allow_sha1: raw.allow_sha1.unwrap_or(false),
        },
        "standard_webhooks" => Scheme::StandardWebhooks { tolerance },
        "stripe" => Scheme::Stripe { tolerance },
        "slack" => Scheme::Slack { tolerance },
        "shopify" => Scheme::Shopify,
        "gitlab" => Scheme::Gitlab,
        "bearer" => Scheme::Bearer,
        "shared_secret" => {
            let header = raw.header.as_deref().unwrap_or("x-webhook-secret");
            match HeaderName::try_from(header) {
                Ok(header) => Scheme::SharedSecret { header },
                Err(_) => {
                    problems.push(format!("{key}.header: `{header}` is not a header name"));
                    Scheme::None
                }
            }
        }
        other => {
            problems.push(format!(
                "{key}.kind: `{other}` is not one of {VERIFIER_KINDS}"
            ));
            Scheme::None
        }
    };
    if raw.tolerance.is_some() && scheme.tolerance().is_none() {
        problems.push(format!(
            "{key}.tolerance: kind {} signs no timestamp",
            raw.kind
        ));
    }
    if raw.allow_sha1.is_some() && !matches!(scheme, Scheme::Github { .. }) {
        problems.push(format!(
            "{key}.allow_sha1: only kind github has a SHA-1 header"
        ));
    }
    // Standard Webhooks keys are written as `whsec_<base64>`; the verifier
    // wants the decoded bytes. `name` says where a secret came from.
    let is_standard_webhooks = matches!(scheme, Scheme::StandardWebhooks { .. });
    let decode = |name: &str, secret: Secret, problems: &mut Vec<String>| {
        if !is_standard_webhooks {
            return Some(secret);
        }
        let key = decode_standard_webhooks_secret(&secret);
        if key.is_none() {
            problems.push(format!(
                "{name}: is not a Standard Webhooks secret (whsec_ and base64)"
            ));
        }
        key
    };
    let open_when_unset = match raw.if_unset.as_deref() {
        None | Some("reject") => false,
        Some("open") => true,
        Some(other) => {
            problems.push(format!("{key}.if_unset: `{other}` is not reject or open"));
            false
        }
    };
    let invalid_status = match raw.invalid_status {
        None | Some(403) => StatusCode::FORBIDDEN,
        Some(401) => StatusCode::UNAUTHORIZED,
        Some(other) => {
            problems.push(format!("{key}.invalid_status: {other} is not 401 or 403"));
            StatusCode::FORBIDDEN
        }
    };
    let secrets = match (&raw.secret_env, raw.secrets.is_empty()) {
        (Some(_), false) => {
            problems.push(format!("{key}: set secrets or secret_env, not both"));
            Secrets::Fixed(Vec::new())
        }
        (Some(template), true) => match Template::parse(template) {
            Ok(env_name) => {
                for var in env_name.vars() {
                    if let Var::Param(name) = var
                        && !params.contains(name)
                    {
                        problems.push(format!(
                            "{key}.secret_env: uses {var}, which the path does not have"
                        ));
                    }
                }
                let known = env_secrets_for(template, env);
                for name in ambiguous_names(template, known.keys()) {
                    problems.push(format!(
                        "{key}.secret_env: environment variable {name} has more `_` than `{template}` has separators, so two different requests could name it; use values without `_`"
                    ));
                }
                let known = known
                    .into_iter()
                    .filter_map(|(name, secret)| {
                        let key = decode(&format!("{key}.secret_env ({name})"), secret, problems)?;
                        Some((name, key))
                    })
                    .collect();
                Secrets::PerRequest { env_name, known }
            }
            Err(why) => {
                problems.push(format!("{key}.secret_env: {why}"));
                Secrets::Fixed(Vec::new())
            }
        },
        (None, _) => Secrets::Fixed(
            raw.secrets
                .iter()
                .enumerate()
                .filter_map(|(index, source)| {
                    let name = format!("{key}.secrets[{index}]");
                    let secret = resolve_secret(&name, source, env, problems)?;
                    decode(&name, secret, problems)
                })
                .collect(),
        ),
    };
    if scheme == Scheme::None && !matches!(&secrets, Secrets::Fixed(list) if list.is_empty()) {
        problems.push(format!("{key}: kind none takes no secrets"));
    }
    if scheme != Scheme::None
        && !open_when_unset
        && matches!(&secrets, Secrets::Fixed(list) if list.is_empty())
        && problems.len() == before
    {
        problems.push(format!(
            "{key}.secrets: no secret is set; configure one, or write if_unset = \"open\" to accept unsigned requests"
        ));
    }
    (problems.len() == before).then_some(Verifier {
        scheme,
        secrets,
        open_when_unset,
        invalid_status,
    })
}

/// Secrets named by an environment variable, a file, or (tests) a value.
/// An unset or empty variable resolves to nothing without a problem: the
/// verifier decides whether that is allowed.
fn resolve_secret(
    key: &str,
    source: &RawSecretSource,
    env: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> Option<Secret> {
    match (&source.env, &source.file, &source.value) {
        (Some(name), None, None) => env.get(name).and_then(|value| Secret::new(value.as_str())),
        (None, Some(file), None) => match std::fs::read(file) {
            Ok(mut bytes) => {
                // Secret files usually end with a newline that is not part
                // of the secret.
                while bytes.last().is_some_and(|byte| byte.is_ascii_whitespace()) {
                    bytes.pop();
                }
                let secret = Secret::new(bytes);
                if secret.is_none() {
                    problems.push(format!("{key}.file: `{file}` is empty"));
                }
                secret
            }
            Err(error) => {
                problems.push(format!("{key}.file: cannot read `{file}`: {error}"));
                None
            }
        },
        (None, None, Some(value)) => {
            let secret = Secret::new(value.as_str());
            if secret.is_none() {
                problems.push(format!("{key}.value: is empty"));
            }
            secret
        }
        _ => {
            problems.push(format!("{key}: set exactly one of env, file or value"));
            None
        }
    }
}

/// Every environment variable a `secret_env` template could name, read
/// once: the variables starting with the template's literal prefix.
fn env_secrets_for(text: &str, env: &HashMap<String, String>) -> HashMap<String, Secret> {
    let prefix = text.split('{').next().unwrap_or_default();
    env.iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .filter_map(|(name, value)| Some((name.clone(), Secret::new(value.as_str())?)))
        .collect()
}

/// Variable names a `secret_env` template could produce from more than one
/// set of values. `WEBHOOK_SECRET_{agentId}_{query.source}` names
/// `WEBHOOK_SECRET_a_b_c` for agent `a_b` and source `c`, and for agent `a`
/// and source `b_c`: whoever holds one secret could publish as the other.
/// A name with no more `_` after the prefix than the template has there is
/// unambiguous; a request whose values contain `_` then names no variable.
fn ambiguous_names<'a>(template: &str, names: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let prefix = template.split('{').next().unwrap_or_default();
    let mut separators = 0;
    let mut inside = false;
    for character in template[prefix.len()..].chars() {
        match character {
            '{' => inside = true,
            '}' => inside = false,
            '_' if !inside => separators += 1,
            _ => {}
        }
    }
    let mut ambiguous: Vec<&String> = names
        .filter(|name| name[prefix.len()..].matches('_').count() > separators)
        .collect();
    ambiguous.sort();
    ambiguous
}

/// `{name}` segments of an axum path; rejects malformed paths.
fn path_params(path: &str) -> Result<Vec<String>, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with /"));
    }
    let mut params = Vec::new();
    for segment in path.split('/').skip(1) {
        if let Some(inner) = segment.strip_prefix('{') {
            let name = inner
                .strip_suffix('}')
                .ok_or_else(|| format!("segment `{segment}` must be a whole {{param}}"))?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`{{{name}}}` is not a valid parameter name"));
            }
            if params.iter().any(|param| param == name) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            params.push(name.to_owned());
        } else if segment.contains(['{', '}', '*', ':']) {
            return Err(format!("segment `{segment}` mixes text and parameters"));
        }
    }
    Ok(params)
}

fn compile_template(text: &str, params: &[String], has_event: bool) -> Result<Template, String> {
    let template = Template::parse(text)?;
    for var in template.vars() {
        let missing = match var {
            Var::Param(name) => !params.contains(name),
            Var::Event => !has_event,
            Var::Query(_) | Var::Route => false,
        };
        if missing {
            return Err(format!("uses {var}, which this route does not have"));
        }
    }
    Ok(template)
}

fn parse_value_source(text: &str) -> Result<ValueSource, String> {
    let (kind, value) = text.split_once(':').unwrap_or(("", text));
    match kind {
        "header" => HeaderName::try_from(value)
            .map(ValueSource::Header)
            .map_err(|_| format!("`{value}` is not a header name")),
        "query" => Ok(ValueSource::Query(value.to_owned())),
        "param" => Ok(ValueSource::Param(value.to_owned())),
        "" => crate::subject::check_token(value)
            .map(|()| ValueSource::Fixed(value.to_owned()))
            .map_err(|why| format!("`{value}` {why}; or use header:, query: or param:")),
        other => Err(format!("`{other}:` is not header:, query: or param:")),
    }
}

#[cfg(test)]
mod tests;
