// `--guest` container cgroups on this host's real cgroup2 (the unified mount of its hybrid
// layout, bound at the agent's `<root>/sys/fs/cgroup` inside the agent's private mount
// namespace). That hierarchy offers no controllers, so what is checked here is what needs none:
// the container's processes (init and exec) join the container's cgroup (named by
// `linux.cgroupsPath`) before they run, StatsContainer reads it (cpu.stat's usage, the
// interfaces of /proc/net/dev), a limit the hierarchy cannot enforce is an error and not an OK,
// and RemoveContainer removes the cgroup and the parents it made (a cgroup shared by two
// containers, with the last of them). Limits, UpdateContainer and
// OOM kills are checked in the TCG guest, whose cgroup2 has every controller
// (__test__/guest/resources.spec.ts). Without a cgroup2 mount the agent answers UNIMPLEMENTED.
// Shared with guest_mode.rs; this suite uses part of it (no loop devices).
#[allow(dead_code)]
mod guest_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use guest_support::protocols::{agent, oci};
use guest_support::*;

const HOST_CGROUP2: &str = "/sys/fs/cgroup/unified";

/// A test subtree of the host's cgroup2, removed (deepest first) on drop.
struct Subtree(String);
impl Subtree {
    fn new() -> Subtree {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Subtree(format!("kata-ts-agent-res-{}-{n}", std::process::id()))
    }
    fn dir(&self) -> PathBuf {
        Path::new(HOST_CGROUP2).join(&self.0)
    }
}
impl Drop for Subtree {
    fn drop(&mut self) {
        fn remove(d: &Path) {
            if let Ok(entries) = std::fs::read_dir(d) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        remove(&e.path());
                    }
                }
            }
            if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for p in procs.lines() {
                    let _ = std::fs::write(Path::new(HOST_CGROUP2).join("cgroup.procs"), p);
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        remove(&self.dir());
    }
}

/// Binds the host's cgroup2 at `<root>/sys/fs/cgroup` in the agent's mount namespace (gone
/// with the agent).
fn give_cgroup2(a: &GuestAgent) {
    let target = a.path("/sys/fs/cgroup");
    std::fs::create_dir_all(&target).unwrap();
    let ok = Command::new("nsenter")
        .arg("-t")
        .arg(a.child.id().to_string())
        .args(["-m", "mount", "--bind", HOST_CGROUP2])
        .arg(&target)
        .status()
        .expect("nsenter (util-linux)")
        .success();
    assert!(ok, "bind {HOST_CGROUP2} in the agent's mount namespace");
}

fn with_cgroup(
    mut req: agent::CreateContainerRequest,
    path: &str,
) -> agent::CreateContainerRequest {
    req.OCI
        .mut_or_insert_default()
        .Linux
        .mut_or_insert_default()
        .CgroupsPath = path.into();
    req
}

fn memory_limit(bytes: i64) -> oci::LinuxResources {
    let mut r = oci::LinuxResources::new();
    r.Memory.mut_or_insert_default().Limit = bytes;
    r
}

fn stats_req(cid: &str) -> agent::StatsContainerRequest {
    agent::StatsContainerRequest {
        container_id: cid.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn container_processes_run_in_the_containers_cgroup_and_remove_deletes_it() {
    if !Path::new(HOST_CGROUP2).join("cgroup.procs").exists() {
        panic!("{HOST_CGROUP2}: no cgroup2 mount on this host");
    }
    let sub = Subtree::new();
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    give_cgroup2(&a);
    create_sandbox(&c).await;

    // systemd-style `slice:prefix:name` becomes nested directories, as in kata-agent.
    let path = format!("{}:pod:c1", sub.0);
    let req = with_cgroup(
        container(
            "c1",
            &["sh", "-c", "grep ^0:: /proc/self/cgroup; exec sleep 1000"],
            "",
        ),
        &path,
    );
    start(&c, &req).await;
    let want = format!("0::/{}/pod/c1\n", sub.0);
    assert_eq!(read_lines(&c, "c1", "", 1).await, want, "init's cgroup");
    let exec = agent::ExecProcessRequest {
        container_id: "c1".into(),
        exec_id: "e".into(),
        process: protobuf::MessageField::some(process(&["grep", "^0::", "/proc/self/cgroup"])),
        ..Default::default()
    };
    c.exec_process(ctx(), &exec).await.expect("ExecProcess");
    assert_eq!(read_all(&c, "c1", "e", false).await, want, "exec's cgroup");
    assert_eq!(wait(&c, "c1", "e").await, 0);
    let dir = sub.dir().join("pod/c1");
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(
        procs.lines().count(),
        1,
        "the init (sleep) alone: {procs:?}"
    );

    let stats = c
        .stats_container(ctx(), &stats_req("c1"))
        .await
        .expect("StatsContainer");
    let cpu = &stats.cgroup_stats.cpu_stats.cpu_usage;
    assert!(
        cpu.total_usage > 0,
        "cpu.stat usage of sh/cat/sleep: {cpu:?}"
    );
    assert!(cpu.total_usage >= cpu.usage_in_usermode, "{cpu:?}");
    let host_ifaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .filter(|n| n != "lo")
        .collect();
    let got: Vec<&str> = stats
        .network_stats
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(
        got, host_ifaces,
        "the agent's interfaces, loopback left out"
    );

    // This hierarchy has no memory controller: the limit cannot be applied, so it is an error.
    let update = agent::UpdateContainerRequest {
        container_id: "c1".into(),
        resources: protobuf::MessageField::some(memory_limit(64 << 20)),
        ..Default::default()
    };
    let (code, msg) = rpc_status(c.update_container(ctx(), &update).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::INTERNAL, "{msg}");
    assert!(msg.contains("controller memory is not available"), "{msg}");

    let rm = agent::RemoveContainerRequest {
        container_id: "c1".into(),
        ..Default::default()
    };
    c.remove_container(ctx(), &rm)
        .await
        .expect("RemoveContainer");
    assert!(
        !sub.dir().exists(),
        "the cgroup and the parents it made are removed"
    );

    // Containers naming the same cgroupsPath share it (as in kata-agent): it goes with the last.
    let shared = format!("/{}/shared", sub.0);
    for cid in ["s1", "s2"] {
        start(
            &c,
            &with_cgroup(container(cid, &["sleep", "1000"], ""), &shared),
        )
        .await;
    }
    let dir = sub.dir().join("shared");
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(procs.lines().count(), 2, "both inits: {procs:?}");
    for (cid, left) in [("s1", true), ("s2", false)] {
        let rm = agent::RemoveContainerRequest {
            container_id: cid.into(),
            ..Default::default()
        };
        c.remove_container(ctx(), &rm)
            .await
            .expect("RemoveContainer");
        assert_eq!(dir.exists(), left, "after removing {cid}");
    }

    // A limit at create that cannot be enforced refuses the container and leaves nothing.
    let mut req = with_cgroup(
        container("c2", &["sh", "-c", "exit 0"], ""),
        &format!("/{}/c2", sub.0),
    );
    req.OCI
        .mut_or_insert_default()
        .Linux
        .mut_or_insert_default()
        .Resources = protobuf::MessageField::some(memory_limit(64 << 20));
    let (code, msg) = rpc_status(c.create_container(ctx(), &req).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::INTERNAL, "{msg}");
    assert!(!sub.dir().exists(), "no cgroup left by the refused create");
    assert!(
        !a.mounted("/run/kata-containers/c2/rootfs"),
        "rootfs unmounted"
    );

    // A cgroupsPath escaping the hierarchy is refused by name.
    let req = with_cgroup(container("c3", &["sh", "-c", "exit 0"], ""), "/a/../../etc");
    let (code, msg) = rpc_status(c.create_container(ctx(), &req).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT, "{msg}");
    assert!(msg.contains("linux.cgroupsPath"), "{msg}");
}

#[tokio::test]
async fn without_a_cgroup2_mount_limits_update_and_stats_are_unimplemented() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let mut req = container("c1", &["sh", "-c", "exit 0"], "");
    req.OCI
        .mut_or_insert_default()
        .Linux
        .mut_or_insert_default()
        .Resources = protobuf::MessageField::some(memory_limit(64 << 20));
    let (code, msg) = rpc_status(c.create_container(ctx(), &req).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::UNIMPLEMENTED, "{msg}");
    assert!(msg.contains("without a cgroup2 mount"), "{msg}");

    start(&c, &container("c2", &["sleep", "1000"], "")).await;
    let update = agent::UpdateContainerRequest {
        container_id: "c2".into(),
        resources: protobuf::MessageField::some(memory_limit(64 << 20)),
        ..Default::default()
    };
    let (code, msg) = rpc_status(c.update_container(ctx(), &update).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::UNIMPLEMENTED, "{msg}");
    let (code, msg) = rpc_status(
        c.stats_container(ctx(), &stats_req("c2"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, ttrpc::Code::UNIMPLEMENTED, "{msg}");
    let (code, _) = rpc_status(
        c.stats_container(ctx(), &stats_req("nope"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT, "unknown container");
}
