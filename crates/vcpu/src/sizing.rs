use std::collections::BTreeMap;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, ToPrimitive, Zero};

use crate::{CpuSet, VcpuError};

/// The CPU part of one container's OCI `linux.resources.cpu`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerCpu {
    /// CFS quota in µs; `None` or negative means unlimited.
    pub quota_us: Option<i64>,
    /// CFS period in µs; `None` or 0 means unset.
    pub period_us: Option<u64>,
    /// `cpus` cpuset, if any.
    pub cpus: Option<CpuSet>,
}

impl ContainerCpu {
    /// The container's quota/period fraction, when both are set and usable.
    fn quota_fraction(&self) -> Option<(i64, u64)> {
        match (self.quota_us, self.period_us) {
            (Some(q), Some(p)) if q >= 0 && p > 0 => Some((q, p)),
            _ => None,
        }
    }
}

/// vCPUs one container asks for (kata-types `LinuxContainerCpuResources::get_vcpus`):
/// quota/period when both are set, else the cpuset size, else nothing.
pub fn container_vcpus(cpu: &ContainerCpu) -> Option<BigRational> {
    if let Some((q, p)) = cpu.quota_fraction() {
        return Some(BigRational::new(q.into(), p.into()));
    }
    match &cpu.cpus {
        Some(set) if !set.is_empty() => Some(BigRational::from_integer(set.len().into())),
        _ => None,
    }
}

/// Running totals for `sandbox_vcpus`, so the amount after each added container costs
/// O(distinct periods) instead of a pass over every container added so far.
#[derive(Debug, Default)]
struct Totals {
    quota_by_period: BTreeMap<u64, i128>,
    union: CpuSet,
    count: usize,
}

impl Totals {
    fn add(&mut self, cpu: &ContainerCpu) {
        // An i128 sum of i64 quotas cannot overflow below 2^64 containers.
        if let Some((q, p)) = cpu.quota_fraction() {
            *self.quota_by_period.entry(p).or_insert(0) += i128::from(q);
        }
        if let Some(set) = &cpu.cpus {
            self.union.union_with(set);
        }
        self.count += 1;
    }

    fn amount(&self, default_vcpus: &BigRational) -> BigRational {
        if self.count == 0 {
            return default_vcpus.clone();
        }
        // One division per distinct period (usually one).
        let total = self
            .quota_by_period
            .iter()
            .fold(BigRational::zero(), |acc, (&p, &q)| {
                acc + BigRational::new(BigInt::from(q), p.into())
            });
        if total.is_zero() && !self.union.is_empty() {
            return BigRational::from_integer(self.union.len().into());
        }
        if total > BigRational::zero() {
            return total + default_vcpus;
        }
        let one = BigRational::one();
        if *default_vcpus > one {
            default_vcpus.clone()
        } else {
            one
        }
    }
}

/// Exact vCPUs after each container is added in order: element `i` equals
/// `sandbox_vcpus(default_vcpus, &containers[..=i])`, computed in one pass.
pub fn sandbox_vcpus_after_each(
    default_vcpus: &BigRational,
    containers: &[ContainerCpu],
) -> Vec<BigRational> {
    let mut totals = Totals::default();
    containers
        .iter()
        .map(|cpu| {
            totals.add(cpu);
            totals.amount(default_vcpus)
        })
        .collect()
}

/// Exact vCPUs a sandbox needs (runtime-rs `CpuResource::calc_cpu_resources`, HEAD semantics,
/// without its floating point):
/// - no containers: `default_vcpus`;
/// - some quota: Σ quota/period + `default_vcpus`;
/// - cpusets only: the size of their union (the default is not added, as in the reference);
/// - neither: `max(default_vcpus, 1)`.
pub fn sandbox_vcpus(default_vcpus: &BigRational, containers: &[ContainerCpu]) -> BigRational {
    let mut totals = Totals::default();
    containers.iter().for_each(|cpu| totals.add(cpu));
    totals.amount(default_vcpus)
}

/// Rounds an exact vCPU amount up to the whole vCPUs a hypervisor boots.
pub fn ceil_vcpus(amount: &BigRational) -> Result<u32, VcpuError> {
    let ceil = amount.ceil().to_integer();
    ceil.to_u32().ok_or_else(|| VcpuError::TooLarge {
        value: ceil.to_string(),
        max: u32::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_decimal;
    use proptest::prelude::*;

    fn q(quota: i64, period: u64) -> ContainerCpu {
        ContainerCpu {
            quota_us: Some(quota),
            period_us: Some(period),
            cpus: None,
        }
    }

    fn cpus(text: &str) -> ContainerCpu {
        ContainerCpu {
            quota_us: Some(-1),
            period_us: None,
            cpus: Some(text.parse().unwrap()),
        }
    }

    fn r(n: i64, d: i64) -> BigRational {
        BigRational::new(n.into(), d.into())
    }

    struct Row {
        name: &'static str,
        default: &'static str,
        containers: Vec<ContainerCpu>,
        exact: BigRational,
        ceil: u32,
    }

    // vectors.md §5.1: the reference's cpu.rs tests, with exact answers in place of f32.
    #[test]
    fn reference_vectors() {
        let rows = vec![
            Row {
                name: "rounding: ten 0.1-CPU containers",
                default: "0",
                containers: vec![q(100_000, 1_000_000); 10],
                exact: r(1, 1),
                ceil: 1,
            },
            Row {
                name: "big_1",
                default: "10",
                containers: vec![
                    q(32_000_000, 1_000_000),
                    q(32_000_000, 1_000_000),
                    q(64_000_000, 1_000_000),
                ],
                exact: r(138, 1),
                ceil: 138,
            },
            Row {
                name: "big_2",
                default: "10",
                containers: vec![
                    q(33_000_000, 1_000_000),
                    q(31_000_000, 1_000_000),
                    q(77_000_011, 1_000_000),
                ],
                exact: r(151_000_011, 1_000_000),
                ceil: 152,
            },
            Row {
                name: "big_3",
                default: "10",
                containers: vec![q(141_000_008, 1_000_000)],
                exact: r(151_000_008, 1_000_000),
                ceil: 152,
            },
            Row {
                name: "big_4",
                default: "10",
                containers: vec![q(17_000_001, 1_000_000); 4],
                exact: r(78_000_004, 1_000_000),
                ceil: 79,
            },
            Row {
                name: "divisible a",
                default: "3",
                containers: vec![q(1_000_000, 1_000_000), q(1_000_000, 500_000)],
                exact: r(6, 1),
                ceil: 6,
            },
            Row {
                name: "divisible b",
                default: "3",
                containers: vec![q(3_000_000, 1_500_000), q(1_000_000, 500_000)],
                exact: r(7, 1),
                ceil: 7,
            },
            Row {
                name: "indivisible a",
                default: "1",
                containers: vec![q(1_000_000, 1_000_000), q(900_000, 300_000)],
                exact: r(5, 1),
                ceil: 5,
            },
            Row {
                name: "indivisible b",
                default: "1",
                containers: vec![q(1_000_000, 1_000_000), q(900_000, 299_999)],
                exact: r(1, 1) + r(900_000, 299_999) + r(1, 1),
                ceil: 6,
            },
            Row {
                name: "fractional a",
                default: "0.5",
                containers: vec![q(250_000, 1_000_000)],
                exact: r(3, 4),
                ceil: 1,
            },
            Row {
                name: "fractional b",
                default: "0.5",
                containers: vec![q(500_000, 1_000_000)],
                exact: r(1, 1),
                ceil: 1,
            },
            Row {
                name: "fractional c",
                default: "0.5",
                containers: vec![q(500_001, 1_000_000)],
                exact: r(1_000_001, 1_000_000),
                ceil: 2,
            },
            Row {
                name: "empty map returns the default",
                default: "1.5",
                containers: vec![],
                exact: r(3, 2),
                ceil: 2,
            },
            Row {
                name: "cpuset only: union, default not added",
                default: "1",
                containers: vec![cpus("0-3"), cpus("2-5")],
                exact: r(6, 1),
                ceil: 6,
            },
            Row {
                name: "no quota, no cpuset: at least one",
                default: "0",
                containers: vec![ContainerCpu {
                    quota_us: Some(-1),
                    ..Default::default()
                }],
                exact: r(1, 1),
                ceil: 1,
            },
        ];
        for row in rows {
            let default = parse_decimal(row.default).unwrap();
            let got = sandbox_vcpus(&default, &row.containers);
            assert_eq!(got, row.exact, "{}", row.name);
            assert_eq!(ceil_vcpus(&got).unwrap(), row.ceil, "{}", row.name);
        }
    }

    // vectors.md §5.2: per-container vCPUs.
    #[test]
    fn container_vcpus_vectors() {
        assert_eq!(container_vcpus(&ContainerCpu::default()), None);
        let c = ContainerCpu {
            quota_us: Some(1001),
            period_us: Some(100),
            cpus: Some("1,2,3".parse().unwrap()),
        };
        assert_eq!(container_vcpus(&c), Some(r(1001, 100)));
        let c = ContainerCpu {
            quota_us: Some(-1),
            period_us: Some(0),
            cpus: Some("1".parse().unwrap()),
        };
        assert_eq!(container_vcpus(&c), Some(r(1, 1)));
    }

    #[test]
    fn after_each_matches_prefix_sums() {
        let default = parse_decimal("0.5").unwrap();
        let containers = vec![
            q(250_000, 1_000_000),
            cpus("0-3"),
            q(500_000, 500_000),
            q(-1, 100),
        ];
        let after = sandbox_vcpus_after_each(&default, &containers);
        for (i, got) in after.iter().enumerate() {
            assert_eq!(
                got,
                &sandbox_vcpus(&default, &containers[..=i]),
                "prefix {i}"
            );
        }
        assert_eq!(after[0], r(3, 4));
    }

    #[test]
    fn too_many_vcpus_is_an_error() {
        let huge = BigRational::from_integer(BigInt::from(u64::MAX));
        assert!(matches!(ceil_vcpus(&huge), Err(VcpuError::TooLarge { .. })));
    }

    proptest! {
        // The sum of random fractions equals the exact rational; the ceiling is never below it
        // and less than one above it.
        #[test]
        fn sum_is_exact_and_ceiling_tight(parts in prop::collection::vec((0i64..10_000_000, 1u64..2_000_000), 1..40),
                                          default_tenths in 0u32..40) {
            let default = BigRational::new(default_tenths.into(), 10.into());
            let containers: Vec<_> = parts.iter().map(|&(qq, p)| q(qq, p)).collect();
            let got = sandbox_vcpus(&default, &containers);
            let mut want = BigRational::zero();
            for &(qq, p) in &parts { want += BigRational::new(qq.into(), p.into()); }
            if want.is_zero() {
                let one = BigRational::one();
                want = if default > one { default.clone() } else { one };
            } else {
                want += &default;
            }
            prop_assert_eq!(&got, &want);
            let ceil = BigRational::from_integer(ceil_vcpus(&got).unwrap().into());
            prop_assert!(ceil >= got && ceil.clone() - &got < BigRational::one());
        }
    }
}
