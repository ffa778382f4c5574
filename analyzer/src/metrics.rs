//! Robert C. Martin's package metrics for every module and every crate: fan-in, fan-out,
//! instability, abstractness, distance from the main sequence, and lines of code.
//!
//! Module fan-in and fan-out count distinct in-scope modules (self-references do not count);
//! crate fan-in and fan-out count distinct crates along the crate edges. A crate's trait, type and
//! line counts are the sums over its modules.

use std::collections::{BTreeMap, HashMap};

use crate::report::{CrateEdge, CrateInfo, Edge, Metrics, Module, UnitMetrics};

/// Computes the metrics of every module (sorted by id) and every crate (sorted by name).
///
/// The crates listed are those of `crates` and any other crate a module belongs to.
pub fn compute(
    modules: &[Module],
    crates: &[CrateInfo],
    edges: &[&Edge],
    crate_edges: &[CrateEdge],
) -> Metrics {
    let _span = tracing::info_span!("metrics").entered();
    let mut module_counts: BTreeMap<&str, Counts> = modules
        .iter()
        .map(|module| {
            let counts = Counts {
                n_traits: u64::from(module.n_traits),
                n_types: u64::from(module.n_types),
                lines_of_code: u64::from(module.lines_of_code),
                ..Counts::default()
            };
            (module.id.as_str(), counts)
        })
        .collect();
    add_couplings(
        &mut module_counts,
        edges
            .iter()
            .map(|edge| (edge.from.as_str(), edge.to.as_str())),
    );

    let mut crate_counts: BTreeMap<&str, Counts> = crates
        .iter()
        .map(|krate| (krate.name.as_str(), Counts::default()))
        .collect();
    for module in modules {
        let counts = crate_counts.entry(module.krate.as_str()).or_default();
        counts.n_traits += u64::from(module.n_traits);
        counts.n_types += u64::from(module.n_types);
        counts.lines_of_code += u64::from(module.lines_of_code);
    }
    add_couplings(
        &mut crate_counts,
        crate_edges
            .iter()
            .map(|edge| (edge.from.as_str(), edge.to.as_str())),
    );

    Metrics {
        modules: module_counts
            .iter()
            .map(|(id, counts)| counts.unit(id))
            .collect(),
        crates: crate_counts
            .iter()
            .map(|(id, counts)| counts.unit(id))
            .collect(),
    }
}

#[derive(Debug, Default)]
struct Counts {
    fan_in: usize,
    fan_out: usize,
    n_traits: u64,
    n_types: u64,
    lines_of_code: u64,
}

/// Counts each dependency between two distinct units that are both known, once per pair.
fn add_couplings<'a>(
    counts: &mut BTreeMap<&'a str, Counts>,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) {
    let index: HashMap<&str, usize> = counts
        .keys()
        .enumerate()
        .map(|(idx, id)| (*id, idx))
        .collect();
    let mut distinct: Vec<(usize, usize)> = pairs
        .filter(|(from, to)| from != to)
        .filter_map(|(from, to)| Some((*index.get(from)?, *index.get(to)?)))
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut fan_in = vec![0usize; index.len()];
    let mut fan_out = vec![0usize; index.len()];
    for (from, to) in distinct {
        fan_out[from] += 1;
        fan_in[to] += 1;
    }
    for (idx, entry) in counts.values_mut().enumerate() {
        entry.fan_in = fan_in[idx];
        entry.fan_out = fan_out[idx];
    }
}

impl Counts {
    fn unit(&self, id: &str) -> UnitMetrics {
        let (fan_in, fan_out) = (self.fan_in, self.fan_out);
        let instability = if fan_in + fan_out == 0 {
            0.0
        } else {
            fan_out as f64 / (fan_in + fan_out) as f64
        };
        // Traits are counted among the types, so this stays within 0..=1 for consistent input; the
        // clamp keeps an inconsistent count from producing a meaningless metric.
        let abstractness = if self.n_types == 0 {
            0.0
        } else {
            (self.n_traits as f64 / self.n_types as f64).min(1.0)
        };
        UnitMetrics {
            id: id.to_owned(),
            fan_in: u32::try_from(fan_in).unwrap_or(u32::MAX),
            fan_out: u32::try_from(fan_out).unwrap_or(u32::MAX),
            instability,
            abstractness,
            distance: (abstractness + instability - 1.0).abs(),
            lines_of_code: u32::try_from(self.lines_of_code).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests;
