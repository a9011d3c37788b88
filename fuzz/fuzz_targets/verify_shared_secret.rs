//! The `shared_secret` verifier, with fixed secrets and with one secret per
//! agent and source (`secret_env`): no input panics; a configured secret
//! verifies whatever the body and one changed byte is refused; a per-request
//! secret only ever opens the agent and source whose variable holds it.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use ingress::config::Route;
use ingress::subject::{Vars, check_token};
use ingress::verify::Verified;
use libfuzzer_sys::fuzz_target;
use tidegate_fuzz::{
    FuzzHeader, NO_VARS, Presenting, SECRETS, assert_not_open, assert_token_outcomes, header_map,
    route, route_from, secrets_toml,
};
use verify::VerifyError;

const HEADER: &str = "x-webhook-secret";

static FIXED: LazyLock<Arc<Route>> = LazyLock::new(|| {
    route(&format!(
        "kind = \"shared_secret\"\nheader = \"X-Webhook-Secret\"\n{}",
        secrets_toml(&SECRETS)
    ))
});

/// Secrets for two agents, as `WEBHOOK_SECRET_<agent>_<source>` variables.
const AGENT_SECRETS: [(&str, &str); 3] = [
    ("WEBHOOK_SECRET_alpha_putio", "alpha-putio-secret"),
    ("WEBHOOK_SECRET_beta_putio", "beta-putio-secret"),
    ("WEBHOOK_SECRET_beta_github", "beta-github-secret"),
];

static PER_AGENT: LazyLock<Arc<Route>> = LazyLock::new(|| {
    route_from(
        "[[routes]]\nname = \"agent\"\npath = \"/api/webhook/{agentId}\"\n\
         subject = \"agent.{agentId}.{query.source}\"\n\
         [routes.verifier]\nkind = \"shared_secret\"\n\
         secret_env = \"WEBHOOK_SECRET_{agentId}_{query.source}\"\n",
        &AGENT_SECRETS,
    )
});

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<FuzzHeader<'a>>,
    body: &'a [u8],
    presenting: Option<Presenting>,
    agent: Agent<'a>,
}

/// A request to the per-agent route.
#[derive(Arbitrary, Debug)]
struct Agent<'a> {
    agent: Choice<'a>,
    source: Choice<'a>,
    /// Which configured secret is sent, or fuzzed text.
    secret: Choice<'a>,
}

#[derive(Arbitrary, Debug)]
enum Choice<'a> {
    Known(u8),
    Other(&'a str),
}

impl Choice<'_> {
    fn pick<'k>(&'k self, known: &[&'k str]) -> &'k str {
        match self {
            Choice::Known(index) => known[usize::from(*index) % known.len()],
            Choice::Other(text) => text,
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let verifier = &FIXED.verifier;
    let headers = header_map(&[HEADER], &input.headers);
    assert_not_open(&verifier.verify(&headers, input.body, &NO_VARS));
    if let Some(presenting) = &input.presenting {
        assert_token_outcomes(
            verifier,
            headers.clone(),
            HEADER,
            b"",
            presenting,
            input.body,
        );
    }
    per_agent(&input.agent, headers, input.body);
});

fn per_agent(request: &Agent<'_>, mut headers: http::HeaderMap, body: &[u8]) {
    let agent = request.agent.pick(&["alpha", "beta", "gamma"]);
    let source = request.source.pick(&["putio", "github"]);
    let secrets: Vec<&str> = AGENT_SECRETS.iter().map(|(_, secret)| *secret).collect();
    let presented = request.secret.pick(&secrets);
    let Ok(value) = http::HeaderValue::from_str(presented) else {
        return;
    };
    headers.insert(HEADER, value);
    let params = [("agentId".to_owned(), agent.to_owned())];
    let query = [("source".to_owned(), source.to_owned())];
    let vars = Vars {
        params: &params,
        query: &query,
        event: None,
        route: "agent",
    };
    let result = PER_AGENT.verifier.verify(&headers, body, &vars);

    // The model: the variable named by valid tokens, and its secret.
    let name = (check_token(agent).is_ok() && check_token(source).is_ok())
        .then(|| format!("WEBHOOK_SECRET_{agent}_{source}"));
    let expected = AGENT_SECRETS
        .iter()
        .find(|(variable, _)| Some(*variable) == name.as_deref())
        .map(|(_, secret)| *secret);
    match expected {
        None => assert_eq!(result, Err(VerifyError::NoSecret), "{agent:?} {source:?}"),
        Some(secret) if secret == presented => assert_eq!(result, Ok(Verified::Signed)),
        Some(_) => assert_eq!(
            result,
            Err(VerifyError::invalid(http::HeaderName::from_static(HEADER)))
        ),
    }
}
