//! Small I/O helpers over cgroup files whose errors name the file (and the data written).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{io_err, FsError};

/// Writes `data` to a cgroup file with one `write(2)` (cgroup files act on each write).
pub(crate) fn write(path: &Path, data: &str) -> Result<(), FsError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(data.as_bytes()))
        .map_err(|e| io_err("write", path, Some(data), e))
}

/// Reads a cgroup file, trimmed.
pub(crate) fn read(path: &Path) -> Result<String, FsError> {
    // A plain read loop: cgroup files report size 0, so the size probe `fs::read_to_string`
    // makes (statx) buys nothing and costs a syscall on the hot path.
    let mut file = fs::File::open(path).map_err(|e| io_err("read", path, None, e))?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read", path, None, e)),
        }
    }
    let text = String::from_utf8(bytes).map_err(|e| FsError::Parse {
        path: path.to_path_buf(),
        content: String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })?;
    Ok(text.trim().to_string())
}

/// Reads a file of one number per line (`cgroup.procs`, `tasks`).
pub(crate) fn read_ids(path: &Path) -> Result<Vec<u32>, FsError> {
    let text = read(path)?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim().parse::<u32>().map_err(|_| FsError::Parse {
                path: path.to_path_buf(),
                content: l.to_string(),
            })
        })
        .collect()
}

/// Parses a number from a cgroup file (`max` maps to `max_value`).
pub(crate) fn read_i64(path: &Path, max_value: i64) -> Result<i64, FsError> {
    let text = read(path)?;
    parse_i64(path, &text, max_value)
}

pub(crate) fn parse_i64(path: &Path, text: &str, max_value: i64) -> Result<i64, FsError> {
    if text == "max" {
        return Ok(max_value);
    }
    text.parse::<i64>().map_err(|_| FsError::Parse {
        path: path.to_path_buf(),
        content: text.to_string(),
    })
}

/// Creates `dir`; an existing directory is fine. Missing parents are created too.
/// Returns the directories created, outermost first.
pub(crate) fn mkdir_all(dir: &Path) -> Result<Vec<PathBuf>, FsError> {
    // Fast path: the parent usually exists, so one mkdir(2) does it.
    match fs::create_dir(dir) {
        Ok(()) => return Ok(vec![dir.to_path_buf()]),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("mkdir", dir, None, e)),
    }
    let mut created = match dir.parent() {
        Some(parent) => mkdir_all(parent)?,
        None => Vec::new(),
    };
    match fs::create_dir(dir) {
        Ok(()) => created.push(dir.to_path_buf()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("mkdir", dir, None, e)),
    }
    Ok(created)
}

/// Ancestors of `rel` (a checked relative cgroup path) below `mount` that do not exist yet,
/// outermost first.
pub(crate) fn missing_ancestors(mount: &Path, rel: &Path) -> Vec<PathBuf> {
    let mut dir = mount.to_path_buf();
    let parts: Vec<_> = rel.iter().collect();
    let mut missing = Vec::new();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        dir.push(part);
        if !missing.is_empty() || !dir.exists() {
            missing.push(dir.clone());
        }
    }
    missing
}

/// Removes the empty ones of `parents`, deepest first, and returns them. Each must lie strictly
/// between a hierarchy mount and the cgroup's directory in it (`(mount, cgroup dir)` pairs in
/// `cgroups`); a directory still in use (EBUSY, ENOTEMPTY) or already gone is left alone.
pub(crate) fn remove_empty_parents(
    cgroups: &[(PathBuf, PathBuf)],
    parents: &[PathBuf],
) -> Result<Vec<PathBuf>, FsError> {
    let plain = |p: &Path| {
        p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    };
    for p in parents {
        let inside = cgroups.iter().any(|(mount, dir)| {
            p.starts_with(mount) && p != mount && dir.starts_with(p) && p != dir
        });
        if !plain(p) || !inside {
            return Err(FsError::InvalidPath {
                path: p.display().to_string(),
                reason: "is not a parent of this cgroup below its hierarchy root",
            });
        }
    }
    let mut ordered: Vec<&PathBuf> = parents.iter().collect();
    ordered.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    ordered.dedup();
    let mut removed = Vec::new();
    for p in ordered {
        match fs::remove_dir(p) {
            Ok(()) => removed.push(p.clone()),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {}
            Err(e) => return Err(io_err("rmdir", p, None, e)),
        }
    }
    Ok(removed)
}

/// Child cgroup directories of `dir` (empty when `dir` does not exist).
pub(crate) fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>, FsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir, None, e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("list", dir, None, e))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Removes a cgroup tree depth-first. Before each rmdir the cgroup's processes (`cgroup.procs`,
/// which moves whole thread groups — `tasks` would leave sibling threads behind) are written to
/// `root_procs`. A missing directory is success, so delete is idempotent. Child cgroups are
/// looked for only when rmdir says the cgroup is busy, which keeps the common leaf case to
/// one read and one rmdir.
pub(crate) fn remove_tree(dir: &Path, root_procs: &Path) -> Result<(), FsError> {
    let procs_file = dir.join("cgroup.procs");
    let mut children_done = false;
    let mut attempt = 0u32;
    loop {
        match read_ids(&procs_file) {
            Ok(pids) => {
                for pid in pids {
                    match write(root_procs, &pid.to_string()) {
                        // The process exited meanwhile.
                        Err(FsError::Io { source, .. })
                            if source.raw_os_error() == Some(libc::ESRCH) => {}
                        other => other?,
                    }
                }
            }
            Err(FsError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && !children_done => {
                for child in child_dirs(dir)? {
                    remove_tree(&child, root_procs)?;
                }
                children_done = true;
            }
            // Still busy: a process was being forked into it or is still exiting; retry briefly.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 200 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(io_err("rmdir", dir, None, e)),
        }
    }
}

/// The thread group id of a task, from `/proc/<tid>/status`.
pub(crate) fn tgid_of(tid: u32) -> Result<u32, FsError> {
    let path = PathBuf::from(format!("/proc/{tid}/status"));
    let fields = status_field(&path, tid, "Tgid")?;
    fields.first().copied().ok_or_else(|| FsError::Proc {
        what: "Tgid",
        id: tid,
        path,
        reason: "empty Tgid line".into(),
    })
}

/// The pid of a process in the innermost pid namespace it belongs to (last `NSpid` value).
pub(crate) fn innermost_pid(pid: u32) -> Result<u32, FsError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let fields = status_field(&path, pid, "NSpid")?;
    match fields.as_slice() {
        [_, .., last] => Ok(*last),
        _ => Err(FsError::Proc {
            what: "NSpid",
            id: pid,
            path,
            reason: "the process is not in a nested pid namespace".into(),
        }),
    }
}

fn status_field(path: &Path, id: u32, key: &'static str) -> Result<Vec<u32>, FsError> {
    let text = fs::read_to_string(path).map_err(|e| FsError::Proc {
        what: key,
        id,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .ok_or_else(|| FsError::Proc {
            what: key,
            id,
            path: path.to_path_buf(),
            reason: format!("no {key} line"),
        })?;
    line.split_whitespace()
        .map(|v| {
            v.parse::<u32>().map_err(|_| FsError::Proc {
                what: key,
                id,
                path: path.to_path_buf(),
                reason: format!("bad value {v:?}"),
            })
        })
        .collect()
}

/// Checks a cgroup path relative to a hierarchy root: not empty, no `.`/`..`, no NUL.
pub(crate) fn check_rel_path(path: &str) -> Result<PathBuf, FsError> {
    let bad = |reason| FsError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(bad("resolves to the hierarchy root"));
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad("contains '.' or '..'"));
    }
    Ok(parts.iter().collect())
}
