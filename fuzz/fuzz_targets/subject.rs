//! Subject tokens and templates: `check_token` accepts exactly the
//! allowlist; a rendered subject has as many tokens as its template, none
//! empty, none holding `.`, `*`, `>`, whitespace or control characters, and
//! equals the template with each value put in its place.
#![no_main]

use arbitrary::Arbitrary;
use ingress::subject::{RenderError, Template, TokenError, Vars, check_token};
use libfuzzer_sys::fuzz_target;
use schemas::streams::MAX_TOKEN_LEN;
use tidegate_fuzz::FuzzName;

const NAMES: [&str; 4] = ["agentId", "source", "workflow", "x"];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    token: &'a str,
    /// Any template text.
    text: &'a str,
    /// A well-formed template: `.`-separated segments of pieces.
    segments: Vec<Vec<Piece<'a>>>,
    params: Vec<(FuzzName<'a>, &'a str)>,
    query: Vec<(FuzzName<'a>, &'a str)>,
    event: Option<&'a str>,
    route: &'a str,
}

#[derive(Arbitrary, Debug)]
enum Piece<'a> {
    Literal(&'a str),
    Param(FuzzName<'a>),
    Query(FuzzName<'a>),
    Event,
    Route,
}

fuzz_target!(|input: Input<'_>| {
    check_token_matches_the_allowlist(input.token);

    let params = pairs(&input.params);
    let query = pairs(&input.query);
    let vars = Vars {
        params: &params,
        query: &query,
        event: input.event,
        route: input.route,
    };

    // Arbitrary text: whatever parses, has a valid shape and renders is a
    // well-formed subject.
    if let Ok(template) = Template::parse(input.text)
        && template.check_subject_shape().is_ok()
        && let Ok(subject) = template.render(&vars)
    {
        assert_well_formed(&subject);
    }

    // A generated template: the render equals the model, token by token.
    let segments: Vec<Vec<Part>> = input
        .segments
        .iter()
        .map(|pieces| pieces.iter().filter_map(Part::from_piece).collect())
        .collect();
    if segments.is_empty() {
        return;
    }
    let text = segments
        .iter()
        .map(|parts| parts.iter().map(Part::text).collect::<String>())
        .collect::<Vec<_>>()
        .join(".");
    let template = Template::parse(&text).expect("generated templates parse");
    if template.check_subject_shape().is_err() {
        // Config refuses such a template (an empty or overlong literal
        // token); the ingress never renders it.
        // (Lengths are counted as config counts them: one character per
        // placeholder.)
        assert!(segments.iter().any(|parts| {
            let len: usize = parts.iter().map(Part::sample_len).sum();
            len == 0 || len > MAX_TOKEN_LEN
        }));
        return;
    }
    let rendered = template.render(&vars);
    match (model(&segments, &vars), &rendered) {
        (Ok(expected), Ok(subject)) => {
            assert_eq!(subject, &expected);
            assert_eq!(subject.split('.').count(), segments.len());
            assert_well_formed(subject);
        }
        (Err(Fault::Missing), Err(RenderError::Missing { .. }))
        | (Err(Fault::Invalid), Err(RenderError::Invalid { .. })) => {}
        (expected, rendered) => panic!("{text:?}: expected {expected:?}, got {rendered:?}"),
    }
});

/// Accepted iff 1 to `MAX_TOKEN_LEN` characters from the allowlist.
fn check_token_matches_the_allowlist(token: &str) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_~@+=:".contains(c);
    let expected =
        !token.is_empty() && token.chars().count() <= MAX_TOKEN_LEN && token.chars().all(allowed);
    let result = check_token(token);
    assert_eq!(result.is_ok(), expected, "{token:?}: {result:?}");
    assert_eq!(result == Err(TokenError::Empty), token.is_empty());
}

/// Every token non-empty, and only allowlisted characters (none of `.`
/// inside a token, `*`, `>`, whitespace or control characters).
fn assert_well_formed(subject: &str) {
    for token in subject.split('.') {
        assert!(!token.is_empty(), "{subject:?}");
        assert!(
            token
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_~@+=:".contains(&byte)),
            "{subject:?}"
        );
    }
}

fn pairs(fuzzed: &[(FuzzName<'_>, &str)]) -> Vec<(String, String)> {
    fuzzed
        .iter()
        .map(|(name, value)| (name.resolve(&NAMES).to_owned(), (*value).to_owned()))
        .collect()
}

/// A template piece as the model sees it.
#[derive(Debug)]
enum Part {
    Literal(String),
    Param(String),
    Query(String),
    Event,
    Route,
}

#[derive(Debug)]
enum Fault {
    Missing,
    Invalid,
}

impl Part {
    /// Literals keep only allowlisted characters (so they cannot form
    /// placeholders or separators); names keep only placeholder characters.
    fn from_piece(piece: &Piece<'_>) -> Option<Part> {
        let name = |name: &FuzzName<'_>| {
            let name: String = name
                .resolve(&NAMES)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        };
        Some(match piece {
            Piece::Literal(text) => {
                let text: String = text
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-_~@+=:".contains(*c))
                    .collect();
                if text.is_empty() {
                    return None;
                }
                Part::Literal(text)
            }
            Piece::Param(param) => match name(param)? {
                // These names mean something else inside braces.
                name if name == "event" || name == "route" => return None,
                name => Part::Param(name),
            },
            Piece::Query(param) => Part::Query(name(param)?),
            Piece::Event => Part::Event,
            Piece::Route => Part::Route,
        })
    }

    /// Length in the sample subject config checks, where every
    /// placeholder stands for one character.
    fn sample_len(&self) -> usize {
        match self {
            Part::Literal(text) => text.len(),
            Part::Param(_) | Part::Query(_) | Part::Event | Part::Route => 1,
        }
    }

    fn text(&self) -> String {
        match self {
            Part::Literal(text) => text.clone(),
            Part::Param(name) => format!("{{{name}}}"),
            Part::Query(name) => format!("{{query.{name}}}"),
            Part::Event => "{event}".to_owned(),
            Part::Route => "{route}".to_owned(),
        }
    }
}

/// The subject the template should render to: each value looked up (the
/// last of repeated names wins) and put in place, or the first fault.
fn model(segments: &[Vec<Part>], vars: &Vars<'_>) -> Result<String, Fault> {
    let last = |pairs: &[(String, String)], name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut tokens = Vec::new();
    for parts in segments {
        let mut token = String::new();
        for part in parts {
            let value = match part {
                Part::Literal(text) => {
                    token.push_str(text);
                    continue;
                }
                Part::Param(name) => last(vars.params, name),
                Part::Query(name) => last(vars.query, name),
                Part::Event => vars.event.map(str::to_owned),
                Part::Route => Some(vars.route.to_owned()),
            };
            let value = value.ok_or(Fault::Missing)?;
            if check_token(&value).is_err() {
                return Err(Fault::Invalid);
            }
            token.push_str(&value);
        }
        tokens.push(token);
    }
    Ok(tokens.join("."))
}
