//! A route's `[routes.verifier]` table compiled into a `Verifier`: the
//! scheme and its settings, the secrets (resolved once, now), and what a
//! missing secret means, under the load's `SecretPolicy`.

use std::collections::HashMap;
use std::time::Duration;

use ::verify::{Scheme, Secret};
use http::{HeaderName, StatusCode};

use super::raw::{RawSecretSource, RawVerifier};
use crate::subject::Var;
use crate::verify::{EnvName, Secrets, Verifier};
use broker::settings::parse_duration;

/// What a load does with a route secret that is not available: an unset or
/// empty variable, an unreadable or empty file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SecretPolicy {
    /// A route left without any secret fails the load, unless it is open
    /// when unset (`Config::load`, for serving).
    Require,
    /// A route left without any secret loads with none and refuses every
    /// request; `Config::load_lenient` lists it as unset (operator tools on
    /// machines that hold no secrets).
    Lenient,
}

pub(super) fn compile_verifier(
    key: &str,
    raw: RawVerifier,
    params: &[String],
    env: &HashMap<String, String>,
    policy: SecretPolicy,
    problems: &mut Vec<String>,
) -> Option<Verifier> {
    let before = problems.len();
    let mut scheme = raw.kind.parse::<Scheme>().unwrap_or_else(|unknown| {
        problems.push(format!("{key}.kind: {unknown}"));
        Scheme::None
    });
    if let Some(text) = raw.tolerance.as_deref() {
        let tolerance = match parse_duration(text) {
            Ok(tolerance) if tolerance >= Duration::from_secs(1) => Some(tolerance),
            Ok(_) => {
                problems.push(format!("{key}.tolerance: must be at least 1s"));
                None
            }
            Err(why) => {
                problems.push(format!("{key}.tolerance: {why}"));
                None
            }
        };
        match &mut scheme {
            Scheme::StandardWebhooks { tolerance: slot }
            | Scheme::Stripe { tolerance: slot }
            | Scheme::Slack { tolerance: slot } => *slot = tolerance.unwrap_or(*slot),
            _ => problems.push(format!(
                "{key}.tolerance: kind {} signs no timestamp",
                raw.kind
            )),
        }
    }
    if let Some(allow) = raw.allow_sha1 {
        match &mut scheme {
            Scheme::Github { allow_sha1 } => *allow_sha1 = allow,
            _ => problems.push(format!(
                "{key}.allow_sha1: only kind github has a SHA-1 header"
            )),
        }
    }
    if let (Scheme::SharedSecret { header }, Some(text)) = (&mut scheme, raw.header.as_deref()) {
        match HeaderName::try_from(text) {
            Ok(name) => *header = name,
            Err(_) => problems.push(format!("{key}.header: `{text}` is not a header name")),
        }
    }
    // Secrets become the keys the scheme takes: Standard Webhooks secrets
    // (`whsec_<base64>`) are decoded, the only ones that can be invalid.
    // `name` says where a secret came from.
    let to_key = |name: &str, secret: Secret, problems: &mut Vec<String>| {
        let key = scheme.key(secret);
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
        (Some(templates), true) => {
            let mut env_names = Vec::new();
            for template in templates.templates() {
                match EnvName::parse(template) {
                    Ok(env_name) => {
                        for var in env_name.template.vars() {
                            if let Var::Param(name) = var
                                && !params.contains(name)
                            {
                                problems.push(format!(
                                    "{key}.secret_env: `{template}` uses {var}, which the path does not have"
                                ));
                            }
                        }
                        env_names.push(env_name);
                    }
                    Err(why) => problems.push(format!("{key}.secret_env: {why}")),
                }
            }
            if env_names.is_empty() && problems.len() == before {
                problems.push(format!("{key}.secret_env: name at least one template"));
            }
            let known = env_secrets_for(&env_names, env);
            for name in unnameable(&env_names, known.keys()) {
                problems.push(format!(
                    "{key}.secret_env: environment variable {name} has more `_` than any template has separators, so two different requests could name it; use values without `_`"
                ));
            }
            let known = known
                .into_iter()
                .filter_map(|(name, secret)| {
                    let key = to_key(&format!("{key}.secret_env ({name})"), secret, problems)?;
                    Some((name, key))
                })
                .collect();
            Secrets::PerRequest { env_names, known }
        }
        (None, _) => Secrets::Fixed(
            raw.secrets
                .iter()
                .enumerate()
                .filter_map(|(index, source)| {
                    let name = format!("{key}.secrets[{index}]");
                    let secret = resolve(&name, source, env, policy, problems)?;
                    to_key(&name, secret, problems)
                })
                .collect(),
        ),
    };
    if scheme == Scheme::None && !matches!(&secrets, Secrets::Fixed(list) if list.is_empty()) {
        problems.push(format!("{key}: kind none takes no secrets"));
    }
    // A lenient load forgives secrets this machine lacks, not a route that
    // names none.
    let names_a_secret = !raw.secrets.is_empty() || raw.secret_env.is_some();
    if (policy == SecretPolicy::Require || !names_a_secret)
        && scheme != Scheme::None
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

/// A secret named by an environment variable, a file, or (tests) a value.
/// An unset or empty variable resolves to nothing without a problem: the
/// verifier decides whether that is allowed. A lenient load takes an
/// unreadable or empty file for an unset secret too.
fn resolve(
    key: &str,
    source: &RawSecretSource,
    env: &HashMap<String, String>,
    policy: SecretPolicy,
    problems: &mut Vec<String>,
) -> Option<Secret> {
    match source.resolve(env) {
        Ok(secret) => secret,
        Err(_) if policy == SecretPolicy::Lenient && source.file.is_some() => None,
        Err(why) => {
            problems.push(format!("{key}: {why}"));
            None
        }
    }
}

/// Every environment variable a `secret_env` template could name, read
/// once: the variables starting with a template's literal prefix.
fn env_secrets_for(
    env_names: &[EnvName],
    env: &HashMap<String, String>,
) -> HashMap<String, Secret> {
    env.iter()
        .filter(|(name, _)| {
            env_names
                .iter()
                .any(|env_name| name.starts_with(env_name.prefix()))
        })
        .filter_map(|(name, value)| Some((name.clone(), Secret::new(value.as_str())?)))
        .collect()
}

/// Variables that only values containing `_` could name: with
/// `WEBHOOK_SECRET_{agentId}_{query.source}`, `WEBHOOK_SECRET_a_b_c` is
/// agent `a_b` and source `c`, or agent `a` and source `b_c`; whoever holds
/// one secret could publish as the other. Such values name no variable
/// (`EnvName::render`), so the variable would silently never be used: the
/// load refuses it. A variable another template in the list names
/// unambiguously (`WEBHOOK_SECRET_a_b` for the pair template, next to
/// `WEBHOOK_SECRET_{agentId}`) is fine.
fn unnameable<'a>(
    env_names: &[EnvName],
    names: impl Iterator<Item = &'a String>,
) -> Vec<&'a String> {
    let mut unnameable: Vec<&String> = names
        .filter(|name| !env_names.iter().any(|env_name| env_name.can_name(name)))
        .collect();
    unnameable.sort();
    unnameable
}

#[cfg(test)]
mod tests;
