//! Workflows triggered by webhooks (the assistant seed): YAML definitions
//! validated once (`definition`, `args`), and the registry that loads a
//! folder of them and keeps it current (`registry`, `watch`). Shared by the
//! ingress (which workflows exist), the workflow worker (what to run) and
//! the CLI (list, test). Templates are the worker's alone.

pub mod approvals;
pub mod args;
pub mod definition;
pub mod registry;
pub mod watch;

pub use definition::{DefinitionError, Mode, Step, Tool, Workflow, is_valid_name};
pub use registry::{Loaded, Lookup, Problem, Registry, Snapshot};
pub use schemas::workflow::run_key;
