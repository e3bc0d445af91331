//! The agent's CopyFile on a hostile guest share. Each input is a sequence of CopyFile requests
//! (files in one or more chunks at any offset, directories, symlinks, any mode including set-id
//! bits, paths from a small pool of names so they collide) interleaved with names a container
//! plants directly under the agent's root (symlinks into a sibling `outside` dir or dangling
//! there, symlinks at the temp names an older agent used, FIFOs, files, directories) and with
//! abandoned streams. Property: nothing outside the root changes — the sibling dir's names,
//! types, modes, owners, contents and link targets are the same afterwards, and nothing new
//! appears next to the root.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use kata_ts_agent::copy_file::{CopyFiles, CONTAINER_BASE};
use kata_ts_agent::protocols::agent::CopyFileRequest;
use libfuzzer_sys::fuzz_target;

/// Operations per input: short sequences keep each execution cheap.
const MAX_OPS: usize = 32;
/// Path segments; few, so requests and plants hit the same names.
const SEGMENTS: [&str; 10] = [
    "c1", "d", "t", "t.tmp", "a.yaml", "a.json", "a.tmp", "..", ".", "l",
];

#[derive(Debug, Arbitrary)]
struct Where {
    /// Up to three indexes into [`SEGMENTS`].
    segments: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum LinkTarget {
    Victim,
    OutsideDir,
    /// A name in `outside` that does not exist.
    Dangling,
    /// `../` repeated, then `outside/victim`.
    Up(u8),
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// A whole file in `chunks` chunks (at least one), in order.
    File {
        at: Where,
        len: u8,
        chunks: u8,
        mode: u16,
    },
    /// One chunk at any offset, as a confused or hostile host might send.
    Chunk {
        at: Where,
        offset: u8,
        data: Vec<u8>,
        size: u8,
        mode: u16,
    },
    Dir {
        at: Where,
        mode: u16,
    },
    Link {
        at: Where,
        target: LinkTarget,
    },
    /// What a container writes into its rw volume, directly on the filesystem.
    PlantLink {
        at: Where,
        target: LinkTarget,
    },
    PlantFifo {
        at: Where,
    },
    PlantDir {
        at: Where,
    },
    PlantFile {
        at: Where,
    },
    AbandonAll,
    AbandonIdle,
}

struct Scratch {
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

fn scratch() -> &'static Scratch {
    static S: OnceLock<Scratch> = OnceLock::new();
    S.get_or_init(|| {
        let base =
            std::env::temp_dir().join(format!("kata-ts-fuzz-copyfile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("outside/sub")).expect("scratch dir");
        let base = base.canonicalize().expect("canonical scratch dir");
        let outside = base.join("outside");
        fs::write(outside.join("victim"), b"outside the root").expect("victim");
        fs::set_permissions(outside.join("victim"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(outside.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
        symlink("victim", outside.join("link")).expect("outside link");
        let before = snapshot(&base, &["root"]);
        Scratch {
            root: base.join("root"),
            outside,
            before,
            base,
        }
    })
}

/// Every entry below `dir` (not following links), skipping the top-level names in `skip`.
fn snapshot(dir: &Path, skip: &[&str]) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let rel = p.strip_prefix(dir).expect("below").to_path_buf();
        if rel
            .iter()
            .next()
            .is_some_and(|n| skip.iter().any(|s| n == *s))
        {
            continue;
        }
        let m = fs::symlink_metadata(&p).expect("lstat");
        let what = if m.file_type().is_symlink() {
            format!("link {:?}", fs::read_link(&p).expect("readlink"))
        } else if m.is_dir() {
            for e in fs::read_dir(&p).expect("readdir") {
                todo.push(e.expect("entry").path());
            }
            "dir".into()
        } else if m.is_file() {
            format!("file {:?}", fs::read(&p).expect("read"))
        } else {
            "special".into()
        };
        out.insert(
            rel,
            format!("{what} {:o} {}:{}", m.mode(), m.uid(), m.gid()),
        );
    }
    out
}

fn rel(at: &Where) -> String {
    let names: Vec<&str> = at
        .segments
        .iter()
        .take(3)
        .map(|i| SEGMENTS[usize::from(*i) % SEGMENTS.len()])
        .collect();
    if names.is_empty() {
        "c1".into()
    } else {
        names.join("/")
    }
}

fn target(t: &LinkTarget, s: &Scratch) -> PathBuf {
    match t {
        LinkTarget::Victim => s.outside.join("victim"),
        LinkTarget::OutsideDir => s.outside.clone(),
        LinkTarget::Dangling => s.outside.join("new"),
        LinkTarget::Up(n) => PathBuf::from(format!(
            "{}outside/victim",
            "../".repeat(usize::from(n % 10))
        )),
        LinkTarget::Text(t) => PathBuf::from(t.replace('\0', "")),
    }
}

fn request(rel: &str, file_mode: u32, data: &[u8], offset: usize, size: usize) -> CopyFileRequest {
    CopyFileRequest {
        path: format!("{CONTAINER_BASE}{rel}"),
        file_size: i64::try_from(size).unwrap_or(i64::MAX),
        file_mode,
        dir_mode: 0o40_777,
        uid: -1,
        gid: -1,
        offset: i64::try_from(offset).unwrap_or(i64::MAX),
        data: data.to_vec(),
        ..Default::default()
    }
}

/// Runs one operation; refusals and failures are fine, only escapes are not.
fn run(op: &Op, copies: &CopyFiles, s: &Scratch) {
    let share = s.root.join(CONTAINER_BASE.trim_start_matches('/'));
    let planted = |at: &Where| {
        let p = share.join(rel(at));
        // The container writes inside its volume: plant only where the parent is a real dir.
        let parent_ok = p.parent().is_some_and(|d| {
            d.starts_with(&share) && fs::symlink_metadata(d).is_ok_and(|m| m.is_dir())
        });
        (parent_ok && !rel(at).split('/').any(|n| n == "..")).then_some(p)
    };
    match op {
        Op::File {
            at,
            len,
            chunks,
            mode,
        } => {
            let data: Vec<u8> = (0..*len).collect();
            let n = usize::from(*chunks % 4) + 1;
            let step = data.len().div_ceil(n).max(1);
            let r = rel(at);
            for (i, part) in data.chunks(step).enumerate() {
                let _ = copies.apply(&request(
                    &r,
                    0o100_000 | u32::from(*mode),
                    part,
                    i * step,
                    data.len(),
                ));
            }
            if data.is_empty() {
                let _ = copies.apply(&request(&r, 0o100_000 | u32::from(*mode), &[], 0, 0));
            }
        }
        Op::Chunk {
            at,
            offset,
            data,
            size,
            mode,
        } => {
            let _ = copies.apply(&request(
                &rel(at),
                u32::from(*mode),
                data,
                usize::from(*offset),
                usize::from(*size),
            ));
        }
        Op::Dir { at, mode } => {
            let _ = copies.apply(&request(&rel(at), 0o40_000 | u32::from(*mode), &[], 0, 0));
        }
        Op::Link { at, target: t } => {
            let t = target(t, s);
            let bytes = t.as_os_str().as_encoded_bytes();
            let _ = copies.apply(&request(&rel(at), 0o120_777, bytes, 0, bytes.len()));
        }
        Op::PlantLink { at, target: t } => {
            if let Some(p) = planted(at) {
                let _ = symlink(target(t, s), p);
            }
        }
        Op::PlantFifo { at } => {
            if let Some(p) = planted(at) {
                let _ = nix_mkfifo(&p);
            }
        }
        Op::PlantDir { at } => {
            if let Some(p) = planted(at) {
                let _ = fs::create_dir(p);
            }
        }
        Op::PlantFile { at } => {
            if let Some(p) = planted(at) {
                let _ = fs::OpenOptions::new().write(true).create_new(true).open(p);
            }
        }
        Op::AbandonAll => {
            copies.streams().abandon_all();
        }
        Op::AbandonIdle => {
            copies.streams().abandon_idle(Duration::ZERO);
        }
    }
}

fn nix_mkfifo(p: &Path) -> std::io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .map_err(std::io::Error::from)
}

fuzz_target!(|ops: Vec<Op>| {
    let s = scratch();
    let _ = fs::remove_dir_all(&s.root);
    fs::create_dir_all(
        s.root
            .join(CONTAINER_BASE.trim_start_matches('/'))
            .join("c1"),
    )
    .expect("root");
    let copies = CopyFiles::new(s.root.clone());
    for op in ops.iter().take(MAX_OPS) {
        run(op, &copies, s);
    }
    drop(copies);
    assert_eq!(
        snapshot(&s.base, &["root"]),
        s.before,
        "something outside the root changed"
    );
    let top: Vec<_> = fs::read_dir(&s.base)
        .expect("base")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        top.len(),
        2,
        "only root and outside next to each other: {top:?}"
    );
});
