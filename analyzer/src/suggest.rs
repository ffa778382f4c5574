//! Interface-extraction suggestions, one per edge of the cut list.
//!
//! For a cut edge `from -> to` we propose a trait that `to` implements and `from` calls, so that
//! the dependency can point the other way (`from` and `to` both depend on the trait's home). The
//! trait is made of what `from` actually uses of `to`, taken from the edge's items:
//!
//! - `Type::method` of an inherent impl becomes that method, signature as written in the source
//!   (receiver included); a constructor (no receiver, returns `Self` or the type) is not part of
//!   the trait: `from` will receive the value instead of building it.
//! - `Trait::method` of a trait of `to` becomes that method.
//! - A free function `f` becomes a method taking `&self`.
//! - Types and constants used, and the types of `to` named in the chosen signatures, must move to
//!   the trait's home (`moved_items`); the types whose methods make up the trait stay and
//!   implement it.
//!
//! Each method is a *command* when it takes `&mut self` or a `&mut` argument, or when its name is
//! a writing verb (`set_`, `insert`, `create`, `charge`, ...); otherwise a *query*. A command also
//! gets an event name (`charge` on `payment` gives `PaymentChargeRequested`) for the
//! queue/event alternative.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::modules::{FnSig, ItemKind};
use crate::report::{Access, CutEdge, Edge, Method, Suggestion};
use crate::resolve::{Res, Resolver, split_path};

/// Verbs that make a method a command when its name is the verb or starts with `verb_`.
const COMMAND_VERBS: &[&str] = &[
    "add", "apply", "approve", "assign", "book", "cancel", "capture", "charge", "clear", "close",
    "commit", "confirm", "create", "credit", "debit", "delete", "deposit", "disable", "emit",
    "enable", "enqueue", "grant", "insert", "issue", "mark", "notify", "open", "pay", "place",
    "post", "publish", "purge", "push", "put", "record", "redeem", "refund", "register", "reject",
    "release", "remove", "reserve", "reset", "revoke", "save", "send", "set", "ship", "store",
    "submit", "transfer", "update", "upsert", "withdraw", "write",
];

/// Builds the suggestions for `cut`, in the order of `cut`.
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
    let mut res = Vec::with_capacity(cut.len());
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
        res.push(suggest_one(resolver, from, to, edge));
    }
    res
}

fn suggest_one(resolver: &mut Resolver<'_>, from: u32, to: u32, edge: Option<&Edge>) -> Suggestion {
    let facts = resolver.facts;
    let from_facts = &facts[from as usize];
    let to_facts = &facts[to as usize];
    let to_id = to_facts.module.id.clone();
    let from_id = from_facts.module.id.clone();
    let krate = to_facts.module.krate.as_str();
    let items: Vec<String> = edge.map(|edge| edge.items.clone()).unwrap_or_default();
    let subject = pascal_case(&to_facts.name);

    let mut methods: Vec<Method> = Vec::new();
    let mut method_sigs: Vec<(u32, &FnSig)> = Vec::new();
    let mut implementers: BTreeSet<String> = BTreeSet::new();
    let mut moved: BTreeSet<String> = BTreeSet::new();
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
                                    // A constructor: `from` will be handed the value instead.
                                    implementers.insert(head.to_owned());
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
                    }
                }
            }
        }
    }

    // Types of `to` (or its descendants) named in the chosen signatures move too.
    for (module, sig) in &method_sigs {
        for type_path in signature_type_paths(sig) {
            let Some(segments) = split_path(&type_path)
                .into_iter()
                .map(|segment| resolver.intern(segment))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            if let Some((Res::Item(found_module, item), rest)) =
                resolver.resolve_path(*module, &segments, false, 0)
                && rest.is_empty()
                && (found_module == to || resolver_is_descendant(resolver, to, found_module))
            {
                let name = facts[found_module as usize].items[item as usize]
                    .name
                    .clone();
                moved.insert(name);
            }
        }
    }
    for implementer in &implementers {
        moved.remove(implementer);
    }

    let all_queries =
        !methods.is_empty() && methods.iter().all(|method| method.class == Access::Query);
    let trait_name = if all_queries {
        format!("{subject}Queries")
    } else {
        format!("{subject}Port")
    };
    let crosses_crates = from_facts.module.krate != to_facts.module.krate;
    let trait_home = if crosses_crates {
        format!("{}_api", to_facts.module.krate)
    } else {
        format!("{krate}::ports::{}", to_facts.name)
    };
    let implemented_by = to_id.clone();
    let moved_items: Vec<String> = moved.into_iter().collect();
    let steps = steps(&StepsInput {
        from: &from_id,
        to: &to_id,
        trait_name: &trait_name,
        trait_home: &trait_home,
        crosses_crates,
        to_crate: krate,
        methods: &methods,
        moved_items: &moved_items,
        implementers: &implementers,
        edge,
    });
    Suggestion {
        kind: "extract-interface".to_owned(),
        from: from_id,
        to: to_id,
        trait_name,
        trait_home,
        implemented_by,
        methods,
        moved_items,
        steps,
    }
}

fn resolver_is_descendant(resolver: &Resolver<'_>, ancestor: u32, module: u32) -> bool {
    resolver.is_ancestor(ancestor, module)
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
    from: &'s str,
    to: &'s str,
    trait_name: &'s str,
    trait_home: &'s str,
    crosses_crates: bool,
    to_crate: &'s str,
    methods: &'s [Method],
    moved_items: &'s [String],
    implementers: &'s BTreeSet<String>,
    edge: Option<&'s Edge>,
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
        from,
        to,
        trait_name,
        trait_home,
        ..
    } = *input;
    let mut res = Vec::new();
    if input.crosses_crates {
        res.push(format!(
            "Create a new library crate `{}` (module `{trait_home}`) that both `{from}` and `{to}` depend on.",
            trait_home.replace('_', "-")
        ));
    } else {
        res.push(format!(
            "Create the module `{trait_home}`, which both `{from}` and `{to}` may depend on."
        ));
    }
    if !input.moved_items.is_empty() {
        res.push(format!(
            "Move {} from `{to}` to `{trait_home}`, and re-export them from `{to}` with `pub use` so that its other users keep compiling.",
            quoted_list(input.moved_items)
        ));
    }
    if input.methods.is_empty() {
        res.push(format!(
            "Define `trait {trait_name}` in `{trait_home}` with one method per use of `{to}` in `{from}` (no function of `{to}` is called directly today: the uses are types only, so moving them may be enough)."
        ));
    } else {
        res.push(format!(
            "Define `trait {trait_name}` in `{trait_home}` with {}.",
            quoted_list(input.methods.iter().map(|method| method.signature.as_str()))
        ));
    }
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
        "In `{from}`, take the implementation as a parameter instead of naming `{to}`: a generic `impl {trait_name}` / `T: {trait_name}`, or `Box<dyn {trait_name}>` (`Arc<dyn {trait_name} + Send + Sync>` when shared), handed over where `{from}`'s values are built."
    ));
    let (count, example) = match input.edge {
        Some(edge) => (
            edge.weight,
            edge.locations
                .first()
                .map(|location| {
                    format!(" (first at {}:{})", location.file.display(), location.line)
                })
                .unwrap_or_default(),
        ),
        None => (0, String::new()),
    };
    let references = if count == 1 {
        "the direct reference".to_owned()
    } else {
        format!("the {count} direct references")
    };
    res.push(format!(
        "Replace {references} from `{from}` to `{to}`{example} with calls through `{trait_name}`."
    ));
    res.push(format!(
        "Remove the `use` of `{to}` from `{from}`: the edge `{from} -> {to}` is gone and both depend on `{trait_home}`."
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
            "Alternative for the commands ({names}): instead of calling them, `{from}` publishes {events} on a queue (or an in-process event bus) that `{to}` consumes, so `{from}` no longer waits on `{to}`; the event types live in `{trait_home}`."
        ));
    }
    let _ = input.to_crate;
    res
}

/// Paths of the types named in a signature's parameters and return type (`Money`,
/// `order::OrderId`), found by parsing the signature text again.
fn signature_type_paths(sig: &FnSig) -> Vec<String> {
    use syn::visit::Visit;
    struct Paths(Vec<String>);
    impl<'ast> Visit<'ast> for Paths {
        fn visit_type_path(&mut self, type_path: &'ast syn::TypePath) {
            if type_path.qself.is_none() {
                let segments: Vec<String> = type_path
                    .path
                    .segments
                    .iter()
                    .map(|segment| segment.ident.to_string())
                    .collect();
                if segments.first().is_some_and(|first| first != "Self") {
                    self.0.push(segments.join("::"));
                }
            }
            syn::visit::visit_type_path(self, type_path);
        }
    }
    let Ok(item) = syn::parse_str::<syn::TraitItemFn>(&format!("{};", render_signature(sig)))
    else {
        return Vec::new();
    };
    let mut paths = Paths(Vec::new());
    for input in &item.sig.inputs {
        if let syn::FnArg::Typed(typed) = input {
            paths.visit_type(&typed.ty);
        }
    }
    if let syn::ReturnType::Type(_, ty) = &item.sig.output {
        paths.visit_type(ty);
    }
    paths.0.sort();
    paths.0.dedup();
    paths.0
}
