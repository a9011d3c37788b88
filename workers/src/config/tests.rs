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
        let (runtime, forward) = load::<ForwardConfig>(&figment, "forward", "forward")
            .map_err(|error| error.to_string())?;
        assert_eq!(runtime.name, "forward");
        assert_eq!(
            runtime.nats_url, "nats://10.1.2.3:4222",
            "TIDEGATE_NATS_URL wins"
        );
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
        let problems = match load::<ForwardConfig>(&figment, "forward", "forward") {
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
