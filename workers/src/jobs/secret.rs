//! Secrets in job configuration: from an environment variable, a file, or
//! (tests) a literal value. Redacted in `Debug`.

use std::fmt;

use serde::Deserialize;

/// Where a secret comes from; exactly one key is set.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSource")
            .field("env", &self.env)
            .field("file", &self.file)
            .field("value", &self.value.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SecretSource {
    /// The secret's text; an error names the source, never the value.
    pub fn resolve(&self) -> anyhow::Result<String> {
        let value = match (&self.env, &self.file, &self.value) {
            (Some(name), None, None) => std::env::var(name)
                .map_err(|_| anyhow::anyhow!("environment variable {name} is not set"))?,
            (None, Some(path), None) => std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("reading secret file {path}: {error}"))?
                .trim_end()
                .to_owned(),
            (None, None, Some(value)) => value.clone(),
            _ => anyhow::bail!("a secret sets exactly one of env, file or value"),
        };
        anyhow::ensure!(!value.is_empty(), "the secret is empty");
        Ok(value)
    }
}
