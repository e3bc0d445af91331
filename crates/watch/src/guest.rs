//! Guest-side paths. Every CopyFile destination is built here and re-checked component by
//! component, so no host name (`..`, `/`, NUL, a symlink's text) can place a request outside
//! the guest share dir (behaviour.md feature 4).

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// Guest directory every CopyFile destination must be under (runtime-rs `DEFAULT_KATA_GUEST_SHARE_DIR`).
pub const GUEST_SHARE_DIR: &str = "/run/kata-containers/shared/containers/";

/// Why a guest path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestPathError {
    /// The destination is not strictly below the share dir, or is not normalized.
    #[error("guest path {path:?} is not a normalized path below {GUEST_SHARE_DIR}")]
    OutsideShareDir { path: String },
    /// A host name cannot be one guest path component.
    #[error("host name {name:?} cannot be a guest path component (empty, '.', '..', '/', NUL or not UTF-8)")]
    BadComponent { name: String },
}

/// A checked guest path strictly below [`GUEST_SHARE_DIR`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuestPath(String);

impl GuestPath {
    /// Checks `path`: absolute, normalized (no `.`, `..`, `//`, trailing `/`), below the share dir.
    pub fn new(path: &str) -> Result<GuestPath, GuestPathError> {
        let outside = || GuestPathError::OutsideShareDir {
            path: path.to_string(),
        };
        let rel = path.strip_prefix(GUEST_SHARE_DIR).ok_or_else(outside)?;
        if rel.is_empty() || rel.split('/').any(|c| !component_ok(c.as_bytes())) {
            return Err(outside());
        }
        Ok(GuestPath(path.to_string()))
    }

    /// `self/<rel>` where `rel` is a host path relative to a copied tree; every component is
    /// re-checked.
    pub fn join(&self, rel: &Path) -> Result<GuestPath, GuestPathError> {
        let mut out = self.0.clone();
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(bad(c.as_os_str()));
            };
            if !component_ok(name.as_bytes()) {
                return Err(bad(name));
            }
            let text = name.to_str().ok_or_else(|| bad(name))?;
            out.push('/');
            out.push_str(text);
        }
        Ok(GuestPath(out))
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GuestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(name: &OsStr) -> GuestPathError {
    GuestPathError::BadComponent {
        name: name.to_string_lossy().into_owned(),
    }
}

fn component_ok(c: &[u8]) -> bool {
    !c.is_empty() && c != b"." && c != b".." && !c.contains(&b'/') && !c.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_accepts_only_normalized_paths_below_the_share_dir() {
        let rows: [(&str, bool); 8] = [
            ("/run/kata-containers/shared/containers/c1-00-cm", true),
            ("/run/kata-containers/shared/containers/c1/x", true),
            ("/run/kata-containers/shared/containers/", false),
            ("/run/kata-containers/shared/containers", false),
            ("/run/kata-containers/shared/containers/../x", false),
            ("/run/kata-containers/shared/containers/a//b", false),
            ("/run/kata-containers/shared/containers/a/", false),
            ("/etc/passwd", false),
        ];
        for (p, ok) in rows {
            assert_eq!(GuestPath::new(p).is_ok(), ok, "{p}");
        }
    }

    #[test]
    fn join_rechecks_every_component() {
        let d = GuestPath::new("/run/kata-containers/shared/containers/c1-cm").unwrap();
        assert_eq!(
            d.join(Path::new("..data/key")).unwrap().as_str(),
            "/run/kata-containers/shared/containers/c1-cm/..data/key"
        );
        assert!(d.join(Path::new("../x")).is_err());
        assert!(d.join(Path::new("/etc/x")).is_err());
        assert!(d.join(Path::new("a/./b")).is_ok(), "Path drops inner '.'");
        assert!(d
            .join(Path::new(OsStr::from_bytes(b"bad\xffname")))
            .is_err());
    }
}
