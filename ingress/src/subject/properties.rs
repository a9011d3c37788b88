//! Properties of subject tokens and templates over generated values:
//! `check_token` accepts exactly the allowlist, and no value a request sends
//! can add, empty or leave its token in a rendered subject.

use proptest::prelude::*;
use proptest::sample::select;

use super::*;

/// Placeholder names the generated templates and values use.
const NAMES: [&str; 3] = ["agentId", "source", "x"];

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_~@+=:".contains(c)
}

/// Values a request could send: any text, allowlisted text around the
/// length limit, and short mixes of allowlisted and meaningful characters.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_~@+=:-]{0,140}",
        "[a-z]{120,136}",
        "[A-Za-z0-9_.*> \t\r\n\u{0}\u{7f}$%é\u{2024}-]{0,12}",
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (select(NAMES.to_vec()).prop_map(str::to_owned), value()),
        0..6,
    )
}

/// A piece of a generated template.
#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Param(&'static str),
    Query(&'static str),
}

impl Piece {
    fn text(&self) -> String {
        match self {
            Piece::Literal(text) => text.clone(),
            Piece::Param(name) => format!("{{{name}}}"),
            Piece::Query(name) => format!("{{query.{name}}}"),
        }
    }
}

/// `.`-separated segments, each one or more pieces.
fn segments() -> impl Strategy<Value = Vec<Vec<Piece>>> {
    let piece = prop_oneof![
        "[a-z0-9_-]{1,6}".prop_map(Piece::Literal),
        select(NAMES.to_vec()).prop_map(Piece::Param),
        select(NAMES.to_vec()).prop_map(Piece::Query),
    ];
    prop::collection::vec(prop::collection::vec(piece, 1..4), 1..5)
}

fn last<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

proptest! {
    #[test]
    fn check_token_accepts_exactly_the_allowlist(value in value()) {
        let expected = (1..=MAX_TOKEN_LEN).contains(&value.chars().count())
            && value.chars().all(allowed);
        prop_assert_eq!(check_token(&value).is_ok(), expected, "{:?}", value);
        prop_assert_eq!(SubjectToken::parse(&value).is_ok(), expected);
    }

    #[test]
    fn rendered_subjects_keep_the_template_shape(
        segments in segments(),
        params in pairs(),
        query in pairs(),
    ) {
        let text = segments
            .iter()
            .map(|pieces| pieces.iter().map(Piece::text).collect::<String>())
            .collect::<Vec<_>>()
            .join(".");
        let template = Template::parse(&text).expect("generated templates parse");
        prop_assume!(template.check_subject_shape().is_ok());
        let vars = Vars { params: &params, query: &query, event: None, route: "route" };
        let lookup = |piece: &Piece| match piece {
            Piece::Literal(_) => None,
            Piece::Param(name) => Some(last(&params, name)),
            Piece::Query(name) => Some(last(&query, name)),
        };
        let usable = segments
            .iter()
            .flatten()
            .filter_map(lookup)
            .all(|value| value.is_some_and(|value| check_token(value).is_ok()));

        let rendered = template.render(&vars);
        prop_assert_eq!(rendered.is_ok(), usable, "{:?}", rendered);
        let Ok(subject) = rendered else {
            return Ok(());
        };
        let tokens: Vec<&str> = subject.split('.').collect();
        prop_assert_eq!(tokens.len(), segments.len(), "{:?}", subject);
        for (token, pieces) in tokens.iter().zip(&segments) {
            prop_assert!(!token.is_empty() && token.chars().all(allowed), "{:?}", subject);
            let expected: String = pieces
                .iter()
                .map(|piece| match lookup(piece) {
                    None => piece.text(),
                    Some(value) => value.expect("usable").to_owned(),
                })
                .collect();
            // Each value fills its own token, alone when it is the whole
            // segment: it never spills into a neighbour.
            prop_assert_eq!(*token, expected.as_str());
        }
    }

    #[test]
    fn an_agent_id_never_reaches_another_agents_prefix(
        agent in value(),
        source in value(),
        other in "[A-Za-z0-9_~@+=:-]{1,16}",
    ) {
        let template = Template::parse("agent.{agentId}.{query.source}").expect("parses");
        let params = [("agentId".to_owned(), agent.clone())];
        let query = [("source".to_owned(), source.clone())];
        let vars = Vars { params: &params, query: &query, event: None, route: "agent" };
        let rendered = template.render(&vars);
        let valid = check_token(&agent).is_ok() && check_token(&source).is_ok();
        prop_assert_eq!(rendered.is_ok(), valid, "{:?}", rendered);
        let Ok(subject) = rendered else {
            return Ok(());
        };
        prop_assert_eq!(subject.split('.').collect::<Vec<_>>(), ["agent", &agent, &source]);
        if other != agent {
            let prefix = format!("agent.{other}.");
            prop_assert!(!subject.starts_with(&prefix), "{:?}", subject);
        }
    }
}
