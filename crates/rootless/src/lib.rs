//! Rootless VMM launch: a process started with `setgroups` → `setgid` → `setuid` applied in the
//! child before `exec`. Any failed step aborts the launch with an error naming the step; there is
//! no path where the child silently keeps root's credentials.
//!
//! Policy (which user, which groups, which paths) lives in TypeScript (`ts/rootless/`).

mod credentials;
mod launch;

pub use credentials::{
    drop_privileges, CredentialOps, Credentials, DropError, Step, SystemCredentialOps,
};
pub use launch::{spawn_as_user, spawn_with_ops, LaunchError, LaunchSpec};
