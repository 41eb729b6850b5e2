//! Alembic head revision → Airflow release.
//!
//! Source: `_REVISION_HEADS_MAP` in Airflow's `utils/db.py` and the
//! per-release migrations reference. A fresh `airflow db migrate` stamps the
//! head directly, so these are the only values a fresh or fully migrated DB
//! holds. Add a row when Airflow ships a release with a new head; until then,
//! that release is detected as "unknown" and probed from the catalog.

/// An Airflow release range sharing one alembic head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The alembic head revision.
    pub revision: &'static str,
    /// Human label of the range, used as the `airflow_version` label.
    pub label: &'static str,
    /// Major version.
    pub major: u8,
    /// Minor version of the first release in the range.
    pub minor: u8,
}

const fn r(revision: &'static str, label: &'static str, major: u8, minor: u8) -> Release {
    Release {
        revision,
        label,
        major,
        minor,
    }
}

/// Known heads, oldest first.
pub const RELEASES: &[Release] = &[
    r("405de8318b3a", "2.7.0-2.7.3", 2, 7),
    r("10b52ebd31f7", "2.8.0", 2, 8),
    r("88344c1d9134", "2.8.1-2.8.4", 2, 8),
    r("1949afb29106", "2.9.0-2.9.1", 2, 9),
    r("686269002441", "2.9.2-2.9.3", 2, 9),
    r("22ed7efa9da2", "2.10.0-2.10.2", 2, 10),
    r("5f2621c13b39", "2.10.3-2.11.x", 2, 10),
    r("29ce7909c52b", "3.0.0-3.0.2", 3, 0),
    r("fe199e1abd77", "3.0.3-3.0.6", 3, 0),
    r("cc92b33c6709", "3.1.0-3.1.7", 3, 1),
    r("509b94a1042d", "3.1.8", 3, 1),
    r("1d6611b6ab7c", "3.2.x", 3, 2),
    r("d2f4e1b3c5a7", "3.3.x", 3, 3),
];

/// The release a revision belongs to.
pub fn release_for(revision: &str) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.revision == revision.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_unique_and_ordered() {
        let mut seen = std::collections::HashSet::new();
        let mut last = (0, 0);
        for r in RELEASES {
            assert!(seen.insert(r.revision), "duplicate {}", r.revision);
            assert!((r.major, r.minor) >= last, "{} out of order", r.label);
            last = (r.major, r.minor);
        }
    }

    #[test]
    fn lookup() {
        assert_eq!(release_for("5f2621c13b39").unwrap().label, "2.10.3-2.11.x");
        assert_eq!(release_for(" 509b94a1042d\n").unwrap().major, 3);
        assert!(release_for("ffffffffffff").is_none());
    }
}
