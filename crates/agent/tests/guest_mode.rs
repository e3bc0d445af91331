// `--guest`: the agent really mounts storages and runs container processes. Each test starts
// the real binary as root inside a private mount and uts namespace
// (`unshare -m -u --propagation private`), so nothing it mounts or the hostname it sets leaks
// into the host, and drives it over ttrpc with ttrpc-rust's client. The guest filesystem is a
// temp dir given as `--root`; a container's rootfs holds busybox-static.
mod guest_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use guest_support::protocols::{agent, oci};
use guest_support::*;

#[tokio::test]
async fn sandbox_storages_are_mounted_with_their_options_and_destroy_unmounts_them() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let shm = a.path(SHM).to_string_lossy().into_owned();
    let line = a
        .mountinfo()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&shm))
        .map(str::to_string);
    let line = line.expect("shm tmpfs mounted");
    assert!(
        line.contains("tmpfs") && line.contains("size=1024k") && line.contains("noexec"),
        "{line}"
    );
    let local = fs::metadata(a.path("/run/kata-containers/sandbox/local/vol")).unwrap();
    assert_eq!(local.permissions().mode() & 0o777, 0o777);

    c.destroy_sandbox(ctx(), &agent::DestroySandboxRequest::new())
        .await
        .expect("DestroySandbox");
    assert!(!a.mounted(SHM), "shm still mounted");
    assert!(
        !a.path("/run/kata-containers/sandbox/local/vol").exists(),
        "local dir left behind"
    );
}

#[tokio::test]
async fn container_reads_a_bind_mounted_config_and_reports_output_and_exit_status() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;

    start(&c, &container("c1", &["cat", "/etc/cfg/key"], "")).await;
    assert_eq!(
        read_all(&c, "c1", "", false).await,
        "value from configmap\n"
    );
    assert_eq!(wait(&c, "c1", "").await, 0);

    start(
        &c,
        &container("c2", &["sh", "-c", "echo out; echo err >&2; exit 3"], ""),
    )
    .await;
    assert_eq!(read_all(&c, "c2", "", false).await, "out\n");
    assert_eq!(read_all(&c, "c2", "", true).await, "err\n");
    assert_eq!(wait(&c, "c2", "").await, 3);

    assert!(a.mounted("/run/kata-containers/c1/rootfs"));
    let rm = agent::RemoveContainerRequest {
        container_id: "c1".into(),
        ..Default::default()
    };
    c.remove_container(ctx(), &rm)
        .await
        .expect("RemoveContainer");
    assert!(
        !a.mounted("/run/kata-containers/c1/rootfs"),
        "rootfs storage still mounted"
    );
    assert!(
        !a.path("/run/kata-containers/c1").exists(),
        "mount point left behind"
    );
    assert!(
        a.mounted("/run/kata-containers/c2/rootfs"),
        "other container untouched"
    );
    assert!(
        !a.mountinfo().contains("/etc/cfg"),
        "container mounts leaked into the agent's namespace"
    );
}

#[tokio::test]
async fn init_is_pid_1_with_its_hostname_exec_joins_it_and_sigkill_gives_137() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(
        &c,
        &container(
            "c",
            &["sh", "-c", "echo $$; hostname; exec sleep 1000"],
            "ctr-host",
        ),
    )
    .await;
    assert_eq!(read_lines(&c, "c", "", 2).await, "1\nctr-host\n");

    let exec = agent::ExecProcessRequest {
        container_id: "c".into(),
        exec_id: "e".into(),
        process: protobuf::MessageField::some(process(&[
            "sh",
            "-c",
            "hostname; cat /etc/cfg/key; ls /proc | grep -c '^[0-9]'",
        ])),
        ..Default::default()
    };
    c.exec_process(ctx(), &exec).await.expect("ExecProcess");
    // The exec sees the container's hostname, mounts and pid namespace (sleep, sh, ls, grep…).
    let out = read_all(&c, "c", "e", false).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["ctr-host", "value from configmap"], "{out}");
    assert!(lines[2].parse::<u32>().unwrap() < 10, "{out}");
    assert_eq!(wait(&c, "c", "e").await, 0);

    let sig = agent::SignalProcessRequest {
        container_id: "c".into(),
        signal: 9,
        ..Default::default()
    };
    c.signal_process(ctx(), &sig).await.expect("SignalProcess");
    assert_eq!(wait(&c, "c", "").await, 137);
}

#[tokio::test]
async fn sigterm_to_an_init_without_a_handler_kills_it() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(&c, &container("c", &["sleep", "1000"], "")).await;
    let sig = agent::SignalProcessRequest {
        container_id: "c".into(),
        signal: 15,
        ..Default::default()
    };
    c.signal_process(ctx(), &sig).await.expect("SignalProcess");
    assert_eq!(
        wait(&c, "c", "").await,
        137,
        "SIGTERM became SIGKILL, as in the Kata agent"
    );
}

#[tokio::test]
async fn stdin_reaches_the_process_and_close_gives_it_eof() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(&c, &container("c", &["cat"], "")).await;
    let w = agent::WriteStreamRequest {
        container_id: "c".into(),
        data: b"hello\n".to_vec(),
        ..Default::default()
    };
    assert_eq!(c.write_stdin(ctx(), &w).await.expect("WriteStdin").len, 6);
    let close = agent::CloseStdinRequest {
        container_id: "c".into(),
        ..Default::default()
    };
    c.close_stdin(ctx(), &close).await.expect("CloseStdin");
    assert_eq!(read_all(&c, "c", "", false).await, "hello\n");
    assert_eq!(wait(&c, "c", "").await, 0);
}

#[tokio::test]
async fn an_unknown_executable_is_refused_naming_it() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let err = c
        .create_container(ctx(), &container("c", &["no-such-tool", "x"], ""))
        .await
        .unwrap_err();
    let (code, msg) = rpc_status(err);
    assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT);
    assert_eq!(
        msg,
        "exec: \"no-such-tool\": executable file not found in $PATH"
    );
    assert!(
        !a.mounted("/run/kata-containers/c/rootfs"),
        "storages of a failed create are undone"
    );
}

#[tokio::test]
async fn a_blk_device_that_never_appears_times_out_naming_the_storage() {
    let a = GuestAgent::start(&["--device-timeout-ms", "200"]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let mut req = container("c", &["sh"], "");
    req.storages = vec![storage(
        "blk",
        "02/00",
        "ext4",
        &["ro"],
        "/run/kata-containers/c/rootfs",
    )];
    let started = Instant::now();
    let (code, msg) = rpc_status(c.create_container(ctx(), &req).await.unwrap_err());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(code, ttrpc::Code::NOT_FOUND);
    assert!(
        msg.contains("driver \"blk\"")
            && msg.contains("source \"02/00\"")
            && msg.contains("\"/run/kata-containers/c/rootfs\""),
        "{msg}"
    );
    assert!(msg.contains("200 ms"), "{msg}");
}

#[tokio::test]
async fn the_process_gets_exactly_its_env_cwd_and_credentials() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let mut req = container(
        "c",
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; pwd; ulimit -n; env | grep -v '^PWD=' | grep -v '^SHLVL=' | sort",
        ],
        "",
    );
    let p = req
        .OCI
        .mut_or_insert_default()
        .Process
        .mut_or_insert_default();
    p.Cwd = "/tmp".into();
    p.Rlimits = vec![oci::POSIXRlimit {
        Type: "RLIMIT_NOFILE".into(),
        Hard: 512,
        Soft: 256,
        ..Default::default()
    }];
    p.User = protobuf::MessageField::some(oci::User {
        UID: 1000,
        GID: 1001,
        AdditionalGids: vec![10, 20],
        ..Default::default()
    });
    start(&c, &req).await;
    let out = read_all(&c, "c", "", false).await;
    assert_eq!(
        out, "1000\n1001\n1001 10 20\n/tmp\n256\nHOME=/\nPATH=/usr/bin:/bin\n",
        "{out}"
    );
    assert_eq!(wait(&c, "c", "").await, 0);
}

#[tokio::test]
async fn a_failing_start_names_the_container_and_what_failed() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let mut req = container("c", &["sh"], "");
    req.OCI
        .mut_or_insert_default()
        .Process
        .mut_or_insert_default()
        .Cwd = "/no/such/dir".into();
    c.create_container(ctx(), &req)
        .await
        .expect("CreateContainer");
    let start = agent::StartContainerRequest {
        container_id: "c".into(),
        ..Default::default()
    };
    let (code, msg) = rpc_status(c.start_container(ctx(), &start).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::INTERNAL);
    assert!(
        msg.contains("container c") && msg.contains("chdir to cwd \"/no/such/dir\""),
        "{msg}"
    );
    assert_eq!(read_all(&c, "c", "", false).await, "", "streams end");
}

#[tokio::test]
async fn destroy_sandbox_kills_running_containers_and_unmounts_everything() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(&c, &container("c", &["sleep", "1000"], "")).await;
    let root = a.root.to_string_lossy().into_owned();
    assert!(a.mountinfo().contains(&root));
    c.destroy_sandbox(ctx(), &agent::DestroySandboxRequest::new())
        .await
        .expect("DestroySandbox");
    assert!(!a.mountinfo().contains(&root), "{}", a.mountinfo());
    let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", a.child.id()))
        .unwrap_or_default();
    assert_eq!(children.trim(), "", "container processes left");
}

#[tokio::test]
async fn masked_paths_are_empty_and_readonly_paths_refuse_writes() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let script = "wc -c < /etc/secret; ls /sys/firmware | wc -l; \
                  (echo x > /proc/sys/kernel/domainname) 2>/dev/null || echo read-only";
    start(&c, &container("c", &["sh", "-c", script], "")).await;
    let err = read_all(&c, "c", "", true).await;
    assert_eq!(
        read_all(&c, "c", "", false).await,
        "0\n0\nread-only\n",
        "stderr: {err}"
    );
    assert_eq!(wait(&c, "c", "").await, 0);
}

#[tokio::test]
async fn hot_plugged_blk_and_scsi_disks_are_waited_for_and_mounted_as_the_rootfs() {
    let a = GuestAgent::start(&[]);
    fs::write(
        a.path("/staging/rootfs/etc/marker"),
        "from the ext4 image\n",
    )
    .unwrap();
    let img = LoopImage::new(&a.path("/staging/rootfs"), a.root.with_extension("img"));
    fs::create_dir_all(a.path("/dev")).unwrap();
    img.node_at(&a.path("/dev/vdb"));
    img.node_at(&a.path("/dev/sdb"));
    let c = a.client().await;
    create_sandbox(&c).await;

    let pci = a.path("/sys/devices/pci0000:00/0000:00:02.0");
    fs::create_dir_all(pci.join("pci_bus/0000:01")).unwrap();
    let scsi = a.path("/sys/bus/scsi/devices/0:0:1:0/block/sdb");
    let cases = [
        ("blk", "02/00", pci.join("0000:01:00.0/virtio3/block/vdb")),
        ("scsi", "1:0", scsi),
    ];
    for (driver, source, sysfs) in cases {
        let cid = format!("c-{driver}");
        let rootfs = format!("/run/kata-containers/{cid}/rootfs");
        let mut req = container(&cid, &["cat", "/etc/marker", "/etc/cfg/key"], "");
        req.storages = vec![storage(driver, source, "ext4", &["nodev"], &rootfs)];
        let plug = plug_later(sysfs, Duration::from_millis(300));
        let started = Instant::now();
        start(&c, &req).await;
        plug.join().unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{driver}: did not wait"
        );
        assert_eq!(
            read_all(&c, &cid, "", false).await,
            "from the ext4 image\nvalue from configmap\n",
            "{driver}"
        );
        assert_eq!(wait(&c, &cid, "").await, 0);
        let info = a.mountinfo();
        let p = a.path(&rootfs).to_string_lossy().into_owned();
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(p.as_str()));
        let line = line.unwrap_or_else(|| panic!("{driver}: rootfs not mounted:\n{info}"));
        assert!(
            line.contains(" - ext4 ") && line.contains("nodev"),
            "{line}"
        );
        let rm = agent::RemoveContainerRequest {
            container_id: cid.clone(),
            ..Default::default()
        };
        c.remove_container(ctx(), &rm)
            .await
            .expect("RemoveContainer");
        assert!(!a.mounted(&rootfs), "{driver}: still mounted");
    }
}

#[tokio::test]
async fn a_readonly_root_refuses_writes_but_its_mounts_work() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let script = "(echo x > /x) 2>/dev/null || echo read-only; cat /etc/cfg/key";
    let mut req = container("c", &["sh", "-c", script], "");
    req.OCI
        .mut_or_insert_default()
        .Root
        .mut_or_insert_default()
        .Readonly = true;
    start(&c, &req).await;
    assert_eq!(
        read_all(&c, "c", "", false).await,
        "read-only\nvalue from configmap\n"
    );
    assert_eq!(wait(&c, "c", "").await, 0);
}

#[tokio::test]
async fn an_exec_of_an_unknown_executable_is_refused_and_forgotten() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(&c, &container("c", &["sleep", "1000"], "")).await;
    let exec = agent::ExecProcessRequest {
        container_id: "c".into(),
        exec_id: "e".into(),
        process: protobuf::MessageField::some(process(&["nope"])),
        ..Default::default()
    };
    let (code, msg) = rpc_status(c.exec_process(ctx(), &exec).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT);
    assert!(msg.contains("\"nope\": executable file not found"), "{msg}");
    let w = agent::WaitProcessRequest {
        container_id: "c".into(),
        exec_id: "e".into(),
        ..Default::default()
    };
    let (code, _) = rpc_status(c.wait_process(ctx(), &w).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::NOT_FOUND);
}

#[tokio::test]
async fn a_container_mount_that_fails_is_named_in_the_start_error() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let mut req = container("c", &["sh"], "");
    let spec = req.OCI.mut_or_insert_default();
    spec.Mounts.push(mount(
        "/etc/missing",
        "bind",
        "/run/kata-containers/shared/containers/not-copied",
        &["rbind"],
    ));
    c.create_container(ctx(), &req)
        .await
        .expect("CreateContainer");
    let start = agent::StartContainerRequest {
        container_id: "c".into(),
        ..Default::default()
    };
    let (code, msg) = rpc_status(c.start_container(ctx(), &start).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::INTERNAL);
    assert!(
        msg.contains("container mount \"/etc/missing\"") && msg.contains("not-copied"),
        "{msg}"
    );
}

#[tokio::test]
async fn online_cpu_mem_onlines_hot_added_vcpus_in_sysfs() {
    let a = GuestAgent::start(&[]);
    let cpus = a.path("/sys/devices/system/cpu");
    for n in 1..=2 {
        fs::create_dir_all(cpus.join(format!("cpu{n}"))).unwrap();
        fs::write(cpus.join(format!("cpu{n}/online")), "0").unwrap();
    }
    let c = a.client().await;
    let req = agent::OnlineCPUMemRequest {
        wait: true,
        nb_cpus: 2,
        cpu_only: true,
        ..Default::default()
    };
    c.online_cpu_mem(ctx(), &req).await.expect("OnlineCPUMem");
    for n in 1..=2 {
        let state = fs::read_to_string(cpus.join(format!("cpu{n}/online"))).unwrap();
        assert_eq!(state, "1", "cpu{n}");
    }
}

#[tokio::test]
async fn update_ephemeral_mounts_resizes_a_tmpfs() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let req = agent::UpdateEphemeralMountsRequest {
        storages: vec![storage(
            "ephemeral",
            "shm",
            "tmpfs",
            &["noexec", "nosuid", "nodev", "size=2097152"],
            SHM,
        )],
        ..Default::default()
    };
    c.update_ephemeral_mounts(ctx(), &req)
        .await
        .expect("UpdateEphemeralMounts");
    let shm = a.path(SHM).to_string_lossy().into_owned();
    let info = a.mountinfo();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(shm.as_str()))
        .expect("shm mounted");
    assert!(line.contains("size=2048k"), "{line}");
}

#[tokio::test]
async fn calls_the_guest_does_not_carry_out_answer_unimplemented_not_ok() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(&c, &container("c", &["sleep", "1000"], "")).await;
    let update = agent::UpdateContainerRequest {
        container_id: "c".into(),
        ..Default::default()
    };
    let results = [
        (
            "UpdateContainer",
            c.update_container(ctx(), &update).await.err(),
        ),
        (
            "SetPolicy",
            c.set_policy(ctx(), &agent::SetPolicyRequest::new())
                .await
                .err(),
        ),
    ];
    for (method, err) in results {
        let (code, msg) = rpc_status(err.unwrap_or_else(|| panic!("{method} answered OK")));
        assert_eq!(code, ttrpc::Code::UNIMPLEMENTED, "{method}: {msg}");
        assert!(msg.contains(method), "{msg}");
    }
    // Terminals and TtyWinResize: tests/security_context.rs.
}
