//! Parents a cgroup's `create` had to make (`/kata-ts-demo` of `/kata-ts-demo/<sid>`): reported,
//! removed again when empty, never when in use or made by someone else. Real hierarchies of
//! this host (every v1 hierarchy, including the named `systemd` one, and the cgroup2 mount),
//! each test below its own `kata-ts-test-<random>` subtree, removed on drop even on failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{CgroupManager, FsError, FsV1Manager, FsV2Manager};

use super::host_tests::{unique, Proc, Subtree, ROOT};

/// Every v1 hierarchy (what a manager without a controller list spans).
fn v1_all(rel: &str) -> FsV1Manager {
    FsV1Manager::new(Path::new(ROOT), rel, None).unwrap()
}

/// `<hierarchy>/<sub>` in every v1 hierarchy the manager spans.
fn subtree_dirs(m: &FsV1Manager, sub: &str) -> Vec<PathBuf> {
    m.hierarchy_names()
        .iter()
        .map(|h| PathBuf::from(ROOT).join(h).join(sub))
        .collect()
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_parents_create_made_are_reported_and_removed_in_every_hierarchy() {
    let sub = Subtree(unique());
    let m = v1_all(&format!("{}/sandbox", sub.0));
    let want = subtree_dirs(&m, &sub.0);
    assert!(want.len() >= 2, "{want:?}");
    assert_eq!(m.missing_parents().unwrap(), want);
    let made = m.create(&[]).unwrap();
    assert_eq!(made, want);
    m.delete().unwrap();
    assert!(
        want.iter().all(|d| d.exists()),
        "delete alone keeps the parents"
    );
    assert_eq!(m.remove_parents(&made).unwrap(), want);
    assert!(want.iter().all(|d| !d.exists()), "no parent left: {want:?}");
    // Idempotent: gone already is fine.
    assert_eq!(m.remove_parents(&made).unwrap(), Vec::<PathBuf>::new());
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_a_parent_in_use_or_made_by_another_stays() {
    let sub = Subtree(unique());
    let a = v1_all(&format!("{}/a", sub.0));
    let b = v1_all(&format!("{}/b", sub.0));
    let made_by_a = a.create(&[]).unwrap();
    assert!(!made_by_a.is_empty());
    let p = Proc(Command::new("sleep").arg("600").spawn().unwrap());
    assert_eq!(b.create(&[p.0.id()]).unwrap(), Vec::<PathBuf>::new());
    a.delete().unwrap();
    assert_eq!(a.remove_parents(&made_by_a).unwrap(), Vec::<PathBuf>::new());
    let parents = subtree_dirs(&a, &sub.0);
    assert!(parents.iter().all(|d| d.exists()), "b still uses them");
    b.delete().unwrap();
    // b made no parent: it removes none, though they are empty now.
    assert_eq!(b.remove_parents(&[]).unwrap(), Vec::<PathBuf>::new());
    assert!(parents.iter().all(|d| d.exists()));
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v1_remove_parents_refuses_what_is_not_a_parent() {
    let sub = Subtree(unique());
    let m = v1_all(&format!("{}/x/sandbox", sub.0));
    m.create(&[]).unwrap();
    for bad in [
        PathBuf::from(ROOT).join("cpu"),
        PathBuf::from(ROOT)
            .join("cpu")
            .join(&sub.0)
            .join("x/sandbox"),
        PathBuf::from(ROOT).join("cpu").join(&sub.0).join("other"),
        PathBuf::from(ROOT).join("cpu").join(&sub.0).join("x/../x"),
        PathBuf::from("/tmp"),
    ] {
        let err = m.remove_parents(std::slice::from_ref(&bad)).unwrap_err();
        assert!(
            matches!(&err, crate::CgroupError::Fs(FsError::InvalidPath { path, .. }) if *path == bad.display().to_string()),
            "{bad:?}: {err}"
        );
    }
    assert!(PathBuf::from(ROOT)
        .join("cpu")
        .join(&sub.0)
        .join("x/sandbox")
        .exists());
    m.delete().unwrap();
}

#[test]
#[ignore = "needs root: writes the host cgroup hierarchies (run-tests.sh includes it as root)"]
fn v2_parents_create_made_are_removed_deepest_first() {
    let unified = PathBuf::from(ROOT).join("unified");
    let sub = Subtree(unique());
    let m = FsV2Manager::new(&unified, &format!("{}/pod/sandbox", sub.0)).unwrap();
    let want = vec![unified.join(&sub.0), unified.join(&sub.0).join("pod")];
    assert_eq!(m.missing_parents().unwrap(), want);
    let made = m.create(&[]).unwrap();
    assert_eq!(made, want);
    m.delete().unwrap();
    let removed = m.remove_parents(&made).unwrap();
    assert_eq!(removed, vec![want[1].clone(), want[0].clone()]);
    assert!(!unified.join(&sub.0).exists());
}
