//! How long the in-process graph layout takes on graphs of up to 150 nodes. The HTML report now
//! draws only the crate graph with it (the module map is laid out in the browser, by
//! `report/map.js`); the sizes are kept so the figures stay comparable.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use templates::layout::{EdgeIn, NodeIn, layout};

/// A module-graph-like graph: mostly downward edges, some back edges (cycles), deterministic.
fn graph(n_nodes: usize, edges_per_node: usize) -> (Vec<NodeIn>, Vec<EdgeIn>) {
    let nodes = (0..n_nodes)
        .map(|idx| NodeIn {
            label: format!("subsystem_{}::module_{idx}", idx % 7),
            group: idx % 3,
            highlight: idx % 11 == 0,
        })
        .collect();
    // A small linear congruential generator keeps the graph the same on every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % bound
    };
    let mut edges = Vec::new();
    for from in 0..n_nodes {
        for _ in 0..edges_per_node {
            let to = next(n_nodes);
            if to == from {
                continue;
            }
            // One edge in ten points "up": those make the cycles.
            let back = next(10) == 0;
            let (from, to) = if back {
                (to.max(from), to.min(from))
            } else {
                (to.min(from), to.max(from))
            };
            edges.push(EdgeIn {
                from,
                to,
                weight: 1 + next(20) as u32,
                highlight: back,
                reversed: back,
            });
        }
    }
    (nodes, edges)
}

fn bench_layout(c: &mut Criterion) {
    let mut group = c.benchmark_group("layout");
    for (n_nodes, edges_per_node) in [(20, 3), (60, 3), (150, 3), (150, 6)] {
        let (nodes, edges) = graph(n_nodes, edges_per_node);
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{n_nodes}n_{}e", edges.len())),
            &(nodes, edges),
            |bencher, (nodes, edges)| bencher.iter(|| layout(nodes, edges)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_layout);
criterion_main!(benches);
