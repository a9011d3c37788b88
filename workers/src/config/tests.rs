use std::collections::HashMap;

use figment::Jail;

use super::*;
use crate::jobs::forward::{Forward, ForwardConfig};

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name)
}

#[test]
#[allow(clippy::result_large_err)] // Jail::expect_with fixes the closure's error type
fn the_forward_example_loads_and_builds() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "FORWARD_SIGNING_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        jail.set_env("TIDEGATE_NATS_URL", "nats://10.1.2.3:4222");
        let figment = figment(Some(&example("forward.toml")));
        let env = std::env::vars().collect();
        let (runtime, forward) = load::<ForwardConfig>(&figment, "forward", "forward", &env)
            .map_err(|error| error.to_string())?;
        assert_eq!(runtime.name, "forward");
        assert_eq!(
            runtime.nats.servers,
            ["nats://10.1.2.3:4222"],
            "TIDEGATE_NATS_URL wins"
        );
        assert_eq!(runtime.nats.name, "tidegate-forward");
        assert_eq!(runtime.consumer.max_deliver, 5);
        assert_eq!(forward.targets.len(), 2);
        Forward::new(forward).map_err(|error| error.to_string())?;
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // Jail::expect_with fixes the closure's error type
fn every_bad_key_is_reported() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "worker.toml",
            "surprise = 1\n[consumer]\nack_wait = \"soon\"\nconcurrency = 0\nstart = \"middle\"\n",
        )?;
        let figment = figment(Some(Path::new("worker.toml")));
        let problems = match load::<ForwardConfig>(&figment, "forward", "forward", &HashMap::new())
        {
            Ok(_) => Vec::new(),
            Err(error) => error.problems,
        };
        for prefix in [
            "surprise: unknown key",
            "consumer.ack_wait",
            "consumer.concurrency",
            "consumer.start",
        ] {
            assert!(
                problems.iter().any(|problem| problem.starts_with(prefix)),
                "no problem for {prefix}: {problems:#?}"
            );
        }
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // Jail::expect_with fixes the closure's error type
fn nats_auth_and_filters_are_read_like_every_binary() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "worker.toml",
            "nats_url = \"nats://old:4222\"\n[nats]\nurl = \"nats://a:4222,nats://b:4222\"\nuser = \"w\"\npassword = { env = \"NATS_PASSWORD\" }\n[consumer]\nfilter_subjects = [\"tidegate.in.a.>\", \"tidegate.in.b.>\"]\n",
        )?;
        let figment = figment(Some(Path::new("worker.toml")));
        let env: HashMap<String, String> = [("NATS_PASSWORD".to_owned(), "pw".to_owned())].into();
        let problems = match load::<ForwardConfig>(&figment, "forward", "forward", &env) {
            Ok(_) => Vec::new(),
            Err(error) => error.problems,
        };
        assert_eq!(
            problems,
            ["nats_url: moved to [nats] url (TIDEGATE_NATS_URL still sets it)"]
        );
        jail.create_file(
            "worker.toml",
            "[nats]\nurl = \"nats://a:4222,nats://b:4222\"\nuser = \"w\"\npassword = { env = \"NATS_PASSWORD\" }\n[consumer]\nfilter_subjects = [\"tidegate.in.a.>\", \"tidegate.in.b.>\"]\n",
        )?;
        let figment = super::figment(Some(Path::new("worker.toml")));
        let (runtime, _) = load::<ForwardConfig>(&figment, "forward", "forward", &env)
            .map_err(|error| error.to_string())?;
        assert_eq!(runtime.nats.servers, ["nats://a:4222", "nats://b:4222"]);
        assert!(matches!(
            runtime.nats.auth,
            broker::NatsAuth::UserPassword { .. }
        ));
        assert_eq!(
            runtime.consumer.filter_subjects,
            ["tidegate.in.a.>", "tidegate.in.b.>"]
        );
        Ok(())
    });
}
