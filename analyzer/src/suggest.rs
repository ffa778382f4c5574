//! Interface-extraction suggestions, one per module the cut list points into.
//!
//! For cut edges `from -> to` we propose a trait that `to` implements and `from` calls, so that
//! the dependency can point the other way (`from` and `to` both depend on the trait's home). The
//! trait is made of what `from` actually uses of `to`, taken from the edge's items:
//!
//! - `Type::method` of an inherent impl becomes that method, signature as written in the source
//!   (receiver included); a constructor (no receiver, returns `Self` or the type) is not part of
//!   the trait: `from` will receive the value instead of building it, and a type that is only
//!   built is an entity that moves, not the implementer.
//! - `Trait::method` of a trait of `to` becomes that method.
//! - A free function `f` becomes a method taking `&self`.
//! - Types and constants used, and the types of `to` named in the chosen signatures, must move to
//!   the trait's home (`moved_items`); the types whose methods make up the trait stay and
//!   implement it.
//!
//! How the suggestions fit together:
//!
//! - Cut edges into the same module make *one* suggestion (one port, `also_from`), and each
//!   suggestion gets a home module of its own (`<crate>::ports::<path of to>`, or a crate
//!   `<crate>_api` when a caller is in another crate), so no two traits of one name share a home.
//! - When `from` calls no function of `to`, the suggestion is `move-types`: no trait, only types
//!   to move.
//! - Every name the signatures use is looked up where the signature is written (its `use`s, then
//!   the resolver): the standard library, a dependency, or a workspace item ([`Import`]). A
//!   workspace item outside `to` is moved by the suggestion into the module that holds it, when
//!   there is one, and this suggestion comes after it (`after`, and a first step that says so);
//!   one of `from` moves with this suggestion, since the home cannot depend on `from`.
//!
//! Each method is a *command* when it takes `&mut self` or a `&mut` argument, or when its name is
//! a writing verb (`set_`, `insert`, `create`, `charge`, ...); otherwise a *query*. A command also
//! gets an event name (`charge` on `payment` gives `PaymentChargeRequested`) for the
//! queue/event alternative.
//!
//! What the resolver does not tell us, we do not guess: a method call's receiver type (the edge's
//! items name `Type::method` from the resolver's heuristic), and names brought by glob imports of
//! dependencies; such names stay unresolved and the generated code declares a placeholder.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::modules::{Binding, FnSig, ItemKind};
use crate::prelude::STD_ROOTS;
use crate::report::{Access, CutEdge, Edge, Import, ImportOrigin, Method, Suggestion};
use crate::resolve::{Res, Resolver};

/// Verbs that make a method a command when its name is the verb or starts with `verb_`.
const COMMAND_VERBS: &[&str] = &[
    "add", "apply", "approve", "assign", "book", "cancel", "capture", "charge", "clear", "close",
    "commit", "confirm", "create", "credit", "debit", "delete", "deposit", "disable", "emit",
    "enable", "enqueue", "grant", "insert", "issue", "mark", "notify", "open", "pay", "place",
    "post", "publish", "purge", "push", "put", "record", "redeem", "refund", "register", "reject",
    "release", "remove", "reserve", "reset", "revoke", "save", "send", "set", "ship", "store",
    "submit", "transfer", "update", "upsert", "withdraw", "write",
];

/// Builds the suggestions for `cut`: one per module the cut list points into, ordered so that a
/// suggestion whose signatures name types another one moves comes after it.
pub(crate) fn suggestions(
    cut: &[CutEdge],
    edges: &[Edge],
    resolver: &mut Resolver<'_>,
) -> Vec<Suggestion> {
    let _span = tracing::info_span!("suggest", cut = cut.len()).entered();
    let module_index: FxHashMap<&str, u32> = resolver
        .facts
        .iter()
        .enumerate()
        .map(|(index, module)| (module.module.id.as_str(), index as u32))
        .collect();
    let edge_index: FxHashMap<(&str, &str), &Edge> = edges
        .iter()
        .map(|edge| ((edge.from.as_str(), edge.to.as_str()), edge))
        .collect();
    // Cut edges into the same module make one port: grouped by `to`, in the order of the cut.
    let mut groups: Vec<(u32, Callers<'_>)> = Vec::new();
    for cut_edge in cut {
        let (Some(&from), Some(&to)) = (
            module_index.get(cut_edge.from.as_str()),
            module_index.get(cut_edge.to.as_str()),
        ) else {
            continue;
        };
        let edge = edge_index
            .get(&(cut_edge.from.as_str(), cut_edge.to.as_str()))
            .copied();
        match groups.iter_mut().find(|(group_to, _)| *group_to == to) {
            Some((_, froms)) => froms.push((from, edge)),
            None => groups.push((to, vec![(from, edge)])),
        }
    }
    let mut drafts: Vec<Draft<'_>> = groups
        .into_iter()
        .map(|(to, froms)| draft(resolver, to, froms))
        .collect();
    link(resolver, &mut drafts);
    let order = dependency_order(&drafts);
    let position: Vec<usize> = {
        let mut position = vec![0; drafts.len()];
        for (rank, &index) in order.iter().enumerate() {
            position[index] = rank;
        }
        position
    };
    order
        .iter()
        .map(|&index| finish(resolver, &drafts, index, &position))
        .collect()
}

/// The modules whose cut edges point into one module, with those edges.
type Callers<'e> = Vec<(u32, Option<&'e Edge>)>;

/// A suggestion before it is ordered among the others.
struct Draft<'e> {
    to: u32,
    /// The modules whose cut edges point into `to`, and those edges.
    froms: Callers<'e>,
    methods: Vec<Method>,
    /// The types whose methods make up the trait.
    implementers: BTreeSet<String>,
    /// Items that move to the home: names of items of `to`'s subtree, full paths of others.
    moved: BTreeSet<String>,
    /// Names the signatures use that are defined outside them, by name.
    imports: BTreeMap<String, Import>,
    /// Workspace items the signatures name that live outside `to`'s subtree: (module, name).
    foreign: Vec<(u32, String)>,
    /// Indices of the drafts that move an item this one names.
    needs: BTreeSet<usize>,
}

fn draft<'e>(
    resolver: &mut Resolver<'_>,
    to: u32,
    froms: Vec<(u32, Option<&'e Edge>)>,
) -> Draft<'e> {
    let facts = resolver.facts;
    let to_facts = &facts[to as usize];
    let to_id = to_facts.module.id.clone();
    let subject = pascal_case(&to_facts.name);
    let mut items: Vec<String> = froms
        .iter()
        .filter_map(|(_, edge)| *edge)
        .flat_map(|edge| edge.items.iter().cloned())
        .collect();
    items.sort();
    items.dedup();

    let mut methods: Vec<Method> = Vec::new();
    let mut method_sigs: Vec<(u32, &FnSig)> = Vec::new();
    let mut implementers: BTreeSet<String> = BTreeSet::new();
    let mut constructed: BTreeSet<String> = BTreeSet::new();
    let mut moved: BTreeSet<String> = BTreeSet::new();
    // Where each moved item of `to`'s subtree is defined: (name, its module).
    let mut moved_from: BTreeMap<String, u32> = BTreeMap::new();
    let mut seen_methods: BTreeSet<String> = BTreeSet::new();
    // The item may live in a submodule of `to` when the report collapses modules (`depth`).
    let subtree: Vec<u32> = std::iter::once(to)
        .chain(
            (0..facts.len() as u32)
                .filter(|&module| module != to && resolver.is_ancestor(to, module)),
        )
        .collect();
    let find_item = |name: &str| {
        subtree.iter().find_map(|&module| {
            facts[module as usize]
                .items
                .iter()
                .find(|item| item.name == name)
                .map(|item| (module, item))
        })
    };

    for item_name in &items {
        match item_name.split_once("::") {
            Some((head, tail)) => {
                let Some((item_module, item)) = find_item(head) else {
                    continue;
                };
                match item.kind {
                    ItemKind::Trait => {
                        if let Some(sig) = item.methods.iter().find(|sig| sig.name == tail)
                            && seen_methods.insert(sig.name.clone())
                        {
                            methods.push(method(
                                &subject,
                                &format!("{to_id}::{head}::{tail}"),
                                sig,
                            ));
                            method_sigs.push((item_module, sig));
                        }
                    }
                    ItemKind::Struct | ItemKind::Enum | ItemKind::Union | ItemKind::TypeAlias => {
                        let found =
                            resolver
                                .inherent
                                .get(&(item_module, head))
                                .and_then(|candidates| {
                                    candidates.iter().find(|(_, sig)| sig.name == tail).copied()
                                });
                        match found {
                            Some((impl_module, sig)) => {
                                if sig.receiver.is_none() && returns_self(sig, head) {
                                    // A constructor: `from` will be handed the value instead,
                                    // and the type is an entity that moves, not the implementer.
                                    constructed.insert(head.to_owned());
                                    moved_from.entry(head.to_owned()).or_insert(item_module);
                                    continue;
                                }
                                implementers.insert(head.to_owned());
                                if seen_methods.insert(sig.name.clone()) {
                                    methods.push(method(
                                        &subject,
                                        &format!("{to_id}::{head}::{tail}"),
                                        sig,
                                    ));
                                    method_sigs.push((impl_module, sig));
                                }
                            }
                            // An enum variant or an associated constant: the type moves.
                            None => {
                                moved.insert(head.to_owned());
                                moved_from.entry(head.to_owned()).or_insert(item_module);
                            }
                        }
                    }
                    _ => {}
                }
            }
            None => {
                let Some((item_module, item)) = find_item(item_name) else {
                    continue;
                };
                match item.kind {
                    ItemKind::Fn => {
                        if let Some(sig) = &item.sig
                            && seen_methods.insert(sig.name.clone())
                        {
                            methods.push(method(&subject, &format!("{to_id}::{item_name}"), sig));
                            method_sigs.push((item_module, sig));
                        }
                    }
                    ItemKind::Macro => {}
                    _ => {
                        moved.insert(item_name.clone());
                        moved_from.entry(item_name.clone()).or_insert(item_module);
                    }
                }
            }
        }
    }
    // A type that is only built (`Coupon::new`) is an entity the trait hands around: it moves.
    for name in constructed {
        if !implementers.contains(&name) {
            moved.insert(name);
        }
    }

    // What the chosen signatures name: workspace types of `to` move; other names keep the path
    // they stand for, so the generated code can import them.
    let mut imports: BTreeMap<String, Import> = BTreeMap::new();
    let mut foreign: Vec<(u32, String)> = Vec::new();
    for &(module, sig) in &method_sigs {
        let (paths, generics) = signature_paths(sig);
        for segments in paths {
            let Some(found) = origin(resolver, module, &segments, &generics) else {
                continue;
            };
            // The name as the signature writes it (`Future`, maybe a `use ... as` of another).
            let written = segments.last().cloned().unwrap_or_default();
            match found {
                Found::Import(import) => {
                    imports.entry(import.name.clone()).or_insert(import);
                }
                Found::Item(item_module, name) => {
                    let in_to = item_module == to || resolver.is_ancestor(to, item_module);
                    if in_to {
                        if !implementers.contains(&name) {
                            moved.insert(name.clone());
                            moved_from.entry(name.clone()).or_insert(item_module);
                        }
                    } else if !foreign.contains(&(item_module, name.clone())) {
                        foreign.push((item_module, name.clone()));
                    }
                    let path = format!("{}::{name}", facts[item_module as usize].module.id);
                    let moved_by = in_to.then(|| to_id.clone());
                    imports.entry(written.clone()).or_insert(Import {
                        name: written,
                        path,
                        origin: ImportOrigin::Workspace { moved_by },
                    });
                }
            }
        }
    }
    for implementer in &implementers {
        moved.remove(implementer);
    }
    // The generated crate declares the moved items: say what each stands for.
    for name in &moved {
        if let Some(&module) = moved_from.get(name) {
            imports.entry(name.clone()).or_insert_with(|| Import {
                name: name.clone(),
                path: format!("{}::{name}", facts[module as usize].module.id),
                origin: ImportOrigin::Workspace {
                    moved_by: Some(to_id.clone()),
                },
            });
        }
    }

    Draft {
        to,
        froms,
        methods,
        implementers,
        moved,
        imports,
        foreign,
        needs: BTreeSet::new(),
    }
}

/// Settles the workspace items a draft names outside its own `to`: the draft whose `to` holds
/// one moves it (and this one comes after it); one of a `from` moves with this draft, since the
/// home cannot depend on `from`; any other stays where it is.
fn link(resolver: &Resolver<'_>, drafts: &mut [Draft<'_>]) {
    let facts = resolver.facts;
    for index in 0..drafts.len() {
        let foreign = std::mem::take(&mut drafts[index].foreign);
        for (item_module, name) in &foreign {
            // The deepest `to` that holds the item.
            let owner = (0..drafts.len())
                .filter(|&other| other != index)
                .filter(|&other| {
                    let to = drafts[other].to;
                    to == *item_module || resolver.is_ancestor(to, *item_module)
                })
                .max_by_key(|&other| depth_of(resolver, drafts[other].to));
            let path = format!("{}::{name}", facts[*item_module as usize].module.id);
            let moved_by = match owner {
                Some(other) => {
                    let other_to = facts[drafts[other].to as usize].module.id.clone();
                    drafts[other].moved.insert(name.clone());
                    // Unless another item of that name is there already (then this one is not
                    // what the other crate declares, and stays a placeholder here).
                    drafts[other]
                        .imports
                        .entry(name.clone())
                        .or_insert_with(|| Import {
                            name: name.clone(),
                            path: path.clone(),
                            origin: ImportOrigin::Workspace {
                                moved_by: Some(other_to),
                            },
                        });
                    drafts[index].needs.insert(other);
                    Some(facts[drafts[other].to as usize].module.id.clone())
                }
                None => {
                    let in_from = drafts[index].froms.iter().any(|&(from, _)| {
                        from == *item_module || resolver.is_ancestor(from, *item_module)
                    });
                    in_from.then(|| {
                        drafts[index].moved.insert(path.clone());
                        facts[drafts[index].to as usize].module.id.clone()
                    })
                }
            };
            for import in drafts[index].imports.values_mut() {
                if import.path == path {
                    import.origin = ImportOrigin::Workspace {
                        moved_by: moved_by.clone(),
                    };
                }
            }
        }
        drafts[index].foreign = foreign;
    }
}

fn depth_of(resolver: &Resolver<'_>, mut module: u32) -> usize {
    let mut depth = 0;
    while let Some(parent) = resolver.parent(module) {
        module = parent;
        depth += 1;
        if depth > 1024 {
            break;
        }
    }
    depth
}

/// The drafts in the order to carry them out: each after the ones it needs, otherwise in the
/// order of the cut list. Drafts that need each other keep the cut list's order.
fn dependency_order(drafts: &[Draft<'_>]) -> Vec<usize> {
    let mut res: Vec<usize> = Vec::with_capacity(drafts.len());
    let mut done = vec![false; drafts.len()];
    while res.len() < drafts.len() {
        let ready = (0..drafts.len()).find(|&index| {
            !done[index]
                && drafts[index]
                    .needs
                    .iter()
                    .all(|&need| done[need] || need == index)
        });
        // A cycle of needs: take the first left, in the cut list's order.
        let next =
            ready.unwrap_or_else(|| (0..drafts.len()).find(|&index| !done[index]).unwrap_or(0));
        done[next] = true;
        res.push(next);
    }
    res
}

fn finish(
    resolver: &Resolver<'_>,
    drafts: &[Draft<'_>],
    index: usize,
    position: &[usize],
) -> Suggestion {
    let facts = resolver.facts;
    let draft = &drafts[index];
    let to_facts = &facts[draft.to as usize];
    let to_id = to_facts.module.id.clone();
    let from_ids: Vec<String> = draft
        .froms
        .iter()
        .map(|&(from, _)| facts[from as usize].module.id.clone())
        .collect();
    let subject = pascal_case(&to_facts.name);
    let kind = if draft.methods.is_empty() {
        "move-types"
    } else {
        "extract-interface"
    };
    let trait_name = if draft.methods.is_empty() {
        String::new()
    } else if draft
        .methods
        .iter()
        .all(|method| method.class == Access::Query)
    {
        format!("{subject}Queries")
    } else {
        format!("{subject}Port")
    };
    let crosses_crates = draft
        .froms
        .iter()
        .any(|&(from, _)| facts[from as usize].module.krate != to_facts.module.krate);
    let trait_home = home_of(facts, draft);
    // Earlier suggestions this one needs, in the final order.
    let mut after: Vec<usize> = draft
        .needs
        .iter()
        .copied()
        .filter(|&need| position[need] < position[index])
        .collect();
    after.sort_by_key(|&need| position[need]);
    let later: Vec<usize> = draft
        .needs
        .iter()
        .copied()
        .filter(|&need| position[need] > position[index])
        .collect();
    let moved_items: Vec<String> = draft.moved.iter().cloned().collect();
    let imports: Vec<Import> = draft.imports.values().cloned().collect();
    let needed: Vec<Needed> = after
        .iter()
        .chain(&later)
        .map(|&need| {
            let other = &drafts[need];
            let other_to = facts[other.to as usize].module.id.clone();
            let names: Vec<String> = imports
                .iter()
                .filter(|import| {
                    import.origin
                        == ImportOrigin::Workspace {
                            moved_by: Some(other_to.clone()),
                        }
                })
                .map(|import| import.name.clone())
                .collect();
            Needed {
                number: position[need] + 1,
                to: other_to,
                earlier: position[need] < position[index],
                names,
            }
        })
        .collect();
    let homes: Vec<String> = needed
        .iter()
        .map(|needed| {
            let other = &drafts[after_index(drafts, facts, &needed.to)];
            home_of(facts, other)
        })
        .collect();
    let steps = steps(&StepsInput {
        froms: &from_ids,
        to: &to_id,
        trait_name: &trait_name,
        trait_home: &trait_home,
        crosses_crates,
        methods: &draft.methods,
        moved_items: &moved_items,
        implementers: &draft.implementers,
        edges: &draft
            .froms
            .iter()
            .map(|(_, edge)| *edge)
            .collect::<Vec<_>>(),
        needed: &needed,
        needed_homes: &homes,
    });
    let mut from_ids = from_ids.into_iter();
    Suggestion {
        kind: kind.to_owned(),
        from: from_ids.next().unwrap_or_default(),
        to: to_id.clone(),
        also_from: from_ids.collect(),
        trait_name,
        trait_home,
        implemented_by: to_id,
        methods: draft.methods.clone(),
        moved_items,
        imports,
        after: after
            .iter()
            .map(|&need| facts[drafts[need].to as usize].module.id.clone())
            .collect(),
        steps,
    }
}

fn after_index(drafts: &[Draft<'_>], facts: &[crate::modules::ModuleFacts], to: &str) -> usize {
    drafts
        .iter()
        .position(|draft| facts[draft.to as usize].module.id == to)
        .unwrap_or(0)
}

/// One home per `to`: its path below the crate root, under `ports` (or in a crate of its own
/// when a caller is in another crate).
fn home_of(facts: &[crate::modules::ModuleFacts], draft: &Draft<'_>) -> String {
    let to_facts = &facts[draft.to as usize];
    let krate = to_facts.module.krate.as_str();
    let crosses_crates = draft
        .froms
        .iter()
        .any(|&(from, _)| facts[from as usize].module.krate != to_facts.module.krate);
    let below_root = to_facts
        .module
        .id
        .strip_prefix(krate)
        .and_then(|rest| rest.strip_prefix("::"))
        .filter(|rest| !rest.is_empty());
    match (crosses_crates, below_root) {
        (true, Some(rest)) => format!("{krate}_api::{rest}"),
        (true, None) => format!("{krate}_api"),
        (false, Some(rest)) => format!("{krate}::ports::{rest}"),
        (false, None) => format!("{krate}::ports::{}", to_facts.name),
    }
}

/// An earlier (or, in a cycle of needs, later) suggestion that moves names this one uses.
struct Needed {
    /// Its number in the output, from 1.
    number: usize,
    to: String,
    earlier: bool,
    names: Vec<String>,
}

/// What a name in a signature stands for.
enum Found {
    /// Outside the workspace (or a module path): import it.
    Import(Import),
    /// An item of the workspace: (module, name).
    Item(u32, String),
}

/// Where the path `segments`, written in a signature in `module`, comes from; `None` for what
/// needs nothing (the prelude, `Self`, the signature's own generics, a full `std::` path) and
/// for what cannot be told (a glob import of a dependency, a macro's item).
fn origin<'a>(
    resolver: &mut Resolver<'a>,
    module: u32,
    segments: &[String],
    generics: &BTreeSet<String>,
) -> Option<Found> {
    let facts = resolver.facts;
    let (first, rest) = segments.split_first()?;
    if first == "Self" || generics.contains(first) || STD_ROOTS.contains(&first.as_str()) {
        return None;
    }
    let interned: Option<Vec<&str>> = segments
        .iter()
        .map(|segment| resolver.intern(segment))
        .collect();
    let workspace_item = |resolver: &mut Resolver<'a>| -> Option<Found> {
        let interned = interned.as_ref()?;
        match resolver.resolve_path(module, interned, false, 0) {
            Some((Res::Item(found_module, item), rest)) if rest.is_empty() => Some(Found::Item(
                found_module,
                facts[found_module as usize].items[item as usize]
                    .name
                    .clone(),
            )),
            _ => None,
        }
    };
    if matches!(first.as_str(), "crate" | "self" | "super") {
        return workspace_item(resolver);
    }
    if first == "::" {
        let krate = rest.first()?;
        if let Some(found) = workspace_item(resolver) {
            return Some(found);
        }
        return (!STD_ROOTS.contains(&krate.as_str())).then(|| {
            Found::Import(Import {
                name: first.clone(),
                path: rest.join("::"),
                origin: ImportOrigin::Dependency(krate.clone()),
            })
        });
    }
    // A `use` of this module that binds the name (one at module level first).
    let uses = &facts[module as usize].uses;
    let binding = uses
        .iter()
        .filter(|use_decl| matches!(&use_decl.binding, Binding::Name(name) if name == first))
        .min_by_key(|use_decl| use_decl.ctx.code);
    if let Some(use_decl) = binding {
        let path: Vec<&str> = use_decl
            .path
            .iter()
            .map(String::as_str)
            .filter(|segment| *segment != "::")
            .collect();
        let root = *path.first()?;
        if STD_ROOTS.contains(&root) {
            return Some(Found::Import(Import {
                name: first.clone(),
                path: path.join("::"),
                origin: ImportOrigin::Std,
            }));
        }
        if let Some(found) = workspace_item(resolver) {
            return Some(found);
        }
        if matches!(root, "crate" | "self" | "super") || is_workspace_name(resolver, module, root) {
            // Into the workspace, but not to an item: maybe a re-export of the standard library
            // or of a dependency (`crate::loom::sync::Arc`), else a module or a macro's item.
            return reexport(resolver, module, &path, first, 0).map(Found::Import);
        }
        return Some(Found::Import(Import {
            name: first.clone(),
            path: path.join("::"),
            origin: ImportOrigin::Dependency(root.to_owned()),
        }));
    }
    if let Some(found) = workspace_item(resolver) {
        return Some(found);
    }
    if crate::prelude::contains(first) {
        return None;
    }
    // `bytes::Bytes` written out: a dependency's path, when the first segment names nothing of
    // the workspace.
    if !rest.is_empty()
        && first
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_lowercase())
        && !is_workspace_name(resolver, module, first)
    {
        return Some(Found::Import(Import {
            name: first.clone(),
            path: first.clone(),
            origin: ImportOrigin::Dependency(first.clone()),
        }));
    }
    None
}

/// Follows `use` re-exports of the workspace (`use crate::loom::sync::Arc;` where `loom::sync`
/// has `pub(crate) use std::sync::Arc;`) to a path of the standard library or of a dependency.
fn reexport(
    resolver: &mut Resolver<'_>,
    module: u32,
    path: &[&str],
    name: &str,
    depth: u32,
) -> Option<Import> {
    if depth > 8 {
        return None;
    }
    let (&last, prefix) = path.split_last()?;
    let prefix: Option<Vec<&str>> = prefix
        .iter()
        .map(|segment| resolver.intern(segment))
        .collect();
    let (Res::Module(holder), rest) = resolver.resolve_path(module, &prefix?, true, 0)? else {
        return None;
    };
    if !rest.is_empty() {
        return None;
    }
    let facts = resolver.facts;
    let use_decl = facts[holder as usize]
        .uses
        .iter()
        .find(|use_decl| matches!(&use_decl.binding, Binding::Name(bound) if bound == last))?;
    let inner: Vec<&str> = use_decl
        .path
        .iter()
        .map(String::as_str)
        .filter(|segment| *segment != "::")
        .collect();
    let root = *inner.first()?;
    if STD_ROOTS.contains(&root) {
        return Some(Import {
            name: name.to_owned(),
            path: inner.join("::"),
            origin: ImportOrigin::Std,
        });
    }
    if matches!(root, "crate" | "self" | "super") || is_workspace_name(resolver, holder, root) {
        return reexport(resolver, holder, &inner, name, depth + 1);
    }
    Some(Import {
        name: name.to_owned(),
        path: inner.join("::"),
        origin: ImportOrigin::Dependency(root.to_owned()),
    })
}

/// Whether `name`, written in `module`, names something of the workspace (a module, an item, a
/// workspace crate).
fn is_workspace_name(resolver: &mut Resolver<'_>, module: u32, name: &str) -> bool {
    let Some(name) = resolver.intern(name) else {
        return false;
    };
    resolver.resolve_path(module, &[name], false, 0).is_some()
}

/// Whether an associated function without receiver builds its type (`-> Self`, `-> Type`,
/// `-> Result<Self, _>`).
fn returns_self(sig: &FnSig, type_name: &str) -> bool {
    let output = sig.output.trim_start_matches(" -> ");
    let first_word = |text: &str| -> bool {
        text == "Self"
            || text == type_name
            || text.starts_with("Self<")
            || text.starts_with(&format!("{type_name}<"))
    };
    if first_word(output) {
        return true;
    }
    ["Result<", "Option<"].iter().any(|wrapper| {
        output.strip_prefix(wrapper).is_some_and(|inner| {
            let inner = inner.split([',', '>']).next().unwrap_or("").trim();
            inner == "Self" || inner == type_name
        })
    })
}

fn method(subject: &str, source: &str, sig: &FnSig) -> Method {
    let class = classify(sig);
    let event = match class {
        Access::Command => Some(format!("{subject}{}Requested", pascal_case(&sig.name))),
        Access::Query => None,
    };
    Method {
        name: sig.name.clone(),
        signature: render_signature(sig),
        source: source.to_owned(),
        class,
        event,
    }
}

/// Query or command, from the signature and the name.
pub(crate) fn classify(sig: &FnSig) -> Access {
    let verb = sig.name.split('_').next().unwrap_or("");
    if sig.mut_receiver || sig.mut_params || COMMAND_VERBS.contains(&verb) {
        Access::Command
    } else {
        Access::Query
    }
}

/// The signature as it goes into the trait: the receiver as written, `&self` for a function that
/// had none, no visibility, no body.
pub(crate) fn render_signature(sig: &FnSig) -> String {
    let receiver = sig.receiver.clone().unwrap_or_else(|| "&self".to_owned());
    let mut params = vec![receiver];
    // A trait method without a body cannot have `mut` bindings.
    params.extend(
        sig.params
            .iter()
            .map(|param| param.strip_prefix("mut ").unwrap_or(param).to_owned()),
    );
    format!(
        "{}fn {}{}({}){}{}",
        sig.qualifiers,
        sig.name,
        sig.generics,
        params.join(", "),
        sig.output,
        sig.where_clause
    )
}

/// `payment` -> `Payment`, `order_line` -> `OrderLine`.
pub(crate) fn pascal_case(name: &str) -> String {
    let mut res = String::with_capacity(name.len());
    for part in name
        .trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
    {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            res.extend(first.to_uppercase());
            res.push_str(chars.as_str());
        }
    }
    res
}

struct StepsInput<'s> {
    froms: &'s [String],
    to: &'s str,
    /// Empty for `move-types`.
    trait_name: &'s str,
    trait_home: &'s str,
    crosses_crates: bool,
    methods: &'s [Method],
    moved_items: &'s [String],
    implementers: &'s BTreeSet<String>,
    edges: &'s [Option<&'s Edge>],
    needed: &'s [Needed],
    /// The home of each of `needed`.
    needed_homes: &'s [String],
}

fn quoted_list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{}`", name.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn steps(input: &StepsInput<'_>) -> Vec<String> {
    let StepsInput {
        to,
        trait_name,
        trait_home,
        ..
    } = *input;
    let from = quoted_list(input.froms);
    let (from_one, from_all) = match input.froms {
        [only] => (format!("`{only}`"), format!("`{only}`")),
        _ => (format!("each of {from}"), from.clone()),
    };
    let whose = match input.froms {
        [only] => format!("`{only}`'s"),
        _ => "their".to_owned(),
    };
    let gone = match input.froms {
        [only] => format!("the edge `{only} -> {to}` is gone"),
        _ => format!("the edges into `{to}` are gone"),
    };
    let mut res = Vec::new();
    for (needed, home) in input.needed.iter().zip(input.needed_homes) {
        if needed.earlier {
            res.push(format!(
                "Do this after suggestion {} (into `{}`): it moves {} to `{home}`, and this one names {}; import {} from there.",
                needed.number,
                needed.to,
                quoted_list(&needed.names),
                if needed.names.len() == 1 { "it" } else { "them" },
                if needed.names.len() == 1 { "it" } else { "them" },
            ));
        } else {
            res.push(format!(
                "Do this together with suggestion {} (into `{}`): it moves {} to `{home}`, which this trait names, and its trait names types this one moves.",
                needed.number,
                needed.to,
                quoted_list(&needed.names),
            ));
        }
    }
    if input.crosses_crates {
        let krate = trait_home.split("::").next().unwrap_or(trait_home);
        res.push(format!(
            "Create a new library crate `{}` (module `{trait_home}`) that both {from_all} and `{to}` depend on.",
            krate.replace('_', "-")
        ));
    } else {
        res.push(format!(
            "Create the module `{trait_home}`, which both {from_all} and `{to}` may depend on."
        ));
    }
    let (own, others): (Vec<&String>, Vec<&String>) = input
        .moved_items
        .iter()
        .partition(|item| !item.contains("::"));
    if !own.is_empty() {
        res.push(format!(
            "Move {} from `{to}` to `{trait_home}`, and re-export them from `{to}` with `pub use` so that its other users keep compiling.",
            quoted_list(&own)
        ));
    }
    if !others.is_empty() {
        res.push(format!(
            "Move {} to `{trait_home}` too (the trait names {them}, and its home cannot depend on {from_all}), and re-export {them} where {} {}.",
            quoted_list(&others),
            if others.len() == 1 { "it" } else { "they" },
            if others.len() == 1 { "was" } else { "were" },
            them = if others.len() == 1 { "it" } else { "them" },
        ));
    }
    let (count, example) =
        input
            .edges
            .iter()
            .flatten()
            .fold((0u32, String::new()), |(count, example), edge| {
                let example = if example.is_empty() {
                    edge.locations
                        .first()
                        .map(|location| {
                            format!(" (first at {}:{})", location.file.display(), location.line)
                        })
                        .unwrap_or_default()
                } else {
                    example
                };
                (count.saturating_add(edge.weight), example)
            });
    if trait_name.is_empty() {
        // A type-only edge: no function of `to` is called, so there is no trait to extract.
        res.push(format!(
            "In {from_one}, name the moved types through `{trait_home}` instead of `{to}`: {count} {}{example}.",
            if count == 1 { "reference" } else { "references" }
        ));
        res.push(format!(
            "Remove the `use` of `{to}` from {from_all}: the edge is gone and both depend on `{trait_home}`. No trait is needed: {from_all} calls no function of `{to}`."
        ));
        return res;
    }
    res.push(format!(
        "Define `trait {trait_name}` in `{trait_home}` with {}.",
        quoted_list(input.methods.iter().map(|method| method.signature.as_str()))
    ));
    let implementer = if input.implementers.is_empty() {
        format!(
            "a type of `{to}` (e.g. a unit struct `{}Service` delegating to its functions)",
            pascal_case(to.rsplit("::").next().unwrap_or(to))
        )
    } else {
        quoted_list(input.implementers)
    };
    res.push(format!("Implement `{trait_name}` for {implementer} in `{to}`, each method calling the existing code."));
    res.push(format!(
        "In {from_one}, take the implementation as a parameter instead of naming `{to}`: a generic `impl {trait_name}` / `T: {trait_name}`, or `Box<dyn {trait_name}>` (`Arc<dyn {trait_name} + Send + Sync>` when shared), handed over where {whose} values are built."
    ));
    let references = if count == 1 {
        "the direct reference".to_owned()
    } else {
        format!("the {count} direct references")
    };
    res.push(format!(
        "Replace {references} from {from_all} to `{to}`{example} with calls through `{trait_name}`."
    ));
    res.push(format!(
        "Remove the `use` of `{to}` from {from_all}: {gone} and both depend on `{trait_home}`."
    ));
    let commands: Vec<&Method> = input
        .methods
        .iter()
        .filter(|method| method.class == Access::Command)
        .collect();
    if !commands.is_empty() {
        let events = quoted_list(commands.iter().filter_map(|method| method.event.as_deref()));
        let names = quoted_list(commands.iter().map(|method| method.name.as_str()));
        res.push(format!(
            "Alternative for the commands ({names}): instead of calling them, {from_all} publishes {events} on a queue (or an in-process event bus) that `{to}` consumes, so {from_all} no longer waits on `{to}`; the event types live in `{trait_home}`."
        ));
    }
    res
}

/// The paths a signature names (types, trait bounds, the receiver's type), each as its
/// segments (a leading `::` is the segment `::`), and the type parameters it declares.
fn signature_paths(sig: &FnSig) -> (Vec<Vec<String>>, BTreeSet<String>) {
    use syn::visit::Visit;
    struct Paths(Vec<Vec<String>>);
    fn segments(path: &syn::Path, take: usize) -> Vec<String> {
        path.leading_colon
            .map(|_| "::".to_owned())
            .into_iter()
            .chain(
                path.segments
                    .iter()
                    .take(take)
                    .map(|segment| segment.ident.to_string()),
            )
            .collect()
    }
    impl<'ast> Visit<'ast> for Paths {
        fn visit_type_path(&mut self, type_path: &'ast syn::TypePath) {
            match &type_path.qself {
                None => self.0.push(segments(&type_path.path, usize::MAX)),
                // `<T as crate::Stream>::Item`: the trait's path.
                Some(qself) if qself.position > 0 => {
                    self.0.push(segments(&type_path.path, qself.position));
                }
                Some(_) => {}
            }
            syn::visit::visit_type_path(self, type_path);
        }
        fn visit_trait_bound(&mut self, bound: &'ast syn::TraitBound) {
            self.0.push(segments(&bound.path, usize::MAX));
            syn::visit::visit_trait_bound(self, bound);
        }
    }
    let Ok(item) = syn::parse_str::<syn::TraitItemFn>(&format!("{};", render_signature(sig)))
    else {
        return (Vec::new(), BTreeSet::new());
    };
    let generics: BTreeSet<String> = item
        .sig
        .generics
        .type_params()
        .map(|param| param.ident.to_string())
        .collect();
    let mut paths = Paths(Vec::new());
    paths.visit_signature(&item.sig);
    paths.0.retain(|path| !path.is_empty());
    paths.0.sort();
    paths.0.dedup();
    (paths.0, generics)
}
