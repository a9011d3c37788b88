//! Step arguments are minijinja templates over the run's context:
//! `payload` (the webhook body, parsed when it is JSON), `headers`,
//! `query`, `event`, `previous_output`, `steps.<name>.output` (and
//! `.status`, `.exit_code`, `.http_status`), `workflow`, `run_id` and
//! `secrets`. Undefined values are errors, not empty strings.
//!
//! A `shell_exec` `command` is rendered strictly: a value with shell
//! metacharacters (quotes, `$`, `;`, `|`, newlines, ...) is refused unless
//! it went through `shell_quote` (or `safe`), so a payload cannot inject
//! commands whatever quotes the template put around it.

use minijinja::value::Value as JinjaValue;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// The two environments: plain strings, and shell commands.
pub struct Templates {
    plain: Environment<'static>,
    shell: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let plain = environment();
        let mut shell = environment();
        shell.set_formatter(|out, _state, value| {
            if value.is_safe() {
                return write!(out, "{value}").map_err(Error::from);
            }
            let text = value.to_string();
            if let Some(bad) = text.chars().find(|character| !shell_plain(*character)) {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "a value in a shell command contains {bad:?}; pipe it through shell_quote ({{{{ value | shell_quote }}}}) or pass it in env or argv"
                    ),
                ));
            }
            out.write_str(&text).map_err(Error::from)
        });
        Templates { plain, shell }
    }

    /// Renders every string in `args` (recursively); `command` with the
    /// strict shell rules when `shell_command` is set.
    pub fn render_args(
        &self,
        args: &Value,
        context: &JinjaValue,
        shell_command: bool,
    ) -> Result<Value, String> {
        let Value::Object(map) = args else {
            return self.render_value(args, context, false);
        };
        let mut rendered = serde_json::Map::new();
        for (key, value) in map {
            let strict = shell_command && key == "command";
            let value = self
                .render_value(value, context, strict)
                .map_err(|why| format!("args.{key}: {why}"))?;
            rendered.insert(key.clone(), value);
        }
        Ok(Value::Object(rendered))
    }

    fn render_value(
        &self,
        value: &Value,
        context: &JinjaValue,
        strict: bool,
    ) -> Result<Value, String> {
        Ok(match value {
            Value::String(text) => Value::String(self.render(text, context, strict)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.render_value(item, context, strict))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut rendered = serde_json::Map::new();
                for (key, item) in map {
                    rendered.insert(key.clone(), self.render_value(item, context, strict)?);
                }
                Value::Object(rendered)
            }
            other => other.clone(),
        })
    }

    /// Renders one template string.
    pub fn render(&self, text: &str, context: &JinjaValue, strict: bool) -> Result<String, String> {
        // Plain text renders as itself without a parse.
        if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
            return Ok(text.to_owned());
        }
        let environment = if strict { &self.shell } else { &self.plain };
        environment
            .render_str(text, context)
            .map_err(|error| describe(&error))
    }
}

fn environment() -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    // `content: "{{ x }}\n"` means a trailing newline; keep it.
    environment.set_keep_trailing_newline(true);
    environment.add_filter("shell_quote", shell_quote);
    environment.add_filter("from_json", from_json);
    environment
}

/// Characters a shell treats as plain text in any quoting context.
fn shell_plain(character: char) -> bool {
    character.is_alphanumeric() || " _-./:@%+=,^".contains(character)
}

/// `'it'\''s'`: one word for `sh`, whatever it contains.
fn shell_quote(value: JinjaValue) -> JinjaValue {
    let text = value.to_string();
    JinjaValue::from_safe_string(format!("'{}'", text.replace('\'', r"'\''")))
}

fn from_json(text: String) -> Result<JinjaValue, Error> {
    serde_json::from_str::<Value>(&text)
        .map(JinjaValue::from_serialize)
        .map_err(|error| Error::new(ErrorKind::InvalidOperation, format!("from_json: {error}")))
}

/// The error and its causes on one line, without template source dumps.
fn describe(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn context() -> JinjaValue {
        JinjaValue::from_serialize(json!({
            "payload": { "ref": "refs/heads/main", "evil": "x'; rm -rf / #", "n": 3 },
            "previous_output": "Deployment received",
            "steps": { "log-event": { "output": "{\"ok\": \"yes\"}", "status": "success" } },
            "workflow": "deploy-notify",
            "run_id": "r1",
        }))
    }

    #[test]
    fn templates_reach_payload_fields_and_earlier_steps() {
        let templates = Templates::new();
        let render = |text: &str| templates.render(text, &context(), false);
        assert_eq!(render("{{ payload.ref }}").unwrap(), "refs/heads/main");
        assert_eq!(render("{{ payload.n + 1 }}").unwrap(), "4");
        assert_eq!(
            render("{{ previous_output }}!").unwrap(),
            "Deployment received!"
        );
        assert_eq!(
            render("{{ (steps['log-event'].output | from_json).ok }}").unwrap(),
            "yes"
        );
        assert_eq!(
            render("{{ workflow }}/{{ run_id }}").unwrap(),
            "deploy-notify/r1"
        );
        assert_eq!(render("plain {text}").unwrap(), "plain {text}");
        let missing = render("{{ payload.missing }}").expect_err("undefined");
        assert!(missing.contains("undefined"), "{missing}");
        assert_eq!(
            render("{{ payload.missing | default('n/a') }}").unwrap(),
            "n/a"
        );
    }

    #[test]
    fn shell_commands_refuse_metacharacters_unless_quoted() {
        let templates = Templates::new();
        let render = |text: &str| templates.render(text, &context(), true);
        assert_eq!(
            render("echo {{ payload.ref }}").unwrap(),
            "echo refs/heads/main"
        );
        assert_eq!(
            render("echo '{{ previous_output }}'").unwrap(),
            "echo 'Deployment received'"
        );
        let refused = render("echo '{{ payload.evil }}'").expect_err("injection");
        assert!(refused.contains("shell_quote"), "{refused}");
        assert_eq!(
            render("echo {{ payload.evil | shell_quote }}").unwrap(),
            r"echo 'x'\''; rm -rf / #'"
        );
        // The same value is fine outside a command.
        assert_eq!(
            templates
                .render("{{ payload.evil }}", &context(), false)
                .unwrap(),
            "x'; rm -rf / #"
        );
    }

    #[test]
    fn args_render_recursively_and_name_the_key() {
        let templates = Templates::new();
        let args = json!({
            "command": "echo {{ payload.ref }}",
            "env": { "REF": "{{ payload.evil }}" },
            "argv": ["a", "{{ run_id }}"],
            "idempotent": true,
        });
        let rendered = templates.render_args(&args, &context(), true).unwrap();
        assert_eq!(rendered["command"], "echo refs/heads/main");
        assert_eq!(rendered["env"]["REF"], "x'; rm -rf / #");
        assert_eq!(rendered["argv"][1], "r1");
        assert_eq!(rendered["idempotent"], true);
        let error = templates
            .render_args(&json!({ "url": "{{ nope }}" }), &context(), false)
            .expect_err("undefined");
        assert!(error.starts_with("args.url: "), "{error}");
    }
}
