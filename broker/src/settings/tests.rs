use std::collections::HashMap;

use figment::Figment;
use figment::providers::{Format, Toml};

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Doc {
    nats: RawNats,
    jetstream: RawJetStream,
    stream: RawStream,
}

fn compile(toml: &str, env: &[(&str, &str)]) -> (NatsSettings, JetStreamSettings, Vec<String>) {
    let doc: Doc = Figment::from(Toml::string(toml))
        .extract()
        .expect("test TOML parses");
    let env: HashMap<String, String> = env
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    let mut problems = Vec::new();
    let nats = doc.nats.compile("tidegate-test", &env, &mut problems);
    let jetstream = doc.jetstream.compile(&mut problems);
    doc.stream.compile(&mut problems);
    (nats, jetstream, problems)
}

#[test]
fn defaults() {
    let (nats, jetstream, problems) = compile("", &[]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(nats.servers, ["nats://127.0.0.1:4222"]);
    assert_eq!(nats.name, "tidegate-test");
    assert!(matches!(nats.auth, NatsAuth::None));
    assert_eq!(jetstream.replicas, Replicas::Auto);
    assert!(!jetstream.allow_shrink);
}

#[test]
fn server_lists_as_text_or_array() {
    let (nats, _, problems) = compile(
        r#"[nats]
url = "nats://a:4222, nats://b:4222,nats://c:4222""#,
        &[],
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        nats.servers,
        ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
    );
    let (nats, _, problems) = compile(
        r#"[nats]
url = ["tls://a:4222", "b:4222"]"#,
        &[],
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(nats.servers, ["tls://a:4222", "b:4222"]);
    let (_, _, problems) = compile("[nats]\nurl = \"not a url\"", &[]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("nats.url:"), "{problems:?}");
}

#[test]
fn every_auth_mode() {
    let (nats, _, problems) = compile(
        "[nats]\nuser = \"tidegate\"\npassword = { env = \"NATS_PASSWORD\" }",
        &[("NATS_PASSWORD", "s3cret")],
    );
    assert!(problems.is_empty(), "{problems:?}");
    match nats.auth {
        NatsAuth::UserPassword { user, password } => {
            assert_eq!(user, "tidegate");
            assert_eq!(password.expose(), b"s3cret");
        }
        other => panic!("{other:?}"),
    }
    let (nats, _, problems) = compile("[nats]\ntoken = { value = \"t0ken\" }", &[]);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(matches!(nats.auth, NatsAuth::Token(_)));
    let (nats, _, problems) = compile(
        "[nats]\nnkey = { env = \"SEED\" }",
        &[("SEED", "SUAEXAMPLE")],
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert!(matches!(nats.auth, NatsAuth::NKey(_)));
    // The debug form never shows a secret.
    assert!(!format!("{nats:?}").contains("SUAEXAMPLE"));

    let (_, _, problems) = compile("[nats]\ntoken = { env = \"UNSET\" }", &[]);
    assert_eq!(
        problems,
        ["nats.token: environment variable UNSET is not set"]
    );
    let (_, _, problems) = compile(
        "[nats]\ntoken = { value = \"a\" }\nuser = \"u\"\npassword = { value = \"p\" }",
        &[],
    );
    assert_eq!(
        problems,
        ["nats: set one of creds, nkey, token, or user with password"]
    );
    let (_, _, problems) = compile("[nats]\ncreds = \"/nonexistent/x.creds\"", &[]);
    assert_eq!(
        problems,
        ["nats.creds: `/nonexistent/x.creds` is not a readable file"]
    );
}

#[test]
fn tls_needs_cert_and_key_together_and_files_that_exist() {
    let (_, _, problems) = compile("[nats.tls]\ncert = \"/nonexistent/c.pem\"", &[]);
    assert!(
        problems.contains(&"nats.tls: set cert and key together".to_owned()),
        "{problems:?}"
    );
    assert!(
        problems.contains(&"nats.tls: `/nonexistent/c.pem` is not a readable file".to_owned()),
        "{problems:?}"
    );
}

#[test]
fn replicas() {
    let check = |text: &str, expected: Result<Replicas, ()>| {
        let (_, jetstream, problems) = compile(&format!("[jetstream]\nreplicas = {text}"), &[]);
        match expected {
            Ok(replicas) => {
                assert!(problems.is_empty(), "{text}: {problems:?}");
                assert_eq!(jetstream.replicas, replicas, "{text}");
            }
            Err(()) => assert_eq!(problems.len(), 1, "{text}: {problems:?}"),
        }
    };
    check("\"auto\"", Ok(Replicas::Auto));
    check("3", Ok(Replicas::Fixed(3)));
    check("\"3\"", Ok(Replicas::Fixed(3)));
    check("0", Err(()));
    check("7", Err(()));
    check("\"many\"", Err(()));
}

#[test]
fn stream_limits() {
    let (_, _, problems) = compile(
        "[stream]\nmax_age = \"1m\"\nduplicate_window = \"2m\"\nmax_bytes = \"12 parsecs\"",
        &[],
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|problem| problem.starts_with("stream.max_bytes"))
    );
    assert!(
        problems
            .iter()
            .any(|problem| problem.starts_with("stream.duplicate_window"))
    );
}

#[test]
fn sizes() {
    let check = |text: &str, expected: Result<Option<u64>, ()>| {
        assert_eq!(parse_size(text).map_err(|_| ()), expected, "{text}");
    };
    check("25MiB", Ok(Some(25 << 20)));
    check("1 MB", Ok(Some(1_000_000)));
    check("512", Ok(Some(512)));
    check("unlimited", Ok(None));
    check("12 parsecs", Err(()));
    check("MiB", Err(()));
    check("99999999999999GiB", Err(()));
}

#[test]
fn secret_sources() {
    let env: HashMap<String, String> = [("SET".to_owned(), "v".to_owned())].into();
    let source = |env_name: Option<&str>, value: Option<&str>| SecretSource {
        env: env_name.map(str::to_owned),
        file: None,
        value: value.map(str::to_owned),
    };
    assert!(
        source(Some("SET"), None)
            .resolve(&env)
            .expect("ok")
            .is_some()
    );
    assert!(
        source(Some("UNSET"), None)
            .resolve(&env)
            .expect("ok")
            .is_none()
    );
    assert!(source(Some("SET"), Some("x")).resolve(&env).is_err());
    assert!(source(None, None).resolve(&env).is_err());
    let debug = format!("{:?}", source(None, Some("hunter2")));
    assert!(!debug.contains("hunter2"), "{debug}");
}
