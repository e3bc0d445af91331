//! Exact vCPU arithmetic for sandbox sizing.
//!
//! Kata's runtime-rs sums container CPU fractions in `f32`/`f64` (`cpu_mem/cpu.rs`), so ten
//! containers of 0.1 CPU can come out as 1.0000001 and round up to 2 vCPUs. Here every amount is
//! an exact rational: quotas and periods are integers, `default_vcpus` is parsed from its decimal
//! text, and the ceiling is taken once at the end.

mod cpuset;
mod decimal;
mod error;
mod sizing;

pub use cpuset::CpuSet;
pub use decimal::parse_decimal;
pub use error::VcpuError;
pub use sizing::{
    ceil_vcpus, container_vcpus, sandbox_vcpus, sandbox_vcpus_after_each, ContainerCpu,
};

/// An exact amount of vCPUs.
pub type Vcpus = num_rational::BigRational;
