//! `tidegate-workflow`.
fn main() {}
