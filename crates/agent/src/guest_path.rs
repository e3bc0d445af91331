//! The one lexical check every guest path of a request goes through before the agent touches
//! the filesystem: absolute, no `..`. What it yields is the path relative to the guest's `/`,
//! made of plain names only; the agent then resolves it under `--root` (mounts by path in
//! `guest/`, CopyFile with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` in `copy_file/`).

use std::path::{Component, Path, PathBuf};

/// Why a guest path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestPathError {
    /// The path does not start with `/`.
    #[error("guest path {path:?} is not absolute")]
    NotAbsolute { path: String },
    /// The path has a `..` component.
    #[error("guest path {path:?} must not contain '..'")]
    ParentComponent { path: String },
}

/// The names of the absolute guest path `guest`, relative to `/` (`.` dropped, `..` refused).
pub fn relative(guest: &str) -> Result<PathBuf, GuestPathError> {
    let p = Path::new(guest);
    if !p.is_absolute() {
        return Err(GuestPathError::NotAbsolute {
            path: guest.to_string(),
        });
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(GuestPathError::ParentComponent {
                    path: guest.to_string(),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let rows: [(&str, Result<&str, &str>); 6] = [
            ("/run/a/./b", Ok("run/a/b")),
            ("/", Ok("")),
            ("//x//y/", Ok("x/y")),
            ("run", Err("is not absolute")),
            ("/run/../etc", Err("must not contain '..'")),
            ("/..", Err("must not contain '..'")),
        ];
        for (guest, want) in rows {
            match (relative(guest), want) {
                (Ok(p), Ok(w)) => assert_eq!(p, Path::new(w), "{guest}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{guest}: {e}"),
                (got, _) => panic!("{guest}: {got:?}"),
            }
        }
    }
}
