//! The agent's `--root`: every guest path of a request is resolved under it (`/` in the VM, a
//! temp dir in tests). Guest paths must be absolute and free of `..`.

use std::path::{Path, PathBuf};

use super::error::GuestError;
use crate::guest_path::relative;

/// Directory the guest filesystem is rooted at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRoot(PathBuf);

impl GuestRoot {
    pub fn new(root: PathBuf) -> Self {
        GuestRoot(root)
    }

    /// The agent-side path of the absolute guest path `guest` (checked by
    /// [`crate::guest_path::relative`]).
    pub fn resolve(&self, guest: &str) -> Result<PathBuf, GuestError> {
        Ok(self.0.join(relative(guest)?))
    }
}

/// `base` + the in-container path `inner` (a mount destination, `/` implied), refusing `..`.
pub fn join_inside(base: &Path, inner: &str) -> Result<PathBuf, GuestError> {
    let inner = if inner.starts_with('/') {
        inner.to_string()
    } else {
        format!("/{inner}")
    };
    GuestRoot(base.to_path_buf()).resolve(&inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_under_the_root_and_refuses_dot_dot() {
        let r = GuestRoot::new("/tmp/r".into());
        assert_eq!(
            r.resolve("/run/a/./b").unwrap(),
            Path::new("/tmp/r/run/a/b")
        );
        assert_eq!(
            GuestRoot::new("/".into()).resolve("/dev/shm").unwrap(),
            Path::new("/dev/shm")
        );
        assert!(r.resolve("/run/../etc").is_err());
        assert!(r.resolve("run").is_err());
        assert_eq!(
            join_inside(Path::new("/r"), "etc/hosts").unwrap(),
            Path::new("/r/etc/hosts")
        );
    }
}
