//! Configuration: figment layers (TOML file, then `TIDEGATE_*` environment
//! variables) parsed once into typed values. Everything downstream trusts
//! these types; every invalid key is reported at start-up, all at once.

mod admission;
mod consumer_api;
mod lenient;
mod raw;
mod verifier;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use http::{HeaderName, Method};

use crate::limit::Admission;
use crate::nats::BrokerConfig;
use crate::serve::HttpConfig;
use crate::subject::{Template, Var};
use crate::telemetry::LogConfig;
use crate::verify::Verifier;
use broker::settings::{parse_duration, parse_size};
pub use lenient::Lenient;
use raw::{RawConfig, RawRoute};
use verifier::{SecretPolicy, compile_verifier};

/// The path parameter of a workflow route (`/webhooks/{workflow}`).
pub const WORKFLOW_PARAM: &str = "workflow";

/// Path prefixes of the admin API, when `[admin]` is configured.
pub const ADMIN_PATHS: [&str; 2] = ["/api/approvals", "/api/runs"];

/// Paths the ingress serves itself; routes may not use them.
pub const RESERVED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Top-level keys that `TIDEGATE_*` variables may set. Other `TIDEGATE_`
/// variables (`TIDEGATE_CONFIG`, secrets such as `TIDEGATE_API_TOKEN`) are
/// not configuration keys and are left alone. `TIDEGATE_NATS_URL` sets
/// `nats.url`.
const ENV_KEYS: [&str; 10] = [
    "admin",
    "listen",
    "public_url",
    "nats",
    "jetstream",
    "stream",
    "http",
    "log",
    "routes",
    "consumer_api",
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
    /// `GET /api/webhook/pending` and `DELETE /api/webhook/items`, when
    /// `[consumer_api]` is configured.
    pub consumer_api: Option<crate::consumer_api::ApiConfig>,
    /// The token-gated admin API (workflow approvals and runs), when
    /// `[admin]` is configured.
    pub admin: Option<Admin>,
}

/// `[admin]`: `Authorization: Bearer <token>` on `/api/approvals` and
/// `/api/runs`.
#[derive(Debug)]
pub struct Admin {
    pub token: ::verify::Secret,
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
    /// Whether a body sent as JSON must parse (400 otherwise). When false
    /// it is stored whatever it is: verbatim if it is JSON, else base64.
    pub validate_json: bool,
    /// The workflows this route triggers (`workflows = "<folder>"`).
    pub workflows: Option<WorkflowRoute>,
}

/// A route whose `{workflow}` parameter names a workflow file.
#[derive(Debug, Clone)]
pub struct WorkflowRoute {
    pub registry: Arc<workflows::Registry>,
    /// The path parameter holding the workflow's name.
    pub param: String,
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
        let config = compile(raw, env, SecretPolicy::Require, &mut problems);
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
fn compile(
    raw: RawConfig,
    env: &HashMap<String, String>,
    policy: SecretPolicy,
    problems: &mut Vec<String>,
) -> Config {
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

    let admin = match &raw.admin {
        None => None,
        Some(admin) => match admin.token.resolve(env) {
            Ok(Some(token)) => Some(Admin { token }),
            Ok(None) if policy == SecretPolicy::Lenient => None,
            Ok(None) => {
                problems.push("admin.token: not set (remove [admin] to serve no admin API)".into());
                None
            }
            Err(why) => {
                problems.push(format!("admin.token: {why}"));
                None
            }
        },
    };
    if admin.is_some() {
        for (index, route) in raw.routes.iter().enumerate() {
            if ADMIN_PATHS
                .iter()
                .any(|prefix| route.path.starts_with(prefix))
            {
                problems.push(format!(
                    "routes[{index}] ({}).path: `{}` is served by the admin API ([admin])",
                    route.name, route.path
                ));
            }
        }
    }
    let mut names = HashSet::new();
    // Two routes may share a path when their methods differ (a sync GET
    // and a queued POST of the same plugin command).
    let mut path_methods = HashSet::new();
    let mut routes = Vec::new();
    for (index, route) in raw.routes.into_iter().enumerate() {
        let key = format!("routes[{index}] ({})", route.name);
        if !names.insert(route.name.clone()) {
            problems.push(format!("{key}.name: another route has this name"));
        }
        let mut shared = Vec::new();
        for method in &route.methods {
            let method = method.to_ascii_uppercase();
            if !path_methods.insert((route.path.clone(), method.clone())) {
                shared.push(method);
            }
        }
        if !shared.is_empty() {
            problems.push(format!(
                "{key}.path: another route has this path with {}",
                shared.join(", ")
            ));
        }
        let admission = admission::admission(&key, &route, default_limits, problems);
        if let Some(mut route) =
            compile_route(&key, route, default_body_limit, env, policy, problems)
        {
            route.admission = admission;
            routes.push(Arc::new(route));
        }
    }

    let consumer_api = raw.consumer_api.and_then(|api| {
        let route_paths: Vec<&str> = routes.iter().map(|route| route.path.as_str()).collect();
        consumer_api::compile(api, &route_paths, env, policy, problems)
    });

    Config {
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        public_url,
        broker,
        http,
        log,
        routes,
        consumer_api,
        admin,
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
    policy: SecretPolicy,
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
        Some(verifier) => compile_verifier(
            &format!("{key}.verifier"),
            verifier,
            &params,
            env,
            policy,
            problems,
        ),
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

    let enabled = match raw.enabled_env.as_deref() {
        None => raw.enabled,
        Some(name) => match env.get(name).map(|value| value.trim().to_ascii_lowercase()) {
            None => raw.enabled,
            Some(value) if value.is_empty() => raw.enabled,
            Some(value) if ["true", "1", "yes", "on"].contains(&value.as_str()) => true,
            Some(value) if ["false", "0", "no", "off"].contains(&value.as_str()) => false,
            Some(_) => {
                problems.push(format!(
                    "{key}.enabled_env: {name} must be true or false (or 1/0, yes/no, on/off)"
                ));
                raw.enabled
            }
        },
    };
    let workflows = match raw.workflows {
        None => None,
        Some(folder) if !params.iter().any(|param| param == WORKFLOW_PARAM) => {
            problems.push(format!(
                "{key}.workflows: the path must have a {{{WORKFLOW_PARAM}}} parameter naming the workflow (`{folder}`)"
            ));
            None
        }
        Some(folder) if mode == Mode::Sync => {
            problems.push(format!(
                "{key}.workflows: `{folder}`: workflow routes store deliveries; use mode = \"async\" (each workflow has its own mode)"
            ));
            None
        }
        Some(folder) => Some(WorkflowRoute {
            registry: Arc::new(workflows::Registry::new(folder)),
            param: WORKFLOW_PARAM.to_owned(),
        }),
    };

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
        enabled,
        timeout,
        drop_headers,
        verifier: verifier?,
        // Filled in by `compile`, which holds the `http.rate_limit` default.
        admission: None,
        validate_json: raw.validate_json.unwrap_or(true),
        workflows,
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
