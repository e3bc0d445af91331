//! The copy engine's path handling on a hostile host tree. The input builds a small tree in a
//! reused temp dir: directories, files and symlinks with any `/`-free, NUL-free names (unicode,
//! `..`-like, long) and link targets anywhere (absolute, `../..`, into a sibling "outside" dir).
//! The engine's walk and plan (`tree::scan`, `request::plan`) must then put every CopyFile
//! destination below the volume's guest dir, map host entries to guest paths one to one, send
//! symlinks as links (never followed), and read each planned file from inside the volume when
//! opened as the sender opens it.
#![no_main]

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use watch::request::{plan, Sent, Step, S_IFLNK};
use watch::send::{host_path, open_nofollow};
use watch::tree::scan;
use watch::{GuestPath, GUEST_SHARE_DIR};

/// Entries per input: small trees keep each execution cheap.
const MAX_OPS: usize = 24;

#[derive(Debug, Arbitrary)]
enum Name {
    Text(String),
    DotDot,
    Dots(u8),
    /// `n` copies of a character: around the 255-byte name limit.
    Long(u16, char),
}

#[derive(Debug, Arbitrary)]
enum Target {
    Text(String),
    /// `../` repeated, then a name.
    Up(u8, String),
    Absolute(String),
    /// The file outside the volume, relative or absolute.
    Outside(bool),
}

#[derive(Debug, Arbitrary)]
enum Node {
    Dir,
    File(u8),
    Link(Target),
}

#[derive(Debug, Arbitrary)]
struct Op {
    /// Index into the directories made so far (the volume root first).
    parent: u8,
    name: Name,
    node: Node,
}

struct Scratch {
    volume: PathBuf,
    outside: PathBuf,
}

fn scratch() -> &'static Scratch {
    static S: OnceLock<Scratch> = OnceLock::new();
    S.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("kata-ts-fuzz-copy-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("outside")).expect("scratch dir");
        let base = base.canonicalize().expect("canonical scratch dir");
        fs::write(base.join("outside/secret"), b"outside the volume").expect("outside file");
        Scratch {
            volume: base.join("volume"),
            outside: base.join("outside"),
        }
    })
}

fn name_text(name: &Name) -> String {
    match name {
        Name::Text(s) => s.clone(),
        Name::DotDot => "..".into(),
        Name::Dots(n) => ".".repeat(usize::from(n % 8) + 1),
        Name::Long(n, c) => c.to_string().repeat(usize::from(n % 300) + 1),
    }
}

fn target_text(target: &Target, s: &Scratch) -> String {
    match target {
        Target::Text(t) => t.clone(),
        Target::Up(n, t) => format!("{}{t}", "../".repeat(usize::from(n % 6))),
        Target::Absolute(t) => format!("/{t}"),
        Target::Outside(false) => "../outside/secret".into(),
        Target::Outside(true) => s.outside.join("secret").to_string_lossy().into_owned(),
    }
}

/// Builds the tree; operations the filesystem refuses (`..`, too long, duplicates) are skipped.
fn build(ops: &[Op], s: &Scratch) {
    let mut dirs = vec![s.volume.clone()];
    for op in ops.iter().take(MAX_OPS) {
        let name = name_text(&op.name);
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            continue;
        }
        let path = dirs[usize::from(op.parent) % dirs.len()].join(&name);
        match &op.node {
            Node::Dir => {
                if fs::create_dir(&path).is_ok() {
                    dirs.push(path);
                }
            }
            Node::File(len) => {
                // create_new: never write through a link made by an earlier operation.
                let f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path);
                if let Ok(mut f) = f {
                    let _ = f.write_all(&vec![b'x'; usize::from(*len)]);
                }
            }
            Node::Link(t) => {
                let t = target_text(t, s);
                if !t.contains('\0') {
                    let _ = symlink(&t, &path);
                }
            }
        }
    }
}

fn check_step(dest: &GuestPath, step: &Step) {
    let path = step.request.path.as_str();
    assert!(
        GuestPath::new(path).is_ok(),
        "{path:?} is not a checked guest path"
    );
    assert!(path.starts_with(GUEST_SHARE_DIR));
    let below = path
        .strip_prefix(dest.as_str())
        .unwrap_or_else(|| panic!("{path:?} is outside {dest}"));
    let rel: Vec<_> = step
        .rel
        .iter()
        .map(|c| c.to_str().expect("utf-8"))
        .collect();
    let want = if rel.is_empty() {
        String::new()
    } else {
        format!("/{}", rel.join("/"))
    };
    assert_eq!(below, want, "host {:?} maps to {path:?}", step.rel);
}

/// Opens the file as the sender does and checks what was opened lies inside the volume.
fn check_read_inside(volume: &Path, rel: &Path) {
    let host = host_path(volume, rel);
    let Ok(file) = open_nofollow(&host) else {
        return;
    };
    let opened = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).expect("fd path");
    assert!(
        opened.starts_with(volume),
        "{rel:?} read {opened:?}, outside {volume:?}"
    );
    assert!(
        file.metadata().expect("fstat").is_file(),
        "{rel:?} opened a non-file"
    );
}

fuzz_target!(|ops: Vec<Op>| {
    let s = scratch();
    let _ = fs::remove_dir_all(&s.volume);
    fs::create_dir(&s.volume).expect("volume dir");
    build(&ops, s);
    let volume = &s.volume;
    let entries = scan(volume).expect("the volume root exists");
    let dest = GuestPath::new(&format!("{GUEST_SHARE_DIR}c1-0011223344556677-volume")).unwrap();
    let p = plan(&dest, &entries, &Sent::default());
    assert_eq!(
        p.len() + p.skipped.len(),
        entries.len(),
        "every entry planned or skipped"
    );
    for step in p.dirs.iter().chain(&p.files).chain(&p.links) {
        check_step(&dest, step);
    }
    for step in &p.files {
        check_read_inside(volume, &step.rel);
    }
    for step in &p.links {
        let target = fs::read_link(host_path(volume, &step.rel)).expect("still a link");
        assert_eq!(step.request.file_mode, S_IFLNK);
        assert_eq!(
            step.link.as_deref(),
            Some(target.as_os_str().as_encoded_bytes())
        );
    }
    // A resync with everything recorded as sent sends nothing.
    let mut sent = Sent::default();
    sent.commit(&entries, &[], i128::MAX);
    assert!(plan(&dest, &entries, &sent).is_empty());
});
