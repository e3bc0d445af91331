use super::*;

const CM: &str = "/run/kata-containers/shared/containers/c1-0011223344556677-cm";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn entry(rel: &str, kind: Kind, mode: u32, size: u64) -> Entry {
    Entry {
        rel: PathBuf::from(rel),
        kind,
        mode,
        uid: 1000,
        gid: 1000,
        size,
        ino: 7,
        mtime_ns: 1,
        ctime_ns: 1,
        link: (kind == Kind::Symlink).then(|| b"..2025_01_01_00_00_00.123".to_vec()),
    }
}

#[test]
fn encoding_matches_the_golden_vectors() {
    let file = CopyRequest {
        path: GuestPath::new(CM).unwrap(),
        file_size: 2,
        file_mode: 33188,
        dir_mode: 0,
        uid: 0,
        gid: 0,
    };
    let path_hex = hex(CM.as_bytes());
    assert_eq!(
        hex(&file.encode(0, b"hi")),
        format!("0a3d{path_hex}100218a4830242026869")
    );
    let dir = CopyRequest {
        file_size: 0,
        file_mode: 16877,
        dir_mode: 16872,
        uid: 1000,
        gid: 1000,
        ..file
    };
    assert_eq!(
        hex(&dir.encode(0, b"")),
        format!("0a3d{path_hex}18ed830120e8830128e80730e807")
    );
}

#[test]
fn ids_above_i32_max_keep_their_bits_like_the_reference_cast() {
    assert_eq!(int32_field(u32::MAX), u64::MAX);
    assert_eq!(int32_field(1000), 1000);
}

#[test]
fn plan_uses_the_reference_modes_and_sends_symlinks_last() {
    let dest = GuestPath::new(CM).unwrap();
    let scan = vec![
        entry("", Kind::Dir, 0o40755, 0),
        entry("..data", Kind::Symlink, 0o120777, 25),
        entry("sub", Kind::Dir, 0o40755, 0),
        entry("sub/key", Kind::File, 0o100600, 5),
        entry("fifo", Kind::Other, 0o10644, 0),
    ];
    let p = plan(&dest, &scan, &Sent::default());
    let modes = |steps: &[Step]| -> Vec<(String, u32, u32)> {
        steps
            .iter()
            .map(|s| {
                (
                    s.request.path.to_string(),
                    s.request.file_mode,
                    s.request.dir_mode,
                )
            })
            .collect()
    };
    assert_eq!(
        modes(&p.dirs),
        vec![
            (CM.to_string(), 16877, 16872),
            (format!("{CM}/sub"), 16877, 16877)
        ]
    );
    assert_eq!(modes(&p.files), vec![(format!("{CM}/sub/key"), 33152, 0)]);
    assert_eq!(modes(&p.links), vec![(format!("{CM}/..data"), 40960, 0)]);
    assert_eq!(p.links[0].request.file_size, 25);
    assert_eq!(p.skipped, vec![PathBuf::from("fifo")]);
}

#[test]
fn a_resync_sends_only_changed_entries_and_racy_ones_again() {
    let dest = GuestPath::new(CM).unwrap();
    let mut scan = vec![
        entry("", Kind::Dir, 0o40755, 0),
        entry("a", Kind::File, 0o100644, 5),
        entry("b", Kind::File, 0o100644, 5),
        entry("l", Kind::Symlink, 0o120777, 25),
    ];
    let mut sent = Sent::default();
    sent.commit(&scan, &[], 10_000_000_000);
    assert!(plan(&dest, &scan, &sent).is_empty());

    scan[1].mtime_ns = 2; // content rewritten
    scan[2].mode = 0o100600; // chmod
    scan[3].link = Some(b"..2026".to_vec()); // ..data swap
    let p = plan(&dest, &scan, &sent);
    let rels: Vec<_> = p
        .files
        .iter()
        .chain(&p.links)
        .map(|s| s.rel.clone())
        .collect();
    assert_eq!(rels, ["a", "b", "l"].map(PathBuf::from));

    // Changed within RACY_NS of the scan: recorded as unknown, so sent again next time.
    scan[1].ctime_ns = 10_000_000_000 - 1;
    sent.commit(&scan, &[PathBuf::from("b")], 10_000_000_000);
    let again: Vec<_> = plan(&dest, &scan, &sent)
        .files
        .into_iter()
        .map(|s| s.rel)
        .collect();
    assert_eq!(again, ["a", "b"].map(PathBuf::from));
}

#[test]
fn a_single_file_root_is_one_file_request_at_the_destination() {
    let dest = GuestPath::new(CM).unwrap();
    let p = plan(
        &dest,
        &[entry("", Kind::File, 0o100644, 2)],
        &Sent::default(),
    );
    assert!(p.dirs.is_empty());
    assert_eq!(p.files[0].request.path.as_str(), CM);
    assert_eq!(
        (p.files[0].request.file_mode, p.files[0].request.dir_mode),
        (33188, 0)
    );
}
