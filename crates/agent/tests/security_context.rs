// `--guest`: the container security context, terminals and the sandbox pid namespace, with the
// real binary as root in a private mount and uts namespace (see guest_support), asserted from
// inside the container process (`/proc/self/status`, `ulimit`, a denied syscall, `ps` by
// /proc). Sysctls are left to the booted-guest suite (__test__/guest/security-context.spec.ts):
// here the agent shares the host's network and ipc namespaces, so a written sysctl would change
// the host; only the refusal of a non-namespaced one is checked.
// The harness is shared with guest_mode.rs; this suite uses part of it.
#[allow(dead_code)]
mod guest_support;

use std::os::unix::fs::symlink;

use guest_support::protocols::agent_ttrpc::AgentServiceClient;
use guest_support::protocols::{agent, oci};
use guest_support::*;

const MORE_APPLETS: &[&str] = &["mkdir", "tr", "tty", "stty", "ls"];

fn stage_more(a: &GuestAgent) {
    for applet in MORE_APPLETS {
        let p = a.path("/staging/rootfs/bin").join(applet);
        if !p.exists() {
            symlink("/bin/busybox", p).unwrap();
        }
    }
}

fn caps(b: &[&str], e: &[&str], p: &[&str], i: &[&str], amb: &[&str]) -> oci::LinuxCapabilities {
    let v = |s: &[&str]| s.iter().map(|x| (*x).to_string()).collect();
    oci::LinuxCapabilities {
        Bounding: v(b),
        Effective: v(e),
        Permitted: v(p),
        Inheritable: v(i),
        Ambient: v(amb),
        ..Default::default()
    }
}

fn rlimit(n: u64) -> oci::POSIXRlimit {
    oci::POSIXRlimit {
        Type: "RLIMIT_NOFILE".into(),
        Hard: n,
        Soft: n,
        ..Default::default()
    }
}

/// Default allow; mkdir/mkdirat → EPERM; kill(_, SIGUSR1) → EPERM.
fn profile() -> oci::LinuxSeccomp {
    let errno = |names: &[&str], args: Vec<oci::LinuxSeccompArg>| oci::LinuxSyscall {
        Names: names.iter().map(|s| (*s).to_string()).collect(),
        Action: "SCMP_ACT_ERRNO".into(),
        Args: args,
        ..Default::default()
    };
    oci::LinuxSeccomp {
        DefaultAction: "SCMP_ACT_ALLOW".into(),
        Syscalls: vec![
            errno(&["mkdir", "mkdirat"], vec![]),
            errno(
                &["kill"],
                vec![oci::LinuxSeccompArg {
                    Index: 1,
                    Value: 10,
                    Op: "SCMP_CMP_EQ".into(),
                    ..Default::default()
                }],
            ),
        ],
        ..Default::default()
    }
}

/// Stdout until it contains `end`; fails with what was read if that takes over 30 s.
async fn read_until(c: &AgentServiceClient, cid: &str, eid: &str, end: &str) -> String {
    let mut out = String::new();
    while !out.contains(end) {
        let req = agent::ReadStreamRequest {
            container_id: cid.into(),
            exec_id: eid.into(),
            len: 4096,
            ..Default::default()
        };
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            c.read_stdout(no_timeout(), &req),
        )
        .await
        .unwrap_or_else(|_| panic!("no {end:?} within 30 s: {out:?}"));
        let data = got.expect("read stdout").data;
        assert!(!data.is_empty(), "EOF before {end:?}: {out:?}");
        out.push_str(&String::from_utf8(data).unwrap());
    }
    out
}

fn status<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
}

const PROBE: &str = "grep -E '^(Cap[a-zA-Z]+|NoNewPrivs|Seccomp):' /proc/self/status; \
     echo nofile=$(ulimit -n); echo oom=$(cat /proc/self/oom_score_adj); \
     mkdir /tmp/made 2>&1 | grep -q 'not permitted' && echo mkdir=EPERM; \
     kill -USR1 $$ 2>&1 | grep -q 'not permitted' && echo usr1=EPERM; \
     kill -0 $$ && echo kill0=ok; id -u";

#[tokio::test]
async fn init_and_exec_get_capabilities_nnp_rlimits_oom_score_and_seccomp() {
    let a = GuestAgent::start(&[]);
    stage_more(&a);
    let c = a.client().await;
    create_sandbox(&c).await;
    let mut req = container("c", &["sh", "-c", &format!("{PROBE}; exec sleep 1000")], "");
    {
        let spec = req.OCI.as_mut().unwrap();
        let p = spec.Process.as_mut().unwrap();
        p.Capabilities = protobuf::MessageField::some(caps(
            &["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
            &["CAP_KILL"],
            &["CAP_KILL"],
            &[],
            &[],
        ));
        p.NoNewPrivileges = true;
        p.Rlimits = vec![rlimit(1234)];
        p.OOMScoreAdj = 123;
        spec.Linux.as_mut().unwrap().Seccomp = protobuf::MessageField::some(profile());
    }
    start(&c, &req).await;
    let out = read_until(&c, "c", "", "\n0\n").await;
    assert_eq!(status(&out, "CapBnd"), Some("0000000000002021"), "{out}");
    assert_eq!(status(&out, "CapEff"), Some("0000000000000020"), "{out}");
    assert_eq!(status(&out, "CapPrm"), Some("0000000000000020"), "{out}");
    assert_eq!(status(&out, "CapInh"), Some("0000000000000000"), "{out}");
    assert_eq!(status(&out, "CapAmb"), Some("0000000000000000"), "{out}");
    assert_eq!(status(&out, "NoNewPrivs"), Some("1"), "{out}");
    assert_eq!(status(&out, "Seccomp"), Some("2"), "{out}");
    for line in [
        "nofile=1234",
        "oom=123",
        "mkdir=EPERM",
        "usr1=EPERM",
        "kill0=ok",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} in {out}");
    }

    // An exec as uid 1000 keeps CAP_KILL in every set through the uid change (keepcaps +
    // ambient), gets its own rlimit and the container's seccomp profile.
    let mut p = process(&["sh", "-c", PROBE]);
    p.User = protobuf::MessageField::some(oci::User {
        UID: 1000,
        GID: 1000,
        ..Default::default()
    });
    let k = ["CAP_KILL"];
    p.Capabilities = protobuf::MessageField::some(caps(&k, &k, &k, &k, &k));
    p.Rlimits = vec![rlimit(777)];
    let exec = agent::ExecProcessRequest {
        container_id: "c".into(),
        exec_id: "u".into(),
        process: protobuf::MessageField::some(p),
        ..Default::default()
    };
    c.exec_process(ctx(), &exec).await.expect("ExecProcess");
    let out = read_all(&c, "c", "u", false).await;
    for set in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(status(&out, set), Some("0000000000000020"), "{set}: {out}");
    }
    assert_eq!(status(&out, "NoNewPrivs"), Some("0"), "{out}");
    assert_eq!(
        status(&out, "Seccomp"),
        Some("2"),
        "exec gets the profile: {out}"
    );
    for line in ["nofile=777", "mkdir=EPERM", "1000"] {
        assert!(out.lines().any(|l| l == line), "{line} in {out}");
    }
    assert_eq!(wait(&c, "c", "u").await, 0);
}

#[tokio::test]
async fn a_process_without_capabilities_keeps_roots_like_runc() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(
        &c,
        &container("c", &["grep", "CapBnd", "/proc/self/status"], ""),
    )
    .await;
    let out = read_all(&c, "c", "", false).await;
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(status(&out, "CapBnd"), status(&own, "CapBnd"), "{out}");
}

#[tokio::test]
async fn sysctls_the_guest_must_not_change_are_refused_at_create_naming_them() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    for (key, why) in [
        ("vm.swappiness", "not namespaced"),
        ("kernel.shm_rmid_forced", "needs an ipc namespace"),
    ] {
        let mut req = container("c", &["sh"], "");
        let linux = req.OCI.as_mut().unwrap().Linux.as_mut().unwrap();
        linux.Sysctl.insert(key.into(), "1".into());
        let (code, msg) = rpc_status(c.create_container(ctx(), &req).await.unwrap_err());
        assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT, "{msg}");
        assert!(msg.contains(key) && msg.contains(why), "{msg}");
    }
    let mut req = container("c", &["sh"], "");
    let linux = req.OCI.as_mut().unwrap().Linux.as_mut().unwrap();
    let mut p = profile();
    p.DefaultAction = "SCMP_ACT_NOTIFY".into();
    linux.Seccomp = protobuf::MessageField::some(p);
    let (code, msg) = rpc_status(c.create_container(ctx(), &req).await.unwrap_err());
    assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT, "{msg}");
    assert!(msg.contains("SCMP_ACT_NOTIFY"), "{msg}");
}

fn with_devpts(mut req: agent::CreateContainerRequest) -> agent::CreateContainerRequest {
    req.OCI.as_mut().unwrap().Mounts.push(mount(
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ],
    ));
    req
}

#[tokio::test]
async fn a_terminal_exec_gets_the_containers_pty_its_size_and_stdin() {
    let a = GuestAgent::start(&[]);
    stage_more(&a);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(&c, &with_devpts(container("c", &["sleep", "1000"], ""))).await;

    // No terminal: TtyWinResize has nothing to resize.
    let resize = |eid: &str, row, column| agent::TtyWinResizeRequest {
        container_id: "c".into(),
        exec_id: eid.into(),
        row,
        column,
        ..Default::default()
    };
    let (code, msg) = rpc_status(
        c.tty_win_resize(ctx(), &resize("", 1, 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, ttrpc::Code::FAILED_PRECONDITION, "{msg}");

    let mut p = process(&["sh", "-c", "tty; stty size; read l; stty size; echo l=$l"]);
    p.Terminal = true;
    p.ConsoleSize = protobuf::MessageField::some(oci::Box {
        Height: 20,
        Width: 60,
        ..Default::default()
    });
    let exec = agent::ExecProcessRequest {
        container_id: "c".into(),
        exec_id: "t".into(),
        process: protobuf::MessageField::some(p),
        ..Default::default()
    };
    c.exec_process(ctx(), &exec).await.expect("ExecProcess");
    let first = read_lines(&c, "c", "t", 2).await;
    c.tty_win_resize(ctx(), &resize("t", 33, 77))
        .await
        .expect("TtyWinResize");
    let write = agent::WriteStreamRequest {
        container_id: "c".into(),
        exec_id: "t".into(),
        data: b"go\n".to_vec(),
        ..Default::default()
    };
    c.write_stdin(ctx(), &write).await.expect("WriteStdin");
    let rest = read_all(&c, "c", "t", false).await;
    let lines: Vec<&str> = first
        .lines()
        .chain(rest.lines())
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    assert!(
        lines[0].starts_with("/dev/pts/") && lines[0]["/dev/pts/".len()..].parse::<u32>().is_ok(),
        "{lines:?}"
    );
    assert_eq!(lines[1], "20 60", "{lines:?}");
    assert!(lines.contains(&"go"), "the terminal echoes: {lines:?}");
    assert!(lines.contains(&"33 77"), "{lines:?}");
    assert!(lines.contains(&"l=go"), "{lines:?}");
    assert_eq!(read_all(&c, "c", "t", true).await, "", "stderr is empty");
    assert_eq!(wait(&c, "c", "t").await, 0);
}

#[tokio::test]
async fn a_terminal_without_devpts_in_the_container_is_a_named_start_error() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    let mut req = container("c", &["sh"], "");
    req.OCI.as_mut().unwrap().Process.as_mut().unwrap().Terminal = true;
    c.create_container(ctx(), &req)
        .await
        .expect("CreateContainer");
    let s = agent::StartContainerRequest {
        container_id: "c".into(),
        ..Default::default()
    };
    let (_, msg) = rpc_status(c.start_container(ctx(), &s).await.unwrap_err());
    assert!(msg.contains("/dev/ptmx"), "{msg}");
}

#[tokio::test]
async fn sandbox_pidns_containers_see_the_first_containers_processes() {
    let a = GuestAgent::start(&[]);
    let c = a.client().await;
    create_sandbox(&c).await;
    start(&c, &container("pause", &["sleep", "1001"], "")).await;
    let list = "for p in /proc/[0-9]*; do echo $(cat $p/cmdline | tr '\\0' ' '); done";
    let mut shared = container("shared", &["sh", "-c", list], "");
    shared.sandbox_pidns = true;
    stage_more(&a);
    start(&c, &shared).await;
    let out = read_all(&c, "shared", "", false).await;
    assert!(out.lines().any(|l| l.trim() == "sleep 1001"), "{out}");
    start(&c, &container("own", &["sh", "-c", list], "")).await;
    let out = read_all(&c, "own", "", false).await;
    assert!(!out.contains("sleep 1001"), "{out}");
}
