//! Benchmarks of the graph algorithms on synthetic module graphs of 5,000 modules and 30,000 edges:
//! strongly connected components (through `crate_cycles`, which does nothing else), the full cycle
//! analysis (components, elementary cycles, two-way pairs, cut list), Louvain candidate services and
//! the metrics.
//!
//! Two graphs: `uniform` draws every edge at random (one giant component, the worst case for the
//! cut heuristic), `layered` puts modules in 20 layers with 95% of the edges going down a layer and
//! the rest going back up, which is closer to a real monolith.

use std::hint::black_box;
use std::path::PathBuf;

use analyzer::report::{CrateEdge, Edge, Hierarchy, Module, Usage};
use analyzer::{cycles, metrics, services};
use criterion::{Criterion, criterion_group, criterion_main};

const MODULES: usize = 5_000;
const EDGES: usize = 30_000;

/// A small deterministic generator (xorshift64*), so every run measures the same graph.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

fn module_id(node: usize) -> String {
    format!("app{}::m{node:05}", node / 100)
}

fn modules() -> Vec<Module> {
    (0..MODULES)
        .map(|node| Module {
            id: module_id(node),
            krate: format!("app{}", node / 100),
            parent: None,
            file: PathBuf::from("src/lib.rs"),
            line: 1,
            lines_of_code: 80,
            inline: false,
            cfg: None,
            test_only: false,
            in_macro: false,
            n_traits: 1,
            n_types: 4,
        })
        .collect()
}

/// `EDGES` distinct edges without self-loops; `pick` draws a candidate `(from, to)`.
fn edges(mut pick: impl FnMut(&mut Rng) -> (usize, usize)) -> Vec<Edge> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = std::collections::HashSet::new();
    let mut edges = Vec::with_capacity(EDGES);
    while edges.len() < EDGES {
        let (from, to) = pick(&mut rng);
        if from == to || !seen.insert((from, to)) {
            continue;
        }
        edges.push(Edge {
            from: module_id(from),
            to: module_id(to),
            weight: 1 + rng.below(8) as u32,
            items: vec!["Item".to_owned()],
            hierarchy: Hierarchy::Cross,
            usage: Usage::Code,
            test_only: false,
            locations: Vec::new(),
            resolutions: Vec::new(),
        });
    }
    edges
}

fn uniform() -> Vec<Edge> {
    edges(|rng| (rng.below(MODULES), rng.below(MODULES)))
}

fn layered() -> Vec<Edge> {
    const LAYERS: usize = 20;
    let per_layer = MODULES / LAYERS;
    edges(|rng| {
        let layer = rng.below(LAYERS - 1);
        let (upper, lower) = (layer, layer + 1);
        let from = upper * per_layer + rng.below(per_layer);
        let to = lower * per_layer + rng.below(per_layer);
        if rng.below(100) < 5 {
            (to, from)
        } else {
            (from, to)
        }
    })
}

fn crate_edges(edges: &[Edge]) -> Vec<CrateEdge> {
    // One "crate" per module, so that `crate_cycles` runs the component search on the module graph.
    edges
        .iter()
        .map(|edge| CrateEdge {
            from: edge.from.clone(),
            to: edge.to.clone(),
            weight: edge.weight,
        })
        .collect()
}

fn bench(criterion: &mut Criterion) {
    let modules = modules();
    for (name, edges) in [("uniform", uniform()), ("layered", layered())] {
        let refs: Vec<&Edge> = edges.iter().collect();
        let as_crates = crate_edges(&edges);
        let mut group = criterion.benchmark_group(name);
        group.sample_size(10);
        group.bench_function("scc", |bench| {
            bench.iter(|| cycles::crate_cycles(black_box(&as_crates)))
        });
        group.bench_function("cycles_and_cut", |bench| {
            bench.iter(|| cycles::analyze(black_box(&modules), black_box(&refs), 100))
        });
        group.bench_function("louvain_services", |bench| {
            bench.iter(|| services::candidates(black_box(&modules), black_box(&refs)))
        });
        group.bench_function("metrics", |bench| {
            bench.iter(|| metrics::compute(black_box(&modules), &[], black_box(&refs), &[]))
        });
        group.finish();
        let analysis = cycles::analyze(&modules, &refs, 100);
        let (services, service_edges) = services::candidates(&modules, &refs);
        let cut_weight: u64 = analysis.cut.iter().map(|edge| u64::from(edge.weight)).sum();
        let total_weight: u64 = edges.iter().map(|edge| u64::from(edge.weight)).sum();
        eprintln!(
            "{name}: {} components (largest {}), cut {} edges of weight {cut_weight}/{total_weight} (exact: {}), \
             {} elementary cycles (truncated: {}), {} services, {} service edges",
            analysis.cycles.len(),
            analysis
                .cycles
                .iter()
                .map(|cycle| cycle.members.len())
                .max()
                .unwrap_or(0),
            analysis.cut.len(),
            analysis.cut_exact,
            analysis.elementary.len(),
            analysis.elementary_truncated,
            services.len(),
            service_edges.len(),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
