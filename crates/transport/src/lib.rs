//! The agent channel of kata-ts: dialers for vsock, hybrid vsock and unix streams, and a ttrpc
//! client speaking the framing and envelope of containerd/ttrpc (what the Kata agent serves).
//! No Node dependency; the binding crate exposes it to TypeScript.

pub mod client;
mod client_nowait;
mod client_pending;
pub mod dial;
pub mod frame;
pub mod replay;
pub mod server;
pub mod varint;
pub mod wire;

pub use client::{CallError, Client};
pub use client_pending::Delivery;
pub use dial::{dial, dial_once, hybrid_handshake, Address, BoxStream, DialError, DialStep};
pub use frame::{FrameError, MESSAGE_LENGTH_MAX};
pub use wire::code_name;
