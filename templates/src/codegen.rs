//! Generated interface code for suggestions (`fig suggest --emit`).
//!
//! A key design decision: the generated code must compile *before* the user has moved anything,
//! and name what it can by its real path. Each suggestion becomes a small crate of its own, in
//! the order of the suggestions:
//!
//! - names the suggestion's `imports` trace to the standard library keep their paths and get a
//!   `use` (`use std::sync::Arc;`), and so do a dependency's, when [`EmitContext`] says how the
//!   analysed crate depends on it: the crate then depends on it the same way (same version
//!   requirement, source and features). No lock file is written: a published crate's own
//!   `Cargo.lock` may name versions that were never downloaded, while without one cargo resolves
//!   offline to the versions that are, which is what the workspace builds with;
//! - a type an earlier suggestion moves is imported from that suggestion's crate, which the crate
//!   depends on by path;
//! - everything else of the monolith (the types this suggestion moves, a type nothing moves, a
//!   name that could not be traced) is a placeholder declaration, with its path shortened to the
//!   last segment; the user replaces each placeholder by the real item, as `PLAN.md` says. A
//!   placeholder type derives the common traits (`Clone`, `Copy`, `Eq`, `Hash`, ...), so that a standard
//!   type that wraps it in a signature (`Cow<BigUint>` needs `Clone`) accepts it.
//!
//! A `move-types` suggestion gets a crate with the placeholders and no trait.
//!
//! The text comes from askama templates (`codegen/*`); the Rust source is then parsed by syn and
//! printed by prettyplease, which also proves it is syntactically valid.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use syn::visit_mut::VisitMut;

use analyzer::report::{Access, Import, ImportOrigin, Report, Suggestion};

/// One file to write, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedFile {
    pub path: String,
    pub contents: String,
}

/// Generated code for one suggestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraitCode {
    /// Cargo package name of the generated crate, kebab-case, unique within one emit.
    pub package: String,
    /// `src/lib.rs` of that crate: the trait and its placeholders, formatted.
    pub source: String,
    /// Method signatures that could not be parsed and were left out, with the parse error.
    pub left_out: Vec<(String, String)>,
    /// The dependencies of the analysed crate it names types of, by the name code uses.
    pub dependencies: BTreeSet<String>,
    /// The crates of earlier suggestions it imports moved types from.
    pub packages: BTreeSet<String>,
    /// The types it declares (placeholders of moved types), with their generic arity.
    pub declared: BTreeMap<String, (usize, usize)>,
}

/// What `emit` needs to know of the analysed workspace beyond the report: how its crates depend
/// on other crates, so that a generated crate can name a dependency's type by its real path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitContext {
    /// Per crate of the workspace (Rust name): its dependencies by the name its code uses, each
    /// as the TOML value of a `[dependencies]` entry (`{ version = "1", features = ["rt"] }`,
    /// paths absolute). A dependency missing here is named through a placeholder instead.
    pub dependencies: BTreeMap<String, BTreeMap<String, String>>,
}

/// Every file `fig suggest --emit DIR` writes: a Cargo workspace with one crate per suggestion and
/// `PLAN.md`, with no dependency but the standard library.
pub fn emit(report: &Report, tool: &str) -> Result<Vec<EmittedFile>, askama::Error> {
    emit_with(report, tool, &EmitContext::default())
}

/// Every file `fig suggest --emit DIR` writes: a Cargo workspace with one crate per suggestion,
/// in the order of the suggestions, and `PLAN.md`. A crate whose trait names a type another
/// suggestion moves depends on that suggestion's crate and imports it from there; one that names
/// a dependency's type depends on that dependency as `context` says the workspace does.
pub fn emit_with(
    report: &Report,
    tool: &str,
    context: &EmitContext,
) -> Result<Vec<EmittedFile>, askama::Error> {
    let mut taken = BTreeSet::new();
    let mut files = Vec::new();
    let mut plans = Vec::new();
    // Crates written so far, by the `to` of their suggestion.
    let mut earlier: BTreeMap<String, Emitted> = BTreeMap::new();
    for suggestion in &report.suggestions {
        let package = unique_package(&mut taken, suggestion);
        let krate = suggestion.to.split("::").next().unwrap_or_default();
        let no_dependencies = BTreeMap::new();
        let dependencies = context.dependencies.get(krate).unwrap_or(&no_dependencies);
        let code = trait_code_in(
            suggestion,
            &package,
            tool,
            &CodeContext {
                dependencies: Some(dependencies),
                earlier: &earlier,
            },
        )?;
        let mut manifest_dependencies: Vec<String> = code
            .dependencies
            .iter()
            .filter_map(|name| {
                dependencies
                    .get(name)
                    .map(|spec| format!("{} = {spec}", toml_key(name)))
            })
            .collect();
        manifest_dependencies.extend(
            code.packages
                .iter()
                .map(|other| format!("{other} = {{ path = \"../{other}\" }}")),
        );
        files.push(EmittedFile {
            path: format!("{package}/Cargo.toml"),
            contents: CrateManifest {
                package: &package,
                dependencies: &manifest_dependencies,
            }
            .render()?,
        });
        files.push(EmittedFile {
            path: format!("{package}/src/lib.rs"),
            contents: code.source.clone(),
        });
        earlier.insert(
            suggestion.to.clone(),
            Emitted {
                package: package.clone(),
                types: code.declared.clone(),
                paths: suggestion
                    .imports
                    .iter()
                    .filter(|import| {
                        import.origin
                            == ImportOrigin::Workspace {
                                moved_by: Some(suggestion.to.clone()),
                            }
                    })
                    .map(|import| (import.name.clone(), import.path.clone()))
                    .collect(),
            },
        );
        plans.push(PlanEntry::new(suggestion, code));
    }
    let members: Vec<String> = plans.iter().map(|plan| plan.package.clone()).collect();
    files.push(EmittedFile {
        path: "Cargo.toml".to_owned(),
        contents: WorkspaceManifest { members: &members }.render()?,
    });
    files.push(EmittedFile {
        path: "PLAN.md".to_owned(),
        contents: Plan {
            tool,
            workspace_root: &report.workspace_root.display().to_string(),
            plans: &plans,
        }
        .render()?,
    });
    for file in &mut files {
        if !file.contents.ends_with('\n') {
            file.contents.push('\n');
        }
    }
    Ok(files)
}

/// The package name of a suggestion's crate: its trait's (or, for moved types, its module's)
/// name in kebab-case, numbered when taken.
fn unique_package(taken: &mut BTreeSet<String>, suggestion: &Suggestion) -> String {
    let mut package = if suggestion.trait_name.is_empty() {
        let module = last_segment(&suggestion.to);
        format!("{}-types", to_kebab(&module.replace('_', "-")))
    } else {
        to_kebab(&suggestion.trait_name)
    };
    if package.is_empty() || package == "-types" {
        package = "extracted-interface".to_owned();
    }
    let mut candidate = package.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{package}-{n}");
        n += 1;
    }
    candidate
}

/// A dependency's name as a TOML key.
fn toml_key(name: &str) -> String {
    if name
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        name.to_owned()
    } else {
        format!("\"{name}\"")
    }
}

/// A crate already generated, which later ones may import moved types from.
struct Emitted {
    package: String,
    /// The types it declares, with their generic arity.
    types: BTreeMap<String, (usize, usize)>,
    /// The item each declared type stands for, by name.
    paths: BTreeMap<String, String>,
}

/// What the code of one suggestion may use besides the standard library.
struct CodeContext<'c> {
    /// The dependencies of the suggestion's crate, by the name its code uses; `None`: assume
    /// every dependency is there (the code is shown, not built).
    dependencies: Option<&'c BTreeMap<String, String>>,
    /// Crates generated before this one, by the `to` of their suggestion.
    earlier: &'c BTreeMap<String, Emitted>,
}

/// The trait of one suggestion as a `lib.rs` (see the module docs), as the HTML report shows it:
/// standard-library and dependency types by their real paths.
pub fn trait_code(
    suggestion: &Suggestion,
    package: &str,
    tool: &str,
) -> Result<TraitCode, askama::Error> {
    trait_code_in(
        suggestion,
        package,
        tool,
        &CodeContext {
            dependencies: None,
            earlier: &BTreeMap::new(),
        },
    )
}

fn trait_code_in(
    suggestion: &Suggestion,
    package: &str,
    tool: &str,
    context: &CodeContext<'_>,
) -> Result<TraitCode, askama::Error> {
    // Names whose paths stay as written: the standard library's, and a dependency's the crate
    // can depend on.
    let mut kept: BTreeMap<String, &Import> = BTreeMap::new();
    for import in &suggestion.imports {
        let keep = match &import.origin {
            ImportOrigin::Std => true,
            ImportOrigin::Dependency(krate) => context
                .dependencies
                .is_none_or(|dependencies| dependencies.contains_key(krate)),
            ImportOrigin::Workspace { .. } => false,
        };
        if keep {
            kept.insert(import.name.clone(), import);
        }
    }
    let mut collector = Placeholders {
        types: BTreeMap::new(),
        traits: BTreeMap::new(),
        generics: Vec::new(),
        result_alias: false,
        method_types: BTreeMap::new(),
        trait_assocs: BTreeMap::new(),
        generic_bounds: BTreeMap::new(),
        kept: kept.keys().cloned().collect(),
        uses_alloc: false,
    };
    let mut methods = Vec::new();
    let mut left_out = Vec::new();
    for method in &suggestion.methods {
        match syn::parse_str::<syn::Signature>(&method.signature) {
            Ok(mut signature) => {
                // `const fn` is not allowed in traits; the rest of the signature carries over.
                signature.constness = None;
                collector.generics = signature
                    .generics
                    .type_params()
                    .map(|param| param.ident.to_string())
                    .collect();
                let bounded = where_bounded(&signature);
                collector.generic_bounds = generic_bounds(&signature);
                collector.method_types.clear();
                collector.visit_signature_mut(&mut signature);
                declare_free_lifetimes(&mut signature);
                let lifetimes: Vec<syn::Lifetime> = signature
                    .generics
                    .lifetimes()
                    .map(|param| param.lifetime.clone())
                    .collect();
                declare_array_lengths(&mut signature);
                strip_patterns(&mut signature);
                if returns_or_takes_self(&signature) {
                    // `-> Option<Self>` needs a sized `Self`; asking for it on this method only
                    // keeps the trait usable as `dyn`.
                    signature
                        .generics
                        .make_where_clause()
                        .predicates
                        .push(syn::parse_quote!(Self: Sized));
                }
                // Names that stand for the `impl` block's own type parameters (`T`, or a type a
                // `where` clause bounds) become type parameters of the method; the rest need a
                // placeholder declaration.
                for (name, arity) in std::mem::take(&mut collector.method_types) {
                    if bounded.contains(&name) || looks_generic(&name) {
                        let ident = syn::Ident::new(&name, proc_macro2::Span::call_site());
                        signature
                            .generics
                            .params
                            .push(syn::GenericParam::Type(ident.clone().into()));
                        // The `impl` block's self type implied `T: 'a` (`&'a K` in
                        // `impl<'a, K> Iter<'a, K>`, or a `&'a self` on `Slice<K>`); in a trait
                        // the method must say so.
                        for lifetime in &lifetimes {
                            signature
                                .generics
                                .make_where_clause()
                                .predicates
                                .push(syn::parse_quote!(#ident: #lifetime));
                        }
                    } else {
                        record(&mut collector.types, name, arity);
                    }
                }
                let doc = match method.class {
                    Access::Query => format!("Query: from `{}`.", method.source),
                    Access::Command => match &method.event {
                        Some(event) => format!(
                            "Command: from `{}`. Could instead be an event, `{event}`, on a queue.",
                            method.source
                        ),
                        None => format!("Command: from `{}`.", method.source),
                    },
                };
                methods.push(TraitMethod {
                    doc,
                    signature: quote::ToTokens::to_token_stream(&signature).to_string(),
                });
            }
            Err(err) => left_out.push((method.signature.clone(), err.to_string())),
        }
    }
    // Types used across the edge move to the trait's home: they get a placeholder too, even
    // when no signature names them. Other items (functions, constants) are listed in the docs.
    for item in &suggestion.moved_items {
        let name = last_segment(item);
        if name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_uppercase())
            && name.chars().any(|ch| ch.is_ascii_lowercase())
            && !collector.traits.contains_key(name)
            && !KNOWN_TYPES.contains(&name)
            && !collector.kept.contains(name)
        {
            record(&mut collector.types, name.to_owned(), (0, 0));
        }
    }
    // Types another suggestion moves come from its crate, generated before this one.
    let mut uses: Vec<String> = Vec::new();
    let mut packages: BTreeSet<String> = BTreeSet::new();
    for import in &suggestion.imports {
        let ImportOrigin::Workspace {
            moved_by: Some(moved_by),
        } = &import.origin
        else {
            continue;
        };
        if *moved_by == suggestion.to {
            continue;
        }
        let real = last_segment(&import.path);
        // The other crate's placeholder of that name must stand for this very item.
        if let Some(other) = context.earlier.get(moved_by)
            && let Some(arity) = collector.types.get(&import.name)
            && other.types.get(real) == Some(arity)
            && other.paths.get(real) == Some(&import.path)
        {
            collector.types.remove(&import.name);
            let krate = other.package.replace('-', "_");
            uses.push(if real == import.name {
                format!("use {krate}::{real};")
            } else {
                format!("use {krate}::{real} as {};", import.name)
            });
            packages.insert(other.package.clone());
        }
    }
    let mut dependencies: BTreeSet<String> = BTreeSet::new();
    for (name, import) in &kept {
        if let ImportOrigin::Dependency(krate) = &import.origin {
            dependencies.insert(krate.clone());
        }
        if import.path == *name {
            // A dependency written out (`bytes::Bytes`): the path needs no `use`.
            continue;
        }
        if last_segment(&import.path) == name {
            uses.push(format!("use {};", import.path));
        } else {
            uses.push(format!("use {} as {name};", import.path));
        }
    }
    uses.sort();
    uses.dedup();
    if collector.uses_alloc || uses.iter().any(|line| line.starts_with("use alloc::")) {
        uses.insert(0, "extern crate alloc;".to_owned());
    }
    let placeholder_types = collector
        .types
        .iter()
        .map(|(name, arity)| Placeholder::new(name, *arity, suggestion))
        .collect::<Vec<_>>();
    let placeholder_traits = collector
        .traits
        .iter()
        .map(|(name, arity)| {
            let mut placeholder = Placeholder::new(name, *arity, suggestion);
            placeholder.assoc_types = collector
                .trait_assocs
                .get(name)
                .map(|assocs| assocs.iter().cloned().collect())
                .unwrap_or_default();
            placeholder
        })
        .collect::<Vec<_>>();
    let other_moved: Vec<&String> = suggestion
        .moved_items
        .iter()
        .filter(|item| {
            let name = last_segment(item);
            !collector.types.contains_key(name) && !collector.traits.contains_key(name)
        })
        .collect();
    let raw = TraitFile {
        suggestion,
        package,
        tool,
        uses: &uses,
        methods: &methods,
        placeholder_types: &placeholder_types,
        placeholder_traits: &placeholder_traits,
        other_moved: &other_moved,
        left_out: &left_out,
        result_alias: collector.result_alias.then_some(RESULT_ALIAS),
    }
    .render()?;
    // Printing through prettyplease formats the tokens `quote` spaced out; if the text somehow does
    // not parse, the raw text is still more useful than nothing, and `cargo check` will say why.
    let source = match syn::parse_file(&raw) {
        Ok(file) => separate_items(&prettyplease::unparse(&file)),
        Err(_) => raw,
    };
    Ok(TraitCode {
        package: package.to_owned(),
        source,
        left_out,
        dependencies,
        packages,
        declared: collector.types,
    })
}

/// Puts a blank line between top-level items, which prettyplease prints back to back.
fn separate_items(source: &str) -> String {
    let mut res = String::with_capacity(source.len() + 64);
    let mut previous: Option<&str> = None;
    for line in source.lines() {
        let starts_item = !line.starts_with(' ')
            && !line.is_empty()
            && !line.starts_with('}')
            && !line.starts_with("//!");
        if let Some(previous) = previous
            && starts_item
            && !(previous.starts_with("use ") && line.starts_with("use "))
            && !previous.is_empty()
            && !previous.starts_with("///")
            && !previous.starts_with("#[")
        {
            res.push('\n');
        }
        res.push_str(line);
        res.push('\n');
        previous = Some(line);
    }
    res
}

/// `PaymentPort` -> `payment-port`.
pub fn to_kebab(name: &str) -> String {
    let mut res = String::new();
    for (idx, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if idx > 0 && !res.ends_with('-') {
                res.push('-');
            }
            res.push(ch.to_ascii_lowercase());
        } else if ch.is_ascii_alphanumeric() {
            res.push(ch);
        } else if !res.is_empty() && !res.ends_with('-') {
            res.push('-');
        }
    }
    res.trim_matches('-').to_owned()
}

fn last_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

#[derive(Template)]
#[template(path = "trait.rs.txt", escape = "none")]
struct TraitFile<'a> {
    suggestion: &'a Suggestion,
    package: &'a str,
    tool: &'a str,
    uses: &'a [String],
    methods: &'a [TraitMethod],
    placeholder_types: &'a [Placeholder],
    placeholder_traits: &'a [Placeholder],
    other_moved: &'a [&'a String],
    left_out: &'a [(String, String)],
    result_alias: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "Cargo.toml.txt", escape = "none")]
struct CrateManifest<'a> {
    package: &'a str,
    dependencies: &'a [String],
}

#[derive(Template)]
#[template(path = "workspace.toml.txt", escape = "none")]
struct WorkspaceManifest<'a> {
    members: &'a [String],
}

#[derive(Template)]
#[template(path = "PLAN.md", escape = "none")]
struct Plan<'a> {
    tool: &'a str,
    workspace_root: &'a str,
    plans: &'a [PlanEntry],
}

struct TraitMethod {
    doc: String,
    signature: String,
}

/// A stand-in for a type or trait the signatures name.
struct Placeholder {
    name: String,
    /// `<'a, T0>` or empty.
    generics: String,
    /// Tuple-struct body using every parameter, or empty.
    phantom: String,
    /// Full path in the monolith when the suggestion names it among the moved items.
    origin: Option<String>,
    /// Associated types a placeholder trait must declare.
    assoc_types: Vec<String>,
}

impl Placeholder {
    fn new(name: &str, arity: (usize, usize), suggestion: &Suggestion) -> Placeholder {
        let (n_lifetimes, n_types) = arity;
        let lifetimes: Vec<String> = (0..n_lifetimes).map(|idx| format!("'l{idx}")).collect();
        let types: Vec<String> = (0..n_types).map(|idx| format!("T{idx}")).collect();
        // `?Sized`, because the monolith may pass a slice or a `str` (`Box<'a, [T]>`).
        let params: Vec<String> = lifetimes
            .iter()
            .cloned()
            .chain(types.iter().map(|param| format!("{param}: ?Sized")))
            .collect();
        let generics = if params.is_empty() {
            String::new()
        } else {
            format!("<{}>", params.join(", "))
        };
        let phantom = if params.is_empty() {
            String::new()
        } else {
            let fields: Vec<String> = lifetimes
                .iter()
                .map(|lifetime| format!("core::marker::PhantomData<&{lifetime} ()>"))
                .chain(
                    types
                        .iter()
                        .map(|param| format!("core::marker::PhantomData<{param}>")),
                )
                .collect();
            format!("({})", fields.join(", "))
        };
        // What the name stands for: the import's path when the suggestion says, else a moved
        // item as `to` sees it (a full path, or a name defined in `to`).
        let origin = suggestion
            .imports
            .iter()
            .find(|import| {
                import.name == name && matches!(import.origin, ImportOrigin::Workspace { .. })
            })
            .map(|import| import.path.clone())
            .or_else(|| {
                suggestion
                    .moved_items
                    .iter()
                    .find(|item| last_segment(item) == name)
                    .map(|item| {
                        if item.contains("::") {
                            item.clone()
                        } else {
                            format!("{}::{item}", suggestion.to)
                        }
                    })
            });
        Placeholder {
            name: name.to_owned(),
            generics,
            phantom,
            origin,
            assoc_types: Vec::new(),
        }
    }
}

/// What `PLAN.md` says about one suggestion.
struct PlanEntry {
    package: String,
    /// The callers, each in backticks.
    from: String,
    to: String,
    trait_name: String,
    trait_home: String,
    implemented_by: String,
    steps: Vec<String>,
    commands: Vec<String>,
    queries: Vec<String>,
    left_out: Vec<(String, String)>,
}

impl PlanEntry {
    fn new(suggestion: &Suggestion, code: TraitCode) -> PlanEntry {
        let by_class = |class: Access| {
            suggestion
                .methods
                .iter()
                .filter(|method| method.class == class)
                .map(|method| match (&method.event, class) {
                    (Some(event), Access::Command) => {
                        format!("`{}` (or event `{event}`)", method.name)
                    }
                    _ => format!("`{}`", method.name),
                })
                .collect()
        };
        PlanEntry {
            package: code.package,
            from: std::iter::once(&suggestion.from)
                .chain(&suggestion.also_from)
                .map(|from| format!("`{from}`"))
                .collect::<Vec<_>>()
                .join(", "),
            to: suggestion.to.clone(),
            trait_name: suggestion.trait_name.clone(),
            trait_home: suggestion.trait_home.clone(),
            implemented_by: suggestion.implemented_by.clone(),
            steps: suggestion.steps.clone(),
            commands: by_class(Access::Command),
            queries: by_class(Access::Query),
            left_out: code.left_out,
        }
    }
}

/// Shortens monolith paths to their last segment and records the names that need a placeholder.
struct Placeholders {
    /// Name -> (lifetime arguments, type arguments), the most seen.
    types: BTreeMap<String, (usize, usize)>,
    traits: BTreeMap<String, (usize, usize)>,
    /// Type parameters of the method being visited.
    generics: Vec<String>,
    /// A one-argument `Result<T>` was seen (and renamed to [`RESULT_ALIAS`]).
    result_alias: bool,
    /// Names the method being visited uses, before they are sorted into placeholders and the
    /// method's own type parameters.
    method_types: BTreeMap<String, (usize, usize)>,
    /// Associated types each placeholder trait needs (`S::Error`, `Digest<OutputSize = ..>`).
    trait_assocs: BTreeMap<String, BTreeSet<String>>,
    /// The method's type parameters and the last segment of each trait bounding them.
    generic_bounds: BTreeMap<String, Vec<String>>,
    /// First segments whose paths stay as written: imported from the standard library or a
    /// dependency.
    kept: BTreeSet<String>,
    /// Some path starts with `alloc::`, which a `std` crate must declare.
    uses_alloc: bool,
}

/// Type parameters of a signature and the names of the traits that bound them.
fn generic_bounds(signature: &syn::Signature) -> BTreeMap<String, Vec<String>> {
    let mut res: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let bound_names =
        |bounds: &syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]>| {
            bounds
                .iter()
                .filter_map(|bound| match bound {
                    syn::TypeParamBound::Trait(bound) => bound
                        .path
                        .segments
                        .last()
                        .map(|segment| segment.ident.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
    for param in signature.generics.type_params() {
        res.entry(param.ident.to_string())
            .or_default()
            .extend(bound_names(&param.bounds));
    }
    if let Some(where_clause) = &signature.generics.where_clause {
        for predicate in &where_clause.predicates {
            if let syn::WherePredicate::Type(predicate) = predicate
                && let syn::Type::Path(path) = &predicate.bounded_ty
                && let Some(ident) = path.path.get_ident()
                && let Some(bounds) = res.get_mut(&ident.to_string())
            {
                bounds.extend(bound_names(&predicate.bounds));
            }
        }
    }
    res
}

/// Whether the prelude's type of this name takes these (lifetime, type) arguments.
fn std_arity_fits(name: &str, arity: (usize, usize)) -> bool {
    match name {
        "Option" => arity == (0, 1),
        "Result" => arity == (0, 2),
        "Vec" | "Box" => arity.0 == 0 && (arity.1 == 1 || arity.1 == 2),
        "Self" => true,
        _ => arity == (0, 0),
    }
}

/// `T`, `K`, `V2`: the names type parameters usually have.
fn looks_generic(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_uppercase())
        && chars.all(|ch| ch.is_ascii_digit())
}

/// Single-name types a `where` clause bounds: type parameters of the `impl` block.
fn where_bounded(signature: &syn::Signature) -> BTreeSet<String> {
    let Some(where_clause) = &signature.generics.where_clause else {
        return BTreeSet::new();
    };
    where_clause
        .predicates
        .iter()
        .filter_map(|predicate| match predicate {
            syn::WherePredicate::Type(predicate) => match &predicate.bounded_ty {
                syn::Type::Path(path) if path.qself.is_none() => {
                    path.path.get_ident().map(ToString::to_string)
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether `Self` appears by name outside the receiver (`-> Option<Self>`, `other: Self`).
fn returns_or_takes_self(signature: &syn::Signature) -> bool {
    struct FindSelf(bool);
    impl syn::visit::Visit<'_> for FindSelf {
        fn visit_type_path(&mut self, node: &syn::TypePath) {
            if node.qself.is_none()
                && node.path.segments.len() == 1
                && node.path.segments[0].ident == "Self"
            {
                self.0 = true;
            }
            syn::visit::visit_type_path(self, node);
        }
    }
    let mut finder = FindSelf(false);
    for input in &signature.inputs {
        if let syn::FnArg::Typed(typed) = input {
            syn::visit::visit_type(&mut finder, &typed.ty);
        }
    }
    syn::visit::visit_return_type(&mut finder, &signature.output);
    finder.0
}

/// A declaration without a body may not have patterns: `mut self` becomes `self`, `mut x` and
/// `ref x` become `x`, and any other pattern becomes `argN`.
fn strip_patterns(signature: &mut syn::Signature) {
    for (idx, input) in signature.inputs.iter_mut().enumerate() {
        match input {
            syn::FnArg::Receiver(receiver) => {
                if receiver.reference.is_none() {
                    receiver.mutability = None;
                }
            }
            syn::FnArg::Typed(typed) => {
                let ident = match &*typed.pat {
                    syn::Pat::Ident(pat) if pat.subpat.is_none() => pat.ident.clone(),
                    syn::Pat::Wild(_) => continue,
                    _ => syn::Ident::new(&format!("arg{idx}"), proc_macro2::Span::call_site()),
                };
                *typed.pat = syn::Pat::Ident(syn::PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident,
                    subpat: None,
                });
            }
        }
    }
}

/// What a crate's own `Result<T>` alias is renamed to in the generated code.
const RESULT_ALIAS: &str = "CrateResult";

use analyzer::prelude::{STD_ROOTS, TRAITS as KNOWN_TRAITS, TYPES as KNOWN_TYPES};

impl Placeholders {
    /// Shortens a path that points into the monolith or a third-party crate; returns the name
    /// that then needs a declaration, with its generic arity.
    fn shorten(&mut self, path: &mut syn::Path) -> Option<(String, (usize, usize))> {
        let first = path.segments.first()?.ident.to_string();
        if path.leading_colon.is_none() && path.segments.len() == 1 {
            let name = first;
            if self.generics.contains(&name) || self.kept.contains(&name) {
                return None;
            }
            return Some((name, arity(path)));
        }
        if first == "alloc" {
            self.uses_alloc = true;
        }
        if STD_ROOTS.contains(&first.as_str())
            || self.generics.contains(&first)
            || self.kept.contains(&first)
        {
            // `std::...` is visible everywhere; `I::Item` is an associated type of the method's
            // own type parameter.
            return None;
        }
        // crate::, self::, super::, a workspace crate, or a third-party crate: keep the last
        // segment, which the placeholder declares.
        let last = path.segments.pop()?.into_value();
        path.segments.clear();
        path.leading_colon = None;
        path.segments.push(last);
        let name = path.segments.first()?.ident.to_string();
        Some((name, arity(path)))
    }
}

fn arity(path: &syn::Path) -> (usize, usize) {
    let Some(segment) = path.segments.last() else {
        return (0, 0);
    };
    match &segment.arguments {
        syn::PathArguments::AngleBracketed(args) => {
            let lifetimes = args
                .args
                .iter()
                .filter(|arg| matches!(arg, syn::GenericArgument::Lifetime(_)))
                .count();
            let types = args
                .args
                .iter()
                .filter(|arg| matches!(arg, syn::GenericArgument::Type(_)))
                .count();
            (lifetimes, types)
        }
        _ => (0, 0),
    }
}

fn record(map: &mut BTreeMap<String, (usize, usize)>, name: String, arity: (usize, usize)) {
    let entry = map.entry(name).or_insert((0, 0));
    entry.0 = entry.0.max(arity.0);
    entry.1 = entry.1.max(arity.1);
}

impl VisitMut for Placeholders {
    fn visit_type_path_mut(&mut self, node: &mut syn::TypePath) {
        // Visit the arguments first: they are types too.
        syn::visit_mut::visit_type_path_mut(self, node);
        if let Some(qself) = &node.qself {
            // `<Input as crate::Stream>::Slice`: shorten the trait, give it the associated type.
            let position = qself.position;
            if position >= 1 && position < node.path.segments.len() {
                let assoc = node.path.segments[position].ident.to_string();
                let trait_segment = node.path.segments[position - 1].clone();
                let name = trait_segment.ident.to_string();
                let rest: Vec<syn::PathSegment> =
                    node.path.segments.iter().skip(position).cloned().collect();
                let trait_is_std = node.path.segments.first().is_some_and(|first| {
                    let first = first.ident.to_string();
                    STD_ROOTS.contains(&first.as_str()) || self.kept.contains(&first)
                });
                let self_type_is_generic = match &qself.ty.as_ref() {
                    syn::Type::Path(path) => path
                        .path
                        .get_ident()
                        .is_some_and(|ident| self.generics.contains(&ident.to_string())),
                    _ => false,
                };
                if !trait_is_std && !self_type_is_generic {
                    // `<Input as Stream>::Slice` on a type of the monolith: a placeholder the
                    // user replaces by the real type.
                    node.qself = None;
                    node.path = syn::Ident::new(&assoc, proc_macro2::Span::call_site()).into();
                    record(&mut self.types, assoc, (0, 0));
                } else if !trait_is_std && !KNOWN_TRAITS.contains(&name.as_str()) {
                    node.path.leading_colon = None;
                    node.path.segments = std::iter::once(trait_segment).chain(rest).collect();
                    if let Some(qself) = &mut node.qself {
                        qself.position = 1;
                    }
                    self.assoc(&name, &assoc);
                    record(&mut self.traits, name, (0, 0));
                }
            }
            return;
        }
        // `S::Error` where `S: Sink`: each placeholder trait bounding `S` gets `type Error;`.
        if node.path.segments.len() == 2 {
            let first = node.path.segments[0].ident.to_string();
            let assoc = node.path.segments[1].ident.to_string();
            if let Some(bounds) = self.generic_bounds.get(&first).cloned() {
                for bound in bounds {
                    if !KNOWN_TRAITS.contains(&bound.as_str()) {
                        self.assoc(&bound, &assoc);
                    }
                }
                return;
            }
        }
        let Some((name, arity)) = self.shorten(&mut node.path) else {
            return;
        };
        if name == "Result" && arity == (0, 1) {
            // A crate's own `Result<T>` alias: std's `Result` takes two arguments, so the alias
            // gets a placeholder of its own, over a placeholder `Error`.
            if let Some(segment) = node.path.segments.last_mut() {
                segment.ident = syn::Ident::new(RESULT_ALIAS, segment.ident.span());
            }
            self.result_alias = true;
            if !self.kept.contains("Error") {
                record(&mut self.types, "Error".to_owned(), (0, 0));
            }
        } else if KNOWN_TYPES.contains(&name.as_str()) {
            if !std_arity_fits(&name, arity) {
                // The crate's own type shadows the prelude's (`bumpalo::boxed::Box<'a, T>`, a
                // `Result` alias without parameters): a placeholder under another name.
                let local = format!("Local{name}");
                if let Some(segment) = node.path.segments.last_mut() {
                    segment.ident = syn::Ident::new(&local, segment.ident.span());
                }
                record(&mut self.types, local, arity);
            }
        } else {
            record(&mut self.method_types, name, arity);
        }
    }

    fn visit_trait_bound_mut(&mut self, node: &mut syn::TraitBound) {
        syn::visit_mut::visit_trait_bound_mut(self, node);
        if let Some((name, arity)) = self.shorten(&mut node.path)
            && !KNOWN_TRAITS.contains(&name.as_str())
        {
            // `Digest<OutputSize = U64>`: the placeholder needs `type OutputSize;`.
            if let Some(segment) = node.path.segments.last()
                && let syn::PathArguments::AngleBracketed(args) = &segment.arguments
            {
                for arg in &args.args {
                    if let syn::GenericArgument::AssocType(assoc) = arg {
                        self.assoc(&name, &assoc.ident.to_string());
                    }
                }
            }
            record(&mut self.traits, name, arity);
        }
    }

    fn visit_type_impl_trait_mut(&mut self, node: &mut syn::TypeImplTrait) {
        // `use<'a>` in a trait must also name `Self`; without it every parameter is captured,
        // which is what a trait method's `impl Trait` means anyway.
        node.bounds = std::mem::take(&mut node.bounds)
            .into_iter()
            .filter(|bound| !matches!(bound, syn::TypeParamBound::PreciseCapture(_)))
            .collect();
        syn::visit_mut::visit_type_impl_trait_mut(self, node);
    }
}

impl Placeholders {
    fn assoc(&mut self, trait_name: &str, assoc: &str) {
        self.trait_assocs
            .entry(trait_name.to_owned())
            .or_default()
            .insert(assoc.to_owned());
    }
}

/// Makes the array lengths the signature names but does not declare (`[Limb; LIMBS]`, a const
/// parameter of the `impl` block or a constant of the monolith) const parameters of the method.
fn declare_array_lengths(signature: &mut syn::Signature) {
    struct Lengths(BTreeSet<String>);
    impl syn::visit::Visit<'_> for Lengths {
        fn visit_type_array(&mut self, array: &syn::TypeArray) {
            if let syn::Expr::Path(path) = &array.len
                && path.qself.is_none()
                && let Some(ident) = path.path.get_ident()
            {
                self.0.insert(ident.to_string());
            }
            syn::visit::visit_type_array(self, array);
        }
    }
    let mut lengths = Lengths(BTreeSet::new());
    syn::visit::visit_signature(&mut lengths, signature);
    let declared: BTreeSet<String> = signature
        .generics
        .const_params()
        .map(|param| param.ident.to_string())
        .collect();
    for name in lengths.0 {
        if !declared.contains(&name) {
            let ident = syn::Ident::new(&name, proc_macro2::Span::call_site());
            signature
                .generics
                .params
                .push(syn::parse_quote!(const #ident: usize));
        }
    }
}

/// Adds lifetimes the signature uses but does not declare (they came from the `impl` block).
fn declare_free_lifetimes(signature: &mut syn::Signature) {
    struct Lifetimes(BTreeSet<String>);
    impl syn::visit::Visit<'_> for Lifetimes {
        fn visit_lifetime(&mut self, lifetime: &syn::Lifetime) {
            self.0.insert(lifetime.ident.to_string());
        }
    }
    let mut used = Lifetimes(BTreeSet::new());
    syn::visit::visit_signature(&mut used, signature);
    let declared: BTreeSet<String> = signature
        .generics
        .lifetimes()
        .map(|param| param.lifetime.ident.to_string())
        .collect();
    for name in used.0 {
        if name == "static" || name == "_" || declared.contains(&name) {
            continue;
        }
        let lifetime = syn::Lifetime::new(&format!("'{name}"), proc_macro2::Span::call_site());
        signature.generics.params.insert(
            0,
            syn::GenericParam::Lifetime(syn::LifetimeParam::new(lifetime)),
        );
    }
}
