use thiserror::Error;

/// What can go wrong in vCPU arithmetic; each variant carries the offending input.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VcpuError {
    /// A vCPU amount that is not a non-negative decimal number such as `1`, `0.75` or `1.5`.
    #[error(
        "invalid vCPU amount {text:?}: expected a non-negative decimal number such as 1 or 0.75"
    )]
    InvalidDecimal { text: String },
    /// A cpuset list such as `0-3,6` that does not parse.
    #[error("invalid cpuset {text:?}: {reason}")]
    InvalidCpuSet { text: String, reason: String },
    /// A container quota/period pair that cannot describe a CPU fraction.
    #[error("invalid cpu quota/period {quota}/{period}: {reason}")]
    InvalidQuota {
        quota: i64,
        period: i64,
        reason: String,
    },
    /// The rounded vCPU count does not fit the hypervisor's 32-bit vCPU count.
    #[error("vCPU count {value} is too large (maximum {max})")]
    TooLarge { value: String, max: u32 },
}
