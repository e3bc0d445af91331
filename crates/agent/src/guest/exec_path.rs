//! Finding a container's executable before starting it, so a missing one is a clear error
//! (runc/Kata: `exec: "x": executable file not found in $PATH`) rather than a failed exec.
//! Paths are looked up inside the rootfs the way the container will see them: symlinks
//! (busybox's `/bin/sh -> /bin/busybox`) resolve relative to the rootfs, not the agent's `/`.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::error::GuestError;

/// runc's default when the process has no PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_SYMLINKS: usize = 40;

/// Resolves the in-container path `inner` to an agent-side path below `rootfs`, following
/// symlinks as if `rootfs` were `/` (`..` never climbs above it). `None` on a symlink loop.
pub fn resolve_in_rootfs(rootfs: &Path, inner: &Path) -> Option<PathBuf> {
    let mut pending: Vec<OsString> = components(inner);
    pending.reverse();
    let mut done: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            done.pop();
            continue;
        }
        let candidate: PathBuf = done
            .iter()
            .fold(rootfs.to_path_buf(), |p, c| p.join(c))
            .join(&name);
        match fs::read_link(&candidate) {
            Ok(target) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return None;
                }
                if target.is_absolute() {
                    done.clear();
                }
                let mut more = components(&target);
                more.reverse();
                pending.extend(more);
            }
            Err(_) => done.push(name),
        }
    }
    Some(done.iter().fold(rootfs.to_path_buf(), |p, c| p.join(c)))
}

fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn is_executable(rootfs: &Path, inner: &Path) -> bool {
    resolve_in_rootfs(rootfs, inner)
        .and_then(|p| fs::metadata(p).ok())
        .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The in-container path to exec for `argv0`: itself when it has a `/` (relative to `cwd`),
/// else the first executable `<dir>/<argv0>` along `PATH` from `env`.
pub fn find_executable(
    rootfs: &Path,
    argv0: &str,
    env: &[String],
    cwd: &str,
) -> Result<String, GuestError> {
    let not_found = || GuestError::ExecutableNotFound {
        name: argv0.to_string(),
    };
    if argv0.is_empty() {
        return Err(GuestError::Missing {
            field: "Process.Args",
        });
    }
    if argv0.contains('/') {
        let inner = Path::new(if cwd.is_empty() { "/" } else { cwd }).join(argv0);
        return if is_executable(rootfs, &inner) {
            Ok(inner.to_string_lossy().into_owned())
        } else {
            Err(GuestError::Start {
                container_id: String::new(),
                argv0: argv0.to_string(),
                message: "no such executable file in the rootfs".into(),
            })
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(argv0))
        .find(|p| is_executable(rootfs, p))
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Rootfs(PathBuf);

    impl Rootfs {
        fn new(tag: &str) -> Self {
            let r = std::env::temp_dir()
                .join(format!("kata-ts-agent-exec-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&r);
            fs::create_dir_all(r.join("bin")).unwrap();
            fs::create_dir_all(r.join("usr/bin")).unwrap();
            fs::write(r.join("bin/busybox"), b"#!").unwrap();
            fs::set_permissions(r.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
            fs::write(r.join("usr/bin/data"), b"x").unwrap();
            symlink("/bin/busybox", r.join("bin/sh")).unwrap();
            symlink("../../bin/busybox", r.join("usr/bin/env")).unwrap();
            symlink("/../../../etc/shadow-nope", r.join("bin/escape")).unwrap();
            symlink("loop", r.join("bin/loop")).unwrap();
            Rootfs(r)
        }
    }

    impl Drop for Rootfs {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn resolves_names_along_path_through_rootfs_symlinks() {
        let r = Rootfs::new("along");
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        assert_eq!(find_executable(&r.0, "sh", &env, "/").unwrap(), "/bin/sh");
        assert_eq!(
            find_executable(&r.0, "env", &env, "/").unwrap(),
            "/usr/bin/env"
        );
        assert_eq!(
            find_executable(&r.0, "busybox", &[], "/").unwrap(),
            "/bin/busybox",
            "default PATH"
        );
        assert_eq!(
            find_executable(&r.0, "./busybox", &env, "/bin").unwrap(),
            "/bin/./busybox"
        );
    }

    #[test]
    fn missing_non_executable_and_looping_names_are_not_found() {
        let r = Rootfs::new("missing");
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        for name in ["nope", "data", "loop", "escape"] {
            let err = find_executable(&r.0, name, &env, "/").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("exec: {name:?}: executable file not found in $PATH")
            );
        }
        assert!(find_executable(&r.0, "/bin/nope", &env, "/").is_err());
    }

    #[test]
    fn symlinks_cannot_leave_the_rootfs() {
        let r = Rootfs::new("escape");
        assert_eq!(
            resolve_in_rootfs(&r.0, Path::new("/bin/escape")).unwrap(),
            r.0.join("etc/shadow-nope")
        );
    }
}
