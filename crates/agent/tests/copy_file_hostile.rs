// CopyFile against a hostile guest share. The agent runs in its default (host-model) mode with a
// temp dir as `--root`; a sibling `outside` dir stands for everything beyond the root. Names
// below the root are planted directly on the filesystem, as a container writing into its rw
// volume would. Each test snapshots `outside` (names, types, modes, owners, contents, link
// targets; never following links) before and after, and the two must be equal.
#[allow(dead_code)]
#[path = "../src/protocols.rs"]
mod protocols;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocols::agent;
use protocols::agent_ttrpc::AgentServiceClient;

const BASE: &str = "/run/kata-containers/shared/containers/";
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The agent binary on a temp root, with `outside` next to the root; removed on drop.
struct HostAgent {
    child: Child,
    dir: PathBuf,
}

impl HostAgent {
    fn start(extra: &[&str]) -> HostAgent {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("kata-ts-agent-hostile-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("root")).unwrap();
        fs::create_dir_all(dir.join("outside/sub")).unwrap();
        fs::write(dir.join("outside/victim"), "original").unwrap();
        fs::set_permissions(
            dir.join("outside/victim"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs::set_permissions(dir.join("outside/sub"), fs::Permissions::from_mode(0o700)).unwrap();
        let bin = std::env::var("KATA_TS_AGENT_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kata-ts-agent").to_string());
        let child = Command::new(bin)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--listen")
            .arg(format!("unix:{}", dir.join("agent.sock").display()))
            .args(extra)
            .spawn()
            .expect("start the agent");
        HostAgent { child, dir }
    }

    fn outside(&self) -> PathBuf {
        self.dir.join("outside")
    }

    /// Where the agent puts the guest path `BASE` + `rel`.
    fn host(&self, rel: &str) -> PathBuf {
        self.dir
            .join("root")
            .join(BASE.trim_start_matches('/'))
            .join(rel)
    }

    async fn client(&self) -> AgentServiceClient {
        let start = Instant::now();
        let sock = format!("unix://{}", self.dir.join("agent.sock").display());
        loop {
            if let Ok(c) = ttrpc::r#async::Client::connect(&sock).await {
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

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Every entry below `root` with kind, mode, owner and content or link text.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let what = if m.file_type().is_symlink() {
            format!("link {:?}", fs::read_link(&p).unwrap())
        } else if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
            "dir".to_string()
        } else if m.is_file() {
            format!("file {:?}", fs::read(&p).unwrap())
        } else {
            "special".to_string()
        };
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        out.insert(
            rel,
            format!("{what} mode {:o} owner {}:{}", m.mode(), m.uid(), m.gid()),
        );
    }
    out
}

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(30_000_000_000)
}

fn req(
    rel: &str,
    file_mode: u32,
    data: &[u8],
    offset: i64,
    file_size: usize,
) -> agent::CopyFileRequest {
    agent::CopyFileRequest {
        path: format!("{BASE}{rel}"),
        file_size: i64::try_from(file_size).unwrap(),
        file_mode,
        dir_mode: 0o40755,
        uid: -1,
        gid: -1,
        offset,
        data: data.to_vec(),
        ..Default::default()
    }
}

fn link_req(rel: &str, target: &Path) -> agent::CopyFileRequest {
    let t = target.as_os_str().as_encoded_bytes();
    req(rel, 0o120_777, t, 0, t.len())
}

/// Names in the host dir of `rel` (temp files included).
fn names(a: &HostAgent, rel: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(a.host(rel))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn a_directory_over_a_copied_symlink_never_chmods_its_target() {
    let a = HostAgent::start(&[]);
    let c = a.client().await;
    let before = snapshot(&a.outside());
    c.copy_file(ctx(), &link_req("c1/fin2", &a.outside().join("victim")))
        .await
        .unwrap();
    c.copy_file(ctx(), &link_req("c1/d", &a.outside().join("sub")))
        .await
        .unwrap();
    // The host replaced both links with 0777 directories; whatever the answer, nothing outside moves.
    let _ = c
        .copy_file(ctx(), &req("c1/fin2", 0o40_777, b"", 0, 0))
        .await;
    let _ = c.copy_file(ctx(), &req("c1/d", 0o40_777, b"", 0, 0)).await;
    assert_eq!(snapshot(&a.outside()), before);
    for rel in ["c1/fin2", "c1/d"] {
        let m = fs::symlink_metadata(a.host(rel)).unwrap();
        assert!(m.is_dir(), "{rel} is a real directory now");
        assert_eq!(m.mode() & 0o7777, 0o777, "{rel}");
    }
}

#[tokio::test]
async fn a_planted_symlink_at_the_old_temp_name_is_never_written_or_chmodded() {
    let a = HostAgent::start(&[]);
    let c = a.client().await;
    c.copy_file(ctx(), &req("c1/keep", 0o100_644, b"x", 0, 1))
        .await
        .unwrap();
    let before = snapshot(&a.outside());
    symlink(a.outside().join("victim"), a.host("c1/t.tmp")).unwrap();
    // A continuation chunk that completes an 12-byte file with a set-uid mode.
    let _ = c
        .copy_file(ctx(), &req("c1/t", 0o104_777, b"XXXX", 8, 12))
        .await;
    // A whole stream while the links sit at every name the old agent used.
    symlink(a.outside().join("victim"), a.host("c1/u.tmp")).unwrap();
    c.copy_file(ctx(), &req("c1/u", 0o104_777, b"0123", 0, 8))
        .await
        .unwrap();
    let _ = c
        .copy_file(ctx(), &req("c1/u", 0o104_777, b"4567", 4, 8))
        .await;
    assert_eq!(snapshot(&a.outside()), before);
}

#[tokio::test]
async fn a_dangling_planted_temp_link_creates_nothing_outside() {
    let a = HostAgent::start(&[]);
    let c = a.client().await;
    c.copy_file(ctx(), &req("c1/keep", 0o100_644, b"x", 0, 1))
        .await
        .unwrap();
    let before = snapshot(&a.outside());
    symlink(a.outside().join("new"), a.host("c1/v.tmp")).unwrap();
    let _ = c
        .copy_file(ctx(), &req("c1/v", 0o100_644, b"abcd", 4, 8))
        .await;
    assert_eq!(snapshot(&a.outside()), before);
    assert!(!a.outside().join("new").exists());
}

#[tokio::test]
async fn a_planted_link_in_the_parent_or_at_a_symlink_destination_is_not_followed() {
    let a = HostAgent::start(&[]);
    let c = a.client().await;
    c.copy_file(ctx(), &req("c1/keep", 0o100_644, b"x", 0, 1))
        .await
        .unwrap();
    let before = snapshot(&a.outside());
    symlink(a.outside(), a.host("c1/p")).unwrap();
    assert!(c
        .copy_file(ctx(), &req("c1/p/f", 0o100_644, b"x", 0, 1))
        .await
        .is_err());
    assert!(c
        .copy_file(ctx(), &req("c1/p/n/f", 0o100_644, b"x", 0, 1))
        .await
        .is_err());
    assert!(c
        .copy_file(ctx(), &req("c1/p/d", 0o40_777, b"", 0, 0))
        .await
        .is_err());
    assert!(c
        .copy_file(ctx(), &link_req("c1/p/l", Path::new("/")))
        .await
        .is_err());
    // A file or link copied over a planted link replaces the link itself.
    symlink(a.outside().join("victim"), a.host("c1/f")).unwrap();
    c.copy_file(ctx(), &req("c1/f", 0o100_600, b"new", 0, 3))
        .await
        .unwrap();
    symlink(a.outside().join("sub"), a.host("c1/l")).unwrap();
    c.copy_file(ctx(), &link_req("c1/l", Path::new("elsewhere")))
        .await
        .unwrap();
    assert_eq!(snapshot(&a.outside()), before);
    assert_eq!(fs::read(a.host("c1/f")).unwrap(), b"new");
    assert_eq!(
        fs::read_link(a.host("c1/l")).unwrap(),
        Path::new("elsewhere")
    );
}

#[tokio::test]
async fn a_fifo_at_the_destination_is_replaced_without_being_opened() {
    let a = HostAgent::start(&[]);
    let c = a.client().await;
    c.copy_file(ctx(), &req("c1/keep", 0o100_644, b"x", 0, 1))
        .await
        .unwrap();
    nix::unistd::mkfifo(
        &a.host("c1/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    nix::unistd::mkfifo(
        &a.host("c1/fifo.tmp"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let r = req("c1/fifo", 0o100_644, b"data", 0, 4);
    let call = c.copy_file(ctx(), &r);
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("CopyFile returns without blocking on a FIFO")
        .unwrap();
    assert_eq!(fs::read(a.host("c1/fifo")).unwrap(), b"data");
}

/// `runs` rounds of `files` names sharing 8 stems (`c0.yaml`, `c0.json`, `c0.txt`, …), each sent
/// in 3 chunks, at most 32 CopyFiles in flight as the copy engine does.
async fn copy_many(c: &AgentServiceClient, a: &HostAgent, runs: usize, files: usize) {
    const EXT: [&str; 3] = ["yaml", "json", "txt"];
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    for run in 0..runs {
        let mut tasks = Vec::new();
        for i in 0..files {
            let name = format!("c{}/c{}.{}", run % 2, i % 8, EXT[i / 8 % 3]);
            let body = format!("run {run} file {i} {}", "z".repeat(i * 37)).into_bytes();
            let (c, sem) = (c.clone(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let third = body.len() / 3;
                for (off, end) in [(0, third), (third, 2 * third), (2 * third, body.len())] {
                    let _permit = sem.acquire().await.unwrap();
                    let r = req(
                        &name,
                        0o100_644,
                        &body[off..end],
                        i64::try_from(off).unwrap(),
                        body.len(),
                    );
                    c.copy_file(ctx(), &r)
                        .await
                        .map_err(|e| format!("{name}: {e}"))?;
                }
                Ok::<_, String>((name, body))
            }));
        }
        for t in tasks {
            let (name, body) = t.await.unwrap().unwrap();
            assert_eq!(
                fs::read(a.host(&name))
                    .map_err(|e| format!("{name}: {e}"))
                    .unwrap(),
                body,
                "{name} run {run}"
            );
        }
        for d in ["c0", "c1"] {
            assert!(
                names(a, d).iter().all(|n| !n.ends_with(".tmp")),
                "temp left in {d}: {:?}",
                names(a, d)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_names_sharing_a_stem_all_land_with_their_own_content() {
    let a = HostAgent::start(&[]);
    let c = a.client().await;
    copy_many(&c, &a, 30, 24).await;
}

#[tokio::test]
async fn an_abandoned_stream_loses_its_temp_file_after_the_idle_timeout() {
    let a = HostAgent::start(&["--copy-stream-timeout-ms", "300"]);
    let c = a.client().await;
    c.copy_file(ctx(), &req("c1/big", 0o100_644, b"0123456789", 0, 100))
        .await
        .unwrap();
    assert_eq!(
        names(&a, "c1").len(),
        1,
        "one temp file while the stream is open"
    );
    let start = Instant::now();
    while !names(&a, "c1").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "temp file still there: {:?}",
            names(&a, "c1")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its continuation is refused rather than written to a file that is gone.
    assert!(c
        .copy_file(ctx(), &req("c1/big", 0o100_644, b"x", 10, 100))
        .await
        .is_err());
    assert!(names(&a, "c1").is_empty());
}

#[tokio::test]
async fn destroy_sandbox_removes_the_temp_files_of_unfinished_streams() {
    let a = HostAgent::start(&[]);
    let c = a.client().await;
    c.create_sandbox(ctx(), &agent::CreateSandboxRequest::new())
        .await
        .unwrap();
    c.copy_file(ctx(), &req("c1/a.yaml", 0o100_644, b"01234", 0, 100))
        .await
        .unwrap();
    c.copy_file(ctx(), &req("c1/a.json", 0o100_644, b"01234", 0, 100))
        .await
        .unwrap();
    assert_eq!(names(&a, "c1").len(), 2);
    c.destroy_sandbox(ctx(), &agent::DestroySandboxRequest::new())
        .await
        .unwrap();
    assert!(names(&a, "c1").is_empty(), "{:?}", names(&a, "c1"));
}

#[tokio::test]
async fn a_closed_connection_abandons_its_streams() {
    let a = HostAgent::start(&[]);
    {
        let c = a.client().await;
        c.copy_file(ctx(), &req("c1/big", 0o100_644, b"0123456789", 0, 100))
            .await
            .unwrap();
        assert_eq!(names(&a, "c1").len(), 1);
    }
    let start = Instant::now();
    while !names(&a, "c1").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "temp file still there: {:?}",
            names(&a, "c1")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
