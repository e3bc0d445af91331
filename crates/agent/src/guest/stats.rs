//! StatsContainer: the container's cgroup v2 figures in the Kata agent's `CgroupStats` shape
//! (rustjail `cgroups/fs` `get_stats` on v2: times from `cpu.stat` in ns, memory from
//! `memory.current`/`memory.max`/`memory.stat`, pids, hugetlb) and, beyond what kata-agent 4.1.0
//! fills, `network_stats` from the guest's `/proc/net/dev` (loopback left out).

use std::collections::HashMap;
use std::path::Path;

use protobuf::MessageField;

use super::error::GuestError;
use crate::protocols::agent::{
    CgroupStats, CpuStats, CpuUsage, HugetlbStats, MemoryData, MemoryStats, NetworkStats,
    PidsStats, StatsContainerResponse, ThrottlingData,
};

/// A file of `key value` lines (cpu.stat, memory.stat, memory.events) as a map.
fn keyed(dir: &Path, name: &str) -> HashMap<String, u64> {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// A single-value file; `max` is `max_value`; absent or unparsable is `None`.
fn value(dir: &Path, name: &str, max_value: u64) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    match text.trim() {
        "max" => Some(max_value),
        t => t.parse().ok(),
    }
}

fn cpu(dir: &Path) -> CpuStats {
    let s = keyed(dir, "cpu.stat");
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    CpuStats {
        cpu_usage: MessageField::some(CpuUsage {
            total_usage: get("usage_usec") * 1000,
            usage_in_kernelmode: get("system_usec") * 1000,
            usage_in_usermode: get("user_usec") * 1000,
            ..Default::default()
        }),
        throttling_data: MessageField::some(ThrottlingData {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: get("throttled_usec") * 1000,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn memory(dir: &Path) -> MemoryStats {
    let stat = keyed(dir, "memory.stat");
    let events = keyed(dir, "memory.events");
    let usage = value(dir, "memory.current", 0).unwrap_or(0);
    MemoryStats {
        cache: stat.get("file").copied().unwrap_or(0),
        usage: MessageField::some(MemoryData {
            usage,
            // memory.peak exists from Linux 5.19 on.
            max_usage: value(dir, "memory.peak", 0).unwrap_or(0),
            failcnt: events.get("max").copied().unwrap_or(0),
            limit: value(dir, "memory.max", u64::MAX).unwrap_or(u64::MAX),
            ..Default::default()
        }),
        swap_usage: MessageField::some(MemoryData {
            usage: value(dir, "memory.swap.current", 0).unwrap_or(0),
            max_usage: value(dir, "memory.swap.peak", 0).unwrap_or(0),
            failcnt: keyed(dir, "memory.swap.events")
                .get("fail")
                .copied()
                .unwrap_or(0),
            limit: value(dir, "memory.swap.max", u64::MAX).unwrap_or(u64::MAX),
            ..Default::default()
        }),
        kernel_usage: MessageField::some(MemoryData {
            usage: stat.get("kernel").copied().unwrap_or(0),
            ..Default::default()
        }),
        use_hierarchy: true,
        stats: stat,
        ..Default::default()
    }
}

fn pids(dir: &Path) -> PidsStats {
    PidsStats {
        current: value(dir, "pids.current", 0).unwrap_or(0),
        // 0 = no limit, as the Kata agent reports `max`.
        limit: value(dir, "pids.max", 0).unwrap_or(0),
        ..Default::default()
    }
}

/// `hugetlb.<size>.current`/`.max`/`.events` by page size.
fn hugetlb(dir: &Path) -> HashMap<String, HugetlbStats> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(".current")?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .map(|size| {
            let s = HugetlbStats {
                usage: value(dir, &format!("hugetlb.{size}.current"), 0).unwrap_or(0),
                max_usage: 0,
                failcnt: keyed(dir, &format!("hugetlb.{size}.events"))
                    .get("max")
                    .copied()
                    .unwrap_or(0),
                ..Default::default()
            };
            (size, s)
        })
        .collect()
}

/// The interfaces of `/proc/net/dev` text, loopback left out.
pub fn parse_net_dev(text: &str) -> Vec<NetworkStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|n| n.parse().unwrap_or(0))
                .collect();
            if v.len() < 12 {
                return None;
            }
            Some(NetworkStats {
                name: name.to_string(),
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
                ..Default::default()
            })
        })
        .collect()
}

/// The stats of the cgroup at `dir`, with the network figures of `net_dev` (a `/proc/net/dev`).
pub fn container_stats(dir: &Path, net_dev: &Path) -> Result<StatsContainerResponse, GuestError> {
    if !dir.join("cgroup.procs").exists() {
        return Err(GuestError::Precondition(format!(
            "the container's cgroup {} is gone",
            dir.display()
        )));
    }
    let net = std::fs::read_to_string(net_dev).map_err(|source| GuestError::Io {
        op: "read",
        path: net_dev.to_path_buf(),
        source,
    })?;
    Ok(StatsContainerResponse {
        cgroup_stats: MessageField::some(CgroupStats {
            cpu_stats: MessageField::some(cpu(dir)),
            memory_stats: MessageField::some(memory(dir)),
            pids_stats: MessageField::some(pids(dir)),
            hugetlb_stats: hugetlb(dir),
            ..Default::default()
        }),
        network_stats: parse_net_dev(&net),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lines_become_interface_stats_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0: 1500 10 1 2 0 0 0 0 3000 20 3 4 0 0 0 0\n";
        let s = parse_net_dev(text);
        assert_eq!(s.len(), 1);
        let e = &s[0];
        assert_eq!(e.name, "eth0");
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (1500, 10, 1, 2)
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (3000, 20, 3, 4)
        );
    }

    /// The cgroup files are plain files here: this host's cgroup2 has no controllers (the
    /// figures of a real cgroup are checked in the guest, __test__/guest/resources.spec.ts).
    #[test]
    fn cgroup_v2_files_map_onto_kata_agents_fields() {
        let dir = std::env::temp_dir().join(format!("kata-ts-agent-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, v) in [
            ("cgroup.procs", "1\n"),
            ("cpu.stat", "usage_usec 10\nuser_usec 7\nsystem_usec 3\nnr_periods 5\nnr_throttled 2\nthrottled_usec 4\n"),
            ("memory.current", "4096\n"),
            ("memory.max", "max\n"),
            ("memory.stat", "anon 1024\nfile 2048\ninactive_file 512\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("pids.current", "2\n"),
            ("pids.max", "50\n"),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.events", "max 1\n"),
            ("hugetlb.2MB.rsvd.current", "0\n"),
        ] {
            std::fs::write(dir.join(f), v).unwrap();
        }
        let net = dir.join("net_dev");
        std::fs::write(&net, "h\nh\n  eth0: 1 2 0 0 0 0 0 0 3 4 0 0 0 0 0 0\n").unwrap();
        let r = container_stats(&dir, &net).unwrap();
        let c = r.cgroup_stats.unwrap();
        let cpu = c.cpu_stats.cpu_usage.clone().unwrap();
        assert_eq!(
            (
                cpu.total_usage,
                cpu.usage_in_usermode,
                cpu.usage_in_kernelmode
            ),
            (10_000, 7_000, 3_000)
        );
        assert_eq!(c.cpu_stats.throttling_data.throttled_time, 4_000);
        let m = c.memory_stats.unwrap();
        assert_eq!(
            (m.cache, m.usage.usage, m.usage.limit, m.usage.failcnt),
            (2048, 4096, u64::MAX, 3)
        );
        assert_eq!(m.stats.get("inactive_file"), Some(&512));
        assert_eq!((c.pids_stats.current, c.pids_stats.limit), (2, 50));
        assert_eq!(c.hugetlb_stats.keys().collect::<Vec<_>>(), ["2MB"]);
        assert_eq!(c.hugetlb_stats["2MB"].failcnt, 1);
        assert_eq!(r.network_stats[0].tx_packets, 4);
        std::fs::remove_file(dir.join("cgroup.procs")).unwrap();
        assert!(
            container_stats(&dir, &net).is_err(),
            "a removed cgroup is an error"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
