// Harness for tests/guest_mode.rs: the agent under test in a private mount and uts namespace,
// request builders and stream helpers, and loop-device disks standing in for hot-plugged ones.
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

// The generated messages, as the binary builds them (src/protocols.rs carries the lint allowances).
#[path = "../../src/protocols.rs"]
pub mod protocols;

use protocols::agent::{self, Storage};
use protocols::agent_ttrpc::AgentServiceClient;
use protocols::oci;

pub const BUSYBOX: &str = "/bin/busybox";
pub const APPLETS: &[&str] = &[
    "sh", "cat", "wc", "echo", "sleep", "hostname", "ls", "id", "grep", "pwd", "env",
];
pub const SHM: &str = "/run/kata-containers/sandbox/shm";
pub const CFG: &str = "/run/kata-containers/shared/containers/cfg";

pub static NEXT: AtomicU32 = AtomicU32::new(0);

/// The agent under test, its root dir and socket; stopped and removed on drop.
pub struct GuestAgent {
    pub child: Child,
    pub root: PathBuf,
    sock: PathBuf,
}

impl GuestAgent {
    pub fn start(extra: &[&str]) -> GuestAgent {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("kata-ts-agent-guest-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let sock = root.with_extension("sock");
        // KATA_TS_AGENT_BIN runs these tests against another build (e.g. the static one).
        let bin = std::env::var("KATA_TS_AGENT_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kata-ts-agent").to_string());
        let child = Command::new("unshare")
            .args([
                "-m",
                "-u",
                "--propagation",
                "private",
                &bin,
                "--guest",
                "--root",
            ])
            .arg(&root)
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(extra)
            .spawn()
            .expect("start unshare + agent (needs root and util-linux)");
        let agent = GuestAgent { child, root, sock };
        agent.stage_rootfs();
        agent.stage_config();
        agent
    }

    pub fn path(&self, guest: &str) -> PathBuf {
        self.root.join(guest.trim_start_matches('/'))
    }

    /// `/staging/rootfs` under the root: busybox-static and its applets as absolute symlinks.
    pub fn stage_rootfs(&self) {
        let r = self.path("/staging/rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::write(r.join("etc/secret"), "masked by the spec").unwrap();
        fs::copy(BUSYBOX, r.join("bin/busybox"))
            .expect("busybox-static (apt-get install busybox-static)");
        for a in APPLETS {
            symlink("/bin/busybox", r.join("bin").join(a)).unwrap();
        }
    }

    /// A configmap-like directory where CopyFile would have put it.
    pub fn stage_config(&self) {
        let d = self.path(CFG);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("key"), "value from configmap\n").unwrap();
    }

    pub fn mountinfo(&self) -> String {
        fs::read_to_string(format!("/proc/{}/mountinfo", self.child.id())).unwrap()
    }

    pub fn mounted(&self, guest: &str) -> bool {
        let p = self.path(guest);
        let p = p.to_string_lossy();
        self.mountinfo()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(&p))
    }

    pub async fn client(&self) -> AgentServiceClient {
        let start = Instant::now();
        loop {
            if let Ok(c) =
                ttrpc::r#async::Client::connect(&format!("unix://{}", self.sock.display())).await
            {
                return AgentServiceClient::new(c);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "agent did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for GuestAgent {
    fn drop(&mut self) {
        // SIGTERM makes a guest-mode agent kill its containers and unmount before exiting.
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.root);
        let _ = fs::remove_file(&self.sock);
    }
}

pub fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(30_000_000_000)
}

pub fn no_timeout() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(0)
}

pub fn storage(
    driver: &str,
    source: &str,
    fstype: &str,
    options: &[&str],
    mount_point: &str,
) -> Storage {
    Storage {
        driver: driver.into(),
        source: source.into(),
        fstype: fstype.into(),
        options: options.iter().map(|o| (*o).to_string()).collect(),
        mount_point: mount_point.into(),
        ..Default::default()
    }
}

pub fn mount(destination: &str, type_: &str, source: &str, options: &[&str]) -> oci::Mount {
    oci::Mount {
        destination: destination.into(),
        type_: type_.into(),
        source: source.into(),
        options: options.iter().map(|o| (*o).to_string()).collect(),
        ..Default::default()
    }
}

pub fn process(args: &[&str]) -> oci::Process {
    oci::Process {
        Args: args.iter().map(|a| (*a).to_string()).collect(),
        Env: vec!["PATH=/usr/bin:/bin".into(), "HOME=/".into()],
        Cwd: "/".into(),
        ..Default::default()
    }
}

/// A container whose rootfs is the staged busybox tree, bind-mounted by a storage.
pub fn container(cid: &str, args: &[&str], hostname: &str) -> agent::CreateContainerRequest {
    let rootfs = format!("/run/kata-containers/{cid}/rootfs");
    let spec = oci::Spec {
        Process: protobuf::MessageField::some(process(args)),
        Root: protobuf::MessageField::some(oci::Root {
            Path: rootfs.clone(),
            ..Default::default()
        }),
        Hostname: hostname.into(),
        Mounts: vec![
            mount("/proc", "proc", "proc", &[]),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
            mount("/dev/shm", "bind", SHM, &["rbind"]),
            mount("/etc/cfg", "bind", CFG, &["rbind", "ro"]),
            mount(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
            ),
        ],
        Linux: protobuf::MessageField::some(oci::Linux {
            MaskedPaths: vec![
                "/etc/secret".into(),
                "/sys/firmware".into(),
                "/no/such".into(),
            ],
            ReadonlyPaths: vec!["/proc/sys".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    agent::CreateContainerRequest {
        container_id: cid.into(),
        storages: vec![storage(
            "bind",
            "/staging/rootfs",
            "bind",
            &["rbind"],
            &rootfs,
        )],
        OCI: protobuf::MessageField::some(spec),
        ..Default::default()
    }
}

pub async fn create_sandbox(c: &AgentServiceClient) {
    let req = agent::CreateSandboxRequest {
        hostname: "guest-test".into(),
        sandbox_id: "sb".into(),
        storages: vec![
            storage(
                "ephemeral",
                "shm",
                "tmpfs",
                &["noexec", "nosuid", "nodev", "mode=1777", "size=1048576"],
                SHM,
            ),
            storage(
                "local",
                "",
                "",
                &["mode=0777"],
                "/run/kata-containers/sandbox/local/vol",
            ),
        ],
        ..Default::default()
    };
    c.create_sandbox(ctx(), &req).await.expect("CreateSandbox");
}

pub async fn start(c: &AgentServiceClient, req: &agent::CreateContainerRequest) {
    c.create_container(ctx(), req)
        .await
        .expect("CreateContainer");
    let start = agent::StartContainerRequest {
        container_id: req.container_id.clone(),
        ..Default::default()
    };
    c.start_container(ctx(), &start)
        .await
        .expect("StartContainer");
}

/// Everything on a stream until EOF.
pub async fn read_all(c: &AgentServiceClient, cid: &str, eid: &str, stderr: bool) -> String {
    let mut out = Vec::new();
    loop {
        let req = agent::ReadStreamRequest {
            container_id: cid.into(),
            exec_id: eid.into(),
            len: 4096,
            ..Default::default()
        };
        let got = if stderr {
            c.read_stderr(no_timeout(), &req).await
        } else {
            c.read_stdout(no_timeout(), &req).await
        };
        let data = got.expect("read stream").data;
        if data.is_empty() {
            return String::from_utf8(out).unwrap();
        }
        out.extend(data);
    }
}

/// Stdout until it contains `lines` newlines (the process keeps running).
pub async fn read_lines(c: &AgentServiceClient, cid: &str, eid: &str, lines: usize) -> String {
    let mut out = String::new();
    while out.matches('\n').count() < lines {
        let req = agent::ReadStreamRequest {
            container_id: cid.into(),
            exec_id: eid.into(),
            len: 4096,
            ..Default::default()
        };
        let data = c
            .read_stdout(no_timeout(), &req)
            .await
            .expect("read stdout")
            .data;
        assert!(!data.is_empty(), "EOF after {out:?}");
        out.push_str(&String::from_utf8(data).unwrap());
    }
    out
}

pub async fn wait(c: &AgentServiceClient, cid: &str, eid: &str) -> i32 {
    let req = agent::WaitProcessRequest {
        container_id: cid.into(),
        exec_id: eid.into(),
        ..Default::default()
    };
    c.wait_process(no_timeout(), &req)
        .await
        .expect("WaitProcess")
        .status
}

pub fn rpc_status(e: ttrpc::Error) -> (ttrpc::Code, String) {
    match e {
        ttrpc::Error::RpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("not a status: {other:?}"),
    }
}

/// A loop device over an ext4 image; detached and removed on drop.
pub struct LoopImage {
    image: PathBuf,
    device: String,
}

impl LoopImage {
    /// An ext4 image holding `dir`, attached to a free loop device.
    pub fn new(dir: &Path, image: PathBuf) -> LoopImage {
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(dir)
            .arg(&image)
            .arg("16M")
            .status()
            .expect("mkfs.ext4 (e2fsprogs)");
        assert!(ok.success(), "mkfs.ext4 -d failed");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = String::from_utf8(out.stdout).unwrap().trim().to_string();
        LoopImage { image, device }
    }

    /// A block node for the loop device at `node` (the guest's /dev/<name> under --root).
    pub fn node_at(&self, node: &Path) {
        use std::os::unix::fs::MetadataExt;
        let rdev = fs::metadata(&self.device).unwrap().rdev();
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
        nix::sys::stat::mknod(node, nix::sys::stat::SFlag::S_IFBLK, mode, rdev).unwrap();
    }
}

impl Drop for LoopImage {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = fs::remove_file(&self.image);
    }
}

/// Makes a fake sysfs entry appear after `delay`, as a hot-plugged disk would.
pub fn plug_later(dir: PathBuf, delay: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        fs::create_dir_all(dir).unwrap();
    })
}
