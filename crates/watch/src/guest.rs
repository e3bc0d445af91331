//! Guest-side paths. Every CopyFile destination is built here and goes through one check,
//! [`GuestPath::new`] (strictly below the share dir, every component a plain name), so no host
//! name (`..`, `/`, NUL, a symlink's text) can place a request outside the guest share dir
//! (behaviour.md feature 4). The TypeScript side's counterpart is `joinGuest` in ts/paths.ts;
//! the agent re-checks what it receives (crates/agent/src/guest_path.rs).

use std::fmt;
use std::path::Path;

/// Guest directory every CopyFile destination must be under (runtime-rs `DEFAULT_KATA_GUEST_SHARE_DIR`).
pub const GUEST_SHARE_DIR: &str = "/run/kata-containers/shared/containers/";

/// Why a guest path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestPathError {
    /// The destination is not strictly below the share dir, or is not normalized.
    #[error("guest path {path:?} is not a normalized path below {GUEST_SHARE_DIR}")]
    OutsideShareDir { path: String },
    /// A host name cannot be one guest path component.
    #[error("guest path {path:?}: {name:?} cannot be a component (empty, '.', '..', '/', NUL or not UTF-8)")]
    BadComponent { name: String, path: String },
}

/// A checked guest path strictly below [`GUEST_SHARE_DIR`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuestPath(String);

impl GuestPath {
    /// Checks `path`: absolute, normalized (no `.`, `..`, `//`, trailing `/`), below the share
    /// dir. The one containment check of this crate: every GuestPath passes it.
    pub fn new(path: &str) -> Result<GuestPath, GuestPathError> {
        let rel =
            path.strip_prefix(GUEST_SHARE_DIR)
                .ok_or_else(|| GuestPathError::OutsideShareDir {
                    path: path.to_string(),
                })?;
        if let Some(name) = rel.split('/').find(|c| !component_ok(c.as_bytes())) {
            // An empty `rel` is the share dir itself: not strictly below it.
            return Err(if rel.is_empty() {
                GuestPathError::OutsideShareDir {
                    path: path.to_string(),
                }
            } else {
                GuestPathError::BadComponent {
                    name: name.to_string(),
                    path: path.to_string(),
                }
            });
        }
        Ok(GuestPath(path.to_string()))
    }

    /// `self/<rel>` where `rel` is a host path relative to a copied tree, checked again as a
    /// whole by [`GuestPath::new`].
    pub fn join(&self, rel: &Path) -> Result<GuestPath, GuestPathError> {
        let mut out = self.0.clone();
        for c in rel.components() {
            let name = c.as_os_str();
            let text = name.to_str().ok_or_else(|| GuestPathError::BadComponent {
                name: name.to_string_lossy().into_owned(),
                path: format!("{}/{}", self.0, rel.to_string_lossy()),
            })?;
            out.push('/');
            out.push_str(text);
        }
        GuestPath::new(&out)
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

fn component_ok(c: &[u8]) -> bool {
    !c.is_empty() && c != b"." && c != b".." && !c.contains(&b'/') && !c.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

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
        assert_eq!(
            d.join(Path::new("a/../b")).unwrap_err(),
            GuestPathError::BadComponent {
                name: "..".into(),
                path: "/run/kata-containers/shared/containers/c1-cm/a/../b".into()
            },
            "the error names the component and the whole path"
        );
    }
}
