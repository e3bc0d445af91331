//! cgroup v2 limits against a kernel that offers every controller. This host's cgroup2 has no
//! cpu, cpuset, memory or pids controller, so these run inside the booted TCG guest, whose
//! cgroup2 has them all: `__test__/cgroups/guest-v2.spec.ts` boots the guest's kernel with an
//! initramfs holding this test binary linked statically (`scripts/build-cgroups-guest-tests.sh`),
//! mounts cgroup2 and runs `guest_v2` with `KATA_TS_CGROUP2_ROOT` naming the mount. Ignored
//! elsewhere. Each test works below its own subtree, removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::{shares_to_weight, weight_to_shares, CgroupManager, FsV2Manager, Resources};

fn root() -> PathBuf {
    PathBuf::from(
        std::env::var("KATA_TS_CGROUP2_ROOT")
            .expect("KATA_TS_CGROUP2_ROOT: the guest's cgroup2 mount (run by guest-v2.spec.ts)"),
    )
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("kata-ts-guest-test-{nanos:x}")
}

/// Removes the test subtree on drop (processes moved to the root first).
struct Subtree(String);
impl Drop for Subtree {
    fn drop(&mut self) {
        let root = root();
        let _ = crate::files::remove_tree(&root.join(&self.0), &root.join("cgroup.procs"));
    }
}

/// Kills and reaps a child on drop.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper() -> Proc {
    Proc(
        Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn sleep"),
    )
}

fn read(dir: &Path, file: &str) -> String {
    crate::files::read(&dir.join(file)).unwrap()
}

fn sandbox(sub: &Subtree) -> FsV2Manager {
    FsV2Manager::new(&root(), &format!("{}/sandbox", sub.0)).unwrap()
}

#[test]
#[ignore = "runs in the TCG guest's cgroup2 (__test__/cgroups/guest-v2.spec.ts)"]
fn guest_v2_every_controller_is_enabled_down_to_the_sandbox() {
    let sub = Subtree(unique());
    let m = sandbox(&sub);
    m.create(&[]).unwrap();
    let offered = read(&m.dir(), "cgroup.controllers");
    for c in ["cpu", "cpuset", "memory", "pids"] {
        assert!(
            offered.split_whitespace().any(|o| o == c),
            "{c} in {offered:?}"
        );
    }
    m.delete().unwrap();
}

#[test]
#[ignore = "runs in the TCG guest's cgroup2 (__test__/cgroups/guest-v2.spec.ts)"]
fn guest_v2_limits_land_in_the_files_and_read_back() {
    let sub = Subtree(unique());
    let m = sandbox(&sub);
    let p = sleeper();
    m.create(&[p.0.id()]).unwrap();
    let r = Resources {
        cpu_quota_us: Some(50_000),
        cpu_period_us: Some(100_000),
        cpu_shares: Some(1024),
        cpuset_cpus: Some("0".into()),
        cpuset_mems: Some("0".into()),
        memory_limit_bytes: Some(64 << 20),
        pids_max: Some(50),
    };
    m.set_resources(&r).unwrap();
    let dir = m.dir();
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpu.weight"), shares_to_weight(1024).to_string());
    assert_eq!(read(&dir, "cpuset.cpus"), "0");
    assert_eq!(read(&dir, "cpuset.mems"), "0");
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "pids.max"), "50");
    // cpu.weight holds fewer steps than cpu.shares: shares read back through the weight.
    let back = Resources {
        cpu_shares: Some(weight_to_shares(shares_to_weight(1024))),
        ..r
    };
    assert_eq!(m.read_resources().unwrap(), back);
    assert_eq!(m.procs().unwrap(), vec![p.0.id()]);
    m.delete().unwrap();
}

#[test]
#[ignore = "runs in the TCG guest's cgroup2 (__test__/cgroups/guest-v2.spec.ts)"]
fn guest_v2_unlimited_is_max_and_an_update_keeps_unset_fields() {
    let sub = Subtree(unique());
    let m = sandbox(&sub);
    m.create(&[]).unwrap();
    m.set_resources(&Resources {
        cpu_quota_us: Some(20_000),
        cpu_period_us: Some(200_000),
        memory_limit_bytes: Some(32 << 20),
        pids_max: Some(10),
        ..Resources::default()
    })
    .unwrap();
    // Only the quota: the period stays.
    m.set_resources(&Resources {
        cpu_quota_us: Some(-1),
        memory_limit_bytes: Some(-1),
        pids_max: Some(-1),
        ..Resources::default()
    })
    .unwrap();
    let dir = m.dir();
    assert_eq!(read(&dir, "cpu.max"), "max 200000");
    assert_eq!(read(&dir, "memory.max"), "max");
    assert_eq!(read(&dir, "pids.max"), "max");
    let r = m.read_resources().unwrap();
    assert_eq!(
        (
            r.cpu_quota_us,
            r.cpu_period_us,
            r.memory_limit_bytes,
            r.pids_max
        ),
        (Some(-1), Some(200_000), Some(-1), Some(-1))
    );
    m.delete().unwrap();
}

#[test]
#[ignore = "runs in the TCG guest's cgroup2 (__test__/cgroups/guest-v2.spec.ts)"]
fn guest_v2_the_kernel_enforces_pids_max() {
    let sub = Subtree(unique());
    let m = sandbox(&sub);
    let p = sleeper();
    m.create(&[p.0.id()]).unwrap();
    m.set_resources(&Resources {
        pids_max: Some(1),
        ..Resources::default()
    })
    .unwrap();
    // The sleeper is the one task allowed: a shell that joins the cgroup (a move is not a fork,
    // so it is let in) cannot fork a subshell there; busybox sh stops on that (EAGAIN).
    let forked = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs || exit 2; ( exit 0 ); exit 0",
            m.dir().display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&forked.stderr);
    assert!(
        !forked.status.success() && stderr.contains("Resource temporarily unavailable"),
        "a fork in a pids.max=1 cgroup must fail with EAGAIN: {:?} {stderr}",
        forked.status
    );
    assert!(
        read(&m.dir(), "pids.events").contains("max "),
        "pids.events counts it"
    );
    m.delete().unwrap();
}

#[test]
#[ignore = "runs in the TCG guest's cgroup2 (__test__/cgroups/guest-v2.spec.ts)"]
fn guest_v2_delete_moves_processes_out_and_removes_the_parents_it_made() {
    let sub = Subtree(unique());
    let m = FsV2Manager::new(&root(), &format!("{}/pod/sandbox", sub.0)).unwrap();
    let p = sleeper();
    let made = m.create(&[p.0.id()]).unwrap();
    assert_eq!(
        made,
        vec![root().join(&sub.0), root().join(&sub.0).join("pod")]
    );
    m.set_resources(&Resources {
        memory_limit_bytes: Some(16 << 20),
        ..Resources::default()
    })
    .unwrap();
    m.delete().unwrap();
    assert!(!m.dir().exists());
    let in_root = crate::files::read_ids(&root().join("cgroup.procs")).unwrap();
    assert!(in_root.contains(&p.0.id()), "the sleeper moved to the root");
    assert_eq!(m.remove_parents(&made).unwrap().len(), 2);
    assert!(!root().join(&sub.0).exists());
}
