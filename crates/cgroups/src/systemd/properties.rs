//! systemd unit properties for cgroup limits
//! (<https://www.freedesktop.org/software/systemd/man/latest/systemd.resource-control.html>).

use zbus::zvariant::Value;

use super::names::cpuset_mask;
use super::SystemdLayout;
use crate::error::SystemdError;
use crate::manager::{shares_to_weight, Resources};

/// D-Bus unit properties for a set of limits.
pub(crate) fn unit_properties(
    r: &Resources,
    layout: SystemdLayout,
) -> Result<Vec<(&'static str, Value<'static>)>, SystemdError> {
    let mut props: Vec<(&'static str, Value<'static>)> = Vec::new();
    if let Some(quota) = r.cpu_quota_us {
        let period = r.cpu_period_us.unwrap_or(100_000).max(1);
        let per_sec = match u64::try_from(quota) {
            // systemd keeps the quota as a per-second value in 10 ms steps (it converts to a
            // percentage); round up so the kernel quota is never below the one asked for
            // (runc does the same).
            Ok(q) => (q.saturating_mul(1_000_000) / period).div_ceil(10_000) * 10_000,
            Err(_) => u64::MAX,
        };
        props.push(("CPUQuotaPerSecUSec", Value::from(per_sec)));
    }
    if let Some(period) = r.cpu_period_us {
        props.push(("CPUQuotaPeriodUSec", Value::from(period)));
    }
    if let Some(shares) = r.cpu_shares {
        match layout {
            SystemdLayout::V1 => props.push(("CPUShares", Value::from(shares))),
            SystemdLayout::V2 => props.push(("CPUWeight", Value::from(shares_to_weight(shares)))),
        }
    }
    if layout == SystemdLayout::V2 {
        if let Some(cpus) = &r.cpuset_cpus {
            props.push(("AllowedCPUs", Value::from(cpuset_mask(cpus)?)));
        }
        if let Some(mems) = &r.cpuset_mems {
            props.push(("AllowedMemoryNodes", Value::from(cpuset_mask(mems)?)));
        }
    }
    if let Some(limit) = r.memory_limit_bytes {
        // MemoryMax maps to memory.limit_in_bytes on v1 too (systemd ≥ 240).
        props.push((
            "MemoryMax",
            Value::from(u64::try_from(limit).unwrap_or(u64::MAX)),
        ));
    }
    if let Some(max) = r.pids_max {
        props.push((
            "TasksMax",
            Value::from(u64::try_from(max).unwrap_or(u64::MAX)),
        ));
    }
    Ok(props)
}

pub(crate) fn merge(into: &mut Resources, r: &Resources) {
    macro_rules! take {
        ($($f:ident),*) => { $( if r.$f.is_some() { into.$f = r.$f.clone(); } )* };
    }
    take!(
        cpu_quota_us,
        cpu_period_us,
        cpu_shares,
        cpuset_cpus,
        cpuset_mems,
        memory_limit_bytes,
        pids_max
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_becomes_per_second_rounded_up_to_10ms() {
        let r = Resources {
            cpu_quota_us: Some(20_000),
            cpu_period_us: Some(100_000),
            ..Resources::default()
        };
        let props = unit_properties(&r, SystemdLayout::V1).unwrap();
        assert_eq!(props[0].0, "CPUQuotaPerSecUSec");
        assert_eq!(props[0].1, Value::from(200_000u64));
        let odd = Resources {
            cpu_quota_us: Some(12_345),
            cpu_period_us: Some(100_000),
            ..Resources::default()
        };
        assert_eq!(
            unit_properties(&odd, SystemdLayout::V1).unwrap()[0].1,
            Value::from(130_000u64)
        );
    }

    #[test]
    fn unlimited_values_map_to_infinity() {
        let r = Resources {
            memory_limit_bytes: Some(-1),
            pids_max: Some(-1),
            ..Resources::default()
        };
        let props = unit_properties(&r, SystemdLayout::V2).unwrap();
        assert_eq!(
            props,
            vec![
                ("MemoryMax", Value::from(u64::MAX)),
                ("TasksMax", Value::from(u64::MAX))
            ]
        );
    }

    #[test]
    fn shares_become_weight_on_v2_only() {
        let r = Resources {
            cpu_shares: Some(1024),
            ..Resources::default()
        };
        assert_eq!(
            unit_properties(&r, SystemdLayout::V1).unwrap()[0].0,
            "CPUShares"
        );
        assert_eq!(
            unit_properties(&r, SystemdLayout::V2).unwrap()[0],
            ("CPUWeight", Value::from(39u64))
        );
    }
}
