//! kata-ts-agent as a library: the binary (`main.rs`) serves it, and the fuzz targets drive
//! [`copy_file::CopyFiles`] directly.

pub mod backend;
pub mod copy_file;
pub mod guest;
pub mod guest_path;
pub mod listen;
pub mod protocols;
pub mod record;
pub mod rpc_status;
pub mod service;
pub mod state;
