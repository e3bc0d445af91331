//! Tests against the real cgroup hierarchies of this host (v1 controllers at
//! `/sys/fs/cgroup/<ctrl>`, cgroup2 at `/sys/fs/cgroup/unified`). Each test works below its own
//! `kata-ts-test-<random>` subtree and removes it, and kills the processes it started, even
//! when an assertion fails (drop guards).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::{CgroupManager, FsError, FsV1Manager, FsV2Manager, Resources};

pub(super) const ROOT: &str = "/sys/fs/cgroup";

pub(super) fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("kata-ts-test-{}-{nanos:x}", std::process::id())
}

/// Removes the test subtree from every hierarchy on drop.
pub(super) struct Subtree(pub(super) String);
impl Drop for Subtree {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(ROOT).into_iter().flatten().flatten() {
            let hier = entry.path();
            let _ = crate::files::remove_tree(&hier.join(&self.0), &hier.join("cgroup.procs"));
        }
    }
}

/// Kills and reaps a child on drop.
pub(super) struct Proc(pub(super) Child);
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

fn ids(path: &Path) -> Vec<u32> {
    crate::files::read_ids(path).unwrap()
}

fn v1(sub: &Subtree, leaf: &str, ctrls: &[&str]) -> FsV1Manager {
    let ctrls: Vec<String> = ctrls.iter().map(|c| (*c).to_string()).collect();
    FsV1Manager::new(Path::new(ROOT), &format!("{}/{leaf}", sub.0), Some(&ctrls)).unwrap()
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_limits_land_in_the_controller_files() {
    let sub = Subtree(unique());
    let m = v1(&sub, "sandbox", &["cpu", "cpuset", "memory", "pids"]);
    m.create(&[]).unwrap();
    let r = Resources {
        cpu_quota_us: Some(50_000),
        cpu_period_us: Some(100_000),
        cpu_shares: Some(512),
        cpuset_cpus: Some("0".into()),
        cpuset_mems: Some("0".into()),
        memory_limit_bytes: Some(256 << 20),
        pids_max: Some(100),
    };
    m.set_resources(&r).unwrap();
    let dir = |c: &str| PathBuf::from(ROOT).join(c).join(&sub.0).join("sandbox");
    assert_eq!(
        crate::files::read(&dir("cpu").join("cpu.cfs_quota_us")).unwrap(),
        "50000"
    );
    assert_eq!(
        crate::files::read(&dir("cpu").join("cpu.shares")).unwrap(),
        "512"
    );
    assert_eq!(
        crate::files::read(&dir("memory").join("memory.limit_in_bytes")).unwrap(),
        "268435456"
    );
    assert_eq!(
        crate::files::read(&dir("pids").join("pids.max")).unwrap(),
        "100"
    );
    assert_eq!(
        crate::files::read(&dir("cpuset").join("cpuset.cpus")).unwrap(),
        "0"
    );
    assert_eq!(m.read_resources().unwrap(), r);
    m.delete().unwrap();
    assert!(!dir("cpu").exists());
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_new_cpuset_cgroups_inherit_cpus_and_mems_at_every_level() {
    let sub = Subtree(unique());
    let m = v1(&sub, "a/b", &["cpuset"]);
    let p = sleeper();
    m.create(&[p.0.id()]).unwrap();
    let parent = crate::files::read(&PathBuf::from(ROOT).join("cpuset/cpuset.cpus")).unwrap();
    let read = m.read_resources().unwrap();
    assert_eq!(read.cpuset_cpus.as_deref(), Some(parent.as_str()));
    assert!(!read.cpuset_mems.unwrap_or_default().is_empty());
    assert_eq!(m.procs().unwrap(), vec![p.0.id()]);
    m.delete().unwrap();
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_process_moves_in_and_delete_moves_it_to_the_root() {
    let sub = Subtree(unique());
    let m = v1(&sub, "sandbox", &["cpu", "memory"]);
    let p = sleeper();
    m.create(&[]).unwrap();
    m.add_process(p.0.id()).unwrap();
    let procs = PathBuf::from(ROOT)
        .join("cpu")
        .join(&sub.0)
        .join("sandbox/cgroup.procs");
    assert_eq!(ids(&procs), vec![p.0.id()]);
    m.delete().unwrap();
    assert!(!procs.exists());
    assert!(ids(&PathBuf::from(ROOT).join("cpu/cgroup.procs")).contains(&p.0.id()));
    // Idempotent: a second delete of a gone cgroup succeeds.
    m.delete().unwrap();
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_threads_move_one_by_one() {
    let sub = Subtree(unique());
    let m = v1(&sub, "vcpus", &["cpu"]);
    m.create(&[]).unwrap();
    // A real multi-threaded process: this test binary's own extra threads would work too, but
    // a child keeps the test process where it is.
    let child = Proc(
        Command::new("node")
            .args(["-e", "const {Worker}=require('worker_threads');for(let i=0;i<2;i++)new Worker('setInterval(()=>{},1000)',{eval:true});setInterval(()=>{},1000)"])
            .spawn()
            .expect("spawn node"),
    );
    let pid = child.0.id();
    let task_dir = PathBuf::from(format!("/proc/{pid}/task"));
    let mut tids: Vec<u32> = Vec::new();
    for _ in 0..200 {
        tids = std::fs::read_dir(&task_dir)
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        if tids.len() > 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tids.sort_unstable();
    let moved: Vec<u32> = tids.iter().copied().filter(|t| *t != pid).take(2).collect();
    for tid in &moved {
        m.add_thread(*tid).unwrap();
    }
    let tasks = PathBuf::from(ROOT)
        .join("cpu")
        .join(&sub.0)
        .join("vcpus/tasks");
    let mut inside = ids(&tasks);
    inside.sort_unstable();
    assert_eq!(inside, moved, "only the moved threads are in tasks");
    // cgroup.procs lists the process once some thread of it is inside.
    assert_eq!(m.procs().unwrap(), vec![pid]);
    m.delete().unwrap();
    let root_tasks = ids(&PathBuf::from(ROOT).join("cpu/tasks"));
    assert!(
        moved.iter().all(|t| root_tasks.contains(t)),
        "delete moved whole thread group to the root"
    );
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_missing_controller_and_bad_paths_are_named() {
    let sub = Subtree(unique());
    let m = v1(&sub, "x", &["cpu"]);
    let err = m
        .set_resources(&Resources {
            memory_limit_bytes: Some(1 << 20),
            ..Resources::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
    let err = FsV1Manager::new(Path::new(ROOT), "../etc", None).unwrap_err();
    assert!(matches!(err, FsError::InvalidPath { .. }), "{err}");
    let err = m.add_process(1).unwrap_err();
    assert!(
        err.to_string().contains("cgroup.procs"),
        "names the file: {err}"
    );
}

/// This host's cgroup2 hierarchy offers only hugetlb: no cpu, cpuset, memory or pids controller,
/// so v2 limits cannot be written here; create / move / delete / cgroup.type can.
#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v2_create_move_delete_on_the_unified_hierarchy() {
    let unified = PathBuf::from(ROOT).join("unified");
    let sub = Subtree(unique());
    let m = FsV2Manager::new(&unified, &format!("{}/sandbox", sub.0)).unwrap();
    let p = sleeper();
    m.create(&[p.0.id()]).unwrap();
    assert_eq!(
        crate::files::read(&m.dir().join("cgroup.type")).unwrap(),
        "domain"
    );
    assert_eq!(m.procs().unwrap(), vec![p.0.id()]);
    let err = m
        .set_resources(&Resources {
            cpu_quota_us: Some(1000),
            ..Resources::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("controller cpu"), "{err}");
    m.delete().unwrap();
    assert!(!m.dir().exists());
    assert!(ids(&unified.join("cgroup.procs")).contains(&p.0.id()));
    m.delete().unwrap();
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v2_add_thread_moves_the_whole_process() {
    let unified = PathBuf::from(ROOT).join("unified");
    let sub = Subtree(unique());
    let m = FsV2Manager::new(&unified, &format!("{}/sandbox", sub.0)).unwrap();
    m.create(&[]).unwrap();
    let p = sleeper();
    m.add_thread(p.0.id()).unwrap();
    assert_eq!(m.procs().unwrap(), vec![p.0.id()]);
    m.delete().unwrap();
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_delete_removes_child_cgroups_depth_first() {
    let sub = Subtree(unique());
    let parent = v1(&sub, "pod", &["cpu", "memory"]);
    let child = v1(&sub, "pod/ctr/inner", &["cpu", "memory"]);
    let p = sleeper();
    parent.create(&[]).unwrap();
    child.create(&[p.0.id()]).unwrap();
    parent.delete().unwrap();
    for ctrl in ["cpu", "memory"] {
        assert!(
            !PathBuf::from(ROOT)
                .join(ctrl)
                .join(&sub.0)
                .join("pod")
                .exists(),
            "{ctrl}"
        );
        assert!(
            ids(&PathBuf::from(ROOT).join(ctrl).join("cgroup.procs")).contains(&p.0.id()),
            "{ctrl}"
        );
    }
}
