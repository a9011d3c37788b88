use http::StatusCode;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn example() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/examples/tidegate.toml"
    );
    std::fs::read_to_string(path).expect("example config is readable")
}

fn problems(text: &str, env_vars: &[(&str, &str)]) -> Vec<String> {
    match Config::from_toml(text, &env(env_vars)) {
        Ok(_) => Vec::new(),
        Err(error) => error.problems,
    }
}

#[test]
fn the_example_config_loads() {
    let config = Config::from_toml(
        &example(),
        &env(&[
            ("GITHUB_WEBHOOK_SECRET", "s3cret"),
            ("TIDEGATE_API_TOKEN", "t0ken"),
        ]),
    )
    .expect("example is valid");
    let names: Vec<&str> = config
        .routes
        .iter()
        .map(|route| route.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "github",
            "agent",
            "workflow",
            "plugin",
            "plugin-queued",
            "withings-callback",
            "withings-redirect"
        ]
    );
    let github = &config.routes[0];
    assert_eq!(github.delivery_id, DeliveryIdSource::Github);
    assert_eq!(github.body_limit, 25 << 20);
    assert_eq!(github.verifier.invalid_status, StatusCode::UNAUTHORIZED);
    assert_eq!(config.routes[3].mode, Mode::Sync);
    assert_eq!(
        config.broker.stream.duplicate_window,
        Duration::from_secs(120)
    );
}

#[test]
fn a_missing_required_secret_fails_at_start_up() {
    let found = problems(&example(), &[("TIDEGATE_API_TOKEN", "t0ken")]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("routes[0] (github).verifier.secrets"),
        "{found:#?}"
    );
}

#[test]
fn every_bad_key_is_reported_at_once() {
    let text = r#"
        listen = "not an address"
        surprise = 1
        [stream]
        max_age = "forever"
        [http]
        body_limit = "12 parsecs"
        [[routes]]
        name = "a.b"
        path = "no-slash"
        subject = "x.{missing}"
        [routes.verifier]
        kind = "magic"
        [[routes]]
        name = "open"
        path = "/open"
        subject = "open"
    "#;
    let found = problems(text, &[]);
    let expected = [
        "surprise: unknown key",
        "listen:",
        "stream.max_age:",
        "http.body_limit:",
        "routes[0] (a.b).name:",
        "routes[0] (a.b).path:",
        "routes[0] (a.b).subject:",
        "routes[0] (a.b).verifier.kind:",
        "routes[1] (open).verifier: every route names a verifier",
    ];
    for prefix in expected {
        assert!(
            found.iter().any(|problem| problem.starts_with(prefix)),
            "no problem starting with {prefix:?} in {found:#?}"
        );
    }
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = Config::from_toml(
        &example(),
        &env(&[
            ("GITHUB_WEBHOOK_SECRET", "gh-super-secret-value"),
            ("TIDEGATE_API_TOKEN", "api-super-secret-value"),
            ("WEBHOOK_SECRET_flickclaw_putio", "agent-super-secret-value"),
        ]),
    )
    .expect("valid");
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("super-secret"),
        "secret leaked into Debug output"
    );
    assert!(debug.contains("Secret(***)"));
}

#[test]
#[allow(clippy::result_large_err)] // Jail::expect_with fixes the closure's error type
fn environment_overrides_the_file() {
    use figment::Jail;
    Jail::expect_with(|jail| {
        jail.create_file(
            "tidegate.toml",
            "listen = \"127.0.0.1:1\"\n[nats]\nurl = \"nats://127.0.0.1:2\"\ncreds = \"nats.creds\"",
        )?;
        jail.set_env("TIDEGATE_LISTEN", "127.0.0.1:9999");
        jail.set_env("TIDEGATE_NATS_URL", "nats://10.0.0.1:4333");
        jail.set_env("TIDEGATE_HTTP__MAX_CONNECTIONS", "7");
        jail.create_file("nats.creds", "")?;
        jail.set_env("TIDEGATE_NATS__NAME", "edge-1");
        // Not configuration keys: must not be reported as unknown.
        jail.set_env("TIDEGATE_API_TOKEN", "t");
        jail.set_env("TIDEGATE_CONFIG", "tidegate.toml");
        let figment = Config::figment(Some(Path::new("tidegate.toml")));
        let config = Config::load(&figment, &HashMap::new()).map_err(|error| error.to_string())?;
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.broker.nats.servers, ["nats://10.0.0.1:4333"]);
        assert_eq!(config.broker.nats.name, "edge-1");
        assert!(matches!(
            config.broker.nats.auth,
            broker::NatsAuth::Credentials(_)
        ));
        assert_eq!(config.http.max_connections, 7);
        Ok(())
    });
}

#[test]
fn github_routes_default_to_githubs_25_mib_cap() {
    let route = |name: &str, extra: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npath = \"/{name}\"\nsubject = \"{name}\"\n{extra}\n[routes.verifier]\nkind = \"none\"\n"
        )
    };
    let text = [
        route("plain", ""),
        route("github", "normalize = \"github\""),
        route("small", "normalize = \"github\"\nbody_limit = \"64KiB\""),
    ]
    .concat();
    let config = Config::from_toml(&text, &HashMap::new()).expect("valid");
    let limits: Vec<u64> = config.routes.iter().map(|route| route.body_limit).collect();
    assert_eq!(limits, [1 << 20, 25 << 20, 64 << 10]);
}

#[test]
fn keys_of_earlier_versions_say_where_they_went() {
    let found = problems(
        "nats_url = \"nats://127.0.0.1:4222\"\n[nats]\ncredentials_file = \"x\"\nretry_after = \"5s\"\n[stream]\nreplicas = 3\n",
        &[],
    );
    assert_eq!(
        found,
        [
            "nats.credentials_file: renamed to nats.creds",
            "nats.retry_after: moved to http.retry_after",
            "nats_url: moved to [nats] url (TIDEGATE_NATS_URL still sets it)",
            "stream.replicas: moved to jetstream.replicas (every stream and bucket)",
        ]
    );
}

#[test]
fn routes_may_share_a_path_only_with_disjoint_methods() {
    let route = |name: &str, methods: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npath = \"/webhook/{{plugin}}/{{command}}\"\nmethods = {methods}\nsubject = \"plugin.{{plugin}}.{{command}}\"\n[routes.verifier]\nkind = \"none\"\n"
        )
    };
    let disjoint = format!(
        "{}{}",
        route("get", "[\"GET\"]"),
        route("post", "[\"POST\"]")
    );
    assert_eq!(problems(&disjoint, &[]), Vec::<String>::new());
    let shared = format!(
        "{}{}",
        route("get", "[\"GET\"]"),
        route("both", "[\"post\", \"get\"]")
    );
    let found = problems(&shared, &[]);
    assert_eq!(
        found,
        ["routes[1] (both).path: another route has this path with GET"],
        "{found:#?}"
    );
}
#[test]
fn workflow_routes_need_a_workflow_parameter_and_the_enable_switch_reads_env() {
    let route = |path: &str, mode: &str| {
        format!(
            "[[routes]]\nname = \"workflow\"\npath = \"{path}\"\nsubject = \"workflow.x\"\nmode = \"{mode}\"\nworkflows = \"data/workflows\"\nenabled_env = \"ASSISTANT_WEBHOOK_ENABLED\"\n[routes.verifier]\nkind = \"none\"\n"
        )
    };
    let found = problems(&route("/webhooks/{name}", "async"), &[]);
    assert!(
        found[0].contains("must have a {workflow} parameter"),
        "{found:#?}"
    );
    let found = problems(&route("/webhooks/{workflow}", "sync"), &[]);
    assert!(found[0].contains("use mode = \"async\""), "{found:#?}");
    let found = problems(
        &route("/webhooks/{workflow}", "async"),
        &[("ASSISTANT_WEBHOOK_ENABLED", "maybe")],
    );
    assert!(
        found[0].contains("ASSISTANT_WEBHOOK_ENABLED must be true or false"),
        "{found:#?}"
    );
    for (value, enabled) in [("false", false), ("0", false), ("true", true), ("", true)] {
        let config = Config::from_toml(
            &route("/webhooks/{workflow}", "async"),
            &env(&[("ASSISTANT_WEBHOOK_ENABLED", value)]),
        )
        .expect("valid");
        assert_eq!(config.routes[0].enabled, enabled, "{value:?}");
        let workflows = config.routes[0]
            .workflows
            .as_ref()
            .expect("a workflow route");
        assert_eq!(workflows.param, "workflow");
        assert_eq!(
            workflows.registry.folder(),
            std::path::Path::new("data/workflows")
        );
    }
}

#[test]
fn the_admin_api_needs_its_token() {
    let admin = "[admin]\ntoken = { env = \"ADMIN\" }\n";
    assert_eq!(
        problems(admin, &[]),
        ["admin.token: not set (remove [admin] to serve no admin API)"]
    );
    let config = Config::from_toml(admin, &env(&[("ADMIN", "t")])).expect("valid");
    assert!(config.admin.is_some());
    assert!(
        Config::from_toml("", &env(&[]))
            .expect("valid")
            .admin
            .is_none()
    );
}
