//! Indents JSON text for people without reordering it: a delivery's payload
//! is shown with its keys in the order the provider sent them.

/// `json` (valid JSON text) indented by two spaces, keys and values in
/// their original order and spelling.
pub(crate) fn pretty(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = json.chars().peekable();
    while let Some(char) = chars.next() {
        if in_string {
            out.push(char);
            if escaped {
                escaped = false;
            } else if char == '\\' {
                escaped = true;
            } else if char == '"' {
                in_string = false;
            }
            continue;
        }
        match char {
            '"' => {
                in_string = true;
                out.push(char);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|next| next.is_whitespace()) {
                    chars.next();
                }
                let close = if char == '{' { '}' } else { ']' };
                out.push(char);
                if chars.peek() == Some(&close) {
                    // An empty object or array stays `{}` / `[]`.
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(char);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            char if char.is_whitespace() => {}
            char => out.push(char),
        }
    }
    out
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(pretty(input), expected, "{input}");
    }

    #[test]
    fn indents_like_serde_json_but_keeps_the_order() {
        let input = r#"{"z":1,"a":[true,null,{"k":"v"}],"m":{}, "e" : [ ] }"#;
        check(
            input,
            "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    {\n      \"k\": \"v\"\n    }\n  ],\n  \"m\": {},\n  \"e\": []\n}",
        );
        let value: serde_json::Value = serde_json::from_str(input).expect("valid");
        let reparsed: serde_json::Value = serde_json::from_str(&pretty(input)).expect("valid");
        assert_eq!(value, reparsed);
    }

    #[test]
    fn leaves_strings_alone() {
        check(
            r#"["a,b: {c}", "q\"}", "\\"]"#,
            "[\n  \"a,b: {c}\",\n  \"q\\\"}\",\n  \"\\\\\"\n]",
        );
        check("\"x y\"", "\"x y\"");
        check("42", "42");
    }
}
