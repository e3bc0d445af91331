use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::VcpuError;

/// Highest CPU number accepted. Linux caps `NR_CPUS` at 8192; the margin keeps hostile ranges
/// such as `0-4294967295` from allocating gigabytes (the reference accepts any `u32`).
pub const MAX_CPU_ID: u32 = 65_535;

/// A set of CPU (or memory node) numbers as written in OCI `linux.resources.cpu.cpus`.
///
/// Parsing follows kata-types `U32Set`: comma-separated numbers or `a-b` ranges with `a < b`;
/// empty items, single-element ranges (`1-1`), reversed ranges and signs are errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// Number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the set holds no CPU.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds every CPU of `other` to this set.
    pub fn union_with(&mut self, other: &CpuSet) {
        self.0.extend(other.0.iter().copied());
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuSet(iter.into_iter().collect())
    }
}

fn parse_id(text: &str, item: &str, whole: &str) -> Result<u32, VcpuError> {
    let err = |reason: String| VcpuError::InvalidCpuSet {
        text: whole.to_string(),
        reason,
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("{item:?} is not a number or a range a-b")));
    }
    let id: u32 = text
        .parse()
        .map_err(|_| err(format!("{text:?} is out of range")))?;
    if id > MAX_CPU_ID {
        return Err(err(format!(
            "{id} is above the maximum CPU number {MAX_CPU_ID}"
        )));
    }
    Ok(id)
}

impl FromStr for CpuSet {
    type Err = VcpuError;

    fn from_str(whole: &str) -> Result<Self, Self::Err> {
        let mut set = BTreeSet::new();
        if whole.trim().is_empty() {
            return Ok(CpuSet(set));
        }
        for item in whole.split(',') {
            let item = item.trim();
            match item.split_once('-') {
                None => {
                    set.insert(parse_id(item, item, whole)?);
                }
                Some((first, last)) => {
                    let first = parse_id(first, item, whole)?;
                    let last = parse_id(last, item, whole)?;
                    if first >= last {
                        return Err(VcpuError::InvalidCpuSet {
                            text: whole.to_string(),
                            reason: format!(
                                "range {item:?} must go from a lower to a higher number"
                            ),
                        });
                    }
                    set.extend(first..=last);
                }
            }
        }
        Ok(CpuSet(set))
    }
}

impl fmt::Display for CpuSet {
    /// Canonical form: ascending, runs of two or more joined as `a-b` (`0-3,6`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u32> = self.0.iter().copied().collect();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let start = ids[i];
            let mut end = start;
            while i + 1 < ids.len() && ids[i + 1] == end + 1 {
                i += 1;
                end = ids[i];
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u32]) -> CpuSet {
        ids.iter().copied().collect()
    }

    // vectors.md §5.3 (kata utils/u32_set.rs::test_cpuset_from_str)
    #[test]
    fn accepts_reference_cases() {
        assert_eq!("".parse::<CpuSet>().unwrap(), set(&[]));
        assert_eq!("1,2,3".parse::<CpuSet>().unwrap(), set(&[1, 2, 3]));
        assert_eq!("1-2,3".parse::<CpuSet>().unwrap(), set(&[1, 2, 3]));
        assert_eq!(
            "1,3,4,6,7,8".parse::<CpuSet>().unwrap(),
            "1,3-4,6-8".parse::<CpuSet>().unwrap()
        );
    }

    #[test]
    fn equality_ignores_order_and_duplicates() {
        assert_eq!("3,1,2,2".parse::<CpuSet>().unwrap(), set(&[1, 2, 3]));
    }

    #[test]
    fn rejects_reference_cases() {
        let bad = [
            "1-2-3,3",
            "1-2,,3",
            "1-2.5,3",
            "1-1",
            "2-1",
            "0,,1",
            "-1",
            "1-",
            "-1--2",
            "999999999999999999999999999999999999999999999",
        ];
        for text in bad {
            assert!(
                matches!(text.parse::<CpuSet>(), Err(VcpuError::InvalidCpuSet { .. })),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn refuses_hostile_ranges() {
        let err = "0-4294967295".parse::<CpuSet>().unwrap_err();
        assert!(err.to_string().contains("maximum CPU number"), "{err}");
    }

    #[test]
    fn displays_canonical_ranges() {
        assert_eq!("6,0-3,2-5".parse::<CpuSet>().unwrap().to_string(), "0-6");
        assert_eq!(
            "1,3,4,5,9".parse::<CpuSet>().unwrap().to_string(),
            "1,3-5,9"
        );
        assert_eq!(CpuSet::default().to_string(), "");
    }

    #[test]
    fn union_of_overlapping_sets() {
        let mut a: CpuSet = "0-3".parse().unwrap();
        a.union_with(&"2-5".parse().unwrap());
        assert_eq!(a.len(), 6);
    }
}
