//! Subject templates and the token newtype that guards them. Every value a
//! request contributes to a subject becomes a `SubjectToken` first, so `.`,
//! `*`, `>`, whitespace and control characters never reach the broker.

use std::fmt;

use schemas::streams::MAX_TOKEN_LEN;

/// One validated subject token: 1 to 128 characters from
/// `A-Z a-z 0-9 - _ ~ @ + = :`. An allowlist rather than a denylist: NATS
/// gives meaning to `.`, `*`, `>`, whitespace and a leading `$`, and
/// anything outside plain ASCII is one decoding step from one of those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectToken(String);

/// Why a value cannot be a subject token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_TOKEN_LEN} characters")]
    TooLong,
    #[error("contains a character outside A-Z a-z 0-9 - _ ~ @ + = :")]
    Forbidden,
}

impl SubjectToken {
    pub fn parse(value: &str) -> Result<Self, TokenError> {
        check_token(value)?;
        Ok(SubjectToken(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a value without allocating.
pub fn check_token(value: &str) -> Result<(), TokenError> {
    if value.is_empty() {
        return Err(TokenError::Empty);
    }
    if value.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    if value.bytes().all(schemas::streams::is_token_byte) {
        Ok(())
    } else {
        Err(TokenError::Forbidden)
    }
}

/// A template such as `agent.{agentId}.{query.source}`, parsed once at
/// start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A value a template can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `{name}`: a path parameter.
    Param(String),
    /// `{query.name}`: a query parameter.
    Query(String),
    /// `{event}`: the delivery's event.
    Event,
    /// `{route}`: the route's name.
    Route,
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Param(name) => write!(f, "path parameter `{name}`"),
            Var::Query(name) => write!(f, "query parameter `{name}`"),
            Var::Event => f.write_str("event"),
            Var::Route => f.write_str("route"),
        }
    }
}

/// The values one request offers to templates.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub params: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub event: Option<&'a str>,
    pub route: &'a str,
}

/// Why a template could not be rendered for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{var} is missing")]
    Missing { var: String },
    #[error("{var} {reason}")]
    Invalid { var: String, reason: TokenError },
}

impl Template {
    /// Parses `{name}`, `{query.name}`, `{event}` and `{route}` placeholders.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
            let name = &after[..close];
            parts.push(Part::Var(
                parse_var(name).map_err(|why| format!("`{text}`: {why}"))?,
            ));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unopened `}}` in `{text}`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The variables the template uses.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|part| match part {
            Part::Var(var) => Some(var),
            Part::Literal(_) => None,
        })
    }

    /// Renders with every substituted value checked as a subject token.
    pub fn render(&self, vars: &Vars<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(64);
        self.render_into(&mut out, vars)?;
        Ok(out)
    }

    pub fn render_into(&self, out: &mut String, vars: &Vars<'_>) -> Result<(), RenderError> {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => {
                    let value = lookup(var, vars).ok_or_else(|| RenderError::Missing {
                        var: var.to_string(),
                    })?;
                    check_token(value).map_err(|reason| RenderError::Invalid {
                        var: var.to_string(),
                        reason,
                    })?;
                    out.push_str(value);
                }
            }
        }
        Ok(())
    }

    /// Checks that the literal parts form a valid subject once every
    /// variable is replaced by a token.
    pub fn check_subject_shape(&self) -> Result<(), String> {
        let sample = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Var(_) => "x",
            })
            .collect::<String>();
        for token in sample.split('.') {
            check_token(token).map_err(|why| format!("subject token `{token}` {why}"))?;
        }
        Ok(())
    }
}

fn parse_var(name: &str) -> Result<Var, String> {
    let var = match name {
        "event" => Var::Event,
        "route" => Var::Route,
        _ => match name.strip_prefix("query.") {
            Some(query) => Var::Query(query.to_owned()),
            None => Var::Param(name.to_owned()),
        },
    };
    let inner = match &var {
        Var::Param(inner) | Var::Query(inner) => inner.as_str(),
        Var::Event | Var::Route => "ok",
    };
    if inner.is_empty()
        || !inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!("`{{{name}}}` is not a valid placeholder"));
    }
    Ok(var)
}

fn lookup<'a>(var: &Var, vars: &Vars<'a>) -> Option<&'a str> {
    let find = |pairs: &'a [(String, String)], name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    match var {
        Var::Param(name) => find(vars.params, name),
        Var::Query(name) => find(vars.query, name),
        Var::Event => vars.event,
        Var::Route => Some(vars.route),
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
