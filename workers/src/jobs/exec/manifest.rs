//! A plugin's `manifest.yaml`: its name, entry point, declared environment
//! variables and commands (name, type, description, input schema), read
//! once per change and checked before the plugin serves anything.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use schemas::streams::is_subject_token;
use serde::Deserialize;

use super::input::InputSchema;

/// The file every plugin folder holds.
pub const MANIFEST_FILE: &str = "manifest.yaml";

/// Lifecycle commands of a ductile plugin (run by a scheduler or the
/// executor itself), never callable over HTTP.
pub const LIFECYCLE_COMMANDS: [&str; 3] = ["poll", "health", "init"];

/// Entry points tried, in order, when the manifest names none.
const DEFAULT_ENTRYPOINTS: [&str; 2] = ["run", "run.py"];

/// Keys of ductile manifests that tidegate reads past without a warning.
const DUCTILE_KEYS: [&str; 8] = [
    "manifest_spec",
    "manifest_version",
    "version",
    "protocol",
    "concurrency_safe",
    "fact_outputs",
    "config_keys",
    "stopwatch",
];
const DUCTILE_COMMAND_KEYS: [&str; 4] = ["output_schema", "values", "idempotent", "retry_safe"];

/// A loaded, checked plugin.
#[derive(Debug)]
pub struct Plugin {
    pub name: String,
    pub description: Option<String>,
    /// The plugin's folder.
    pub dir: PathBuf,
    /// The executable, inside `dir`.
    pub entrypoint: PathBuf,
    /// Variables copied from the executor's environment, when set.
    pub env: Vec<String>,
    pub commands: BTreeMap<String, Command>,
    /// Keys that were not understood (reported once per load).
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct Command {
    pub name: String,
    pub access: Access,
    pub description: Option<String>,
    pub input: Option<InputSchema>,
}

/// The seed's coarse permission hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Command {
    /// Handle-type commands handle a request; lifecycle commands don't.
    pub fn callable(&self) -> bool {
        !LIFECYCLE_COMMANDS.contains(&self.name.as_str())
    }
}

#[derive(Debug, Deserialize)]
struct RawManifest {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    entrypoint: Option<String>,
    #[serde(default)]
    env: Vec<String>,
    commands: Vec<RawCommand>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
struct RawCommand {
    name: String,
    #[serde(rename = "type")]
    access: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<serde_yaml::Value>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

/// Reads and checks the manifest in `dir`; the error names every problem.
pub fn load(dir: &Path) -> Result<Plugin, String> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    parse(dir, &text)
}

/// Parses manifest text for the plugin folder `dir`.
pub fn parse(dir: &Path, text: &str) -> Result<Plugin, String> {
    let raw: RawManifest =
        serde_yaml::from_str(text).map_err(|error| format!("{MANIFEST_FILE}: {error}"))?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let folder = dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    if !is_subject_token(&raw.name) {
        problems.push(format!(
            "name: `{}` must be 1-128 characters from A-Z a-z 0-9 - _ ~ @ + = :",
            raw.name
        ));
    } else if raw.name != folder {
        problems.push(format!(
            "name: `{}` must be the folder's name, `{folder}`",
            raw.name
        ));
    }
    for key in raw.other.keys() {
        if !DUCTILE_KEYS.contains(&key.as_str()) {
            warnings.push(format!("{key}: unknown key, ignored"));
        }
    }
    for name in &raw.env {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            problems.push(format!("env: `{name}` is not a variable name"));
        }
    }
    let entrypoint = match entrypoint(dir, raw.entrypoint.as_deref()) {
        Ok(path) => Some(path),
        Err(why) => {
            problems.push(why);
            None
        }
    };
    let mut commands = BTreeMap::new();
    if raw.commands.is_empty() {
        problems.push("commands: name at least one command".into());
    }
    for (index, command) in raw.commands.into_iter().enumerate() {
        let key = format!("commands[{index}] ({})", command.name);
        match compile_command(&key, command, &mut warnings) {
            Ok(command) => {
                if commands.contains_key(&command.name) {
                    problems.push(format!("{key}: another command has this name"));
                }
                commands.insert(command.name.clone(), command);
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(Plugin {
        name: raw.name,
        description: raw.description,
        dir: dir.to_owned(),
        entrypoint: entrypoint.expect("no problems means an entry point"),
        env: raw.env,
        commands,
        warnings,
    })
}

fn compile_command(
    key: &str,
    raw: RawCommand,
    warnings: &mut Vec<String>,
) -> Result<Command, Vec<String>> {
    let mut problems = Vec::new();
    if !is_subject_token(&raw.name) {
        problems.push(format!(
            "{key}.name: must be 1-128 characters from A-Z a-z 0-9 - _ ~ @ + = :"
        ));
    }
    let access = match raw.access.as_str() {
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        other => {
            problems.push(format!("{key}.type: `{other}` is not read or write"));
            None
        }
    };
    for name in raw.other.keys() {
        if !DUCTILE_COMMAND_KEYS.contains(&name.as_str()) {
            warnings.push(format!("{key}.{name}: unknown key, ignored"));
        }
    }
    let input = match raw.input_schema {
        None | Some(serde_yaml::Value::Null) => None,
        Some(yaml) => match serde_json::to_value(&yaml)
            .map_err(|error| format!("not JSON-compatible: {error}"))
            .and_then(|json| InputSchema::compile(&json))
        {
            Ok(schema) => Some(schema),
            Err(why) => {
                problems.push(format!("{key}.input_schema: {why}"));
                None
            }
        },
    };
    match access {
        Some(access) if problems.is_empty() => Ok(Command {
            name: raw.name,
            access,
            description: raw.description,
            input,
        }),
        _ => Err(problems),
    }
}

/// The executable: the manifest's `entrypoint` (a path inside the folder),
/// else `run`, else `run.py`. It must exist and be executable.
fn entrypoint(dir: &Path, named: Option<&str>) -> Result<PathBuf, String> {
    let candidates: Vec<&str> = match named {
        Some(name) => {
            let inside = Path::new(name)
                .components()
                .all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
            if !inside || name.is_empty() {
                return Err(format!(
                    "entrypoint: `{name}` must be a relative path inside the plugin folder"
                ));
            }
            vec![name]
        }
        None => DEFAULT_ENTRYPOINTS.to_vec(),
    };
    for candidate in &candidates {
        let path = dir.join(candidate);
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        if !metadata.is_file() {
            return Err(format!("entrypoint: `{candidate}` is not a file"));
        }
        if metadata.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "entrypoint: `{candidate}` is not executable (chmod +x, and start a script with #!)"
            ));
        }
        return Ok(path);
    }
    Err(format!(
        "entrypoint: none of {} exists",
        candidates
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
