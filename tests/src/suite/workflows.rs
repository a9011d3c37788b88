//! The assistant seed end to end: workflow files served at
//! `POST /webhooks/{workflow}` (404/409/401/403/503, reloads), the
//! `tidegate-workflow` worker running shell and HTTP steps chained through
//! templates, failures and `continue_on_error`, sync 200/504 and queued
//! 202, approval gates across a worker kill, resumed from the CLI or the
//! admin API, expiry, notifications to local fakes, and the shipped
//! example config.

mod approvals;
mod example;
mod fixture;
mod routing;
mod runs;
