//! cpuset parsing and the quota/period arithmetic of sandbox sizing. Properties: nothing panics;
//! a parsed cpuset formats to a canonical text that parses back to the same set (and any set of
//! valid ids survives format then parse); the sandbox total equals an independent exact sum
//! taken container by container; the per-step totals end at the whole total; the vCPU ceiling
//! is the least integer not below the exact amount.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};
use vcpu::{
    ceil_vcpus, container_vcpus, parse_decimal, sandbox_vcpus, sandbox_vcpus_after_each,
    ContainerCpu, CpuSet,
};

/// Highest CPU id `CpuSet` accepts (`vcpu::cpuset::MAX_CPU_ID`).
const MAX_CPU_ID: u32 = 65_535;
/// Containers per input: enough to mix periods, small enough to stay fast.
const MAX_CONTAINERS: usize = 16;

#[derive(Debug, Arbitrary)]
struct Container<'a> {
    quota_us: Option<i64>,
    period_us: Option<u64>,
    cpus: Option<&'a str>,
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    cpuset: &'a str,
    ids: Vec<u16>,
    default_vcpus: &'a str,
    containers: Vec<Container<'a>>,
}

fn check_cpuset_text(text: &str) {
    let Ok(set) = text.parse::<CpuSet>() else {
        return;
    };
    assert!(set.iter().all(|id| id <= MAX_CPU_ID), "{text:?}");
    let canonical = set.to_string();
    let again: CpuSet = canonical
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} formats as {canonical:?}, which fails: {e}"));
    assert_eq!(again, set, "{text:?} -> {canonical:?}");
    assert_eq!(again.to_string(), canonical);
}

fn check_cpuset_ids(ids: &[u16]) {
    let set: CpuSet = ids.iter().map(|&id| u32::from(id)).collect();
    let text = set.to_string();
    assert_eq!(
        text.parse::<CpuSet>().as_ref(),
        Ok(&set),
        "{ids:?} -> {text:?}"
    );
}

/// The sizing rule, summed one container at a time (the crate groups quotas by period).
fn expected_total(default: &BigRational, containers: &[ContainerCpu]) -> BigRational {
    if containers.is_empty() {
        return default.clone();
    }
    let mut total = BigRational::zero();
    let mut union = BTreeSet::new();
    for c in containers {
        if let (Some(q), Some(p)) = (c.quota_us, c.period_us) {
            if q >= 0 && p > 0 {
                total += BigRational::new(BigInt::from(q), BigInt::from(p));
            }
        }
        if let Some(set) = &c.cpus {
            union.extend(set.iter());
        }
    }
    if total.is_zero() && !union.is_empty() {
        BigRational::from_integer(union.len().into())
    } else if total > BigRational::zero() {
        total + default
    } else if *default > BigRational::one() {
        default.clone()
    } else {
        BigRational::one()
    }
}

fn check_sizing(input: &Input<'_>) {
    let Ok(default) = parse_decimal(input.default_vcpus) else {
        return;
    };
    assert!(default >= BigRational::zero(), "{:?}", input.default_vcpus);
    let containers: Vec<ContainerCpu> = input
        .containers
        .iter()
        .take(MAX_CONTAINERS)
        .map(|c| ContainerCpu {
            quota_us: c.quota_us,
            period_us: c.period_us,
            cpus: c.cpus.and_then(|t| t.parse().ok()),
        })
        .collect();
    for c in &containers {
        if let Some(v) = container_vcpus(c) {
            assert!(v >= BigRational::zero(), "{c:?}");
        }
    }
    let total = sandbox_vcpus(&default, &containers);
    assert_eq!(total, expected_total(&default, &containers));
    let steps = sandbox_vcpus_after_each(&default, &containers);
    assert_eq!(steps.len(), containers.len());
    if let Some(last) = steps.last() {
        assert_eq!(last, &total);
    }
    match ceil_vcpus(&total) {
        Ok(n) => {
            let n = BigRational::from_integer(BigInt::from(n));
            assert!(n >= total && n - BigRational::one() < total, "{total}");
        }
        Err(_) => assert!(total > BigRational::from_integer(BigInt::from(u32::MAX))),
    }
}

fuzz_target!(|input: Input<'_>| {
    check_cpuset_text(input.cpuset);
    check_cpuset_ids(&input.ids);
    check_sizing(&input);
});
