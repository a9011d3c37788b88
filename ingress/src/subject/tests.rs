use super::*;

fn vars<'a>(params: &'a [(String, String)], query: &'a [(String, String)]) -> Vars<'a> {
    Vars {
        params,
        query,
        event: Some("push"),
        route: "agent",
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn hostile_tokens_are_rejected() {
    let check = |value: &str, expected: Result<(), TokenError>| {
        assert_eq!(check_token(value), expected, "{value:?}");
    };
    check("flickclaw", Ok(()));
    check("installation_repositories", Ok(()));
    check("a-b~c@d+e=f:g", Ok(()));
    check("", Err(TokenError::Empty));
    check(&"a".repeat(MAX_TOKEN_LEN), Ok(()));
    check(&"a".repeat(MAX_TOKEN_LEN + 1), Err(TokenError::TooLong));
    for hostile in [
        "a.b",
        "*",
        ">",
        "a b",
        "a\tb",
        "a\nb",
        "a\0b",
        "\u{7f}",
        "$JS",
        "a/b",
        "é",
        "a\u{2024}b",
        "..",
        "%2E",
        "a%20b",
    ] {
        check(hostile, Err(TokenError::Forbidden));
    }
}

#[test]
fn renders_params_query_event_and_route() {
    let template =
        Template::parse("agent.{agentId}.{query.source}.{event}.{route}").expect("parses");
    let params = pairs(&[("agentId", "flickclaw")]);
    let query = pairs(&[("source", "putio")]);
    assert_eq!(
        template.render(&vars(&params, &query)),
        Ok("agent.flickclaw.putio.push.agent".to_owned())
    );
}

#[test]
fn hostile_values_never_render() {
    let template = Template::parse("agent.{agentId}").expect("parses");
    for hostile in ["other.agent", "*", ">", "a b", ""] {
        let params = pairs(&[("agentId", hostile)]);
        let rendered = template.render(&vars(&params, &[]));
        assert!(
            matches!(rendered, Err(RenderError::Invalid { .. })),
            "{hostile:?} rendered as {rendered:?}"
        );
    }
    assert!(matches!(
        template.render(&vars(&[], &[])),
        Err(RenderError::Missing { .. })
    ));
}

#[test]
fn template_syntax_errors() {
    for bad in ["a.{unclosed", "a.}", "a.{}", "a.{query.}", "a.{we ird}"] {
        assert!(Template::parse(bad).is_err(), "{bad}");
    }
    let shape = |text: &str| Template::parse(text).expect("parses").check_subject_shape();
    assert!(shape("github.{event}").is_ok());
    assert!(shape("github..{event}").is_err());
    assert!(shape("github.>").is_err());
    assert!(shape("github.*").is_err());
}
