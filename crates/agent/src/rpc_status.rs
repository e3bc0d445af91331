//! ttrpc statuses for the agent's errors, mapped once at the server edge.

use ttrpc::{Code, Error as TtrpcError};

use crate::copy_file::CopyFileError;
use crate::guest::error::GuestError;
use crate::state::StateError;

pub fn status(code: Code, msg: impl Into<String>) -> TtrpcError {
    TtrpcError::RpcStatus(ttrpc::get_status(code, msg.into()))
}

/// UNIMPLEMENTED for a call this backend does not carry out (never an OK for work not done).
pub fn unimplemented(method: &str, backend: &str) -> TtrpcError {
    status(
        Code::UNIMPLEMENTED,
        format!("{method} is not implemented by the {backend} agent"),
    )
}

pub fn state_err(e: StateError) -> TtrpcError {
    // Codes as in the Kata agent's `sandbox_err_to_ttrpc`; the rest are INTERNAL there.
    let code = match e {
        StateError::InvalidContainerId(_) => Code::INVALID_ARGUMENT,
        StateError::InvalidExecId { .. } => Code::NOT_FOUND,
        StateError::AlreadyExists { .. } => Code::ALREADY_EXISTS,
        StateError::Precondition(_) => Code::FAILED_PRECONDITION,
    };
    status(code, e.to_string())
}

pub fn copy_err(e: CopyFileError) -> TtrpcError {
    let code = match e {
        CopyFileError::TooManyStreams { .. } => Code::RESOURCE_EXHAUSTED,
        CopyFileError::NoStream { .. } => Code::FAILED_PRECONDITION,
        ref e if e.is_invalid_argument() => Code::INVALID_ARGUMENT,
        _ => Code::INTERNAL,
    };
    status(code, e.to_string())
}

pub fn guest_err(e: GuestError) -> TtrpcError {
    status(e.code(), e.to_string())
}
