//! The consumer API against a real broker: `GET /api/webhook/pending`
//! leases, `DELETE /api/webhook/items` acks; leases hold across pollers,
//! filters, ingress replicas and a broker restart.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use schemas::{DeletedItems, ItemEncoding, PendingItem, PendingItems};

use super::{SEED_BODY, SEED_ROUTE, send_open, send_seed_request};
use crate::{NatsServer, TestIngress, eventually};

const TOKEN: &str = "api-token-7c21";

/// The visibility timeout is short (2s), so that lapsed leases show
/// within a test.
fn config(extra: &str) -> String {
    format!(
        "{SEED_ROUTE}\n[consumer_api]\ntokens = [{{ env = \"TIDEGATE_API_TOKEN\" }}]\nvisibility_timeout = \"2s\"\n{extra}"
    )
}

async fn start_ingress(nats: &NatsServer, extra: &str) -> TestIngress {
    TestIngress::start(nats, &config(extra), &[("TIDEGATE_API_TOKEN", TOKEN)]).await
}

async fn pending(ingress: &TestIngress, query: &str) -> PendingItems {
    let response = ingress
        .http
        .get(ingress.url(&format!("/api/webhook/pending{query}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200, "GET pending{query}");
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

async fn delete(ingress: &TestIngress, ids: &[String]) -> DeletedItems {
    let response = ingress
        .http
        .delete(ingress.url("/api/webhook/items"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "ids": ids }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200, "DELETE items");
    response.json().await.expect("a delete response")
}

/// Every item, whatever its agent.
fn flatten(items: PendingItems) -> Vec<PendingItem> {
    items.into_values().flatten().collect()
}

fn ids(items: &[PendingItem]) -> BTreeSet<String> {
    items.iter().map(|item| item.id.clone()).collect()
}

async fn send_many(ingress: &TestIngress, agent: &str, source: &str, count: usize) {
    for index in 0..count {
        let body = format!(r#"{{"n":{index}}}"#);
        send_open(ingress, agent, source, "application/json", body.as_bytes()).await;
    }
}

#[tokio::test]
async fn the_seed_request_is_pending_until_deleted() {
    let nats = NatsServer::start().await;
    let ingress = start_ingress(&nats, "").await;
    let delivery_id = send_seed_request(&ingress).await;

    let items = pending(&ingress, "").await;
    assert_eq!(items.keys().collect::<Vec<_>>(), ["flickclaw"]);
    let item = &items["flickclaw"][0];
    assert_eq!(item.delivery_id, delivery_id);
    assert_eq!(
        (item.agent_id.as_str(), item.source.as_str()),
        ("flickclaw", "putio")
    );
    assert_eq!(item.encoding, ItemEncoding::Json);
    assert_eq!(item.payload.as_ref().expect("a payload").get(), SEED_BODY);
    assert_eq!(item.content_type.as_deref(), Some("application/json"));
    assert_eq!(item.deliveries, 1);
    assert!(!item.headers.contains_key("x-webhook-secret"));

    let deleted = delete(&ingress, std::slice::from_ref(&item.id)).await;
    assert_eq!(deleted.deleted, std::slice::from_ref(&item.id));
    // Deleting again, or ids that never were, is not an error.
    let again = delete(
        &ingress,
        &[item.id.clone(), "999".into(), "not-an-id".into()],
    )
    .await;
    assert!(again.deleted.is_empty());
    assert_eq!(
        again.unknown,
        [item.id.clone(), "999".into(), "not-an-id".into()]
    );

    // A second delivery comes back after the visibility timeout; the
    // deleted one would have come back with it.
    let second = send_open(&ingress, "flickclaw", "putio", "application/json", b"{}").await;
    let held = flatten(pending(&ingress, "").await);
    assert_eq!(held.len(), 1);
    let back = eventually(Duration::from_secs(15), "the lapsed lease", || async {
        let items = flatten(pending(&ingress, "").await);
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(back.len(), 1, "only the item that was not deleted");
    assert_eq!(back[0].delivery_id, second);
    assert_eq!(back[0].deliveries, 2);
}

#[tokio::test]
async fn the_api_needs_the_token() {
    let nats = NatsServer::start().await;
    let ingress = start_ingress(&nats, "").await;
    let url = ingress.url("/api/webhook/pending");
    let missing = ingress.http.get(&url).send().await.expect("sent");
    assert_eq!(missing.status(), 401);
    let wrong = ingress
        .http
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), 403);
    let delete = ingress
        .http
        .delete(ingress.url("/api/webhook/items"))
        .json(&serde_json::json!({ "ids": ["1"] }))
        .send()
        .await
        .expect("sent");
    assert_eq!(delete.status(), 401);
    let post = ingress
        .http
        .post(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET");
    let malformed = ingress
        .http
        .delete(ingress.url("/api/webhook/items"))
        .bearer_auth(TOKEN)
        .body("[1, 2]")
        .send()
        .await
        .expect("sent");
    assert_eq!(malformed.status(), 400);
}

#[tokio::test]
async fn no_combination_of_filters_leases_an_item_twice() {
    let nats = NatsServer::start().await;
    let ingress = start_ingress(&nats, "").await;
    send_many(&ingress, "flickclaw", "putio", 3).await;
    send_many(&ingress, "flickclaw", "github", 1).await;
    send_many(&ingress, "stewardclaw", "putio", 2).await;

    let github = flatten(pending(&ingress, "?agent=flickclaw&source=github").await);
    assert_eq!(github.len(), 1);
    assert_eq!(github[0].source, "github");
    let putio = flatten(pending(&ingress, "?source=putio&limit=2").await);
    assert_eq!(putio.len(), 2);
    assert!(putio.iter().all(|item| item.source == "putio"));
    let flickclaw = flatten(pending(&ingress, "?agent=flickclaw").await);
    assert!(flickclaw.iter().all(|item| item.agent_id == "flickclaw"));
    let rest = flatten(pending(&ingress, "").await);

    let mut all: Vec<PendingItem> = Vec::new();
    for batch in [github, putio, flickclaw, rest] {
        all.extend(batch);
    }
    let unique = ids(&all);
    assert_eq!(all.len(), 6, "every item once: {unique:?}");
    assert_eq!(unique.len(), 6, "an item was leased twice");
    assert!(flatten(pending(&ingress, "").await).is_empty());
}

#[tokio::test]
async fn two_concurrent_pollers_get_disjoint_items() {
    let nats = NatsServer::start().await;
    let first = start_ingress(&nats, "").await;
    let second = start_ingress(&nats, "").await;
    send_many(&first, "flickclaw", "putio", 12).await;
    send_many(&first, "stewardclaw", "uptime", 8).await;
    // One poller drains everything, the other only flickclaw, at once and
    // through two ingress processes.
    let (everything, flickclaw) = tokio::join!(
        pending(&first, "?limit=20"),
        pending(&second, "?agent=flickclaw&limit=20")
    );
    let (everything, flickclaw) = (flatten(everything), flatten(flickclaw));
    let (a, b) = (ids(&everything), ids(&flickclaw));
    assert!(
        a.is_disjoint(&b),
        "both pollers got {:?}",
        a.intersection(&b)
    );
    assert_eq!(a.len() + b.len(), 20);
    assert_eq!(everything.len() + flickclaw.len(), 20);
}

#[tokio::test]
async fn a_crashed_poller_loses_nothing() {
    let nats = NatsServer::start().await;
    let ingress = start_ingress(&nats, "").await;
    send_many(&ingress, "flickclaw", "putio", 2).await;
    let leased = flatten(pending(&ingress, "").await);
    assert_eq!(leased.len(), 2);
    // The poller dies without deleting: nobody gets the items meanwhile…
    assert!(flatten(pending(&ingress, "").await).is_empty());
    // …and after the visibility timeout they are pending again.
    let back = eventually(
        Duration::from_secs(15),
        "items after the timeout",
        || async {
            let items = flatten(pending(&ingress, "").await);
            (!items.is_empty()).then_some(items)
        },
    )
    .await;
    assert_eq!(
        ids(&back),
        ids(&leased),
        "the same items, with the same ids"
    );
    assert!(back.iter().all(|item| item.deliveries == 2));
    let deleted = delete(&ingress, &ids(&back).into_iter().collect::<Vec<_>>()).await;
    assert_eq!(deleted.deleted.len(), 2);
}

#[tokio::test]
async fn a_delete_can_reach_another_ingress() {
    let nats = NatsServer::start().await;
    let first = start_ingress(&nats, "").await;
    let second = start_ingress(&nats, "").await;
    send_many(&first, "flickclaw", "putio", 3).await;
    let leased = flatten(pending(&first, "").await);
    assert_eq!(leased.len(), 3);
    let (kept, processed) = leased.split_at(1);
    let processed: Vec<String> = processed.iter().map(|item| item.id.clone()).collect();
    let deleted = delete(&second, &processed).await;
    assert_eq!(deleted.deleted, processed);
    // After the timeout only the item that was not deleted comes back, on
    // either replica.
    let back = eventually(Duration::from_secs(15), "the lapsed lease", || async {
        let items = flatten(pending(&second, "").await);
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(ids(&back), ids(kept));
    assert!(flatten(pending(&first, "").await).is_empty());
}

#[tokio::test]
async fn pending_items_and_leases_survive_a_broker_restart() {
    let mut nats = NatsServer::start().await;
    let ingress = start_ingress(&nats, "").await;
    send_many(&ingress, "flickclaw", "putio", 2).await;
    let leased = flatten(pending(&ingress, "?limit=1").await);
    assert_eq!(leased.len(), 1);

    nats.restart().await;
    ingress.wait_ready().await;
    let other = eventually(Duration::from_secs(20), "the other item", || async {
        let response = ingress
            .http
            .get(ingress.url("/api/webhook/pending"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        let items: PendingItems = response.json().await.ok()?;
        let items = flatten(items);
        (!items.is_empty()).then_some(items)
    })
    .await;
    let all: HashSet<String> = leased
        .iter()
        .chain(&other)
        .map(|item| item.id.clone())
        .collect();
    assert_eq!(all.len(), 2, "both items, each once");
    // The lease taken before the restart can still be completed.
    let deleted = delete(&ingress, &[leased[0].id.clone()]).await;
    assert_eq!(deleted.deleted, [leased[0].id.clone()]);
}

#[tokio::test]
async fn agents_left_to_the_inbox_worker_are_not_served() {
    let nats = NatsServer::start().await;
    let ingress = start_ingress(&nats, "exclude_agents = [\"flickclaw\"]").await;
    send_many(&ingress, "flickclaw", "putio", 2).await;
    send_many(&ingress, "stewardclaw", "putio", 1).await;
    let items = pending(&ingress, "").await;
    assert_eq!(items.keys().collect::<Vec<_>>(), ["stewardclaw"]);
    let refused = ingress
        .http
        .get(ingress.url("/api/webhook/pending?agent=flickclaw"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 404);
}
