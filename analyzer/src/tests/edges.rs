//! Edges an architect can trust (issue 18): each class of false edge and of missed edge or
//! module, as a fixture that shows the edges with where each reference is and how it was
//! resolved, and the uncertain edges apart.

use std::fmt::Write as _;

use crate::report::{EdgeScope, Report};
use crate::{Options, analyze};

use super::write_fixture;

/// Analyses a fixture with every edge in scope and renders modules, edges (with the lines of
/// their references and how each item was resolved) and the uncertain edges.
#[track_caller]
fn check_edges(fixture: &str) -> String {
    check_edges_options(fixture, false)
}

#[track_caller]
fn check_edges_options(fixture: &str, include_uncertain: bool) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(dir.path(), fixture);
    let mut options = Options::new();
    options.scope = EdgeScope {
        include_hierarchical: true,
        include_test_only: true,
    };
    options.include_uncertain = include_uncertain;
    let report = analyze(dir.path(), &options).expect("the fixture loads");
    render(&report)
}

fn render(report: &Report) -> String {
    let mut res = String::from("modules:\n");
    for module in &report.modules {
        let note = if module.in_macro { " (in macro)" } else { "" };
        writeln!(res, "  {}{note}", module.id).expect("write");
    }
    for (title, edges) in [
        ("edges", &report.edges),
        ("uncertain", &report.uncertain_edges),
    ] {
        writeln!(res, "{title}:").expect("write");
        for edge in edges {
            let lines: Vec<String> = edge
                .locations
                .iter()
                .map(|location| {
                    let file = location.file.file_name().unwrap_or_default().display();
                    format!("{file}:{}", location.line)
                })
                .collect();
            writeln!(
                res,
                "  {} -> {} w={} at {}",
                edge.from,
                edge.to,
                edge.weight,
                lines.join(" ")
            )
            .expect("write");
            for resolution in &edge.resolutions {
                writeln!(
                    res,
                    "    {} ({})",
                    resolution.item.as_deref().unwrap_or("<module>"),
                    resolution.resolution.as_str()
                )
                .expect("write");
            }
        }
    }
    res
}

/// A local binding named like a module is no use of that module: `let`, `match` arms, `if let`,
/// closure and function parameters, loop variables, and `let`s inside macro bodies all shadow
/// the module that a glob import brings in. A path through the module still counts.
#[test]
fn local_bindings_shadow_modules() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
pub mod future;
pub mod task;
pub mod waker;
pub mod user;
//- /future.rs
pub fn ready() -> u32 { 1 }
//- /task.rs
pub fn spawn() {}
//- /waker.rs
pub fn wake() {}
//- /user.rs
use crate::*;
pub fn run(waker: u32, result: Result<u32, u32>) -> u32 {
    let future = waker + 1;
    match result {
        Ok(future) => return future,
        Err(task) => drop(task),
    }
    if let Some(task) = Some(future) {
        return task;
    }
    let poll = |future: u32| future * 2;
    for task in 0..future {
        println!("{}", task + poll(future));
    }
    custom!(let waker = 2; waker + future);
    future + waker + future::ready()
}
"#
    ));
}

/// `pub(crate)` and `pub(in path)` in a macro body the analyzer cannot parse are visibilities,
/// not uses of the crate root or of the module named.
#[test]
fn visibilities_in_macro_bodies_are_no_use() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
pub mod a;
pub mod b;
pub mod c;
//- /a.rs
use crate::b::*;
bitflags! {
    pub(crate) struct Flags: u32 { const ONE = 1; }
}
generated! {
    pub(in crate::c) fn helper() -> Unit { Unit }
}
//- /b.rs
pub struct Unit;
//- /c.rs
"#
    ));
}

/// A method call is attributed to a workspace type only where the receiver's type is known:
/// `self`, a typed parameter, a field of a known struct, a constructor's return type and chains
/// from those. Calls on std types (`thread::Builder::new().spawn()`, `handle.name()`) make no
/// edge even though the module names a workspace type with methods of those names; a call whose
/// receiver nothing tells about is uncertain, kept apart.
#[test]
fn method_calls_follow_the_receiver_type() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
pub mod pool;
pub mod worker;
pub mod app;
//- /pool.rs
pub struct Builder { pub label: String }
impl Builder {
    pub fn new() -> Self { Builder { label: String::new() } }
    pub fn name(&self) -> &str { &self.label }
    pub fn spawn(self) -> crate::worker::Handle { crate::worker::Handle }
}
//- /worker.rs
pub struct Handle;
impl Handle { pub fn join(&self) -> Result<u32, ()> { Ok(1) } }
//- /app.rs
use std::thread;
use crate::pool::Builder;
pub struct App { pool: Builder }
impl App {
    pub fn start(&self, extra: &Builder) -> u32 {
        thread::Builder::new().name("io".into()).spawn(|| {}).unwrap();
        let handle = thread::current();
        let _ = handle.name();
        let _ = self.pool.name();
        let _ = extra.name();
        let built = Builder::new();
        let joined = built.spawn().join();
        let opaque = unknown!();
        opaque.spawn();
        joined.unwrap_or(0)
    }
}
"#
    ));
}

/// With `include_uncertain`, calls matched by name alone are part of the edges, marked as such.
#[test]
fn uncertain_method_calls_can_be_included() {
    insta::assert_snapshot!(check_edges_options(
        r#"
//- /lib.rs
pub mod pool;
pub mod app;
//- /pool.rs
pub struct Builder;
impl Builder { pub fn spawn(&self) {} }
//- /app.rs
use crate::pool::Builder;
pub fn start(_: Builder) { let opaque = unknown!(); opaque.spawn(); }
"#,
        true
    ));
}

/// Receiver types through trait bounds, `impl Trait`, `dyn Trait`, `Arc`, `?`, `Some(x)`
/// patterns, struct fields of another module's struct, free function return types, and the
/// trait impls of a type.
#[test]
fn receiver_types_through_bounds_wrappers_and_returns() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
pub mod port;
pub mod model;
pub mod user;
//- /port.rs
pub trait Store { fn load(&self) -> Option<crate::model::Record>; }
pub fn open() -> Result<std::sync::Arc<crate::model::Db>, ()> { Err(()) }
//- /model.rs
pub struct Record { pub owner: Owner }
pub struct Owner;
impl Owner { pub fn email(&self) -> u32 { 1 } }
pub struct Db;
impl crate::port::Store for Db { fn load(&self) -> Option<Record> { None } }
//- /user.rs
use crate::port::{self, Store};
pub fn by_bound<S: Store>(store: &S) { store.load(); }
pub fn by_impl(store: impl Store) -> u32 {
    if let Some(record) = store.load() { record.owner.email() } else { 0 }
}
pub fn by_dyn(store: &dyn Store) { let _ = store.load(); }
pub fn by_return() -> Result<(), ()> { let db = port::open()?; db.load(); Ok(()) }
"#
    ));
}

/// Modules declared inside any item macro: after inner attributes (`feature! { #![unix] mod
/// symlink; }`), and in the braced groups of a body that is not items as a whole (`cfg_if!`).
#[test]
fn modules_inside_any_item_macro() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
feature! {
    #![unix]
    pub mod symlink;
}
cfg_if::cfg_if! {
    if #[cfg(unix)] {
        mod unix;
    } else {
        mod windows;
    }
}
pub fn f() { symlink::link(); unix::open(); }
//- /symlink.rs
pub fn link() {}
//- /unix.rs
pub fn open() {}
//- /windows.rs
pub fn open() {}
"#
    ));
}

/// A glob import names its module even when no name from it is used, also for an enum's
/// variants; a glob re-export chain is followed to the defining module.
#[test]
fn glob_imports_name_their_module() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
pub mod a;
pub mod facade;
pub mod kinds;
pub mod user;
//- /a/mod.rs
pub mod b;
//- /a/b.rs
pub struct Unused;
pub struct Used;
//- /facade.rs
pub use crate::a::b::*;
//- /kinds.rs
pub enum Kind { One, Two }
//- /user.rs
use crate::a::b::*;
use crate::kinds::Kind::*;
use crate::facade::Used as Again;
pub fn f(_: Again) {}
"#
    ));
}

/// An impl block written in another module than its type, and a type alias, lead to the module
/// where the type is defined.
#[test]
fn impls_elsewhere_and_aliases_lead_to_the_type() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
pub mod model;
pub mod model_impl;
pub mod alias;
pub mod user;
//- /model.rs
pub struct Order;
//- /model_impl.rs
impl super::model::Order { pub fn total(&self) -> u32 { 1 } }
//- /alias.rs
pub type Current = crate::model::Order;
//- /user.rs
pub fn f(order: &crate::alias::Current) -> u32 { order.total() }
"#
    ));
}

/// Writes a workspace of two crates where `app` depends on a registry version of `core_lib`
/// that the root manifest patches to the member `core_lib`, with or without a lock file.
fn write_patched_workspace(dir: &std::path::Path, lock: bool) {
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        std::fs::write(path, text).expect("write");
    };
    write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"app\", \"core_lib\"]\nresolver = \"3\"\n\n\
         [patch.crates-io]\ncore_lib = { path = \"core_lib\" }\n",
    );
    write(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\ncore_lib = \"0.1\"\n",
    );
    write(
        "app/src/lib.rs",
        "pub fn run() -> core_lib::Engine { core_lib::Engine }\n",
    );
    write(
        "core_lib/Cargo.toml",
        "[package]\nname = \"core_lib\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    );
    write("core_lib/src/lib.rs", "pub struct Engine;\n");
    if lock {
        write(
            "Cargo.lock",
            "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\
             dependencies = [\n \"core_lib\",\n]\n\n\
             [[package]]\nname = \"core_lib\"\nversion = \"0.1.0\"\n",
        );
    }
}

/// A registry dependency patched to a path in the workspace (`[patch.crates-io]`) is a
/// workspace dependency: read from the lock file's resolved graph when there is one, else from
/// the patch table. (tokio's crates depend on `tokio` this way.)
#[test]
fn patched_registry_dependencies_are_workspace_dependencies() {
    for lock in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_patched_workspace(dir.path(), lock);
        let report = analyze(dir.path(), &Options::new()).expect("the workspace loads");
        let app = report
            .crates
            .iter()
            .find(|krate| krate.name == "app")
            .expect("app");
        assert_eq!(app.depends_on, ["core_lib"], "lock file: {lock}");
        let crate_edges: Vec<(&str, &str)> = report
            .crate_edges
            .iter()
            .map(|edge| (edge.from.as_str(), edge.to.as_str()))
            .collect();
        assert_eq!(crate_edges, [("app", "core_lib")], "lock file: {lock}");
    }
}

/// A derived or std trait constructor (`Type::default()` of `#[derive(Default)]`, `Type::from`)
/// gives its type: methods called on what it returns are the type's.
#[test]
fn derived_constructors_give_their_type() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
pub mod store;
pub mod domain;
//- /store.rs
#[derive(Default)]
pub struct Table;
impl Table { pub fn insert(&mut self, value: u64) -> u64 { value } }
//- /domain.rs
use crate::store::Table;
pub fn place(quantity: u64) -> u64 {
    let mut table = Table::default();
    table.insert(quantity)
}
"#
    ));
}

/// Very long chains and `let b = b.with(..)` repeated: the run ends, the types stop being known
/// past a bound instead of growing without one, and the calls near the start are still typed.
#[test]
fn long_chains_stay_bounded() {
    let mut user = String::from(
        "use crate::pool::Builder;\npub fn f() {\n    let b = Builder::new();\n    b.with();\n",
    );
    for _ in 0..2_000 {
        user.push_str("    let b = b.with();\n");
    }
    user.push_str("    Builder::new()");
    for _ in 0..5_000 {
        user.push_str(".with()");
    }
    user.push_str(";\n}\n");
    let fixture = format!(
        "//- /lib.rs\npub mod pool;\npub mod user;\n//- /pool.rs\npub struct Builder;\n\
         impl Builder {{ pub fn new() -> Self {{ Builder }} pub fn with(self) -> Self {{ self }} }}\n\
         //- /user.rs\n{user}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(dir.path(), &fixture);
    let report = analyze(dir.path(), &Options::new()).expect("the fixture loads");
    let edge = report
        .edges
        .iter()
        .find(|edge| edge.from == "fixture::user" && edge.to == "fixture::pool")
        .expect("user -> pool");
    assert!(
        edge.resolutions.iter().any(|resolution| {
            resolution.item.as_deref() == Some("Builder::with")
                && resolution.resolution.as_str() == "method-typed"
        }),
        "{:?}",
        edge.resolutions
    );
}

/// A `use` inside a function body binds its name for that body only: a path starting with the
/// name there goes where that `use` says, not where the module's own import of the same name
/// goes (helix's `application.rs`: `use helix_lsp::Notification;` in one function, the LSP
/// crate's `Notification` trait at the top of the file).
#[test]
fn uses_inside_a_body_stand_for_their_paths_there() {
    insta::assert_snapshot!(check_edges(
        r#"
//- /lib.rs
pub mod lsp;
pub mod types;
pub mod app;
//- /lsp.rs
pub enum Notification { Exit }
//- /types.rs
pub trait Notification { const METHOD: &'static str; }
//- /app.rs
use crate::types::Notification;
pub fn method<N: Notification>() -> &'static str { N::METHOD }
pub fn handle() -> bool {
    use crate::lsp::Notification;
    matches!(Notification::Exit, Notification::Exit)
}
"#
    ));
}
