//! Secret values: redacted in `Debug`, never serialized, compared in constant
//! time by the verifiers.

use std::fmt;

/// A secret's bytes. `Debug` prints `Secret(***)`; there is no `Display` and
/// no `Serialize`, so a secret cannot reach a log line or a response by
/// accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Wraps a non-empty secret; `None` for an empty one.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then(|| Secret(bytes.into_boxed_slice()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2").expect("non-empty");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert!(Secret::new("").is_none());
    }
}
