//! The container's security context in the guest: capabilities, seccomp and sysctls (masked
//! and read-only paths, rlimits, oom_score_adj and no_new_privs are applied by the helper in
//! [`super::container_init`] and [`super::process_limits`]).

pub mod caps;
pub mod seccomp;
pub mod sysctl;

use super::error::GuestError;
use crate::protocols::oci::Spec;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Caps(#[from] caps::CapsError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Sysctl(#[from] sysctl::SysctlError),
}

impl From<SecurityError> for GuestError {
    fn from(e: SecurityError) -> Self {
        let refused = matches!(
            e,
            SecurityError::Sysctl(sysctl::SysctlError::NotAllowed { .. })
                | SecurityError::Seccomp(
                    seccomp::SeccompError::Action { .. }
                        | seccomp::SeccompError::Operator { .. }
                        | seccomp::SeccompError::ArgIndex { .. }
                        | seccomp::SeccompError::Flag { .. }
                )
        );
        let field = match &e {
            SecurityError::Caps(_) => "process.capabilities",
            SecurityError::Seccomp(_) => "linux.seccomp",
            SecurityError::Sysctl(_) => "linux.sysctl",
        };
        if refused {
            GuestError::BadValue {
                what: "security context",
                value: field.into(),
                why: e.to_string(),
            }
        } else {
            GuestError::Precondition(e.to_string())
        }
    }
}

/// CreateContainer-time checks of what would only fail at start: sysctls the guest must
/// refuse, a seccomp profile this agent cannot build.
pub fn validate(spec: &Spec) -> Result<(), GuestError> {
    if let Some(linux) = spec.Linux.as_ref() {
        sysctl::validate(linux).map_err(SecurityError::from)?;
        if let Some(p) = linux.Seccomp.as_ref() {
            seccomp::compile(p).map_err(SecurityError::from)?;
        }
    }
    Ok(())
}
