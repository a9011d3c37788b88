//! The cursor's pieces against serde_json itself: skipping is
//! `IgnoredAny`, strings are `String`, integers are `u64`.

use serde::de::IgnoredAny;

use super::skip::string_stop_words;
use super::*;

/// `skip_value` then `end` accepts exactly what `from_slice::<IgnoredAny>` does.
fn check_skip(json: &[u8], expected: bool) {
    let serde = serde_json::from_slice::<IgnoredAny>(json).is_ok();
    let mut cursor = Cursor::new(json);
    let scan = cursor.skip_value().and_then(|()| cursor.end());
    assert_eq!(
        serde,
        expected,
        "serde_json on {:?}",
        String::from_utf8_lossy(json)
    );
    assert_eq!(
        scan.is_ok(),
        expected,
        "scan on {:?}: {scan:?}",
        String::from_utf8_lossy(json)
    );
}

/// A top-level string, decoded as serde_json decodes a `String`.
fn check_string(json: &[u8], expected: Option<&str>) {
    let serde = serde_json::from_slice::<String>(json).ok();
    let mut cursor = Cursor::new(json);
    let scan = cursor
        .expect(b'"', "expected a string")
        .and_then(|()| cursor.string())
        .and_then(|text| cursor.end().map(|()| text.into_owned()));
    assert_eq!(serde.as_deref(), expected, "serde_json on {json:?}");
    assert_eq!(scan.ok().as_deref(), expected, "scan on {json:?}");
}

fn check_u64(json: &[u8], expected: Option<u64>) {
    let serde = serde_json::from_slice::<u64>(json).ok();
    let mut cursor = Cursor::new(json);
    let scan = cursor.u64().and_then(|id| cursor.end().map(|()| id));
    assert_eq!(serde, expected, "serde_json on {json:?}");
    assert_eq!(scan.ok(), expected, "scan on {json:?}");
}

#[test]
fn skips_what_serde_ignores() {
    let accepted: &[&[u8]] = &[
        b"null",
        b" true\n",
        b"false",
        b"0",
        b"-0",
        b"-0.0e-0",
        b"1e400",
        b"123456789012345678901234567890",
        b"1.5E+3",
        b"\"\"",
        b"\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\"",
        b"\"\\ud800\"",
        b"\"\\udc00\\ud800x\"",
        b"\"\xff\xfe invalid UTF-8 is not checked when skipped\"",
        b"[]",
        b"[ ]",
        b"{}",
        b"{ }",
        b"[1,[2,{\"a\":[{}]}],\"x\"]",
        b"{\"a\":{\"b\":[null,true]},\"c\":-1}",
        b"{\"\xff\":1}",
        b"\t[\r1 , 2\n]\t",
    ];
    for json in accepted {
        check_skip(json, true);
    }
    let refused: &[&[u8]] = &[
        b"",
        b" ",
        b"\xef\xbb\xbf{}",
        b"nul",
        b"nulll",
        b"tru",
        b"True",
        b"01",
        b"-",
        b"-a",
        b"1.",
        b".5",
        b"1e",
        b"1e+",
        b"+1",
        b"0x1",
        b"NaN",
        b"\"",
        b"\"abc",
        b"\"a\x01b\"",
        b"\"a\nb\"",
        b"\"\\x\"",
        b"\"\\u12\"",
        b"\"\\u12g4\"",
        b"\"\\",
        b"[",
        b"[1",
        b"[1,",
        b"[1,]",
        b"[,1]",
        b"[1 2]",
        b"[}",
        b"{",
        b"{\"a\"}",
        b"{\"a\":}",
        b"{\"a\":1,}",
        b"{,}",
        b"{1:2}",
        b"{\"a\" 1}",
        b"{\"a\":1 \"b\":2}",
        b"{]",
        b"[]]",
        b"{}}",
        b"1 2",
        b"[] x",
    ];
    for json in refused {
        check_skip(json, false);
    }
}

#[test]
fn skips_any_depth_as_serde_does() {
    // serde_json's recursion limit (128) covers what it deserializes, not
    // what it ignores: nesting inside an ignored value is unbounded.
    for depth in [1, 63, 64, 65, 127, 128, 129, 200, 10_000] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        check_skip(arrays.as_bytes(), true);
        let objects = format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth));
        check_skip(objects.as_bytes(), true);
        let mixed: String = (0..depth)
            .map(|level| if level % 3 == 0 { "{\"k\":" } else { "[" })
            .collect();
        let closing: String = (0..depth)
            .rev()
            .map(|level| if level % 3 == 0 { "}" } else { "]" })
            .collect();
        check_skip(format!("{mixed}0{closing}").as_bytes(), true);
        // One closer of the wrong kind, at the deepest level and at the top.
        let swapped = format!("{mixed}0{}", closing.replacen(']', "}", 1));
        check_skip(swapped.as_bytes(), !closing.contains(']'));
        check_skip(
            format!("{}{}", "[".repeat(depth), "]".repeat(depth - 1)).as_bytes(),
            false,
        );
    }
}

#[test]
fn decodes_strings_as_serde_does() {
    check_string(b"\"plain\"", Some("plain"));
    check_string(b"\"\"", Some(""));
    check_string(b"\"tab\\tnew\\nline\"", Some("tab\tnew\nline"));
    check_string(b"\"\\\"\\\\\\/\\b\\f\\r\"", Some("\"\\/\u{8}\u{c}\r"));
    check_string(b"\"\\u00e9\\u00E9\"", Some("éé"));
    check_string(b"\"\\u0000\"", Some("\0"));
    check_string(b"\"\\ud83d\\ude00 ok\"", Some("😀 ok"));
    check_string("\"caf\u{e9} \u{1f600}\"".as_bytes(), Some("café 😀"));
    check_string(
        b"\"long enough to take the eight byte steps \\u0041 twice over\"",
        Some("long enough to take the eight byte steps A twice over"),
    );
    check_string(b"\"\\ud83d\"", None);
    check_string(b"\"\\ud83dx\"", None);
    check_string(b"\"\\ud83d\\n\"", None);
    check_string(b"\"\\ud83d\\u0041\"", None);
    check_string(b"\"\\ude00\"", None);
    check_string(b"\"\xff\"", None);
    check_string(b"\"ok\\n\xc3\"", None);
    check_string(b"\"\xc3\\n\xa9\"", None);
    check_string(b"\"\xc3\xa9\\n\"", Some("é\n"));
    check_string(b"\"a\x1fb\"", None);
    check_string(b"\"a\\qb\"", None);
    check_string(b"\"unterminated", None);
    check_string(b"\"unterminated\\", None);
    check_string(b"\"\\u00\"", None);
}

#[test]
fn reads_u64_as_serde_does() {
    check_u64(b"0", Some(0));
    check_u64(b" 42 ", Some(42));
    check_u64(b"18446744073709551615", Some(u64::MAX));
    for refused in [
        &b"18446744073709551616"[..],
        b"99999999999999999999999",
        b"-1",
        b"-0",
        b"1.0",
        b"1e2",
        b"1E2",
        b"01",
        b"00",
        b"\"1\"",
        b"null",
        b"",
        b"1x",
    ] {
        check_u64(refused, None);
    }
}

#[test]
fn member_names_are_decoded_and_checked() {
    let names = ["ref", "pull_request"];
    let check = |json: &[u8], expected: Result<Option<usize>, ()>| {
        let mut cursor = Cursor::new(json);
        cursor.bump();
        let found = cursor.field(&names).map_err(drop);
        assert_eq!(found, expected, "{json:?}");
    };
    check(b"\"ref\"", Ok(Some(0)));
    check(b"\"re\\u0066\"", Ok(Some(0)));
    check(b"\"\\u0070ull_request\"", Ok(Some(1)));
    check(b"\"pull_request_longer_than_kept\"", Ok(None));
    check(b"\"pull_request_longer\\n_than_kept\"", Ok(None));
    check(b"\"refs\"", Ok(None));
    check(b"\"r\xc3\xa9f\"", Ok(None));
    check(b"\"r\xff\"", Err(()));
    check(b"\"r\\n\xff\"", Err(()));
    check(b"\"\\ud800\"", Err(()));
}

/// A `string_stop` implementation.
type StringStop = fn(&[u8], usize) -> usize;

#[test]
fn string_stop_finds_the_first_special_byte_at_every_offset() {
    let stops: [(&str, StringStop); 2] = [
        ("string_stop", string_stop),
        ("string_stop_words", string_stop_words),
    ];
    for (name, stop) in stops {
        for len in 0..70 {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    // Non-ASCII bytes and ones just above the specials,
                    // to catch a false positive.
                    for (index, byte) in bytes.iter_mut().enumerate() {
                        *byte = match index % 5 {
                            1 => 0x80 | (index as u8),
                            2 => [b' ', b'#', b']', 0xff][index % 4],
                            _ => b'a',
                        };
                    }
                    bytes[at] = special;
                    for from in 0..=at {
                        assert_eq!(stop(&bytes, from), at, "{name} {bytes:?} from {from}");
                    }
                    assert_eq!(stop(&bytes, at + 1), len, "{name} {bytes:?} after {at}");
                }
                assert_eq!(stop(&vec![b' '; len], 0), len, "{name}");
            }
        }
    }
}
