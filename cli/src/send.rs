//! `tidegate send <route>`: a delivery built and signed exactly as the
//! route's provider would send it, with the secret the ingress reads (same
//! variables, same files), sent to the ingress; prints the answer.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use ingress::config::{DeliveryIdSource, Lenient, Mode, Normalize, Route, ValueSource};
use ingress::subject::{Var, Vars};
use ingress::verify::Secrets;
use serde_json::json;
use verify::{Message, Scheme, Secret};

use crate::banner::{SAMPLE_HOOK_ID, SAMPLE_PUSH};
use crate::common::Common;

/// Path parameters and templated query values nobody named.
const SAMPLE_VALUE: &str = "sample";
/// Longest wait for an async route's answer (sync routes add their timeout).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    common: Common,
    /// The route's name (see `tidegate routes`).
    route: String,
    /// Send this file's bytes as the body instead of a sample.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The event, for routes that read one from the request (default:
    /// `push` for GitHub signatures, else `test`).
    #[arg(long)]
    event: Option<String>,
    /// A path parameter, `name=value` (repeatable); unnamed ones are
    /// `sample`.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = name_value)]
    params: Vec<(String, String)>,
    /// A query parameter, `name=value` (repeatable); query values the
    /// route's templates need default to `sample`.
    #[arg(long = "query", value_name = "NAME=VALUE", value_parser = name_value)]
    query: Vec<(String, String)>,
    /// Base URL of the ingress (default: the configuration's `public_url`).
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Content type of the body (default: application/json, or the first
    /// type the route accepts).
    #[arg(long)]
    content_type: Option<String>,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not name=value")),
    }
}

pub(crate) async fn run(args: SendArgs) -> anyhow::Result<()> {
    let answer = exchange(&args, None, |method, url, summary| {
        if !args.common.json {
            println!("sending {method} {url} ({summary})");
        }
    })
    .await?;
    if args.common.json {
        let body = serde_json::from_str::<serde_json::Value>(&answer.text)
            .unwrap_or(serde_json::Value::String(answer.text.clone()));
        let out = json!({
            "route": answer.route,
            "method": answer.method.as_str(),
            "url": answer.url,
            "query": answer.query,
            "status": answer.status.as_u16(),
            "body": body,
        });
        println!("{out}");
    } else {
        println!("response: {}", answer.status);
        if !answer.text.is_empty() {
            println!("{}", answer.text.trim_end());
        }
    }
    if !answer.status.is_success() {
        bail!("the ingress answered {}", answer.status);
    }
    Ok(())
}

/// The arguments `tidegate webhook test` sends with: the workflow as the
/// route's `{workflow}` parameter.
pub(crate) fn for_workflow(
    common: Common,
    route: &str,
    param: &str,
    workflow: &str,
    file: Option<PathBuf>,
) -> SendArgs {
    SendArgs {
        common,
        route: route.to_owned(),
        file,
        event: None,
        params: vec![(param.to_owned(), workflow.to_owned())],
        query: Vec::new(),
        url: None,
        content_type: None,
    }
}

/// What the ingress answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) route: String,
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) status: http::StatusCode,
    pub(crate) text: String,
}

/// Builds, signs and sends the request; `announce` sees it before it
/// goes. `wait` replaces the usual answer timeout.
pub(crate) async fn exchange(
    args: &SendArgs,
    wait: Option<Duration>,
    announce: impl FnOnce(&Method, &str, &str),
) -> anyhow::Result<Answer> {
    let loaded = args.common.ingress_config_lenient()?;
    let config = &loaded.config;
    let Some(route) = config.routes.iter().find(|route| route.name == args.route) else {
        let names: Vec<&str> = config
            .routes
            .iter()
            .map(|route| route.name.as_str())
            .collect();
        bail!(
            "no route named {} in {} (routes: {})",
            args.route,
            args.common.config.display(),
            names.join(", ")
        );
    };
    let body = match &args.file {
        Some(file) => {
            Some(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?)
        }
        None => None,
    };
    let request = build(route, &loaded, args, body, SystemTime::now())?;
    let base = args.url.as_deref().unwrap_or(&config.public_url);
    let url = format!("{}{}", base.trim_end_matches('/'), request.path);
    let timeout = wait.unwrap_or(match route.mode {
        Mode::Async => SEND_TIMEOUT,
        Mode::Sync => route.timeout + SEND_TIMEOUT,
    });
    announce(&request.method, &url, &request.summary);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("tidegate-send/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let response = client
        .request(request.method.clone(), &url)
        .query(&request.query)
        .headers(request.headers)
        .body(request.body)
        .send()
        .await
        .with_context(|| format!("sending to {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer from {url}"))?;
    Ok(Answer {
        route: route.name.clone(),
        method: request.method,
        url,
        query: request.query,
        status,
        text,
    })
}

/// A request ready to send.
#[derive(Debug)]
struct Request {
    method: Method,
    /// The route's path with its parameters filled in.
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Vec<u8>,
    /// How it was made, for people: `github signature, event push`.
    summary: String,
}

/// Everything except the network: the URL, the body and the headers the
/// provider would send at `now`.
fn build(
    route: &Route,
    loaded: &Lenient,
    args: &SendArgs,
    file_body: Option<Vec<u8>>,
    now: SystemTime,
) -> anyhow::Result<Request> {
    let scheme = &route.verifier.scheme;
    let github =
        matches!(scheme, Scheme::Github { .. }) || route.normalize == Some(Normalize::Github);
    let method = if route.methods.contains(&Method::POST) {
        Method::POST
    } else {
        route.methods.first().cloned().unwrap_or(Method::POST)
    };
    let mut headers = HeaderMap::new();
    let mut summary = Vec::new();

    let names = path_params(&route.path);
    if let Some((unknown, _)) = args.params.iter().find(|(name, _)| !names.contains(name)) {
        bail!(
            "route {} has no path parameter {unknown} (its path is {})",
            route.name,
            route.path
        );
    }
    let mut params: Vec<(String, String)> = names
        .iter()
        .map(|name| {
            let given = args.params.iter().find(|(candidate, _)| candidate == name);
            let value = given.map_or(SAMPLE_VALUE, |(_, value)| value.as_str());
            (name.clone(), value.to_owned())
        })
        .collect();
    let mut query = args.query.clone();

    // The event goes where the route reads it; GitHub always names one.
    let default_event = if github { "push" } else { "test" };
    let event = args
        .event
        .clone()
        .unwrap_or_else(|| default_event.to_owned());
    match &route.event {
        Some(ValueSource::Header(name)) => insert(&mut headers, name.clone(), &event)?,
        Some(ValueSource::Query(name)) => set(&mut query, name, &event),
        Some(ValueSource::Param(name)) => set(&mut params, name, &event),
        Some(ValueSource::Fixed(fixed))
            if args.event.as_ref().is_some_and(|given| given != fixed) =>
        {
            bail!("route {} always has event {fixed}", route.name)
        }
        Some(ValueSource::Fixed(_)) => {}
        None if github => {}
        None if args.event.is_some() => bail!("route {} takes no event", route.name),
        None => {}
    }
    if github {
        insert(
            &mut headers,
            HeaderName::from_static("x-github-event"),
            &event,
        )?;
    }
    if route.event.is_some() || github {
        summary.push(format!("event {event}"));
    }
    // Query values the route's templates read must be there.
    let templates = [
        Some(&route.subject),
        Some(&route.source),
        route.agent.as_ref(),
    ];
    let secret_templates = match &route.verifier.secrets {
        Secrets::PerRequest { env_names, .. } => env_names
            .iter()
            .map(|env_name| &env_name.template)
            .collect(),
        Secrets::Fixed(_) => Vec::new(),
    };
    for template in templates.into_iter().flatten().chain(secret_templates) {
        for var in template.vars() {
            if let Var::Query(name) = var
                && !query.iter().any(|(candidate, _)| candidate == name)
            {
                query.push((name.clone(), SAMPLE_VALUE.to_owned()));
            }
        }
    }

    let delivery_id = uuid::Uuid::new_v4().to_string();
    let body = match file_body {
        Some(body) => body,
        None if matches!(method, Method::GET | Method::HEAD | Method::DELETE) => Vec::new(),
        None => sample_body(route, github, &delivery_id, now).into_bytes(),
    };
    if !body.is_empty() {
        let content_type =
            args.content_type
                .clone()
                .unwrap_or_else(|| match &route.content_types {
                    Some(types) if !types.iter().any(|media| media == "application/json") => types
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "application/json".to_owned()),
                    _ => "application/json".to_owned(),
                });
        insert(&mut headers, header::CONTENT_TYPE, &content_type)?;
    }
    match &route.delivery_id {
        DeliveryIdSource::Github => {}
        DeliveryIdSource::Header(name) if !headers.contains_key(name) => {
            insert(&mut headers, name.clone(), &delivery_id)?;
        }
        DeliveryIdSource::Header(_)
        | DeliveryIdSource::FirstHeader(_)
        | DeliveryIdSource::JsonField(_)
        | DeliveryIdSource::Uuid => {}
    }
    if github || route.delivery_id == DeliveryIdSource::Github {
        insert(
            &mut headers,
            HeaderName::from_static("x-github-delivery"),
            &delivery_id,
        )?;
        insert(
            &mut headers,
            HeaderName::from_static("x-github-hook-id"),
            SAMPLE_HOOK_ID,
        )?;
    }

    let vars = Vars {
        params: &params,
        query: &query,
        event: Some(&event),
        route: &route.name,
    };
    let secret = secret(route, loaded, &vars)?;
    let timestamp = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    summary.insert(
        0,
        sign(
            scheme,
            secret.as_ref(),
            &body,
            &delivery_id,
            timestamp,
            &mut headers,
        )?,
    );

    let path = fill_path(&route.path, &params);
    Ok(Request {
        method,
        path,
        query,
        headers,
        body,
        summary: summary.join(", "),
    })
}

/// The key that signs for this request: the first configured one (the
/// ingress accepts any), or the per-request variable. `None`: send
/// unsigned, because the route is open or has no verification.
fn secret(route: &Route, loaded: &Lenient, vars: &Vars<'_>) -> anyhow::Result<Option<Secret>> {
    let verifier = &route.verifier;
    if verifier.scheme == Scheme::None {
        return Ok(None);
    }
    if let Some(sources) = loaded.unset.get(&route.name) {
        bail!(
            "route {} has no secret: set {} as for the ingress",
            route.name,
            sources.join(" or ")
        );
    }
    let secret = match &verifier.secrets {
        Secrets::Fixed(secrets) => match secrets.first() {
            Some(secret) => return Ok(Some(secret.clone())),
            None => "its secret".to_owned(),
        },
        // The first variable that is set wins, as in the ingress.
        Secrets::PerRequest { env_names, known } => {
            let names: Vec<String> = env_names
                .iter()
                .filter_map(|env_name| env_name.render(vars))
                .collect();
            if let Some(secret) = names.iter().find_map(|name| known.get(name)) {
                return Ok(Some(secret.clone()));
            }
            if names.is_empty() {
                "a secret variable (these values name none: one contains `_` or is missing)"
                    .to_owned()
            } else {
                names.join(" or ")
            }
        }
    };
    if verifier.open_when_unset {
        eprintln!(
            "note: {secret} is not set and route {} is open when unset: sending unsigned",
            route.name
        );
        Ok(None)
    } else {
        bail!("route {}: {secret} is not set", route.name)
    }
}

/// Adds the headers the scheme's provider would send (the `verify`
/// crate's); returns a summary such as `github signature`.
fn sign(
    scheme: &Scheme,
    key: Option<&Secret>,
    body: &[u8],
    delivery_id: &str,
    timestamp: u64,
    headers: &mut HeaderMap,
) -> anyhow::Result<String> {
    let Some(key) = key else {
        return Ok(match scheme {
            Scheme::None => "no verification".to_owned(),
            _ => format!("{} route, unsigned", scheme.kind()),
        });
    };
    let id = format!("msg_{}", delivery_id.replace('-', ""));
    let message = Message {
        body,
        id: &id,
        timestamp,
    };
    let signed = scheme
        .sign(key, &message)
        .map_err(|error| anyhow!("the secret cannot be sent: {error}"))?;
    headers.extend(signed);
    if *scheme == Scheme::Shopify && !headers.contains_key("x-shopify-webhook-id") {
        insert(
            headers,
            HeaderName::from_static("x-shopify-webhook-id"),
            delivery_id,
        )?;
    }
    Ok(match scheme.credential_header() {
        Some(_) => format!("{} credential", scheme.kind()),
        None => format!("{} signature", scheme.kind()),
    })
}

/// A sample body the route accepts: GitHub's push for GitHub routes, a
/// Stripe-shaped event for Stripe, else a small JSON object carrying the
/// delivery id where the route reads it.
fn sample_body(route: &Route, github: bool, delivery_id: &str, now: SystemTime) -> String {
    if github {
        return SAMPLE_PUSH.to_owned();
    }
    let sent_at = humantime::format_rfc3339_millis(now).to_string();
    let mut body = match route.verifier.scheme {
        Scheme::Stripe { .. } => json!({
            "id": format!("evt_{}", delivery_id.replace('-', "")),
            "object": "event",
            "type": "tidegate.test",
            "created": now.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()),
            "data": { "object": {} },
        }),
        _ => json!({ "test": true, "route": route.name, "sent_at": sent_at }),
    };
    if let DeliveryIdSource::JsonField(field) = &route.delivery_id
        && let Some(object) = body.as_object_mut()
        && !object.contains_key(field)
    {
        object.insert(field.clone(), json!(delivery_id));
    }
    body.to_string()
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

fn fill_path(path: &str, params: &[(String, String)]) -> String {
    path.split('/')
        .map(|segment| {
            let name = segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'));
            match name.and_then(|name| params.iter().find(|(candidate, _)| candidate == name)) {
                Some((_, value)) => value.as_str(),
                None => segment,
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn set(pairs: &mut Vec<(String, String)>, name: &str, value: &str) {
    match pairs.iter_mut().find(|(candidate, _)| candidate == name) {
        Some((_, existing)) => *existing = value.to_owned(),
        None => pairs.push((name.to_owned(), value.to_owned())),
    }
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) -> anyhow::Result<()> {
    let value = HeaderValue::from_str(value)
        .map_err(|_| anyhow!("{value:?} cannot be sent in the {name} header"))?;
    headers.insert(name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use figment::Figment;
    use figment::providers::{Format, Toml};
    use ingress::config::Config;

    use super::*;

    const ROUTES: &str = r#"
[[routes]]
name = "github"
path = "/gh"
subject = "github.{event}"
normalize = "github"
[routes.verifier]
kind = "github"
secrets = [{ env = "GH" }]

[[routes]]
name = "agent"
path = "/api/webhook/{agentId}"
subject = "agent.{agentId}.{query.source}"
[routes.verifier]
kind = "shared_secret"
secret_env = "WEBHOOK_SECRET_{agentId}_{query.source}"

[[routes]]
name = "svix"
path = "/svix"
subject = "svix"
[routes.verifier]
kind = "standard_webhooks"
secrets = [{ value = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }]

[[routes]]
name = "stripe"
path = "/stripe"
subject = "stripe"
[routes.verifier]
kind = "stripe"
secrets = [{ value = "whsec_stripe" }]

[[routes]]
name = "plugin"
path = "/webhook/{plugin}/{command}"
methods = ["GET"]
mode = "sync"
subject = "plugin.{plugin}.{command}"
[routes.verifier]
kind = "bearer"
secrets = [{ value = "t0ken" }]
"#;

    fn loaded(env: &[(&str, &str)]) -> Lenient {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Config::load_lenient(&Figment::from(Toml::string(ROUTES)), &env).expect("routes load")
    }

    fn args(route: &str, extra: &[&str]) -> SendArgs {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            send: SendArgs,
        }
        let argv = ["send", route].into_iter().chain(extra.iter().copied());
        <Wrapper as clap::Parser>::parse_from(argv).send
    }

    fn build_for(route: &str, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Request> {
        let loaded = loaded(env);
        let route = loaded
            .config
            .routes
            .iter()
            .find(|candidate| candidate.name == route)
            .expect("route exists")
            .clone();
        build(
            &route,
            &loaded,
            &args(&route.name, extra),
            None,
            SystemTime::now(),
        )
    }

    fn header<'a>(request: &'a Request, name: &str) -> &'a str {
        request
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("{name} missing from {:?}", request.headers))
    }

    /// Each request passes the ingress's own verifier for its route.
    fn verifies(route: &str, request: &Request, env: &[(&str, &str)]) {
        let loaded = loaded(env);
        let route = loaded
            .config
            .routes
            .iter()
            .find(|candidate| candidate.name == route)
            .expect("route exists");
        let params: Vec<(String, String)> = Vec::new();
        let vars = Vars {
            params: &params,
            query: &request.query,
            event: None,
            route: &route.name,
        };
        let verified = route
            .verifier
            .verify(&request.headers, &request.body, &vars);
        assert_eq!(
            verified,
            Ok(ingress::verify::Verified::Signed),
            "{}",
            route.name
        );
    }

    #[test]
    fn github_push_is_signed_like_github() {
        let env = [("GH", "gh-secret")];
        let request = build_for("github", &[], &env).expect("builds");
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/gh");
        assert_eq!(request.body, SAMPLE_PUSH.as_bytes());
        assert_eq!(header(&request, "x-github-event"), "push");
        assert_eq!(header(&request, "x-github-hook-id"), SAMPLE_HOOK_ID);
        assert_eq!(
            header(&request, "x-hub-signature-256"),
            verify::github::signature(b"gh-secret", SAMPLE_PUSH.as_bytes())
        );
        verifies("github", &request, &env);
        let ping = build_for("github", &["--event", "ping"], &env).expect("builds");
        assert_eq!(header(&ping, "x-github-event"), "ping");
    }

    #[test]
    fn an_unset_secret_is_a_clear_error() {
        let error = build_for("github", &[], &[]).expect_err("no secret");
        assert_eq!(
            error.to_string(),
            "route github has no secret: set env GH as for the ingress"
        );
        let error = build_for("agent", &["--param", "agentId=a1"], &[]).expect_err("no secret");
        assert_eq!(
            error.to_string(),
            "route agent: WEBHOOK_SECRET_a1_sample is not set"
        );
    }

    #[test]
    fn per_request_secrets_fill_params_and_query() {
        let env = [("WEBHOOK_SECRET_a1_putio", "agent-secret")];
        let extra = ["--param", "agentId=a1", "--query", "source=putio"];
        let request = build_for("agent", &extra, &env).expect("builds");
        assert_eq!(request.path, "/api/webhook/a1");
        assert_eq!(request.query, [("source".to_owned(), "putio".to_owned())]);
        assert_eq!(header(&request, "x-webhook-secret"), "agent-secret");
        assert!(request.headers["x-webhook-secret"].is_sensitive());
        let error = build_for("agent", &["--param", "nope=1"], &env).expect_err("unknown param");
        assert!(
            error.to_string().contains("no path parameter nope"),
            "{error}"
        );
    }

    #[test]
    fn timestamped_schemes_verify() {
        let request = build_for("svix", &[], &[]).expect("builds");
        assert!(header(&request, "webhook-id").starts_with("msg_"));
        verifies("svix", &request, &[]);
        let request = build_for("stripe", &[], &[]).expect("builds");
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
        assert!(body["id"].as_str().is_some_and(|id| id.starts_with("evt_")));
        verifies("stripe", &request, &[]);
    }

    #[test]
    fn get_routes_send_no_body_and_fill_every_param() {
        let request = build_for("plugin", &["--param", "plugin=withings"], &[]).expect("builds");
        assert_eq!(request.method, Method::GET);
        assert_eq!(request.path, "/webhook/withings/sample");
        assert!(request.body.is_empty());
        assert!(!request.headers.contains_key("content-type"));
        assert_eq!(header(&request, "authorization"), "Bearer t0ken");
    }
}
