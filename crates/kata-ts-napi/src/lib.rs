//! Node-API binding for kata-ts. Each module converts one native crate's types and errors;
//! policy lives in the crates (Rust) or in `ts/` (TypeScript).
//!
//! Every synchronous export uses `catch_unwind` so a panic becomes a thrown JS error with code
//! `PANIC` instead of aborting the process; async exports reject.

// In test builds napi-derive does not register exports, so they look unused.
#![cfg_attr(test, allow(dead_code))]

mod cgroups;
mod diag;
mod error;
mod network;
mod rootless;
mod transport;
mod ttrpc_server;
mod vcpu;
mod watch;
