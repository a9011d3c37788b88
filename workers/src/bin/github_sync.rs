//! `tidegate-github-sync`: syncs pushed commits of tracked repositories
//! into local folders (placeholder until the job lands).

fn main() {}
