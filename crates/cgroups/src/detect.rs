//! cgroup layout detection from `/proc/self/mountinfo`.

use std::path::{Path, PathBuf};

use crate::error::{io_err, FsError};

/// The host's cgroup layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Only v1 hierarchies.
    V1,
    /// v1 controller hierarchies plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`).
    Hybrid,
    /// One unified cgroup2 hierarchy.
    V2,
}

impl CgroupLayout {
    /// `v1`, `hybrid` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::Hybrid => "hybrid",
            Self::V2 => "v2",
        }
    }
}

/// Detects the layout from a mountinfo file (normally `/proc/self/mountinfo`).
pub fn detect_layout(mountinfo: &Path) -> Result<CgroupLayout, FsError> {
    let text =
        std::fs::read_to_string(mountinfo).map_err(|e| io_err("read", mountinfo, None, e))?;
    layout_from_mountinfo(&text).ok_or_else(|| FsError::NoHierarchy {
        root: PathBuf::from(mountinfo),
    })
}

/// Layout from mountinfo text; `None` when no cgroup filesystem is mounted.
pub fn layout_from_mountinfo(text: &str) -> Option<CgroupLayout> {
    let mut v1 = false;
    let mut v2 = false;
    for line in text.lines() {
        // Fields after the " - " separator: fstype, source, super options.
        let Some((_, tail)) = line.split_once(" - ") else {
            continue;
        };
        match tail.split_whitespace().next() {
            Some("cgroup") => v1 = true,
            Some("cgroup2") => v2 = true,
            _ => {}
        }
    }
    match (v1, v2) {
        (true, true) => Some(CgroupLayout::Hybrid),
        (true, false) => Some(CgroupLayout::V1),
        (false, true) => Some(CgroupLayout::V2),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_LINE: &str = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu";
    const V2_LINE: &str = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
    const OTHER: &str = "22 1 0:21 / /proc rw,nosuid - proc proc rw";

    #[test]
    fn detects_each_layout() {
        let cases = [
            (
                "v1 only",
                format!("{OTHER}\n{V1_LINE}\n"),
                Some(CgroupLayout::V1),
            ),
            (
                "hybrid",
                format!("{V1_LINE}\n{V2_LINE}\n"),
                Some(CgroupLayout::Hybrid),
            ),
            (
                "unified",
                format!("{OTHER}\n{}", V2_LINE.replace("/unified", "")),
                Some(CgroupLayout::V2),
            ),
            ("none", OTHER.to_string(), None),
        ];
        for (name, text, want) in cases {
            assert_eq!(layout_from_mountinfo(&text), want, "{name}");
        }
    }

    #[test]
    fn this_host_has_a_cgroup_layout() {
        assert!(detect_layout(Path::new("/proc/self/mountinfo")).is_ok());
    }
}
