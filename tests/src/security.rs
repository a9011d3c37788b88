//! Secured brokers for the tests: a nats-server that requires a user and
//! password, one in operator mode that takes only a creds file (nkeys and
//! JWTs made here), and one that requires mutual TLS (a CA, a server
//! certificate for 127.0.0.1 and a client certificate, made here). Each
//! gives the server's configuration, the `[nats]` keys a tidegate binary
//! needs, and the settings the harness connects with.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use broker::NatsSettings;
use figment::providers::Format as _;
use nkeys::KeyPair;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair as CertKey,
};
use serde_json::json;
use tempfile::TempDir;

/// How a secured server authenticates clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    UserPassword,
    /// Operator mode: a user JWT and nkey seed in a creds file.
    Creds,
    /// Mutual TLS: a client certificate signed by the test CA (and the
    /// server's certificate checked against it).
    MutualTls,
}

/// What a secured server needs, and what its clients need.
pub struct Secured {
    pub auth: Auth,
    /// Appended to the server's configuration file.
    pub server_config: String,
    /// The `[nats]` keys (besides `url`) a tidegate binary needs, as TOML
    /// lines.
    pub nats_toml: String,
    dir: TempDir,
}

/// The test user's password (a literal in configs: test-only).
const PASSWORD: &str = "test-password-5b1c";

impl Secured {
    pub fn new(auth: Auth) -> Secured {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server_config, nats_toml) = match auth {
            Auth::UserPassword => (
                format!(
                    "authorization {{\n  users = [{{ user: tidegate, password: \"{PASSWORD}\" }}]\n}}\n"
                ),
                format!("user = \"tidegate\"\npassword = {{ value = \"{PASSWORD}\" }}\n"),
            ),
            Auth::Creds => creds(dir.path()),
            Auth::MutualTls => mutual_tls(dir.path()),
        };
        Secured {
            auth,
            server_config,
            nats_toml,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Settings for `url` with this server's credentials, read the way
    /// every binary reads `[nats]`.
    pub fn settings(&self, url: &str) -> NatsSettings {
        let text = format!(
            "[nats]\nurl = \"{url}\"\nname = \"tidegate-test\"\n{}",
            self.nats_toml
        );
        #[derive(serde::Deserialize)]
        struct Doc {
            nats: broker::settings::RawNats,
        }
        let doc: Doc = figment::Figment::from(figment::providers::Toml::string(&text))
            .extract()
            .expect("test nats settings parse");
        let mut problems = Vec::new();
        let settings = doc
            .nats
            .compile("tidegate-test", &Default::default(), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        settings
    }
}

fn creds(dir: &Path) -> (String, String) {
    let operator = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let user = KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        json!({ "type": "operator", "version": 2, "system_account": system.public_key() }),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({ "type": "account", "version": 2, "limits": unlimited(false) }),
    );
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "tidegate",
        json!({ "type": "account", "version": 2, "limits": unlimited(true) }),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "tidegate",
        json!({
            "type": "user", "version": 2,
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
        }),
    );
    let seed = user.seed().expect("a user seed");
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    );
    let path = dir.join("tidegate.creds");
    std::fs::write(&path, creds).expect("writing the creds file");
    let server = format!(
        "operator: {operator_jwt}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {system_jwt}\n  {}: {account_jwt}\n}}\n",
        system.public_key(),
        system.public_key(),
        account.public_key(),
    );
    (server, format!("creds = \"{}\"\n", path.display()))
}

/// Account limits with everything allowed, JetStream included or not.
fn unlimited(jetstream: bool) -> serde_json::Value {
    let storage = if jetstream { -1 } else { 0 };
    json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": storage, "disk_storage": storage,
        "streams": storage, "consumer": storage,
    })
}

/// A NATS JWT (`ed25519-nkey`) for `subject`, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = json!({ "typ": "JWT", "alg": "ed25519-nkey" });
    let issued = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    let claims = json!({
        "jti": uuid::Uuid::now_v7().simple().to_string().to_uppercase(),
        "iat": issued,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signed = format!(
        "{}.{}",
        encode(header.to_string().as_bytes()),
        encode(claims.to_string().as_bytes())
    );
    let signature = issuer.sign(signed.as_bytes()).expect("signing a JWT");
    format!("{signed}.{}", encode(&signature))
}

fn mutual_tls(dir: &Path) -> (String, String) {
    let ca_key = CertKey::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tidegate test CA");
    let ca = ca.self_signed(&ca_key).expect("the CA certificate");
    let issue = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose, file: &str| {
        let key = CertKey::generate().expect("a key");
        let mut params = CertificateParams::new(names).expect("certificate params");
        params.extended_key_usages = vec![purpose];
        params
            .distinguished_name
            .push(DnType::CommonName, file.to_owned());
        let certificate = params.signed_by(&key, &ca, &ca_key).expect("a certificate");
        let cert_path = dir.join(format!("{file}.pem"));
        let key_path = dir.join(format!("{file}-key.pem"));
        std::fs::write(&cert_path, certificate.pem()).expect("writing a certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("writing a key");
        (cert_path, key_path)
    };
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("writing the CA");
    let (server_cert, server_key) = issue(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    );
    let (client_cert, client_key) = issue(
        vec!["tidegate-client".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        "client",
    );
    let show = |path: &PathBuf| path.display().to_string();
    let server = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: 5\n}}\n",
        show(&server_cert),
        show(&server_key),
        show(&ca_path),
    );
    let client = format!(
        "[nats.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        show(&ca_path),
        show(&client_cert),
        show(&client_key),
    );
    (server, client)
}
