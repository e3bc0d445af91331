use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::time::Duration;

use super::*;

struct TempRoot(PathBuf);

impl TempRoot {
    fn new(name: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("kata-ts-agent-copy-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempRoot(p)
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.0
            .join("run/kata-containers/shared/containers")
            .join(rel)
    }

    fn names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.host(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn req(path: &str, file_mode: u32, data: &[u8]) -> CopyFileRequest {
    CopyFileRequest {
        path: format!("{CONTAINER_BASE}{path}"),
        file_size: i64::try_from(data.len()).unwrap(),
        file_mode,
        dir_mode: 0o40750,
        uid: -1,
        gid: -1,
        data: data.to_vec(),
        ..Default::default()
    }
}

#[test]
fn resolve_rows() {
    let rows: [(&str, Option<&str>); 7] = [
        (
            "/run/kata-containers/shared/containers/c1/f",
            Some("run/kata-containers/shared/containers/c1/f"),
        ),
        (
            "/run/kata-containers/shared/containers/./c1//f",
            Some("run/kata-containers/shared/containers/c1/f"),
        ),
        ("/run/kata-containers/shared/containers", None),
        ("/run/kata-containers/shared/containers/", None),
        ("/run/kata-containers/shared/containersX/f", None),
        ("/run/kata-containers/shared/containers/../x", None),
        ("/etc/passwd", None),
    ];
    for (guest, want) in rows {
        assert_eq!(
            resolve(guest).ok().as_deref(),
            want.map(Path::new),
            "{guest}"
        );
    }
}

#[test]
fn outside_the_shared_dir_is_an_invalid_argument_naming_the_base() {
    let root = TempRoot::new("outside");
    let mut r = req("x", 0o100644, b"x");
    r.path = "/etc/x".into();
    let e = CopyFiles::new(root.0.clone()).apply(&r).unwrap_err();
    assert!(e.is_invalid_argument());
    assert_eq!(
        e.to_string(),
        "Path \"/etc/x\" does not start with /run/kata-containers/shared/containers/"
    );
}

#[test]
fn file_written_with_masked_mode_and_parent_dir_mode() {
    let root = TempRoot::new("file");
    CopyFiles::new(root.0.clone())
        .apply(&req("c/f", 0o100640, b"abc"))
        .unwrap();
    let host = root.host("c/f");
    assert_eq!(fs::read(&host).unwrap(), b"abc");
    assert_eq!(fs::metadata(&host).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(
        fs::metadata(host.parent().unwrap()).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(root.names("c"), ["f"]);
}

#[test]
fn chunks_land_at_their_offsets_and_the_rename_waits_for_the_last() {
    let root = TempRoot::new("chunks");
    let copies = CopyFiles::new(root.0.clone());
    let mut first = req("c/big.bin", 0o100600, b"hello ");
    first.file_size = 11;
    copies.apply(&first).unwrap();
    assert!(!root.host("c/big.bin").exists());
    let temp = root.names("c");
    assert!(
        temp.len() == 1 && temp[0].starts_with(".big.bin.") && temp[0].ends_with(".tmp"),
        "{temp:?}"
    );
    let mut second = req("c/big.bin", 0o100600, b"world");
    second.file_size = 11;
    second.offset = 6;
    copies.apply(&second).unwrap();
    assert_eq!(fs::read(root.host("c/big.bin")).unwrap(), b"hello world");
    assert_eq!(root.names("c"), ["big.bin"]);
    assert_eq!(copies.streams().len(), 0);
}

#[test]
fn a_fresh_copy_at_offset_0_drops_the_unfinished_one() {
    let root = TempRoot::new("stale");
    let copies = CopyFiles::new(root.0.clone());
    let mut partial = req("c/f.txt", 0o100644, b"0123456789");
    partial.file_size = 100;
    copies.apply(&partial).unwrap();
    copies.apply(&req("c/f.txt", 0o100644, b"ab")).unwrap();
    assert_eq!(fs::read(root.host("c/f.txt")).unwrap(), b"ab");
    assert_eq!(root.names("c"), ["f.txt"]);
}

#[test]
fn names_sharing_a_stem_get_their_own_temp_files() {
    let root = TempRoot::new("stem");
    let copies = CopyFiles::new(root.0.clone());
    for (name, body) in [("c/c.yaml", b"yaml!"), ("c/c.json", b"json!")] {
        let mut r = req(name, 0o100644, &body[..2]);
        r.file_size = 5;
        copies.apply(&r).unwrap();
    }
    for (name, body) in [("c/c.json", b"json!"), ("c/c.yaml", b"yaml!")] {
        let mut r = req(name, 0o100644, &body[2..]);
        r.file_size = 5;
        r.offset = 2;
        copies.apply(&r).unwrap();
    }
    assert_eq!(fs::read(root.host("c/c.yaml")).unwrap(), b"yaml!");
    assert_eq!(fs::read(root.host("c/c.json")).unwrap(), b"json!");
    assert_eq!(root.names("c"), ["c.json", "c.yaml"]);
}

#[test]
fn idle_and_abandoned_streams_lose_their_temp_files() {
    let root = TempRoot::new("idle");
    let copies = CopyFiles::new(root.0.clone());
    let mut r = req("c/a", 0o100644, b"x");
    r.file_size = 9;
    copies.apply(&r).unwrap();
    assert_eq!(copies.streams().abandon_idle(Duration::from_secs(60)), 0);
    assert_eq!(root.names("c").len(), 1);
    assert_eq!(copies.streams().abandon_idle(Duration::ZERO), 1);
    assert!(root.names("c").is_empty());
    copies.apply(&r).unwrap();
    assert_eq!(copies.streams().abandon_all(), 1);
    assert!(root.names("c").is_empty());
    r.offset = 1;
    assert!(matches!(
        copies.apply(&r),
        Err(CopyFileError::NoStream { offset: 1, .. })
    ));
}

#[test]
fn negative_offset_and_chunks_past_the_size_are_invalid() {
    let root = TempRoot::new("neg");
    let copies = CopyFiles::new(root.0.clone());
    let mut r = req("c/f", 0o100644, b"x");
    r.offset = -1;
    assert!(matches!(
        copies.apply(&r),
        Err(CopyFileError::Negative {
            field: "offset",
            ..
        })
    ));
    r.offset = 0;
    r.file_size = 0;
    assert!(matches!(
        copies.apply(&r),
        Err(CopyFileError::PastSize { len: 1, .. })
    ));
}

#[test]
fn symlink_then_dir_through_it_is_refused() {
    let root = TempRoot::new("link");
    let copies = CopyFiles::new(root.0.clone());
    copies.apply(&req("c/l", 0o120777, b"/")).unwrap();
    let e = copies.apply(&req("c/l/etc", 0o40755, b"")).unwrap_err();
    assert!(matches!(e, CopyFileError::SymlinkInPath { .. }), "{e:?}");
    assert!(e.is_invalid_argument());
}

#[test]
fn a_directory_over_a_link_replaces_the_link_and_leaves_its_target() {
    let root = TempRoot::new("dirlink");
    let copies = CopyFiles::new(root.0.clone());
    let outside = root.0.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    copies.apply(&req("c/x", 0o100644, b"")).unwrap();
    symlink(&outside, root.host("c/d")).unwrap();
    copies.apply(&req("c/d", 0o40777, b"")).unwrap();
    assert_eq!(fs::metadata(&outside).unwrap().mode() & 0o7777, 0o700);
    let d = fs::symlink_metadata(root.host("c/d")).unwrap();
    assert!(d.is_dir());
    assert_eq!(d.mode() & 0o7777, 0o777);
}
