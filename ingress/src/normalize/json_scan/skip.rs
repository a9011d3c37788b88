//! Skipping a JSON value without reading it, as serde_json checks an
//! ignored one (`IgnoredAny`): the grammar, numbers included but not their
//! range; strings without control characters and with well-formed escapes,
//! their UTF-8 unchecked; any depth. One loop over a position, strings
//! crossed sixteen bytes at a time.

use super::ScanError;

/// Skips the value at or after `pos` (whitespace first); the position just
/// after it.
pub(super) fn value(bytes: &[u8], mut pos: usize) -> Result<usize, ScanError> {
    let mut open = Nesting::default();
    loop {
        pos = after_space(bytes, pos);
        match bytes.get(pos) {
            Some(b'"') => pos = string(bytes, pos + 1)?,
            Some(b'{') => {
                pos = after_space(bytes, pos + 1);
                if bytes.get(pos) == Some(&b'}') {
                    pos += 1;
                } else {
                    open.push(OBJECT);
                    pos = member_name(bytes, pos)?;
                    continue;
                }
            }
            Some(b'[') => {
                pos = after_space(bytes, pos + 1);
                if bytes.get(pos) == Some(&b']') {
                    pos += 1;
                } else {
                    open.push(ARRAY);
                    continue;
                }
            }
            Some(b'n') => pos = literal(bytes, pos, b"null")?,
            Some(b't') => pos = literal(bytes, pos, b"true")?,
            Some(b'f') => pos = literal(bytes, pos, b"false")?,
            Some(b'-' | b'0'..=b'9') => pos = number(bytes, pos)?,
            _ => return Err(error("expected a value", pos)),
        }
        // After a value: close what it ends, or go on after a comma.
        loop {
            let Some(kind) = open.top() else {
                return Ok(pos);
            };
            pos = after_space(bytes, pos);
            match (bytes.get(pos), kind) {
                (Some(b','), OBJECT) => {
                    pos = member_name(bytes, after_space(bytes, pos + 1))?;
                    break;
                }
                (Some(b','), _) => {
                    pos += 1;
                    break;
                }
                (Some(b'}'), OBJECT) | (Some(b']'), ARRAY) => {
                    pos += 1;
                    open.pop();
                }
                (_, OBJECT) => return Err(error("expected , or } in object", pos)),
                (_, _) => return Err(error("expected , or ] in array", pos)),
            }
        }
    }
}

/// The first position at or after `pos` that is not JSON whitespace.
#[inline]
pub(super) fn after_space(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

fn error(reason: &'static str, offset: usize) -> ScanError {
    ScanError { reason, offset }
}

/// `"name"` then `:`, from the quote; the position after the colon.
#[inline]
fn member_name(bytes: &[u8], pos: usize) -> Result<usize, ScanError> {
    if bytes.get(pos) != Some(&b'"') {
        return Err(error("expected a member name", pos));
    }
    let pos = after_space(bytes, string(bytes, pos + 1)?);
    if bytes.get(pos) != Some(&b':') {
        return Err(error("expected :", pos));
    }
    Ok(pos + 1)
}

/// Skips a string from just after its opening quote; the position after
/// the closing one.
#[inline]
pub(super) fn string(bytes: &[u8], pos: usize) -> Result<usize, ScanError> {
    let stop = string_stop(bytes, pos);
    if bytes.get(stop) == Some(&b'"') {
        return Ok(stop + 1);
    }
    string_with_escapes(bytes, stop)
}

/// The rest of a string from a stop that is not its closing quote.
#[cold]
#[inline(never)]
fn string_with_escapes(bytes: &[u8], mut stop: usize) -> Result<usize, ScanError> {
    loop {
        match bytes.get(stop) {
            Some(b'"') => return Ok(stop + 1),
            Some(b'\\') => stop = escape(bytes, stop + 1)?,
            Some(_) => return Err(error("control character in string", stop)),
            None => return Err(error("end of input in string", stop)),
        }
        stop = string_stop(bytes, stop);
    }
}

/// The syntax of an escape after its backslash: a `\u` code unit is not
/// checked further (serde_json's `ignore_escape`).
fn escape(bytes: &[u8], pos: usize) -> Result<usize, ScanError> {
    match bytes.get(pos) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(pos + 1),
        Some(b'u') => match hex4(bytes, pos + 1) {
            Some(_) => Ok(pos + 5),
            None => Err(error("invalid \\u escape", pos + 1)),
        },
        Some(_) => Err(error("invalid escape", pos)),
        None => Err(error("end of input in string", pos)),
    }
}

/// The four hex digits at `pos`, if they are.
pub(super) fn hex4(bytes: &[u8], pos: usize) -> Option<u32> {
    let digits = bytes.get(pos..pos + 4)?;
    digits.iter().try_fold(0, |value, &digit| {
        Some(value << 4 | char::from(digit).to_digit(16)?)
    })
}

/// Skips `word` (`null`, `true`, `false`) at `pos`.
fn literal(bytes: &[u8], pos: usize, word: &[u8]) -> Result<usize, ScanError> {
    match bytes[pos..].starts_with(word) {
        true => Ok(pos + word.len()),
        false => Err(error("invalid literal", pos)),
    }
}

/// Skips a number: RFC 8259's grammar, the value unchecked.
fn number(bytes: &[u8], mut pos: usize) -> Result<usize, ScanError> {
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match bytes.get(pos) {
        Some(b'0') if matches!(bytes.get(pos + 1), Some(b'0'..=b'9')) => {
            return Err(error("leading zero in number", pos));
        }
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => pos = digits(bytes, pos + 1),
        _ => return Err(error("invalid number", pos)),
    }
    if bytes.get(pos) == Some(&b'.') {
        let end = digits(bytes, pos + 1);
        if end == pos + 1 {
            return Err(error("invalid number", end));
        }
        pos = end;
    }
    if matches!(bytes.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        if matches!(bytes.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        let end = digits(bytes, pos);
        if end == pos {
            return Err(error("invalid number", end));
        }
        pos = end;
    }
    Ok(pos)
}

fn digits(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b'0'..=b'9')) {
        pos += 1;
    }
    pos
}

/// Index of the first `"`, `\` or control character at or after `from`,
/// or the length: sixteen bytes per step with SSE2 (every x86-64 has it).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn string_stop(bytes: &[u8], from: usize) -> usize {
    // SAFETY: SSE2 is part of x86-64 itself, so every x86-64 CPU has it.
    unsafe { string_stop_sse2(bytes, from) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn string_stop_sse2(bytes: &[u8], from: usize) -> usize {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let last_control = _mm_set1_epi8(0x1f);
    let mut pos = from;
    while let Some(block) = bytes.get(pos..pos + 16) {
        // SAFETY: `block` is 16 readable bytes, and `loadu` takes any
        // alignment.
        let chunk = unsafe { _mm_loadu_si128(block.as_ptr().cast()) };
        let control = _mm_cmpeq_epi8(_mm_min_epu8(chunk, last_control), chunk);
        let special = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(chunk, quote),
                _mm_cmpeq_epi8(chunk, backslash),
            ),
            control,
        );
        let found = _mm_movemask_epi8(special);
        if found != 0 {
            return pos + found.trailing_zeros() as usize;
        }
        pos += 16;
    }
    string_stop_words(bytes, pos)
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn string_stop(bytes: &[u8], from: usize) -> usize {
    string_stop_words(bytes, from)
}

/// `string_stop` eight bytes per step, with the bit tricks of Mycroft's
/// zero-byte test (as serde_json's own string scan), then byte by byte.
#[inline(never)]
pub(super) fn string_stop_words(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH_BITS: u64 = ONES << 7;
    let (words, tail) = bytes[from..].as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let found = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGH_BITS;
        if found != 0 {
            // Only bytes above a found one can be false positives.
            return from + index * 8 + (found.trailing_zeros() / 8) as usize;
        }
    }
    let scanned = from + words.len() * 8;
    scanned
        + tail
            .iter()
            .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
            .unwrap_or(tail.len())
}

const OBJECT: bool = true;
const ARRAY: bool = false;

/// The open containers of a skipped value, one bit each: the first 64 in a
/// word, deeper ones (never in a real event) in a vector.
#[derive(Default)]
struct Nesting {
    depth: usize,
    first: u64,
    deeper: Vec<u64>,
}

impl Nesting {
    fn push(&mut self, kind: bool) {
        let (word, bit) = (self.depth / 64, self.depth % 64);
        let slot = if word == 0 {
            &mut self.first
        } else {
            if self.deeper.len() < word {
                self.deeper.push(0);
            }
            &mut self.deeper[word - 1]
        };
        *slot = (*slot & !(1 << bit)) | (u64::from(kind) << bit);
        self.depth += 1;
    }

    fn top(&self) -> Option<bool> {
        let level = self.depth.checked_sub(1)?;
        let (word, bit) = (level / 64, level % 64);
        let slot = if word == 0 {
            self.first
        } else {
            self.deeper[word - 1]
        };
        Some(slot >> bit & 1 == 1)
    }

    fn pop(&mut self) {
        self.depth -= 1;
    }
}
