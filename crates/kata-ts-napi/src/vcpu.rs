use napi::bindgen_prelude::Float64Array;
use napi_derive::napi;
use vcpu::{
    ceil_vcpus, container_vcpus, parse_decimal, sandbox_vcpus, sandbox_vcpus_after_each,
    ContainerCpu, CpuSet, VcpuError, Vcpus,
};

use crate::error::{coded, guard, Result};

fn to_js(err: VcpuError) -> napi::Error<crate::error::Code> {
    let code = match err {
        VcpuError::InvalidDecimal { .. } => "VCPU_INVALID_DECIMAL",
        VcpuError::InvalidCpuSet { .. } => "VCPU_INVALID_CPUSET",
        VcpuError::InvalidQuota { .. } => "VCPU_INVALID_QUOTA",
        VcpuError::TooLarge { .. } => "VCPU_TOO_LARGE",
    };
    coded(code, err.to_string())
}

/// The CPU part of one container's OCI `linux.resources.cpu`.
#[napi(object)]
#[derive(Debug)]
pub struct ContainerCpuInput {
    /// CFS quota in µs; absent or negative means unlimited.
    pub quota_us: Option<i64>,
    /// CFS period in µs; absent or 0 means unset.
    pub period_us: Option<i64>,
    /// cpuset such as `0-3,6`.
    pub cpus: Option<String>,
}

/// An exact vCPU amount and the whole vCPUs it rounds up to.
#[napi(object)]
#[derive(Debug)]
pub struct VcpuAmount {
    /// Numerator of the reduced fraction, in decimal.
    pub numerator: String,
    /// Denominator of the reduced fraction, in decimal (≥ 1).
    pub denominator: String,
    /// The reduced fraction as `p/q`.
    pub exact: String,
    /// The smallest whole number of vCPUs not below the amount.
    pub ceil: u32,
}

fn amount(value: &Vcpus) -> Result<VcpuAmount> {
    Ok(VcpuAmount {
        numerator: value.numer().to_string(),
        denominator: value.denom().to_string(),
        exact: format!("{}/{}", value.numer(), value.denom()),
        ceil: ceil_vcpus(value).map_err(to_js)?,
    })
}

fn container(input: &ContainerCpuInput) -> Result<ContainerCpu> {
    let period_us = match input.period_us {
        None => None,
        Some(p) => Some(u64::try_from(p).map_err(|_| {
            to_js(VcpuError::InvalidQuota {
                quota: input.quota_us.unwrap_or(-1),
                period: p,
                reason: "the period must not be negative".into(),
            })
        })?),
    };
    let cpus = match input.cpus.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<CpuSet>().map_err(to_js)?),
    };
    Ok(ContainerCpu {
        quota_us: input.quota_us,
        period_us,
        cpus,
    })
}

/// The decimal default and the containers, converted for the vcpu crate.
fn inputs(
    default_vcpus: &str,
    containers: &[ContainerCpuInput],
) -> Result<(Vcpus, Vec<ContainerCpu>)> {
    let default = parse_decimal(default_vcpus).map_err(to_js)?;
    let parsed = containers
        .iter()
        .map(container)
        .collect::<Result<Vec<_>>>()?;
    Ok((default, parsed))
}

/// Exact vCPUs for a sandbox: `defaultVcpus` (decimal text such as "0.75") plus the containers'
/// quota/period fractions, or the union of their cpusets when none has a quota.
#[napi(catch_unwind)]
pub fn calc_sandbox_vcpus(
    default_vcpus: String,
    containers: Vec<ContainerCpuInput>,
) -> Result<VcpuAmount> {
    guard(|| {
        let (default, parsed) = inputs(&default_vcpus, &containers)?;
        amount(&sandbox_vcpus(&default, &parsed))
    })
}

/// Exact vCPUs after each container is added in order (element i covers containers 0..=i),
/// in one pass: what sizing needs to replay a sandbox's container additions.
#[napi(catch_unwind)]
pub fn calc_sandbox_vcpus_after_each(
    default_vcpus: String,
    containers: Vec<ContainerCpuInput>,
) -> Result<Vec<VcpuAmount>> {
    guard(|| {
        let (default, parsed) = inputs(&default_vcpus, &containers)?;
        sandbox_vcpus_after_each(&default, &parsed)
            .iter()
            .map(amount)
            .collect()
    })
}

/// vCPUs one container asks for: quota/period, else its cpuset size, else null.
#[napi(catch_unwind)]
pub fn calc_container_vcpus(input: ContainerCpuInput) -> Result<Option<VcpuAmount>> {
    guard(|| {
        container_vcpus(&container(&input)?)
            .as_ref()
            .map(amount)
            .transpose()
    })
}

/// Parses a decimal vCPU amount exactly ("1.5" → 3/2).
#[napi(catch_unwind)]
pub fn parse_vcpu_decimal(text: String) -> Result<VcpuAmount> {
    guard(|| amount(&parse_decimal(&text).map_err(to_js)?))
}

/// Parses a cpuset list (`0-3,6`) into ascending CPU numbers.
#[napi(catch_unwind)]
pub fn parse_cpuset(text: String) -> Result<Vec<u32>> {
    guard(|| Ok(text.parse::<CpuSet>().map_err(to_js)?.iter().collect()))
}

/// `calcSandboxVcpus` for quota/period-only containers passed as two parallel typed arrays
/// (µs; a negative quota means unlimited). One buffer crossing instead of one property read per
/// field; the benchmark compares both forms.
#[napi(catch_unwind)]
pub fn calc_sandbox_vcpus_packed(
    default_vcpus: String,
    quota_us: Float64Array,
    period_us: Float64Array,
) -> Result<VcpuAmount> {
    let quotas = quota_us.to_vec();
    let periods = period_us.to_vec();
    guard(move || {
        if quotas.len() != periods.len() {
            return Err(coded(
                "VCPU_INVALID_QUOTA",
                format!("{} quotas but {} periods", quotas.len(), periods.len()),
            ));
        }
        let default = parse_decimal(&default_vcpus).map_err(to_js)?;
        let containers = quotas
            .iter()
            .zip(&periods)
            .map(|(&q, &p)| {
                container(&ContainerCpuInput {
                    quota_us: Some(exact_i64(q)?),
                    period_us: Some(exact_i64(p)?),
                    cpus: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        amount(&sandbox_vcpus(&default, &containers))
    })
}

/// An f64 from a typed array as an exact integer (JS numbers are exact up to 2^53).
fn exact_i64(value: f64) -> Result<i64> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() != 0.0 || !(-LIMIT..=LIMIT).contains(&value) {
        return Err(coded(
            "VCPU_INVALID_QUOTA",
            format!("{value} is not an integer number of microseconds"),
        ));
    }
    // Checked above: an integer within ±2^53, which i64 holds exactly.
    #[allow(clippy::cast_possible_truncation)]
    Ok(value as i64)
}
