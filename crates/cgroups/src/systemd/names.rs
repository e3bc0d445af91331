//! systemd slice and unit names (cgroups-rs `expand_slice` / `new_unit_name`, which follow
//! systemd's own rules).

use crate::error::SystemdError;

/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root (empty path).
pub fn expand_slice(slice: &str) -> Result<String, SystemdError> {
    let bad = |reason| SystemdError::InvalidName {
        what: "slice",
        value: slice.to_string(),
        reason,
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(bad("must end in .slice"));
    };
    if slice.contains('/') {
        return Err(bad("must not contain '/'"));
    }
    if stem == "-" {
        return Ok(String::new());
    }
    if stem.is_empty() || stem.split('-').any(str::is_empty) {
        return Err(bad("empty component"));
    }
    let mut levels = Vec::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        levels.push(format!("{prefix}.slice"));
    }
    Ok(levels.join("/"))
}

/// Transient unit name: `<prefix>-<name>.scope`, `<name>.scope` without a prefix, a slice name
/// kept as it is.
pub fn unit_name(prefix: &str, name: &str) -> String {
    if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    }
}

/// systemd's D-Bus cpuset form (`AllowedCPUs`, `AllowedMemoryNodes`): a little-endian bitmask,
/// bit j of byte i standing for CPU 8·i + j.
pub fn cpuset_mask(list: &str) -> Result<Vec<u8>, SystemdError> {
    let bad = |reason| SystemdError::InvalidName {
        what: "cpuset",
        value: list.to_string(),
        reason,
    };
    let mut mask = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (item.parse::<usize>(), item.parse::<usize>()),
        };
        let (Ok(lo), Ok(hi)) = (lo, hi) else {
            return Err(bad("not a CPU list"));
        };
        if lo > hi || hi >= 8192 {
            return Err(bad("range out of order or above 8191"));
        }
        for cpu in lo..=hi {
            if mask.len() <= cpu / 8 {
                mask.resize(cpu / 8 + 1, 0u8);
            }
            mask[cpu / 8] |= 1 << (cpu % 8);
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_slice_vectors() {
        // vectors.md §6.1 (cgroups-rs systemd/utils.rs tests).
        let ok = [
            ("test.slice", "test.slice"),
            ("test-1.slice", "test.slice/test-1.slice"),
            (
                "test-1-test-2.slice",
                "test.slice/test-1.slice/test-1-test.slice/test-1-test-2.slice",
            ),
            ("slice-slice.slice", "slice.slice/slice-slice.slice"),
            ("-.slice", ""),
        ];
        for (input, want) in ok {
            assert_eq!(expand_slice(input).unwrap(), want, "{input}");
        }
        for input in ["invalid/slice", "invalid-slice"] {
            assert!(expand_slice(input).is_err(), "{input}");
        }
    }

    #[test]
    fn unit_name_vectors() {
        let cases = [
            (("test", "unit"), "test-unit.scope"),
            (("test", "unit.slice"), "unit.slice"),
            (("", "unit"), "unit.scope"),
            (("", "unit.slice"), "unit.slice"),
            (("prefix", "unit"), "prefix-unit.scope"),
        ];
        for ((prefix, name), want) in cases {
            assert_eq!(unit_name(prefix, name), want);
        }
    }

    #[test]
    fn cpuset_mask_sets_the_listed_bits() {
        assert_eq!(cpuset_mask("0-1").unwrap(), vec![0b11]);
        assert_eq!(cpuset_mask("0,2,4").unwrap(), vec![0b10101]);
        assert_eq!(cpuset_mask("9").unwrap(), vec![0, 0b10]);
        assert!(cpuset_mask("3-1").is_err());
        assert!(cpuset_mask("x").is_err());
    }
}
