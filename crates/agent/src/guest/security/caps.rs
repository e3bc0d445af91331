//! `process.capabilities`, applied as runc's `finalizeNamespace` does: the bounding set is
//! reduced while the helper is still root (PR_CAPBSET_DROP needs CAP_SETPCAP), PR_SET_KEEPCAPS
//! keeps the permitted set across the uid change, and the effective, permitted, inheritable and
//! ambient sets are set after it. A process without a `capabilities` field is left as it is
//! (runc: `capabilities.New(nil)` applies nothing). Unknown names are ignored, as runc does
//! (it only logs them): they cannot be granted by this kernel anyway.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

use crate::protocols::oci::LinuxCapabilities;

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("capabilities: {what} {set}: {source}")]
    Apply {
        what: &'static str,
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("capabilities: {what}: {errno}")]
    Prctl {
        what: &'static str,
        errno: nix::errno::Errno,
    },
}

/// The five sets as the kernel knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

/// Known capability names (`CAP_*`); unknown ones are skipped.
pub fn parse_names(names: &[String]) -> CapsHashSet {
    names
        .iter()
        .filter_map(|n| Capability::from_str(n).ok())
        .collect::<HashSet<_>>()
}

impl CapSets {
    pub fn from_oci(c: &LinuxCapabilities) -> Self {
        CapSets {
            bounding: parse_names(&c.Bounding),
            effective: parse_names(&c.Effective),
            inheritable: parse_names(&c.Inheritable),
            permitted: parse_names(&c.Permitted),
            ambient: parse_names(&c.Ambient),
        }
    }
}

fn apply_err(
    what: &'static str,
    set: &'static str,
) -> impl FnOnce(caps::errors::CapsError) -> CapsError {
    move |source| CapsError::Apply { what, set, source }
}

/// Before the uid change: drops what is not in the bounding set and sets PR_SET_KEEPCAPS.
pub fn before_setuid(sets: &CapSets) -> Result<(), CapsError> {
    let current = caps::read(None, CapSet::Bounding).map_err(apply_err("read", "bounding"))?;
    for cap in current.difference(&sets.bounding) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(apply_err("drop", "bounding"))?;
    }
    nix::sys::prctl::set_keepcaps(true).map_err(|errno| CapsError::Prctl {
        what: "PR_SET_KEEPCAPS",
        errno,
    })
}

/// After the uid change: clears PR_SET_KEEPCAPS, sets inheritable, effective and permitted
/// (in that order, so each capset stays within what the previous one allows), then raises
/// the ambient capabilities.
pub fn after_setuid(sets: &CapSets) -> Result<(), CapsError> {
    nix::sys::prctl::set_keepcaps(false).map_err(|errno| CapsError::Prctl {
        what: "clear PR_SET_KEEPCAPS",
        errno,
    })?;
    caps::set(None, CapSet::Inheritable, &sets.inheritable)
        .map_err(apply_err("set", "inheritable"))?;
    caps::set(None, CapSet::Effective, &sets.effective).map_err(apply_err("set", "effective"))?;
    caps::set(None, CapSet::Permitted, &sets.permitted).map_err(apply_err("set", "permitted"))?;
    caps::clear(None, CapSet::Ambient).map_err(apply_err("clear", "ambient"))?;
    for cap in &sets.ambient {
        caps::raise(None, CapSet::Ambient, *cap).map_err(apply_err("raise", "ambient"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oci_names_and_skips_unknown_ones() {
        let names = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_BOGUS", "chown"].map(String::from);
        let set = parse_names(&names);
        assert_eq!(set.len(), 2);
        assert!(set.contains(&Capability::CAP_CHOWN));
        assert!(set.contains(&Capability::CAP_NET_RAW));
    }

    #[test]
    fn maps_every_set_of_the_spec() {
        let c = LinuxCapabilities {
            Bounding: vec!["CAP_KILL".into(), "CAP_CHOWN".into()],
            Effective: vec!["CAP_KILL".into()],
            Permitted: vec!["CAP_KILL".into()],
            Inheritable: vec![],
            Ambient: vec!["CAP_KILL".into()],
            ..Default::default()
        };
        let s = CapSets::from_oci(&c);
        assert_eq!(s.bounding.len(), 2);
        assert_eq!(s.effective, [Capability::CAP_KILL].into_iter().collect());
        assert!(s.inheritable.is_empty());
        assert_eq!(s.ambient, s.permitted);
    }
}
