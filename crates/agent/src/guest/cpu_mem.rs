//! OnlineCPUMem: bring hot-added vCPUs (and memory blocks) online through sysfs, as the Kata
//! agent does (`sandbox.rs` `online_cpus`/`online_memory`): write `1` to each offline
//! `cpuN/online` until `nb_cpus` vCPUs are online in total (kata-agent 4.1.0's meaning: it
//! onlines `nb_cpus` minus the online count, and nothing when that many are online already; 0
//! onlines no vCPU); with `wait`, retry until then or the timeout passes.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::device_wait::POLL_INTERVAL;
use super::error::{io_err, GuestError};
use super::guest_root::GuestRoot;

const CPUS: &str = "/sys/devices/system/cpu";
const MEMORY: &str = "/sys/devices/system/memory";

/// `online` files under `dir` whose entry starts with `prefix` followed by a number.
fn online_files(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(u64, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?.parse::<u64>().ok()?;
            let f = e.path().join("online");
            f.exists().then_some((n, f))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, f)| f).collect()
}

fn is_offline(f: &Path) -> bool {
    fs::read_to_string(f).is_ok_and(|t| t.trim() == "0")
}

/// Writes `1` to up to `limit` offline entries (0 = all); returns how many it onlined.
fn online(dir: &Path, prefix: &str, limit: usize) -> Result<usize, GuestError> {
    let mut n = 0;
    for f in online_files(dir, prefix)
        .into_iter()
        .filter(|f| is_offline(f))
    {
        if limit != 0 && n >= limit {
            break;
        }
        fs::write(&f, "1").map_err(io_err("online", &f))?;
        n += 1;
    }
    Ok(n)
}

/// vCPUs online now: `cpuN` entries whose `online` reads 1, or that have none (cpu0).
fn online_cpus(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("cpu"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            let f = e.path().join("online");
            !f.exists() || fs::read_to_string(&f).is_ok_and(|t| t.trim() == "1")
        })
        .count()
}

/// Carries out an OnlineCPUMem request.
pub fn online_cpu_mem(
    root: &GuestRoot,
    wait: bool,
    nb_cpus: u32,
    cpu_only: bool,
    timeout: Duration,
) -> Result<(), GuestError> {
    let cpus = root.resolve(CPUS)?;
    let want = usize::try_from(nb_cpus).unwrap_or(usize::MAX);
    let start = Instant::now();
    let mut done = online_cpus(&cpus);
    if want > done {
        online(&cpus, "cpu", want - done)?;
        done = online_cpus(&cpus);
    }
    while wait && want != 0 && done < want {
        if start.elapsed() >= timeout {
            return Err(GuestError::Precondition(format!(
                "only {done} of {nb_cpus} vCPUs came online within {} ms",
                timeout.as_millis()
            )));
        }
        std::thread::sleep(POLL_INTERVAL);
        online(&cpus, "cpu", want - done)?;
        done = online_cpus(&cpus);
    }
    if !cpu_only {
        online(&root.resolve(MEMORY)?, "memory", 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onlines_offline_cpus_and_memory_blocks() {
        let dir = std::env::temp_dir().join(format!("kata-ts-agent-cpu-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (d, v) in [
            ("cpu/cpu1", "0"),
            ("cpu/cpu2", "0"),
            ("cpu/cpu3", "1"),
            ("memory/memory7", "0"),
        ] {
            let p = dir.join("sys/devices/system").join(d);
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("online"), v).unwrap();
        }
        let root = GuestRoot::new(dir.clone());
        // cpu3 is online: 2 in total means one more.
        online_cpu_mem(&root, true, 2, true, Duration::from_secs(1)).unwrap();
        let read = |d: &str| {
            fs::read_to_string(dir.join("sys/devices/system").join(d).join("online")).unwrap()
        };
        assert_eq!(
            (read("cpu/cpu1").as_str(), read("cpu/cpu2").as_str()),
            ("1", "0"),
            "onlined up to nb_cpus in total"
        );
        online_cpu_mem(&root, true, 1, true, Duration::from_secs(1)).unwrap();
        assert_eq!(
            read("cpu/cpu2"),
            "0",
            "already that many online: nothing onlined"
        );
        assert_eq!(read("memory/memory7"), "0", "cpu_only");
        online_cpu_mem(&root, false, 0, false, Duration::ZERO).unwrap();
        assert_eq!(
            (read("cpu/cpu2").as_str(), read("memory/memory7").as_str()),
            ("0", "1"),
            "nb_cpus 0 onlines no vCPU, memory all"
        );
        online_cpu_mem(&root, false, 3, true, Duration::ZERO).unwrap();
        assert_eq!(read("cpu/cpu2"), "1");
        let err = online_cpu_mem(&root, true, 5, true, Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("only 3 of 5 vCPUs"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
