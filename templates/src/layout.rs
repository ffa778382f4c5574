//! A small layered (Sugiyama-style) graph layout, computed in-process for the report's SVG.
//!
//! The steps are the classic ones, each kept simple:
//!
//! 1. **Break cycles.** Edges the caller marks as `reversed` (the report's cut list) are turned
//!    around first; any cycle left after that is broken by reversing the back edges of a depth-first
//!    search. The result is acyclic, and each reversed edge is drawn in its true direction again.
//! 2. **Layers** by longest path: a node sits one layer below the lowest of its dependents, so every
//!    dependency points downwards.
//! 3. **Dummy nodes** split edges that span more than one layer, so long edges bend around nodes
//!    instead of crossing them.
//! 4. **Order** inside each layer by barycenter sweeps (down, then up), keeping the order with the
//!    fewest crossings seen.
//! 5. **Coordinates**: nodes packed left to right, each layer centred; edges become polylines
//!    through their dummy nodes.
//!
//! The layout is deterministic: the same input always gives the same picture.

/// A node to place.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeIn {
    pub label: String,
    /// Nodes of one group (a crate) share a colour.
    pub group: usize,
    /// Drawn with a red outline (a member of a cycle).
    pub highlight: bool,
}

/// An edge to draw, by node index.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeIn {
    pub from: usize,
    pub to: usize,
    pub weight: u32,
    /// Drawn red (an edge inside a cycle).
    pub highlight: bool,
    /// Turn this edge around before layering (an edge of the cut list).
    pub reversed: bool,
}

/// A placed node: its box, top-left corner at (`x`, `y`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedNode {
    pub index: usize,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub layer: usize,
}

/// A placed edge: a polyline from the source box to the target box.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedEdge {
    pub index: usize,
    pub points: Vec<(f64, f64)>,
    /// Where to write the weight.
    pub label_at: (f64, f64),
}

/// The whole picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<PlacedNode>,
    pub edges: Vec<PlacedEdge>,
    /// Node indices, layer by layer, left to right: a good order for a dependency matrix.
    pub order: Vec<usize>,
    /// Edge crossings left in the final order.
    pub crossings: usize,
}

const NODE_HEIGHT: f64 = 28.0;
const CHAR_WIDTH: f64 = 7.2;
const NODE_PADDING: f64 = 16.0;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 72.0;
const MARGIN: f64 = 20.0;
const DUMMY_WIDTH: f64 = 8.0;
const SWEEPS: usize = 12;
const PAIR_OFFSET: f64 = 6.0;

/// Lays out a directed graph; edges point from a dependent down to its dependency.
///
/// Self-loops and edges naming unknown nodes are left out of the picture.
pub fn layout(nodes: &[NodeIn], edges: &[EdgeIn]) -> Layout {
    let n_real = nodes.len();
    let usable: Vec<usize> = (0..edges.len())
        .filter(|&edge_idx| {
            let edge = &edges[edge_idx];
            edge.from != edge.to && edge.from < n_real && edge.to < n_real
        })
        .collect();

    // 1. Break cycles.
    let mut directed: Vec<(usize, usize, usize, bool)> = usable
        .iter()
        .map(|&edge_idx| {
            let edge = &edges[edge_idx];
            if edge.reversed {
                (edge.to, edge.from, edge_idx, true)
            } else {
                (edge.from, edge.to, edge_idx, false)
            }
        })
        .collect();
    for back_edge in back_edges(n_real, &directed) {
        let (from, to, edge_idx, flipped) = directed[back_edge];
        directed[back_edge] = (to, from, edge_idx, !flipped);
    }

    // 2. Layers by longest path from the sources.
    let layer_of = longest_path_layers(n_real, &directed);

    // 3. Dummy nodes for long edges. Virtual node ids >= n_real are dummies.
    let mut layer_of_virtual = layer_of.clone();
    let mut segments: Vec<(usize, usize)> = Vec::new();
    // For each drawn edge: its chain of virtual nodes from the upper to the lower end.
    let mut chains: Vec<(usize, Vec<usize>, bool)> = Vec::new();
    for &(from, to, edge_idx, flipped) in &directed {
        let mut chain = vec![from];
        let mut previous = from;
        for layer in layer_of[from] + 1..layer_of[to] {
            let dummy = layer_of_virtual.len();
            layer_of_virtual.push(layer);
            segments.push((previous, dummy));
            chain.push(dummy);
            previous = dummy;
        }
        segments.push((previous, to));
        chain.push(to);
        chains.push((edge_idx, chain, flipped));
    }
    let n_virtual = layer_of_virtual.len();
    let n_layers = layer_of_virtual
        .iter()
        .copied()
        .max()
        .map_or(0, |max| max + 1);

    // 4. Order within layers.
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); n_layers];
    for virtual_id in initial_order(n_real, n_virtual, &segments) {
        layers[layer_of_virtual[virtual_id]].push(virtual_id);
    }
    let mut ups: Vec<Vec<usize>> = vec![Vec::new(); n_virtual];
    let mut downs: Vec<Vec<usize>> = vec![Vec::new(); n_virtual];
    for &(upper, lower) in &segments {
        downs[upper].push(lower);
        ups[lower].push(upper);
    }
    let mut best = layers.clone();
    let mut best_crossings = count_crossings(&layers, &downs, n_virtual);
    for sweep in 0..SWEEPS {
        if best_crossings == 0 {
            break;
        }
        if sweep % 2 == 0 {
            for layer in 1..n_layers {
                reorder(&mut layers, layer, layer - 1, &ups, n_virtual);
            }
        } else {
            for layer in (0..n_layers.saturating_sub(1)).rev() {
                reorder(&mut layers, layer, layer + 1, &downs, n_virtual);
            }
        }
        let crossings = count_crossings(&layers, &downs, n_virtual);
        if crossings < best_crossings {
            best_crossings = crossings;
            best = layers.clone();
        }
    }
    let layers = best;

    // 5. Coordinates.
    let width_of = |virtual_id: usize| {
        if virtual_id < n_real {
            nodes[virtual_id].label.chars().count() as f64 * CHAR_WIDTH + NODE_PADDING
        } else {
            DUMMY_WIDTH
        }
    };
    let layer_widths: Vec<f64> = layers
        .iter()
        .map(|layer| {
            let boxes: f64 = layer.iter().map(|&virtual_id| width_of(virtual_id)).sum();
            boxes + GAP_X * layer.len().saturating_sub(1) as f64
        })
        .collect();
    let widest = layer_widths.iter().copied().fold(0.0, f64::max);
    let mut centre = vec![(0.0, 0.0); n_virtual];
    let mut placed = Vec::with_capacity(n_real);
    for (layer_idx, layer) in layers.iter().enumerate() {
        let mut x = MARGIN + (widest - layer_widths[layer_idx]) / 2.0;
        let y = MARGIN + layer_idx as f64 * (NODE_HEIGHT + GAP_Y);
        for &virtual_id in layer {
            let width = width_of(virtual_id);
            centre[virtual_id] = (x + width / 2.0, y + NODE_HEIGHT / 2.0);
            if virtual_id < n_real {
                placed.push(PlacedNode {
                    index: virtual_id,
                    x,
                    y,
                    width,
                    height: NODE_HEIGHT,
                    layer: layer_idx,
                });
            }
            x += width + GAP_X;
        }
    }
    placed.sort_by_key(|node| node.index);

    let mut placed_edges = Vec::with_capacity(chains.len());
    for (edge_idx, chain, flipped) in chains {
        let mut points: Vec<(f64, f64)> = Vec::with_capacity(chain.len());
        let last = chain.len() - 1;
        for (position, &virtual_id) in chain.iter().enumerate() {
            let (cx, cy) = centre[virtual_id];
            if position == 0 {
                points.push((cx, cy + NODE_HEIGHT / 2.0));
            } else if position == last {
                points.push((cx, cy - NODE_HEIGHT / 2.0));
            } else {
                points.push((cx, cy));
            }
        }
        if flipped {
            points.reverse();
        }
        let label_at = label_point(&points);
        placed_edges.push(PlacedEdge {
            index: edge_idx,
            points,
            label_at,
        });
    }
    placed_edges.sort_by_key(|edge| edge.index);
    // Two modules that depend on each other would get two arrows on the same line: move them
    // apart sideways, each to its own side.
    let pairs: std::collections::BTreeSet<(usize, usize)> = placed_edges
        .iter()
        .map(|placed| (edges[placed.index].from, edges[placed.index].to))
        .collect();
    for placed in &mut placed_edges {
        let edge = &edges[placed.index];
        if pairs.contains(&(edge.to, edge.from)) {
            let shift = if edge.from < edge.to {
                -PAIR_OFFSET
            } else {
                PAIR_OFFSET
            };
            for point in &mut placed.points {
                point.0 += shift;
            }
            placed.label_at = label_point(&placed.points);
        }
    }

    let order = layers
        .iter()
        .flatten()
        .copied()
        .filter(|&virtual_id| virtual_id < n_real)
        .collect();
    Layout {
        width: widest + 2.0 * MARGIN,
        height: if n_layers == 0 {
            2.0 * MARGIN
        } else {
            n_layers as f64 * (NODE_HEIGHT + GAP_Y) - GAP_Y + 2.0 * MARGIN
        },
        nodes: placed,
        edges: placed_edges,
        order,
        crossings: best_crossings,
    }
}

/// Indices (into `directed`) of the back edges of a depth-first search, visiting nodes in index
/// order. Reversing them all makes the graph acyclic.
fn back_edges(n_nodes: usize, directed: &[(usize, usize, usize, bool)]) -> Vec<usize> {
    let mut out: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n_nodes];
    for (position, &(from, to, ..)) in directed.iter().enumerate() {
        out[from].push((to, position));
    }
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; n_nodes];
    let mut res = Vec::new();
    for root in 0..n_nodes {
        if state[root] != 0 {
            continue;
        }
        // Iterative DFS: (node, next neighbour to look at).
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(to, position)) = out[node].get(*next) {
                *next += 1;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => res.push(position),
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    res
}

/// Layer of each node in an acyclic graph: 0 for nodes nothing points to, else one more than the
/// deepest node pointing to it.
fn longest_path_layers(n_nodes: usize, directed: &[(usize, usize, usize, bool)]) -> Vec<usize> {
    let mut in_degree = vec![0usize; n_nodes];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n_nodes];
    for &(from, to, ..) in directed {
        out[from].push(to);
        in_degree[to] += 1;
    }
    let mut layer = vec![0usize; n_nodes];
    let mut ready: Vec<usize> = (0..n_nodes)
        .filter(|&node| in_degree[node] == 0)
        .rev()
        .collect();
    while let Some(node) = ready.pop() {
        for &to in &out[node] {
            layer[to] = layer[to].max(layer[node] + 1);
            in_degree[to] -= 1;
            if in_degree[to] == 0 {
                ready.push(to);
            }
        }
    }
    layer
}

/// A first order: depth-first from the real nodes in index order, so connected nodes start close.
fn initial_order(n_real: usize, n_virtual: usize, segments: &[(usize, usize)]) -> Vec<usize> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n_virtual];
    for &(upper, lower) in segments {
        out[upper].push(lower);
    }
    let mut seen = vec![false; n_virtual];
    let mut res = Vec::with_capacity(n_virtual);
    for root in (0..n_real).chain(n_real..n_virtual) {
        if seen[root] {
            continue;
        }
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut seen[node], true) {
                continue;
            }
            res.push(node);
            stack.extend(out[node].iter().rev().copied().filter(|&to| !seen[to]));
        }
    }
    res
}

/// Sorts `layers[layer]` by the mean position of each node's neighbours in `layers[fixed]`.
/// Nodes without neighbours keep their place.
fn reorder(
    layers: &mut [Vec<usize>],
    layer: usize,
    fixed: usize,
    neighbours: &[Vec<usize>],
    n_virtual: usize,
) {
    let mut position = vec![0usize; n_virtual];
    for (idx, &virtual_id) in layers[fixed].iter().enumerate() {
        position[virtual_id] = idx;
    }
    let mut keyed: Vec<(f64, usize, usize)> = layers[layer]
        .iter()
        .enumerate()
        .map(|(idx, &virtual_id)| {
            let around = &neighbours[virtual_id];
            let key = if around.is_empty() {
                idx as f64
            } else {
                around
                    .iter()
                    .map(|&other| position[other] as f64)
                    .sum::<f64>()
                    / around.len() as f64
            };
            (key, idx, virtual_id)
        })
        .collect();
    keyed.sort_by(|left, right| left.0.total_cmp(&right.0).then(left.1.cmp(&right.1)));
    layers[layer] = keyed
        .into_iter()
        .map(|(_, _, virtual_id)| virtual_id)
        .collect();
}

/// Number of pairs of segments that cross between adjacent layers.
fn count_crossings(layers: &[Vec<usize>], downs: &[Vec<usize>], n_virtual: usize) -> usize {
    let mut position = vec![0usize; n_virtual];
    for layer in layers {
        for (idx, &virtual_id) in layer.iter().enumerate() {
            position[virtual_id] = idx;
        }
    }
    let mut total = 0;
    for layer in layers {
        let mut segments: Vec<(usize, usize)> = layer
            .iter()
            .flat_map(|&upper| downs[upper].iter().map(move |&lower| (upper, lower)))
            .map(|(upper, lower)| (position[upper], position[lower]))
            .collect();
        segments.sort_unstable();
        // Count inversions of the lower ends; quadratic, but layers of a module graph are small.
        for (idx, &(upper_a, lower_a)) in segments.iter().enumerate() {
            for &(upper_b, lower_b) in &segments[idx + 1..] {
                if upper_b > upper_a && lower_b < lower_a {
                    total += 1;
                }
            }
        }
    }
    total
}

/// A point for the weight label: the middle of the polyline's middle segment.
fn label_point(points: &[(f64, f64)]) -> (f64, f64) {
    let middle = points.len() / 2;
    let (a, b) = if points.len() >= 2 {
        (points[middle - 1], points[middle])
    } else {
        (points[0], points[0])
    };
    ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn node(label: &str) -> NodeIn {
        NodeIn {
            label: label.to_owned(),
            group: 0,
            highlight: false,
        }
    }

    fn edge(from: usize, to: usize, reversed: bool) -> EdgeIn {
        EdgeIn {
            from,
            to,
            weight: 1,
            highlight: false,
            reversed,
        }
    }

    #[test]
    fn dependencies_point_down() {
        let nodes = vec![node("a"), node("b"), node("c")];
        let edges = vec![edge(0, 1, false), edge(1, 2, false), edge(0, 2, false)];
        let res = layout(&nodes, &edges);
        let layers: Vec<usize> = res.nodes.iter().map(|placed| placed.layer).collect();
        assert_eq!(layers, vec![0, 1, 2]);
        // The long edge a -> c bends through a dummy node: three points.
        assert_eq!(res.edges[2].points.len(), 3);
        assert_eq!(res.crossings, 0);
    }

    #[test]
    fn cycles_are_broken_at_the_cut_and_drawn_in_their_true_direction() {
        let nodes = vec![node("display"), node("order"), node("member")];
        let edges = vec![edge(0, 1, false), edge(1, 2, false), edge(2, 0, true)];
        let res = layout(&nodes, &edges);
        let layers: Vec<usize> = res.nodes.iter().map(|placed| placed.layer).collect();
        assert_eq!(layers, vec![0, 1, 2]);
        // member -> display starts at member (bottom) and ends at display (top).
        let points = &res.edges[2].points;
        assert!(points[0].1 > points[points.len() - 1].1, "{points:?}");
    }

    #[test]
    fn two_way_pairs_get_two_separate_arrows() {
        let nodes = vec![node("order"), node("payment")];
        let edges = vec![edge(0, 1, false), edge(1, 0, true)];
        let res = layout(&nodes, &edges);
        let there = &res.edges[0].points;
        let back = &res.edges[1].points;
        assert!(
            (there[0].0 - back[back.len() - 1].0).abs() > 1.0,
            "{there:?} {back:?}"
        );
    }

    #[test]
    fn cycles_without_a_cut_are_broken_too() {
        let nodes = vec![node("a"), node("b")];
        let edges = vec![edge(0, 1, false), edge(1, 0, false), edge(1, 1, false)];
        let res = layout(&nodes, &edges);
        assert_eq!(res.nodes.len(), 2);
        assert_eq!(res.edges.len(), 2, "the self-loop is left out");
        assert_eq!(
            res.order.iter().copied().collect::<BTreeSet<_>>(),
            (0..2).collect::<BTreeSet<_>>()
        );
    }

    #[test]
    fn barycenter_removes_avoidable_crossings() {
        // Two parents with crossed children: a -> d, b -> c. Initial DFS order gives a,b / d,c.
        let nodes = vec![node("a"), node("b"), node("c"), node("d")];
        let edges = vec![edge(0, 3, false), edge(1, 2, false), edge(0, 2, false)];
        let res = layout(&nodes, &edges);
        assert_eq!(res.crossings, 0);
    }

    #[test]
    fn empty_graph() {
        let res = layout(&[], &[]);
        assert!(res.nodes.is_empty());
        assert!(res.width > 0.0 && res.height > 0.0);
    }

    proptest::proptest! {
        /// Any graph, cycles and self-loops included, is laid out: every node once, inside the
        /// picture, no two boxes of a layer overlapping, and every edge drawn from its source's
        /// box to its target's box.
        #[test]
        fn any_graph_gets_a_sound_layout(
            n_nodes in 1usize..14,
            raw_edges in proptest::collection::vec((0usize..14, 0usize..14, proptest::bool::ANY), 0..30),
        ) {
            let nodes: Vec<NodeIn> = (0..n_nodes).map(|idx| node(&format!("m{idx}"))).collect();
            let edges: Vec<EdgeIn> = raw_edges
                .iter()
                .map(|&(from, to, reversed)| edge(from % n_nodes, to % n_nodes, reversed))
                .collect();
            let res = layout(&nodes, &edges);
            proptest::prop_assert_eq!(res.nodes.len(), n_nodes);
            let mut order = res.order.clone();
            order.sort_unstable();
            proptest::prop_assert_eq!(order, (0..n_nodes).collect::<Vec<_>>());
            for placed in &res.nodes {
                proptest::prop_assert!(placed.x >= 0.0 && placed.x + placed.width <= res.width);
                proptest::prop_assert!(placed.y >= 0.0 && placed.y + placed.height <= res.height);
                for other in &res.nodes {
                    if other.index != placed.index && other.layer == placed.layer {
                        proptest::prop_assert!(
                            placed.x + placed.width <= other.x || other.x + other.width <= placed.x,
                            "boxes overlap: {:?} {:?}", placed, other
                        );
                    }
                }
            }
            for drawn in &res.edges {
                let input = &edges[drawn.index];
                proptest::prop_assert!(input.from != input.to);
                let from = &res.nodes[input.from];
                let to = &res.nodes[input.to];
                let first = drawn.points[0];
                let last = drawn.points[drawn.points.len() - 1];
                // Ends sit on the top or bottom border of their boxes (within the pair offset).
                proptest::prop_assert!(first.1 == from.y || first.1 == from.y + from.height);
                proptest::prop_assert!(last.1 == to.y || last.1 == to.y + to.height);
                proptest::prop_assert!(first.0 >= from.x - PAIR_OFFSET && first.0 <= from.x + from.width + PAIR_OFFSET);
                proptest::prop_assert!(last.0 >= to.x - PAIR_OFFSET && last.0 <= to.x + to.width + PAIR_OFFSET);
            }
        }

        /// In a graph without cycles, every dependency points down: the user sits above the used.
        #[test]
        fn acyclic_graphs_point_down(
            n_nodes in 2usize..14,
            raw_edges in proptest::collection::vec((0usize..14, 0usize..14), 0..30),
        ) {
            let nodes: Vec<NodeIn> = (0..n_nodes).map(|idx| node(&format!("m{idx}"))).collect();
            let edges: Vec<EdgeIn> = raw_edges
                .iter()
                .map(|&(a, b)| (a % n_nodes, b % n_nodes))
                .filter(|(a, b)| a != b)
                .map(|(a, b)| edge(a.min(b), a.max(b), false))
                .collect();
            let res = layout(&nodes, &edges);
            for input in &edges {
                proptest::prop_assert!(res.nodes[input.from].layer < res.nodes[input.to].layer);
            }
        }
    }
}
