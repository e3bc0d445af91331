//! Mount options as the Kata agent splits them (`src/agent/src/mount.rs` `parse_mount_options`,
//! rustjail's `FLAGS` table): known words become MS_* flags (set or cleared), propagation words
//! are kept apart (they need their own mount(2) call), everything else (`size=…`, `mode=…`,
//! `nouuid`) is joined with commas into the filesystem's data string.

use nix::mount::MsFlags;

/// `options` split for mount(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// MS_SHARED / MS_PRIVATE / MS_SLAVE / MS_UNBINDABLE (with MS_REC), applied after mounting.
    pub propagation: MsFlags,
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: String::new(),
        }
    }
}

/// (word, clear instead of set, flag)
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("defaults", false, MsFlags::empty()),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("suid", true, MsFlags::MS_NOSUID),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("dev", true, MsFlags::MS_NODEV),
    ("nodev", false, MsFlags::MS_NODEV),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("atime", true, MsFlags::MS_NOATIME),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("lazytime", false, MsFlags::MS_LAZYTIME),
    ("nolazytime", true, MsFlags::MS_LAZYTIME),
    ("silent", false, MsFlags::MS_SILENT),
    ("loud", true, MsFlags::MS_SILENT),
];

const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Splits mount options into flags, propagation and data. Empty words are skipped.
pub fn parse_mount_options<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for o in options.iter().map(AsRef::as_ref).filter(|o| !o.is_empty()) {
        if let Some(&(_, clear, flag)) = FLAGS.iter().find(|(w, _, _)| *w == o) {
            if clear {
                out.flags.remove(flag);
            } else {
                out.flags.insert(flag);
            }
        } else if let Some(&(_, flag)) = PROPAGATION.iter().find(|(w, _)| *w == o) {
            out.propagation.insert(flag);
        } else {
            data.push(o);
        }
    }
    out.data = data.join(",");
    out
}

/// The value of `key=` among the options (the last one wins), e.g. `mode` → `"0777"`.
pub fn option_value<'a, S: AsRef<str>>(options: &'a [S], key: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find_map(|o| o.as_ref().strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_from_data() {
        let rows: &[(&[&str], MsFlags, MsFlags, &str)] = &[
            (
                &["noexec", "nosuid", "nodev", "mode=1777", "size=67108864"],
                MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                MsFlags::empty(),
                "mode=1777,size=67108864",
            ),
            (
                &["ro", "nouuid"],
                MsFlags::MS_RDONLY,
                MsFlags::empty(),
                "nouuid",
            ),
            (
                &["rbind", "ro"],
                MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY,
                MsFlags::empty(),
                "",
            ),
            (
                &["ro", "rw", "relatime"],
                MsFlags::MS_RELATIME,
                MsFlags::empty(),
                "",
            ),
            (
                &["bind", "rprivate", ""],
                MsFlags::MS_BIND,
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                "",
            ),
            (
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
                MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                MsFlags::empty(),
                "mode=755,size=65536k",
            ),
        ];
        for (opts, flags, prop, data) in rows {
            let got = parse_mount_options(opts);
            assert_eq!(got.flags, *flags, "{opts:?}");
            assert_eq!(got.propagation, *prop, "{opts:?}");
            assert_eq!(got.data, *data, "{opts:?}");
        }
    }

    #[test]
    fn finds_option_values() {
        let o = ["mode=0777", "size=1", "mode=0700"];
        assert_eq!(option_value(&o, "mode"), Some("0700"));
        assert_eq!(option_value(&o, "size"), Some("1"));
        assert_eq!(option_value(&o, "uid"), None);
    }
}
