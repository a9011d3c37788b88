//! Secret values: redacted in `Debug`, never displayed or serialized, and
//! compared in constant time.

use std::fmt;

use crate::tag::equal;

/// A secret's bytes. `Debug` prints `Secret(***)`; there is no `Display` and
/// no `Serialize`, so a secret cannot reach a log line or a response by
/// accident. Equality is constant-time.
#[derive(Clone)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Wraps a non-empty secret; `None` for an empty one.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then(|| Secret(bytes.into_boxed_slice()))
    }

    /// The secret's bytes, for signing or for a credential header.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        equal(&self.0, &other.0)
    }
}

impl Eq for Secret {}

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
        assert_eq!(Secret::new("hunter2"), Some(secret));
        assert_ne!(Secret::new("hunter2"), Secret::new("hunter3"));
    }
}
