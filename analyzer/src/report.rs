//! The report model: what one analysis of a workspace found.
//!
//! These are plain values. The CLI maps them to its versioned JSON schema (`src/output.rs`) and the
//! `templates` crate renders them; neither adds analysis of its own.
//!
//! A [`ModuleId`] is always `crate_name::path::to::module`, with the crate's Rust name (dashes
//! become underscores); a crate root is just `crate_name`.

use std::path::PathBuf;

/// `crate_name::path::to::module`; the crate root is `crate_name`.
pub type ModuleId = String;

/// Everything one run of the analyzer found in a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Absolute path of the workspace root.
    pub workspace_root: PathBuf,
    /// Which edges the graph algorithms looked at (the edges list always has all of them).
    pub scope: EdgeScope,
    /// Workspace member crates, sorted by name.
    pub crates: Vec<CrateInfo>,
    /// Every module of every analysed target, sorted by id.
    pub modules: Vec<Module>,
    /// Module -> module dependencies of every kind, sorted by (from, to).
    pub edges: Vec<Edge>,
    /// Module -> module dependencies made only of references the analyzer is not sure of
    /// (method calls matched by name, [`Resolution::MethodByName`]), sorted by (from, to). Cycles,
    /// the cut list, suggestions, metrics and services never see them; with
    /// `Options::include_uncertain` they are part of `edges` instead and this list is empty.
    pub uncertain_edges: Vec<Edge>,
    /// Module edges rolled up to crates (only edges between two different workspace crates).
    pub crate_edges: Vec<CrateEdge>,
    /// Non-trivial strongly connected components of the in-scope module graph.
    pub cycles: Vec<Cycle>,
    /// Non-trivial strongly connected components of the crate graph.
    pub crate_cycles: Vec<Cycle>,
    /// Elementary cycles, shortest first, at most `elementary_cycle_cap` of them.
    pub elementary_cycles: Vec<Vec<ModuleId>>,
    /// True when more elementary cycles exist than were listed.
    pub elementary_cycles_truncated: bool,
    /// Pairs of modules that depend on each other directly (in scope).
    pub bidirectional: Vec<Bidirectional>,
    /// A smallest-weight set of edges whose removal makes the in-scope graph acyclic.
    pub cut: Vec<CutEdge>,
    /// Whether the cut is proven minimal for every component or comes from a heuristic somewhere.
    pub cut_exact: bool,
    /// One suggestion per edge of the cut list.
    pub suggestions: Vec<Suggestion>,
    /// Per module and per crate metrics.
    pub metrics: Metrics,
    /// Candidate service boundaries.
    pub services: Vec<CandidateService>,
    /// In-scope module edges that cross two candidate services (would become network calls).
    pub service_edges: Vec<ServiceEdge>,
    /// Source files that could not be read or parsed; the run went on without them.
    pub skipped_files: Vec<SkippedFile>,
    /// HTTP endpoints found in the code (axum, actix-web, Rocket), sorted by (path, method).
    pub endpoints: Vec<Endpoint>,
    /// The top-level modules endpoints are attributed to, with their role, sorted by id.
    pub domains: Vec<Domain>,
}

/// Which edges count for cycles, the cut list, suggestions and services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeScope {
    /// Also count edges between a module and its own ancestor or descendant.
    pub include_hierarchical: bool,
    /// Also count edges that exist only under `#[cfg(test)]`.
    pub include_test_only: bool,
}

/// A workspace member crate.
#[derive(Debug, Clone, PartialEq)]
pub struct CrateInfo {
    /// Rust name (underscores), the first segment of its module ids.
    pub name: String,
    /// Package name as written in Cargo.toml.
    pub package: String,
    pub version: String,
    pub manifest_path: PathBuf,
    /// Analysed targets (lib, bins, ...).
    pub targets: Vec<Target>,
    /// Workspace crates this one depends on (normal dependencies), by Rust name.
    pub depends_on: Vec<String>,
}

/// A build target of a crate.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `lib`, `bin`, `test`, `example`, `bench`, ...
    pub kind: String,
    pub name: String,
    pub root: PathBuf,
}

/// A module in some crate's module tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub id: ModuleId,
    /// Rust name of the crate the module belongs to.
    pub krate: String,
    /// Parent module id; `None` for a crate root.
    pub parent: Option<ModuleId>,
    /// File the module's items are in (for an inline module, the file that holds it).
    pub file: PathBuf,
    /// Line of the `mod` declaration (1 for a crate root).
    pub line: u32,
    /// Non-blank, non-comment lines of code of the module's own items (children excluded).
    pub lines_of_code: u32,
    /// Whether the module is declared inline (`mod x { ... }`) rather than in a file of its own.
    pub inline: bool,
    /// The `#[cfg(...)]` predicate on the declaration, as written, if any.
    pub cfg: Option<String>,
    /// Whether the module exists only under `#[cfg(test)]`.
    pub test_only: bool,
    /// Whether the declaration was found inside an item macro body (`cfg_foo! { mod x; }`).
    pub in_macro: bool,
    /// Public traits declared in the module (for abstractness).
    pub n_traits: u32,
    /// All types declared in the module: structs, enums, unions, traits, type aliases.
    pub n_types: u32,
}

/// Whether an edge runs along the module tree or across it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hierarchy {
    /// From a module to its own ancestor or descendant (facades, `use super::*`).
    Hierarchical,
    /// Between two modules in different subtrees.
    Cross,
}

/// How the target is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Usage {
    /// Only in signatures, fields, bounds, impl headers and `use` items.
    TypeOnly,
    /// Also in function bodies (calls, constructors, patterns in code).
    Code,
}

/// A module -> module dependency, with every reference that makes it up.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: ModuleId,
    pub to: ModuleId,
    /// Number of references.
    pub weight: u32,
    /// Names of the items of `to` that `from` uses, sorted, deduplicated.
    pub items: Vec<String>,
    pub hierarchy: Hierarchy,
    pub usage: Usage,
    /// Every reference is under `#[cfg(test)]`.
    pub test_only: bool,
    /// Where the references are, sorted; at most a few dozen per edge.
    pub locations: Vec<Location>,
    /// How each item (and each reference to the module itself, with no item) was resolved,
    /// sorted, deduplicated.
    pub resolutions: Vec<ItemResolution>,
}

/// How one item of an edge was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemResolution {
    /// The item, as in [`Edge::items`]; `None` for a reference to the module itself.
    pub item: Option<String>,
    pub resolution: Resolution,
}

/// How a reference was resolved to its target, from the most to the least certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    /// A `use` leaf naming the item or module.
    Import,
    /// A glob import (`use a::b::*`), a use of the module (or enum) it names.
    GlobImport,
    /// A path written in a type, expression, pattern, impl header, bound or macro body.
    Path,
    /// A method call whose receiver's type is known from the syntax: `self` in an impl, a typed
    /// parameter or `let`, a field of a known struct, a constructor's or function's return
    /// type, or a chain of those.
    MethodTyped,
    /// A use of a type alias, counted also as a use of the type it names, in that type's
    /// module.
    Alias,
    /// A method call matched by its name alone to a workspace type the module names elsewhere:
    /// the receiver's type is unknown. Uncertain: kept out of `edges` by default.
    MethodByName,
}

impl Resolution {
    /// The stable kebab-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Import => "import",
            Resolution::GlobImport => "glob-import",
            Resolution::Path => "path",
            Resolution::MethodTyped => "method-typed",
            Resolution::Alias => "alias",
            Resolution::MethodByName => "method-by-name",
        }
    }
}

/// A place in a source file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
}

/// A crate -> crate dependency rolled up from module edges.
#[derive(Debug, Clone, PartialEq)]
pub struct CrateEdge {
    pub from: String,
    pub to: String,
    /// Sum of the module edge weights.
    pub weight: u32,
}

/// A non-trivial strongly connected component.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycle {
    /// Sorted member ids.
    pub members: Vec<String>,
    /// Sum of the weights of the edges inside the component.
    pub weight: u32,
}

/// Two modules that depend on each other directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Bidirectional {
    /// `a < b`.
    pub a: ModuleId,
    pub b: ModuleId,
    pub a_to_b_weight: u32,
    pub b_to_a_weight: u32,
    pub a_to_b_items: Vec<String>,
    pub b_to_a_items: Vec<String>,
}

/// An edge of the cut list.
#[derive(Debug, Clone, PartialEq)]
pub struct CutEdge {
    pub from: ModuleId,
    pub to: ModuleId,
    pub weight: u32,
}

/// What to do about the edges of the cut list into one module.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// Stable kebab-case kind: `extract-interface` (a trait, and the types it names move), or
    /// `move-types` when `from` calls nothing of `to` (only types move; no trait).
    pub kind: String,
    /// The module that uses (`from`) and the module used (`to`): the edge to invert.
    pub from: ModuleId,
    pub to: ModuleId,
    /// Other modules whose cut edges into `to` this suggestion also turns around: one port per
    /// `to`, so one trait per home module.
    pub also_from: Vec<ModuleId>,
    /// Name of the trait to extract, e.g. `PaymentPort`; empty for `move-types`. Unique within
    /// `trait_home`, and `trait_home` is unique per suggestion.
    pub trait_name: String,
    /// Where the trait (and the moved types) should live: a new module id (or new crate) both
    /// sides depend on.
    pub trait_home: String,
    /// The module whose types implement the trait (usually `to`).
    pub implemented_by: ModuleId,
    /// The methods of the trait, with signatures taken from the source.
    pub methods: Vec<Method>,
    /// Items used across the edge that are not functions (types, constants) and so must move
    /// to `trait_home` or be mirrored there.
    pub moved_items: Vec<String>,
    /// What each name the generated code uses or declares stands for: the names the signatures
    /// use that are defined outside them, and the items that move to the home.
    pub imports: Vec<Import>,
    /// The `to` of each earlier suggestion this one must come after: they move types this one's
    /// signatures name.
    pub after: Vec<ModuleId>,
    /// Step-by-step plan, one sentence per step.
    pub steps: Vec<String>,
}

/// A name a suggested trait's signatures use, and the item it stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Import {
    /// As the signature writes it: the first segment of a path (`Arc`, `io`, `bytes`), or for an
    /// item of the workspace its own name (`MemberId`).
    pub name: String,
    /// The full path: `std::sync::Arc`, `std::io`, `bytes::Bytes`, `shop::member::MemberId`.
    pub path: String,
    pub origin: ImportOrigin,
}

/// Where an imported name comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImportOrigin {
    /// `std`, `core` or `alloc`: the path works in any crate.
    Std,
    /// A crate `to`'s crate depends on, by the name its code uses (`bytes`, a rename).
    Dependency(String),
    /// An item of the workspace. `moved_by` is the `to` of the suggestion that moves it to its
    /// home (this one, or one listed in `after`), if any does.
    Workspace { moved_by: Option<ModuleId> },
}

/// One method of a suggested trait.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub name: String,
    /// Full signature as it should appear in the trait, e.g. `fn charge(&mut self, order: OrderId, amount: Money) -> Result<Receipt, PaymentError>`.
    pub signature: String,
    /// Path of the item it comes from, e.g. `shop::payment::PaymentService::charge`.
    pub source: String,
    pub class: Access,
    /// For commands: the event that could replace the call, e.g. `PaymentRequested`.
    pub event: Option<String>,
}

/// Whether a used item only reads state or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Query,
    Command,
}

/// Metrics for every module and crate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    pub modules: Vec<UnitMetrics>,
    pub crates: Vec<UnitMetrics>,
}

/// Robert C. Martin's package metrics for one module or crate.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitMetrics {
    pub id: String,
    /// Afferent couplings: distinct in-scope units that depend on this one.
    pub fan_in: u32,
    /// Efferent couplings: distinct in-scope units this one depends on.
    pub fan_out: u32,
    /// fan_out / (fan_in + fan_out); 0 when both are 0.
    pub instability: f64,
    /// traits / types; 0 when there are no types.
    pub abstractness: f64,
    /// |abstractness + instability - 1|.
    pub distance: f64,
    pub lines_of_code: u32,
}

/// A group of modules that could become one service.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateService {
    /// A readable name, from the heaviest module.
    pub name: String,
    pub modules: Vec<ModuleId>,
    /// Sum of edge weights inside the group.
    pub internal_weight: u32,
    /// Sum of edge weights leaving or entering the group.
    pub external_weight: u32,
    /// The endpoints it would own, `METHOD path`, in the order of the report's endpoints.
    pub endpoints: Vec<String>,
}

/// An in-scope module edge between two candidate services.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEdge {
    pub from_service: String,
    pub to_service: String,
    pub from: ModuleId,
    pub to: ModuleId,
    pub weight: u32,
    pub items: Vec<String>,
}

/// A source file left out of the analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedFile {
    pub path: PathBuf,
    /// Line and column of the parse error, when there is one.
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub error: String,
}

/// An HTTP endpoint declared in the code.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `GET`, `POST`, ...; `ANY` when the route takes every method.
    pub method: String,
    /// The path pattern with nesting resolved; parameters as `{name}`, a catch-all as `{*name}`.
    pub path: String,
    /// The handler: a module path (`shop::http::api::get_payment`) when it resolves into the
    /// workspace, else the path as written (`<closure>` for a closure).
    pub handler: String,
    /// `axum`, `actix-web` or `rocket`.
    pub framework: String,
    /// Where the route is declared (the `.route(..)` call or the attribute).
    pub location: Location,
    /// Workspace modules the handler reaches through calls and types, transitively.
    pub reaches: Vec<Reach>,
    /// The domains whose code the endpoint calls itself (not through another domain's code).
    pub needs: Vec<ModuleId>,
    /// The one domain the endpoint belongs to; `None` when it needs several (shared) or none.
    pub owner: Option<ModuleId>,
}

/// A module an endpoint reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Reach {
    pub module: ModuleId,
    /// Number of references into the module along the way.
    pub weight: u32,
    /// Whether code of the module runs (a function or method is called), not only its types.
    pub code: bool,
}

/// A top-level module (`crate::name`), the unit endpoints are owned by.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    pub id: ModuleId,
    pub role: DomainRole,
}

/// What a top-level module is to the endpoints that reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainRole {
    /// Business code an endpoint can belong to.
    Domain,
    /// Depended on by several domains and depending on none (`money`, `store`): goes along
    /// with any service, never makes an endpoint shared.
    Kernel,
    /// Depends on several domains and only wiring depends on it (`http`, `state`, the crate
    /// root): the glue every endpoint passes through.
    Wiring,
}
