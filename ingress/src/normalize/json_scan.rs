//! A one-pass JSON cursor over `&[u8]` with serde_json's grammar: it skips
//! what nobody asked for (no allocation, no recursion, any depth, exactly as
//! `serde::de::IgnoredAny` accepts it) and decodes only the strings and
//! integers asked for. `github_payload.rs` walks a GitHub event with it.

use std::borrow::Cow;
use std::fmt;

use skip::string_stop;

mod skip;

/// Why the bytes are not the JSON that was expected, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanError {
    pub(crate) reason: &'static str,
    pub(crate) offset: usize,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

/// A position in a JSON text.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// An error at the current position.
    pub(crate) fn fail<T>(&self, reason: &'static str) -> Result<T, ScanError> {
        Err(ScanError {
            reason,
            offset: self.pos,
        })
    }

    /// The next byte after JSON whitespace, not consumed; `None` at the end.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.bytes.get(self.pos) {
            if !matches!(byte, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(byte);
            }
            self.pos += 1;
        }
        None
    }

    /// Consumes the byte `peek` returned.
    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    /// Consumes `byte` after whitespace, or fails with `reason`.
    pub(crate) fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), ScanError> {
        if self.peek() != Some(byte) {
            return self.fail(reason);
        }
        self.bump();
        Ok(())
    }

    /// Only whitespace may follow the value (serde_json's `end`).
    pub(crate) fn end(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("trailing characters"),
        }
    }

    /// Consumes `null`, `true` or `false`, first byte included.
    pub(crate) fn literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if !self.bytes[self.pos..].starts_with(word) {
            return self.fail("invalid literal");
        }
        self.pos += word.len();
        Ok(())
    }

    /// A string whose opening quote is consumed, escapes decoded: borrowed
    /// unless it has escapes. Like serde_json's `parse_str`, the text must
    /// be UTF-8 and `\u` surrogates must pair.
    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>, ScanError> {
        let start = self.pos;
        let stop = string_stop(self.bytes, start);
        if self.bytes.get(stop) == Some(&b'"') {
            let text = self.utf8(start, stop)?;
            self.pos = stop + 1;
            return Ok(Cow::Borrowed(text));
        }
        let mut decoded = String::new();
        self.decode(&mut decoded)?;
        Ok(Cow::Owned(decoded))
    }

    /// A member name whose opening quote is consumed, checked as serde_json
    /// checks the field names of a struct (decoded, UTF-8): the index of the
    /// name in `names` it equals, if any.
    pub(crate) fn field(&mut self, names: &[&str]) -> Result<Option<usize>, ScanError> {
        let start = self.pos;
        let stop = string_stop(self.bytes, start);
        if self.bytes.get(stop) == Some(&b'"') {
            let raw = &self.bytes[start..stop];
            let index = names.iter().position(|name| name.as_bytes() == raw);
            if index.is_none() && !raw.is_ascii() {
                self.utf8(start, stop)?;
            }
            self.pos = stop + 1;
            return Ok(index);
        }
        let mut name = NameBuffer::default();
        self.decode(&mut name)?;
        Ok(names.iter().position(|wanted| name.is(wanted)))
    }

    /// Decodes the rest of a string into `out`, through the closing quote.
    fn decode(&mut self, out: &mut impl Decoded) -> Result<(), ScanError> {
        loop {
            let start = self.pos;
            let stop = string_stop(self.bytes, start);
            // Escapes decode to whole characters, so the text is UTF-8
            // exactly when every run between them is.
            out.push_str(self.utf8(start, stop)?);
            self.pos = stop;
            match self.bytes.get(stop) {
                Some(b'"') => {
                    self.bump();
                    return Ok(());
                }
                Some(b'\\') => {
                    self.bump();
                    let decoded = self.escape()?;
                    out.push(decoded);
                }
                Some(_) => return self.fail("control character in string"),
                None => return self.fail("end of input in string"),
            }
        }
    }

    fn utf8(&self, start: usize, stop: usize) -> Result<&'a str, ScanError> {
        std::str::from_utf8(&self.bytes[start..stop]).map_err(|error| ScanError {
            reason: "invalid UTF-8 in string",
            offset: start + error.valid_up_to(),
        })
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Result<char, ScanError> {
        let Some(&byte) = self.bytes.get(self.pos) else {
            return self.fail("end of input in string");
        };
        self.bump();
        let simple = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => return self.fail("invalid escape"),
        };
        Ok(simple)
    }

    /// `\uXXXX` after its `u`, a surrogate pair as one character.
    fn unicode_escape(&mut self) -> Result<char, ScanError> {
        let first = self.hex4()?;
        let code = match first {
            0xDC00..=0xDFFF => return self.fail("lone trailing surrogate in escape"),
            0xD800..=0xDBFF => {
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return self.fail("lone leading surrogate in escape");
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return self.fail("lone leading surrogate in escape");
                }
                0x1_0000 + ((first - 0xD800) << 10 | (second - 0xDC00))
            }
            _ => first,
        };
        char::from_u32(code).map_or_else(|| self.fail("invalid escape"), Ok)
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Result<u32, ScanError> {
        let Some(value) = skip::hex4(self.bytes, self.pos) else {
            return self.fail("invalid \\u escape");
        };
        self.pos += 4;
        Ok(value)
    }

    /// A non-negative integer literal within u64, as serde_json reads a
    /// `u64` field: a sign, a fraction or an exponent makes it another type.
    pub(crate) fn u64(&mut self) -> Result<u64, ScanError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return self.fail("expected an unsigned integer");
        }
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(&digit @ b'0'..=b'9') = self.bytes.get(self.pos) {
            let Some(next) = value
                .checked_mul(10)
                .and_then(|value| value.checked_add(u64::from(digit - b'0')))
            else {
                return self.fail("integer out of range for u64");
            };
            value = next;
            self.bump();
        }
        if self.bytes[start] == b'0' && self.pos - start > 1 {
            return self.fail("leading zero in number");
        }
        if matches!(self.bytes.get(self.pos), Some(b'.' | b'e' | b'E')) {
            return self.fail("expected an unsigned integer");
        }
        Ok(value)
    }

    /// Skips one value of any kind and depth (`skip.rs`).
    pub(crate) fn skip_value(&mut self) -> Result<(), ScanError> {
        self.pos = skip::value(self.bytes, self.pos)?;
        Ok(())
    }
}

/// What a decoded string is written to.
trait Decoded {
    fn push_str(&mut self, text: &str);
    fn push(&mut self, character: char);
}

impl Decoded for String {
    fn push_str(&mut self, text: &str) {
        String::push_str(self, text);
    }

    fn push(&mut self, character: char) {
        String::push(self, character);
    }
}

/// A decoded member name, kept only as far as the longest wanted name: the
/// rest is checked, then only its length matters.
#[derive(Default)]
struct NameBuffer {
    start: [u8; NameBuffer::KEPT],
    len: usize,
}

impl NameBuffer {
    const KEPT: usize = 16;

    fn is(&self, name: &str) -> bool {
        self.len == name.len() && self.start.get(..self.len) == Some(name.as_bytes())
    }
}

impl Decoded for NameBuffer {
    fn push_str(&mut self, text: &str) {
        for &byte in text.as_bytes() {
            if let Some(slot) = self.start.get_mut(self.len) {
                *slot = byte;
            }
            self.len += 1;
        }
    }

    fn push(&mut self, character: char) {
        self.push_str(character.encode_utf8(&mut [0; 4]));
    }
}

#[cfg(test)]
mod tests;
