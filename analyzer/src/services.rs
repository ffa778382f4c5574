//! Candidate services: groups of modules that talk mostly among themselves, found by community
//! detection (Louvain) on the undirected, weighted, in-scope module graph.
//!
//! Rules, all deterministic:
//! - The weight between two modules is the sum of the weights of their edges in both directions.
//! - Louvain (local moves, then aggregation, repeated) maximises modularity; nodes are visited in id
//!   order and a node moves only for a strictly better gain. A community that Louvain leaves
//!   disconnected is split into its connected parts.
//! - A module with no in-scope edge joins the group of its nearest ancestor that has one, the
//!   crate root excepted; when there is none, it is left out (a lone module is no service, and
//!   gluing a crate's unconnected modules to wherever its root landed would only add noise).
//! - Crate roots themselves are not excluded: with the default scope a facade's re-exports are
//!   hierarchical edges and out of scope, so a root only joins a group through real cross-subtree
//!   dependencies.
//! - A group is named after its heaviest module (largest total edge weight, then most lines, then
//!   smallest id), by the last segment of its id; when two groups would share a name, they are named
//!   by the full id instead.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use crate::cycles::Digraph;
use crate::endpoints::domain_of;
use crate::report::{CandidateService, Domain, DomainRole, Edge, Endpoint, Module, ServiceEdge};

/// Groups modules into candidate services (sorted by name, modules sorted) and lists the in-scope
/// edges between two different groups, sorted by `(from_service, to_service, from, to)`.
pub fn candidates(
    modules: &[Module],
    edges: &[&Edge],
) -> (Vec<CandidateService>, Vec<ServiceEdge>) {
    candidates_with_affinity(modules, edges, &[])
}

/// Two modules that should land in one service for a reason other than their edges: an
/// endpoint runs the code of both (see [`endpoint_affinity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    pub a: String,
    pub b: String,
    pub weight: u64,
}

/// [`candidates`], with `affinity` added to the weight between two modules for the grouping
/// (the internal, external and crossing weights stay those of the edges). Modules that serve
/// the same requests then tend to share a service, as in request-based decomposition.
pub fn candidates_with_affinity(
    modules: &[Module],
    edges: &[&Edge],
    affinity: &[Affinity],
) -> (Vec<CandidateService>, Vec<ServiceEdge>) {
    let _span =
        tracing::info_span!("services", modules = modules.len(), edges = edges.len()).entered();
    let known: rustc_hash::FxHashSet<&str> =
        modules.iter().map(|module| module.id.as_str()).collect();
    let graph = Digraph::new(
        modules.iter().map(|module| module.id.as_str()),
        edges
            .iter()
            .map(|edge| (edge.from.as_str(), edge.to.as_str(), u64::from(edge.weight)))
            .chain(
                affinity
                    .iter()
                    .filter(|pair| {
                        known.contains(pair.a.as_str()) && known.contains(pair.b.as_str())
                    })
                    .map(|pair| (pair.a.as_str(), pair.b.as_str(), pair.weight)),
            ),
    );
    let n = graph.len();
    let undirected = UndirectedGraph::from_digraph(&graph);
    let mut group = louvain(&undirected);
    split_disconnected(&undirected, &mut group);

    // Modules with no in-scope edge take their nearest grouped ancestor's group.
    let index: HashMap<&str, usize> = graph
        .ids
        .iter()
        .enumerate()
        .map(|(idx, id)| (*id, idx))
        .collect();
    let connected: Vec<bool> = (0..n)
        .map(|node| !undirected.adj[node].is_empty())
        .collect();
    let parent: HashMap<&str, Option<&str>> = modules
        .iter()
        .map(|module| (module.id.as_str(), module.parent.as_deref()))
        .collect();
    let mut assigned: Vec<Option<usize>> = (0..n)
        .map(|node| connected[node].then_some(group[node]))
        .collect();
    for node in 0..n {
        if connected[node] {
            continue;
        }
        let mut ancestor = parent.get(graph.ids[node]).copied().flatten();
        let mut steps = 0;
        while let Some(id) = ancestor {
            steps += 1;
            let grandparent = parent.get(id).copied().flatten();
            // A crate root's group is about the root's own dependencies; the rest of the crate
            // does not follow it.
            if grandparent.is_none() {
                break;
            }
            if let Some(&idx) = index.get(id)
                && connected[idx]
            {
                assigned[node] = Some(group[idx]);
                break;
            }
            // A malformed parent chain must not loop forever.
            if steps > n {
                break;
            }
            ancestor = grandparent;
        }
    }

    let lines: HashMap<&str, u32> = modules
        .iter()
        .map(|module| (module.id.as_str(), module.lines_of_code))
        .collect();
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (node, grp) in assigned.iter().enumerate() {
        if let Some(grp) = grp {
            members.entry(*grp).or_default().push(node);
        }
    }
    let heaviest: Vec<(usize, Vec<usize>)> = members
        .into_values()
        .map(|nodes| {
            let top = nodes
                .iter()
                .copied()
                .max_by_key(|&node| {
                    (
                        undirected.degree_weight(node),
                        lines.get(graph.ids[node]).copied().unwrap_or(0),
                        std::cmp::Reverse(node),
                    )
                })
                .unwrap_or(nodes[0]);
            (top, nodes)
        })
        .collect();
    let short_name = |node: usize| {
        graph.ids[node]
            .rsplit("::")
            .next()
            .unwrap_or(graph.ids[node])
            .to_owned()
    };
    let mut name_count: HashMap<String, usize> = HashMap::default();
    for (top, _) in &heaviest {
        *name_count.entry(short_name(*top)).or_default() += 1;
    }
    let mut service_of: Vec<Option<usize>> = vec![None; n];
    let mut services: Vec<CandidateService> = Vec::with_capacity(heaviest.len());
    for (top, nodes) in &heaviest {
        let short = short_name(*top);
        let name = if name_count[&short] > 1 {
            graph.ids[*top].to_owned()
        } else {
            short
        };
        for &node in nodes {
            service_of[node] = Some(services.len());
        }
        services.push(CandidateService {
            name,
            modules: nodes
                .iter()
                .map(|&node| graph.ids[node].to_owned())
                .collect(),
            internal_weight: 0,
            external_weight: 0,
            endpoints: Vec::new(),
        });
    }

    let mut internal = vec![0u64; services.len()];
    let mut external = vec![0u64; services.len()];
    // Crossing edges as `(from service, to service, from node, to node, edge)`; node numbers follow
    // id order, so sorting by them sorts by id without comparing strings.
    let mut crossing: Vec<(usize, usize, usize, usize, &Edge)> = Vec::new();
    for edge in edges {
        if edge.from == edge.to {
            continue;
        }
        let (Some(&from_node), Some(&to_node)) =
            (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
        else {
            continue;
        };
        let weight = u64::from(edge.weight);
        match (service_of[from_node], service_of[to_node]) {
            (Some(a), Some(b)) if a == b => internal[a] += weight,
            (from_service, to_service) => {
                for service in [from_service, to_service].into_iter().flatten() {
                    external[service] += weight;
                }
                if let (Some(a), Some(b)) = (from_service, to_service) {
                    crossing.push((a, b, from_node, to_node, edge));
                }
            }
        }
    }
    for (idx, service) in services.iter_mut().enumerate() {
        service.internal_weight = u32::try_from(internal[idx]).unwrap_or(u32::MAX);
        service.external_weight = u32::try_from(external[idx]).unwrap_or(u32::MAX);
    }
    let mut by_name: Vec<usize> = (0..services.len()).collect();
    by_name.sort_by(|&a, &b| services[a].name.cmp(&services[b].name));
    let mut rank = vec![0usize; services.len()];
    for (position, &service) in by_name.iter().enumerate() {
        rank[service] = position;
    }
    crossing.sort_by_key(|&(a, b, from_node, to_node, _)| (rank[a], rank[b], from_node, to_node));
    let service_edges = crossing
        .into_iter()
        .map(|(a, b, _, _, edge)| ServiceEdge {
            from_service: services[a].name.clone(),
            to_service: services[b].name.clone(),
            from: edge.from.clone(),
            to: edge.to.clone(),
            weight: edge.weight,
            items: edge.items.clone(),
        })
        .collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    (services, service_edges)
}

/// The affinity endpoints give: for each endpoint, every pair of the modules whose code it
/// runs outside wiring, weighted by `weight_of(endpoint)` (1, or its requests when traffic is
/// known). Pairs are summed over endpoints and sorted.
pub fn endpoint_affinity(
    endpoints: &[Endpoint],
    domains: &[Domain],
    weight_of: &dyn Fn(&Endpoint) -> u64,
) -> Vec<Affinity> {
    let wiring: rustc_hash::FxHashSet<&str> = domains
        .iter()
        .filter(|domain| domain.role == DomainRole::Wiring)
        .map(|domain| domain.id.as_str())
        .collect();
    let mut acc: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for endpoint in endpoints {
        let weight = weight_of(endpoint);
        if weight == 0 {
            continue;
        }
        let run: Vec<&str> = endpoint
            .reaches
            .iter()
            .filter(|reach| reach.code && !wiring.contains(domain_of(&reach.module)))
            .map(|reach| reach.module.as_str())
            .collect();
        for (index, a) in run.iter().enumerate() {
            for b in &run[index + 1..] {
                let entry = acc.entry((a, b)).or_default();
                *entry = entry.saturating_add(weight);
            }
        }
    }
    acc.into_iter()
        .map(|((a, b), weight)| Affinity {
            a: a.to_owned(),
            b: b.to_owned(),
            weight,
        })
        .collect()
}

/// Fills each candidate's `endpoints` with the endpoints it would own: those whose owner domain
/// has most of its reached weight in the candidate's modules.
pub fn assign_endpoints(services: &mut [CandidateService], endpoints: &[Endpoint]) {
    let mut service_of: HashMap<&str, usize> = HashMap::default();
    for (index, service) in services.iter().enumerate() {
        for module in &service.modules {
            service_of.insert(module.as_str(), index);
        }
    }
    let mut owned: Vec<Vec<String>> = vec![Vec::new(); services.len()];
    for endpoint in endpoints {
        let Some(owner) = endpoint.owner.as_deref() else {
            continue;
        };
        let mut weight: BTreeMap<usize, u64> = BTreeMap::new();
        for reach in &endpoint.reaches {
            if domain_of(&reach.module) == owner
                && let Some(&service) = service_of.get(reach.module.as_str())
            {
                *weight.entry(service).or_default() += u64::from(reach.weight);
            }
        }
        let best = weight
            .iter()
            .max_by_key(|(service, weight)| (**weight, std::cmp::Reverse(**service)))
            .map(|(service, _)| *service)
            .or_else(|| service_of.get(owner).copied());
        if let Some(service) = best {
            owned[service].push(format!("{} {}", endpoint.method, endpoint.path));
        }
    }
    for (service, list) in services.iter_mut().zip(owned) {
        service.endpoints = list;
    }
}

/// An undirected weighted graph; `adj` holds each edge at both ends, `self_weight` the weight of
/// edges inside a node (after aggregation).
#[derive(Debug, Clone)]
pub(crate) struct UndirectedGraph {
    pub(crate) adj: Vec<Vec<(usize, f64)>>,
    pub(crate) self_weight: Vec<f64>,
}

impl UndirectedGraph {
    fn from_digraph(graph: &Digraph<'_>) -> UndirectedGraph {
        let n = graph.len();
        let mut adj: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        for (from, targets) in graph.out.iter().enumerate() {
            for &(to, weight) in targets {
                adj[from].push((to, weight as f64));
                adj[to].push((from, weight as f64));
            }
        }
        for list in &mut adj {
            merge_sorted(list);
        }
        UndirectedGraph {
            adj,
            self_weight: vec![0.0; n],
        }
    }

    fn len(&self) -> usize {
        self.adj.len()
    }

    /// Weighted degree, counting a node's own edges twice as modularity does.
    fn degree(&self, node: usize) -> f64 {
        self.adj[node].iter().map(|(_, weight)| weight).sum::<f64>() + 2.0 * self.self_weight[node]
    }

    fn degree_weight(&self, node: usize) -> u64 {
        self.degree(node) as u64
    }
}

fn merge_sorted(list: &mut Vec<(usize, f64)>) {
    list.sort_unstable_by_key(|entry| entry.0);
    list.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 += later.1;
        }
        same
    });
}

/// Most passes of local moves on one level.
const LOUVAIN_MAX_PASSES: usize = 64;
/// Most aggregation levels.
const LOUVAIN_MAX_LEVELS: usize = 32;
/// Smallest modularity gain of a whole pass of local moves worth another pass.
const LOUVAIN_MIN_PASS_GAIN: f64 = 1e-6;
/// Smallest modularity gain (relative to the total weight) that counts as an improvement.
const LOUVAIN_EPSILON: f64 = 1e-12;

/// Louvain community detection: the community of each node, numbered from 0 in order of each
/// community's first node.
pub(crate) fn louvain(graph: &UndirectedGraph) -> Vec<usize> {
    let mut community: Vec<usize> = (0..graph.len()).collect();
    let mut level = graph.clone();
    for _level in 0..LOUVAIN_MAX_LEVELS {
        let moved = local_moves(&level);
        let count = moved.iter().copied().max().map_or(0, |max| max + 1);
        for entry in &mut community {
            *entry = moved[*entry];
        }
        if count == level.len() {
            break;
        }
        level = aggregate(&level, &moved, count);
    }
    community
}

/// One level of Louvain: move single nodes to the neighbouring community with the best modularity
/// gain until nothing moves. Returns communities renumbered by first appearance.
fn local_moves(graph: &UndirectedGraph) -> Vec<usize> {
    let n = graph.len();
    let degree: Vec<f64> = (0..n).map(|node| graph.degree(node)).collect();
    let total: f64 = degree.iter().sum();
    let mut community: Vec<usize> = (0..n).collect();
    if total <= 0.0 {
        return community;
    }
    let mut community_degree = degree.clone();
    let mut weight_to = vec![0.0f64; n];
    let mut touched: Vec<usize> = Vec::new();
    for _pass in 0..LOUVAIN_MAX_PASSES {
        let mut moved = false;
        let mut improvement = 0.0f64;
        for node in 0..n {
            let own = community[node];
            touched.clear();
            for &(other, weight) in &graph.adj[node] {
                let other_community = community[other];
                if weight_to[other_community] == 0.0 && !touched.contains(&other_community) {
                    touched.push(other_community);
                }
                weight_to[other_community] += weight;
            }
            community_degree[own] -= degree[node];
            let gain = |target: usize, weight_to: &[f64]| -> f64 {
                weight_to[target] - community_degree[target] * degree[node] / total
            };
            let own_gain = gain(own, &weight_to);
            let mut best = (own_gain, own);
            touched.sort_unstable();
            for &candidate in &touched {
                let candidate_gain = gain(candidate, &weight_to);
                if candidate_gain > best.0 + LOUVAIN_EPSILON * total {
                    best = (candidate_gain, candidate);
                }
            }
            community_degree[best.1] += degree[node];
            if best.1 != own {
                community[node] = best.1;
                moved = true;
                improvement += best.0 - own_gain;
            }
            for &candidate in &touched {
                weight_to[candidate] = 0.0;
            }
        }
        // A pass that raised modularity by less than `LOUVAIN_MIN_PASS_GAIN` ends the level: on
        // graphs without much structure the last passes shuffle a few nodes for nothing.
        if !moved || 2.0 * improvement / total < LOUVAIN_MIN_PASS_GAIN {
            break;
        }
    }
    renumber(&mut community);
    community
}

/// Renumbers labels `0..` in order of first appearance.
fn renumber(labels: &mut [usize]) {
    let mut map: HashMap<usize, usize> = HashMap::default();
    for label in labels.iter_mut() {
        let next = map.len();
        *label = *map.entry(*label).or_insert(next);
    }
}

/// The graph of communities: one node per community, edge weights summed.
fn aggregate(graph: &UndirectedGraph, community: &[usize], count: usize) -> UndirectedGraph {
    let mut adj: Vec<Vec<(usize, f64)>> = vec![Vec::new(); count];
    let mut self_weight = vec![0.0; count];
    for (node, neighbours) in graph.adj.iter().enumerate() {
        let from = community[node];
        self_weight[from] += graph.self_weight[node];
        for &(other, weight) in neighbours {
            let to = community[other];
            if from == to {
                // Each inner edge is seen from both ends.
                self_weight[from] += weight / 2.0;
            } else {
                adj[from].push((to, weight));
            }
        }
    }
    for list in &mut adj {
        merge_sorted(list);
    }
    UndirectedGraph { adj, self_weight }
}

/// Splits every community into its connected parts, then renumbers by first appearance.
fn split_disconnected(graph: &UndirectedGraph, community: &mut [usize]) {
    let n = graph.len();
    let mut part = vec![usize::MAX; n];
    let mut next_part = 0;
    let mut stack = Vec::new();
    for start in 0..n {
        if part[start] != usize::MAX {
            continue;
        }
        part[start] = next_part;
        stack.push(start);
        while let Some(node) = stack.pop() {
            for &(other, _) in &graph.adj[node] {
                if part[other] == usize::MAX && community[other] == community[start] {
                    part[other] = next_part;
                    stack.push(other);
                }
            }
        }
        next_part += 1;
    }
    community.copy_from_slice(&part);
}

#[cfg(test)]
mod tests;
