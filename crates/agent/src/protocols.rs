//! Messages and ttrpc service traits generated from `proto/` by `build.rs`.
#![allow(
    clippy::all,
    clippy::pedantic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_precision_loss,
    clippy::undocumented_unsafe_blocks,
    missing_debug_implementations,
    dead_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unused_imports,
    unused_results,
    unused_mut,
    unknown_lints,
    unsafe_code
)]

include!(concat!(env!("OUT_DIR"), "/protocols.rs"));
