//! The JSON shapes `fig` prints (`--format json`), versioned by `schema_version`.
//!
//! The analyzer's report types carry no `Serialize`: the promise made to JSON readers lives here,
//! in one place, and is documented field by field in `docs/report-schema.md`. Adding a field is a
//! compatible change; renaming or removing one bumps [`SCHEMA_VERSION`].
//!
//! Paths inside the workspace are written relative to `workspace_root` (with `/` separators), so
//! the output does not depend on where the workspace is checked out.

use std::path::Path;

use serde::{Deserialize, Serialize};

use analyzer::check::{Baseline, BaselineEdge, BaselinePair};
use analyzer::report::{self, Access, Hierarchy, Report, Usage};

/// Version of the JSON report schema.
pub const SCHEMA_VERSION: u32 = 1;

/// `fig analyze --format json` and `fig suggest --format json`.
#[derive(Debug, Serialize)]
pub struct ReportJson {
    pub schema_version: u32,
    pub workspace_root: String,
    pub scope: ScopeJson,
    pub crates: Vec<CrateJson>,
    pub modules: Vec<ModuleJson>,
    pub edges: Vec<EdgeJson>,
    /// Edges made only of method calls matched by name (the receiver's type unknown); empty
    /// with `--include-uncertain`, which counts them in `edges`.
    pub uncertain_edges: Vec<EdgeJson>,
    pub crate_edges: Vec<CrateEdgeJson>,
    pub cycles: Vec<CycleJson>,
    pub crate_cycles: Vec<CycleJson>,
    pub elementary_cycles: Vec<Vec<String>>,
    pub elementary_cycles_truncated: bool,
    pub bidirectional: Vec<BidirectionalJson>,
    pub cut: Vec<CutJson>,
    pub cut_exact: bool,
    pub suggestions: Vec<SuggestionJson>,
    pub metrics: MetricsJson,
    pub services: Vec<ServiceJson>,
    pub service_edges: Vec<ServiceEdgeJson>,
    pub skipped_files: Vec<SkippedFileJson>,
    pub endpoints: Vec<EndpointJson>,
    pub domains: Vec<DomainJson>,
}

/// An HTTP endpoint found in the code (`endpoints` of the report, `owned`/`shared` of a plan).
#[derive(Debug, Clone, Serialize)]
pub struct EndpointJson {
    pub method: String,
    pub path: String,
    pub handler: String,
    pub framework: String,
    pub location: LocationJson,
    /// Module ids the handler reaches, sorted.
    pub reaches: Vec<String>,
    /// Per reached module: references into it along the way.
    pub reach_weights: std::collections::BTreeMap<String, u32>,
    /// Domains whose code the endpoint calls itself.
    pub needs: Vec<String>,
    /// The one domain it belongs to; null when shared (or reaching none).
    pub owner: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DomainJson {
    pub id: String,
    /// `domain`, `kernel` or `wiring`.
    pub role: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ScopeJson {
    pub include_hierarchical: bool,
    pub include_test_only: bool,
}

#[derive(Debug, Serialize)]
pub struct CrateJson {
    pub name: String,
    pub package: String,
    pub version: String,
    pub manifest_path: String,
    pub targets: Vec<TargetJson>,
    pub depends_on: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TargetJson {
    pub kind: String,
    pub name: String,
    pub root: String,
}

#[derive(Debug, Serialize)]
pub struct ModuleJson {
    pub id: String,
    #[serde(rename = "crate")]
    pub krate: String,
    pub parent: Option<String>,
    pub file: String,
    pub line: u32,
    pub lines_of_code: u32,
    pub inline: bool,
    pub cfg: Option<String>,
    pub test_only: bool,
    pub in_macro: bool,
    pub n_traits: u32,
    pub n_types: u32,
}

#[derive(Debug, Serialize)]
pub struct EdgeJson {
    pub from: String,
    pub to: String,
    pub weight: u32,
    pub items: Vec<String>,
    pub kind: EdgeKindJson,
    pub locations: Vec<LocationJson>,
    /// How each item (`null`: the module itself) was resolved.
    pub resolutions: Vec<ResolutionJson>,
}

#[derive(Debug, Serialize)]
pub struct ResolutionJson {
    pub item: Option<String>,
    /// `import`, `glob-import`, `path`, `method-typed`, `alias` or `method-by-name`.
    pub how: &'static str,
}

#[derive(Debug, Serialize)]
pub struct EdgeKindJson {
    /// `"hierarchical"` (to an ancestor or descendant) or `"cross"`.
    pub hierarchy: &'static str,
    /// `"type-only"` or `"code"`.
    pub usage: &'static str,
    pub test_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocationJson {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Serialize)]
pub struct CrateEdgeJson {
    pub from: String,
    pub to: String,
    pub weight: u32,
}

#[derive(Debug, Serialize)]
pub struct CycleJson {
    pub members: Vec<String>,
    pub weight: u32,
}

#[derive(Debug, Serialize)]
pub struct BidirectionalJson {
    pub a: String,
    pub b: String,
    pub a_to_b_weight: u32,
    pub b_to_a_weight: u32,
    pub a_to_b_items: Vec<String>,
    pub b_to_a_items: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CutJson {
    pub from: String,
    pub to: String,
    pub weight: u32,
}

#[derive(Debug, Serialize)]
pub struct SuggestionJson {
    pub kind: String,
    pub from: String,
    pub to: String,
    pub also_from: Vec<String>,
    pub trait_name: String,
    pub trait_home: String,
    pub implemented_by: String,
    pub methods: Vec<MethodJson>,
    pub moved_items: Vec<String>,
    pub imports: Vec<ImportJson>,
    pub after: Vec<String>,
    pub steps: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ImportJson {
    pub name: String,
    pub path: String,
    /// `"std"`, `"dependency"` or `"workspace"`.
    pub origin: &'static str,
    /// For a dependency, the name its code uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// For a workspace item, the `to` of the suggestion that moves it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MethodJson {
    pub name: String,
    pub signature: String,
    pub source: String,
    /// `"query"` or `"command"`.
    pub class: &'static str,
    pub event: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MetricsJson {
    pub modules: Vec<UnitMetricsJson>,
    pub crates: Vec<UnitMetricsJson>,
}

#[derive(Debug, Serialize)]
pub struct UnitMetricsJson {
    pub id: String,
    pub fan_in: u32,
    pub fan_out: u32,
    pub instability: f64,
    pub abstractness: f64,
    pub distance: f64,
    pub lines_of_code: u32,
}

#[derive(Debug, Serialize)]
pub struct ServiceJson {
    pub name: String,
    pub modules: Vec<String>,
    pub internal_weight: u32,
    pub external_weight: u32,
    /// The endpoints it would own, `METHOD path`.
    pub endpoints: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ServiceEdgeJson {
    pub from_service: String,
    pub to_service: String,
    pub from: String,
    pub to: String,
    pub weight: u32,
    pub items: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SkippedFileJson {
    pub path: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub error: String,
}

/// `fig suggest --format json`: the suggestions alone.
#[derive(Debug, Serialize)]
pub struct SuggestionsJson {
    pub schema_version: u32,
    pub workspace_root: String,
    pub suggestions: Vec<SuggestionJson>,
}

/// `fig check --format json`.
#[derive(Debug, Serialize)]
pub struct CheckJson {
    pub schema_version: u32,
    pub workspace_root: String,
    /// `true` when no finding fails the check.
    pub passed: bool,
    pub findings: Vec<FindingJson>,
}

#[derive(Debug, Serialize)]
pub struct FindingJson {
    /// Stable kebab-case code, documented in `docs/finding-codes.md`.
    pub code: &'static str,
    pub message: String,
    /// Modules the finding is about.
    pub modules: Vec<String>,
    pub locations: Vec<LocationJson>,
}

/// `fig check --write-baseline FILE`: the structure later checks compare against, sorted, with
/// no line numbers so that it does not churn.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineJson {
    pub schema_version: u32,
    /// In-scope edges inside a cycle, with the items they use.
    pub cycle_edges: Vec<BaselineEdgeJson>,
    /// Two-way pairs, `a < b`.
    pub bidirectional: Vec<BaselinePairJson>,
    /// Every in-scope edge, `[from, to]`, so that a later check can tell a new dependency from
    /// old ones pulled into a cycle (absent in baselines written before it was added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<[String; 2]>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineEdgeJson {
    pub from: String,
    pub to: String,
    pub items: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselinePairJson {
    pub a: String,
    pub b: String,
    pub a_to_b_items: Vec<String>,
    pub b_to_a_items: Vec<String>,
}

/// Maps a baseline to JSON.
pub fn baseline(baseline: &Baseline) -> BaselineJson {
    BaselineJson {
        schema_version: SCHEMA_VERSION,
        cycle_edges: baseline
            .cycle_edges
            .iter()
            .map(|edge| BaselineEdgeJson {
                from: edge.from.clone(),
                to: edge.to.clone(),
                items: edge.items.clone(),
            })
            .collect(),
        bidirectional: baseline
            .bidirectional
            .iter()
            .map(|pair| BaselinePairJson {
                a: pair.a.clone(),
                b: pair.b.clone(),
                a_to_b_items: pair.a_to_b_items.clone(),
                b_to_a_items: pair.b_to_a_items.clone(),
            })
            .collect(),
        edges: baseline.edges.as_ref().map(|edges| {
            edges
                .iter()
                .map(|(from, to)| [from.clone(), to.clone()])
                .collect()
        }),
    }
}

/// Reads a baseline back (sorting it, in case it was edited by hand).
pub fn baseline_from_json(json: BaselineJson) -> Baseline {
    let mut cycle_edges: Vec<BaselineEdge> = json
        .cycle_edges
        .into_iter()
        .map(|edge| BaselineEdge {
            from: edge.from,
            to: edge.to,
            items: edge.items,
        })
        .collect();
    cycle_edges.sort();
    let mut bidirectional: Vec<BaselinePair> = json
        .bidirectional
        .into_iter()
        .map(|pair| BaselinePair {
            a: pair.a,
            b: pair.b,
            a_to_b_items: pair.a_to_b_items,
            b_to_a_items: pair.b_to_a_items,
        })
        .collect();
    bidirectional.sort();
    let edges = json.edges.map(|edges| {
        let mut edges: Vec<(String, String)> =
            edges.into_iter().map(|[from, to]| (from, to)).collect();
        edges.sort();
        edges.dedup();
        edges
    });
    Baseline {
        cycle_edges,
        bidirectional,
        edges,
    }
}

/// Writes `path` relative to `root` when it is inside it, with `/` separators.
pub fn relative(root: &Path, path: &Path) -> String {
    let shown = path.strip_prefix(root).unwrap_or(path);
    let text = shown.display().to_string();
    if std::path::MAIN_SEPARATOR == '/' {
        text
    } else {
        text.replace(std::path::MAIN_SEPARATOR, "/")
    }
}

/// Maps a location to JSON, relative to `root`.
pub fn location(root: &Path, location: &report::Location) -> LocationJson {
    LocationJson {
        file: relative(root, &location.file),
        line: location.line,
        column: location.column,
    }
}

/// Maps a suggestion to JSON.
pub fn suggestion(suggestion: &report::Suggestion) -> SuggestionJson {
    SuggestionJson {
        kind: suggestion.kind.clone(),
        from: suggestion.from.clone(),
        to: suggestion.to.clone(),
        also_from: suggestion.also_from.clone(),
        trait_name: suggestion.trait_name.clone(),
        trait_home: suggestion.trait_home.clone(),
        implemented_by: suggestion.implemented_by.clone(),
        methods: suggestion
            .methods
            .iter()
            .map(|method| MethodJson {
                name: method.name.clone(),
                signature: method.signature.clone(),
                source: method.source.clone(),
                class: access(method.class),
                event: method.event.clone(),
            })
            .collect(),
        moved_items: suggestion.moved_items.clone(),
        imports: suggestion
            .imports
            .iter()
            .map(|import| {
                let (origin, dependency, moved_by) = match &import.origin {
                    report::ImportOrigin::Std => ("std", None, None),
                    report::ImportOrigin::Dependency(name) => {
                        ("dependency", Some(name.clone()), None)
                    }
                    report::ImportOrigin::Workspace { moved_by } => {
                        ("workspace", None, moved_by.clone())
                    }
                };
                ImportJson {
                    name: import.name.clone(),
                    path: import.path.clone(),
                    origin,
                    dependency,
                    moved_by,
                }
            })
            .collect(),
        after: suggestion.after.clone(),
        steps: suggestion.steps.clone(),
    }
}

/// `"query"` or `"command"`.
pub fn access(access: Access) -> &'static str {
    match access {
        Access::Query => "query",
        Access::Command => "command",
    }
}

fn unit_metrics(units: &[report::UnitMetrics]) -> Vec<UnitMetricsJson> {
    units
        .iter()
        .map(|unit| UnitMetricsJson {
            id: unit.id.clone(),
            fan_in: unit.fan_in,
            fan_out: unit.fan_out,
            // Three decimals are plenty and keep snapshots stable across float formatting.
            instability: round3(unit.instability),
            abstractness: round3(unit.abstractness),
            distance: round3(unit.distance),
            lines_of_code: unit.lines_of_code,
        })
        .collect()
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn cycles(cycles: &[report::Cycle]) -> Vec<CycleJson> {
    cycles
        .iter()
        .map(|cycle| CycleJson {
            members: cycle.members.clone(),
            weight: cycle.weight,
        })
        .collect()
}

/// Maps one module edge to JSON.
fn edge_json(root: &Path, edge: &report::Edge) -> EdgeJson {
    EdgeJson {
        from: edge.from.clone(),
        to: edge.to.clone(),
        weight: edge.weight,
        items: edge.items.clone(),
        kind: EdgeKindJson {
            hierarchy: match edge.hierarchy {
                Hierarchy::Hierarchical => "hierarchical",
                Hierarchy::Cross => "cross",
            },
            usage: match edge.usage {
                Usage::TypeOnly => "type-only",
                Usage::Code => "code",
            },
            test_only: edge.test_only,
        },
        locations: edge
            .locations
            .iter()
            .map(|loc| location(root, loc))
            .collect(),
        resolutions: edge
            .resolutions
            .iter()
            .map(|resolution| ResolutionJson {
                item: resolution.item.clone(),
                how: resolution.resolution.as_str(),
            })
            .collect(),
    }
}

/// Maps a whole report to JSON.
pub fn report(report: &Report) -> ReportJson {
    let root = report.workspace_root.as_path();
    ReportJson {
        schema_version: SCHEMA_VERSION,
        workspace_root: report.workspace_root.display().to_string(),
        scope: ScopeJson {
            include_hierarchical: report.scope.include_hierarchical,
            include_test_only: report.scope.include_test_only,
        },
        crates: report
            .crates
            .iter()
            .map(|krate| CrateJson {
                name: krate.name.clone(),
                package: krate.package.clone(),
                version: krate.version.clone(),
                manifest_path: relative(root, &krate.manifest_path),
                targets: krate
                    .targets
                    .iter()
                    .map(|target| TargetJson {
                        kind: target.kind.clone(),
                        name: target.name.clone(),
                        root: relative(root, &target.root),
                    })
                    .collect(),
                depends_on: krate.depends_on.clone(),
            })
            .collect(),
        modules: report
            .modules
            .iter()
            .map(|module| ModuleJson {
                id: module.id.clone(),
                krate: module.krate.clone(),
                parent: module.parent.clone(),
                file: relative(root, &module.file),
                line: module.line,
                lines_of_code: module.lines_of_code,
                inline: module.inline,
                cfg: module.cfg.clone(),
                test_only: module.test_only,
                in_macro: module.in_macro,
                n_traits: module.n_traits,
                n_types: module.n_types,
            })
            .collect(),
        edges: report
            .edges
            .iter()
            .map(|edge| edge_json(root, edge))
            .collect(),
        uncertain_edges: report
            .uncertain_edges
            .iter()
            .map(|edge| edge_json(root, edge))
            .collect(),
        crate_edges: report
            .crate_edges
            .iter()
            .map(|edge| CrateEdgeJson {
                from: edge.from.clone(),
                to: edge.to.clone(),
                weight: edge.weight,
            })
            .collect(),
        cycles: cycles(&report.cycles),
        crate_cycles: cycles(&report.crate_cycles),
        elementary_cycles: report.elementary_cycles.clone(),
        elementary_cycles_truncated: report.elementary_cycles_truncated,
        bidirectional: report
            .bidirectional
            .iter()
            .map(|pair| BidirectionalJson {
                a: pair.a.clone(),
                b: pair.b.clone(),
                a_to_b_weight: pair.a_to_b_weight,
                b_to_a_weight: pair.b_to_a_weight,
                a_to_b_items: pair.a_to_b_items.clone(),
                b_to_a_items: pair.b_to_a_items.clone(),
            })
            .collect(),
        cut: report
            .cut
            .iter()
            .map(|edge| CutJson {
                from: edge.from.clone(),
                to: edge.to.clone(),
                weight: edge.weight,
            })
            .collect(),
        cut_exact: report.cut_exact,
        suggestions: report.suggestions.iter().map(suggestion).collect(),
        metrics: MetricsJson {
            modules: unit_metrics(&report.metrics.modules),
            crates: unit_metrics(&report.metrics.crates),
        },
        services: report
            .services
            .iter()
            .map(|service| ServiceJson {
                name: service.name.clone(),
                modules: service.modules.clone(),
                internal_weight: service.internal_weight,
                external_weight: service.external_weight,
                endpoints: service.endpoints.clone(),
            })
            .collect(),
        service_edges: report
            .service_edges
            .iter()
            .map(|edge| ServiceEdgeJson {
                from_service: edge.from_service.clone(),
                to_service: edge.to_service.clone(),
                from: edge.from.clone(),
                to: edge.to.clone(),
                weight: edge.weight,
                items: edge.items.clone(),
            })
            .collect(),
        skipped_files: report
            .skipped_files
            .iter()
            .map(|file| SkippedFileJson {
                path: relative(root, &file.path),
                line: file.line,
                column: file.column,
                error: file.error.clone(),
            })
            .collect(),
        endpoints: report
            .endpoints
            .iter()
            .map(|found| endpoint(root, found))
            .collect(),
        domains: report
            .domains
            .iter()
            .map(|domain| DomainJson {
                id: domain.id.clone(),
                role: domain_role(domain.role),
            })
            .collect(),
    }
}

/// Maps an endpoint to JSON, its location relative to `root`.
pub fn endpoint(root: &Path, found: &report::Endpoint) -> EndpointJson {
    EndpointJson {
        method: found.method.clone(),
        path: found.path.clone(),
        handler: found.handler.clone(),
        framework: found.framework.clone(),
        location: location(root, &found.location),
        reaches: found
            .reaches
            .iter()
            .map(|reach| reach.module.clone())
            .collect(),
        reach_weights: found
            .reaches
            .iter()
            .map(|reach| (reach.module.clone(), reach.weight))
            .collect(),
        needs: found.needs.clone(),
        owner: found.owner.clone(),
    }
}

/// `domain`, `kernel` or `wiring`.
pub fn domain_role(role: report::DomainRole) -> &'static str {
    match role {
        report::DomainRole::Domain => "domain",
        report::DomainRole::Kernel => "kernel",
        report::DomainRole::Wiring => "wiring",
    }
}
