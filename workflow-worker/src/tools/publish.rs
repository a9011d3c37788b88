//! `publish`: a message on `<workflow.publish.prefix>.<subject>`. Every
//! token of the rendered subject is checked, so a payload value can never
//! widen it (`*`, `>`) or leave the prefix. `Nats-Msg-Id` is
//! `workflow:<run id>:<step>`: a stream capturing the subject stores a
//! resumed run's repeat once.

use std::time::Duration;

use workflows::args::PublishArgs;

use super::{Failure, Output};

pub async fn run(
    client: &async_nats::Client,
    prefix: &str,
    args: PublishArgs,
    identity: &super::StepIdentity<'_>,
    timeout: Duration,
) -> Result<Output, Failure> {
    if let Some(bad) = args
        .subject
        .split('.')
        .find(|token| !schemas::streams::is_subject_token(token))
    {
        return Err(Failure::new(format!(
            "subject token `{bad}` is not 1-128 characters from A-Z a-z 0-9 - _ ~ @ + = :"
        )));
    }
    let subject = format!("{prefix}.{}", args.subject);
    let payload = match args.data {
        None => Vec::new(),
        Some(serde_json::Value::String(text)) => text.into_bytes(),
        Some(value) => serde_json::to_vec(&value).expect("a JSON value always serializes"),
    };
    let size = payload.len();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        format!("workflow:{}:{}", identity.run_id, identity.step_index).as_str(),
    );
    headers.insert("Tidegate-Run-Id", identity.run_id);
    headers.insert("Tidegate-Workflow", identity.workflow);
    let sent = tokio::time::timeout(timeout, async {
        client
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|error| error.to_string())?;
        client.flush().await.map_err(|error| error.to_string())
    })
    .await;
    match sent {
        Err(_) => Err(Failure::new("timed out publishing")),
        Ok(Err(why)) => Err(Failure::new(format!("publishing: {why}"))),
        Ok(Ok(())) => Ok(Output::text(format!("published {size} bytes to {subject}"))),
    }
}
