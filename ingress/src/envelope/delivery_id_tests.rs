//! Delivery ids per provider: the defaults each verifier kind implies, the
//! `json:` source, and their refusals.

use std::collections::HashMap;

use super::*;
use crate::config::Config;

/// A route with `verifier` and, when given, an explicit `delivery_id`.
fn route(verifier: &str, delivery_id: Option<&str>) -> std::sync::Arc<Route> {
    let delivery_id = delivery_id
        .map(|source| format!("delivery_id = \"{source}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[[routes]]\nname = \"r\"\npath = \"/r\"\nsubject = \"r\"\n{delivery_id}\
         [routes.verifier]\nkind = \"{verifier}\"\nif_unset = \"open\"\n"
    );
    let config = Config::from_toml(&text, &HashMap::new()).expect("valid route");
    config.routes[0].clone()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::try_from(*name).expect("valid name"),
                value.parse().expect("valid value"),
            )
        })
        .collect()
}

/// `Ok(id)`, or `Err(status)` for a refusal.
fn id(route: &Route, pairs: &[(&str, &str)], body: &str) -> Result<String, u16> {
    delivery_id(route, &headers(pairs), body.as_bytes()).map_err(|error| error.status().as_u16())
}

#[test]
fn each_kind_implies_its_provider_id() {
    let check = |kind: &str, expected: DeliveryIdSource| {
        assert_eq!(route(kind, None).delivery_id, expected, "{kind}");
    };
    check(
        "standard_webhooks",
        DeliveryIdSource::FirstHeader(vec![
            HeaderName::from_static("webhook-id"),
            HeaderName::from_static("svix-id"),
        ]),
    );
    check("stripe", DeliveryIdSource::JsonField("id".into()));
    check(
        "shopify",
        DeliveryIdSource::Header(HeaderName::from_static("x-shopify-webhook-id")),
    );
    for kind in ["slack", "gitlab", "github", "bearer", "none"] {
        check(kind, DeliveryIdSource::Uuid);
    }
    // An explicit source always wins.
    assert_eq!(
        route("stripe", Some("uuid")).delivery_id,
        DeliveryIdSource::Uuid
    );
    assert_eq!(
        route("slack", Some("json:event_id")).delivery_id,
        DeliveryIdSource::JsonField("event_id".into())
    );
}

#[test]
fn standard_webhooks_ids_fall_back_to_svix() {
    let route = route("standard_webhooks", None);
    let check = |pairs: &[(&str, &str)], expected: Result<String, u16>| {
        assert_eq!(id(&route, pairs, "{}"), expected, "{pairs:?}");
    };
    check(&[("webhook-id", "msg_1")], Ok("msg_1".into()));
    check(&[("svix-id", "msg_2")], Ok("msg_2".into()));
    check(
        &[("webhook-id", "msg_1"), ("svix-id", "msg_2")],
        Ok("msg_1".into()),
    );
    check(
        &[("webhook-id", ""), ("svix-id", "msg_2")],
        Ok("msg_2".into()),
    );
    check(&[], Err(400));
    check(&[("webhook-id", "msg 1")], Err(400));
}

#[test]
fn stripe_ids_come_from_the_event_body() {
    let route = route("stripe", None);
    let check = |body: &str, expected: Result<String, u16>| {
        assert_eq!(id(&route, &[], body), expected, "{body}");
    };
    check(
        r#"{"id": "evt_1NqBt2", "object": "event", "data": {"id": "pi_1"}}"#,
        Ok("evt_1NqBt2".into()),
    );
    check(
        r#"{"object": "event", "id": "evt\u005f2"}"#,
        Ok("evt_2".into()),
    );
    check(r#"{"\u0069d": "evt_3"}"#, Ok("evt_3".into()));
    check(r#"{"data": {"id": "pi_1"}}"#, Err(400));
    check(r#"{"id": 42}"#, Err(400));
    check(r#"{"id": ""}"#, Err(400));
    check(r#"{"id": "evt/../1"}"#, Err(400));
    check(r#"["evt_1"]"#, Err(400));
    check("id=evt_1", Err(400));
    check("", Err(400));
}

#[test]
fn shopify_ids_come_from_the_webhook_id_header() {
    let route = route("shopify", None);
    assert_eq!(
        id(
            &route,
            &[(
                "x-shopify-webhook-id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
            )],
            "{}"
        ),
        Ok("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".into())
    );
    assert_eq!(id(&route, &[], "{}"), Err(400));
}

#[test]
fn kinds_without_an_id_get_a_uuid() {
    let route = route("slack", None);
    let first = id(&route, &[], "").expect("uuid");
    let second = id(&route, &[], "").expect("uuid");
    assert_eq!(first.len(), 36);
    assert_ne!(first, second);
}

#[test]
fn bad_sources_are_reported() {
    for source in ["json:", "header:bad header", "body"] {
        let text = format!(
            "[[routes]]\nname = \"r\"\npath = \"/r\"\nsubject = \"r\"\n\
             delivery_id = \"{source}\"\n[routes.verifier]\nkind = \"none\"\n"
        );
        let problems = Config::from_toml(&text, &HashMap::new())
            .err()
            .map(|error| error.problems)
            .unwrap_or_default();
        assert!(
            problems
                .iter()
                .any(|problem| problem.starts_with("routes[0] (r).delivery_id:")),
            "{source}: {problems:#?}"
        );
    }
}
