//! Unit tests of the extraction pipeline: module trees, name resolution, edge kinds, suggestions.
//!
//! Tests are data: an inline multi-file fixture in rust-analyzer's format, written to a temporary
//! directory as a real workspace, analysed by [`crate::analyze`], rendered as text and compared
//! with an insta snapshot. `//- /lib.rs` starts a file (paths are relative to the crate's `src/`);
//! `//- /lib.rs crate:a deps:b,c=renamed` also starts crate `a` (default crate: `fixture`), which
//! depends on `b`, and on `c` under the name `renamed`. `//- Cargo.toml` at the very top replaces
//! the generated workspace manifest.

use std::fmt::Write as _;
use std::path::Path;

use crate::report::{EdgeScope, Hierarchy, Report, Usage};
use crate::{Options, analyze};

mod edges;

/// One crate of a fixture.
#[derive(Default)]
struct FixtureCrate {
    name: String,
    deps: Vec<(String, Option<String>)>,
    files: Vec<(String, String)>,
}

/// Writes `fixture` into `dir` as a Cargo workspace.
pub(crate) fn write_fixture(dir: &Path, fixture: &str) {
    let mut crates: Vec<FixtureCrate> = Vec::new();
    let mut manifest: Option<String> = None;
    let mut current: Option<(String, String)> = None;
    let flush = |current: &mut Option<(String, String)>,
                 crates: &mut Vec<FixtureCrate>,
                 manifest: &mut Option<String>| {
        if let Some((path, text)) = current.take() {
            if path == "Cargo.toml" {
                *manifest = Some(text);
            } else {
                if crates.is_empty() {
                    crates.push(FixtureCrate {
                        name: "fixture".to_owned(),
                        ..FixtureCrate::default()
                    });
                }
                crates.last_mut().expect("a crate").files.push((path, text));
            }
        }
    };
    for line in fixture.lines() {
        if let Some(header) = line.trim_start().strip_prefix("//- ") {
            flush(&mut current, &mut crates, &mut manifest);
            let mut words = header.split_whitespace();
            let path = words
                .next()
                .expect("a path")
                .trim_start_matches('/')
                .to_owned();
            for word in words {
                if let Some(name) = word.strip_prefix("crate:") {
                    crates.push(FixtureCrate {
                        name: name.to_owned(),
                        ..FixtureCrate::default()
                    });
                } else if let Some(deps) = word.strip_prefix("deps:") {
                    let krate = crates.last_mut().expect("deps: after crate:");
                    for dep in deps.split(',') {
                        match dep.split_once('=') {
                            Some((name, rename)) => {
                                krate.deps.push((name.to_owned(), Some(rename.to_owned())))
                            }
                            None => krate.deps.push((dep.to_owned(), None)),
                        }
                    }
                }
            }
            current = Some((path, String::new()));
        } else if let Some((_, text)) = &mut current {
            text.push_str(line);
            text.push('\n');
        }
    }
    flush(&mut current, &mut crates, &mut manifest);

    let members: Vec<String> = crates
        .iter()
        .map(|krate| format!("\"{}\"", krate.name))
        .collect();
    let workspace = manifest.unwrap_or_else(|| {
        format!(
            "[workspace]\nmembers = [{}]\nresolver = \"3\"\n",
            members.join(", ")
        )
    });
    std::fs::write(dir.join("Cargo.toml"), workspace).expect("write workspace manifest");
    for krate in &crates {
        let root = dir.join(&krate.name);
        let mut package = format!(
            "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
            krate.name
        );
        package.push_str("\n[dependencies]\n");
        for (dep, rename) in &krate.deps {
            match rename {
                Some(rename) => writeln!(
                    package,
                    "{rename} = {{ package = \"{dep}\", path = \"../{dep}\" }}"
                )
                .expect("write"),
                None => writeln!(package, "{dep} = {{ path = \"../{dep}\" }}").expect("write"),
            }
        }
        std::fs::create_dir_all(root.join("src")).expect("create src");
        std::fs::write(root.join("Cargo.toml"), package).expect("write manifest");
        for (path, text) in &krate.files {
            let file = root.join("src").join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("create dirs");
            std::fs::write(file, text).expect("write file");
        }
    }
}

/// Analyses a fixture with every edge in scope and renders what a reader checks.
#[track_caller]
fn check(fixture: &str) -> String {
    check_options(fixture, None)
}

#[track_caller]
fn check_with_depth(fixture: &str, depth: usize) -> String {
    check_options(fixture, Some(depth))
}

#[track_caller]
fn check_options(fixture: &str, depth: Option<usize>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(dir.path(), fixture);
    let mut options = Options::new();
    options.depth = depth;
    options.scope = EdgeScope {
        include_hierarchical: true,
        include_test_only: true,
    };
    match analyze(dir.path(), &options) {
        Ok(report) => render(&report, dir.path()),
        Err(err) => {
            let message =
                format!("error: {err}").replace(&dir.path().display().to_string(), "[TEMP_DIR]");
            // Cargo names the manifest relative to the test's working directory.
            let lines: Vec<String> = message
                .lines()
                .map(|line| match line.split_once(" --> ") {
                    Some((indent, location)) => {
                        let file = location.rsplit('/').next().unwrap_or(location);
                        format!("{indent} --> [PATH]/{file}")
                    }
                    None => line.to_owned(),
                })
                .collect();
            lines.join("\n")
        }
    }
}

fn render(report: &Report, root: &Path) -> String {
    let relative = |path: &Path| {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        path.strip_prefix(&root)
            .or_else(|_| path.strip_prefix(root))
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut res = String::from("modules:\n");
    for module in &report.modules {
        let mut notes = Vec::new();
        notes.push(format!(
            "{}, declared at line {}",
            relative(&module.file),
            module.line
        ));
        if module.inline {
            notes.push("inline".to_owned());
        }
        if let Some(cfg) = &module.cfg {
            notes.push(format!("cfg({cfg})"));
        }
        if module.test_only {
            notes.push("test-only".to_owned());
        }
        if module.in_macro {
            notes.push("in-macro".to_owned());
        }
        writeln!(res, "  {} [{}]", module.id, notes.join(", ")).expect("write");
    }
    res.push_str("edges:\n");
    for edge in &report.edges {
        let hierarchy = match edge.hierarchy {
            Hierarchy::Hierarchical => "hier",
            Hierarchy::Cross => "cross",
        };
        let usage = match edge.usage {
            Usage::TypeOnly => "type",
            Usage::Code => "code",
        };
        let test = if edge.test_only { " test" } else { "" };
        writeln!(
            res,
            "  {} -> {} w={} {hierarchy} {usage}{test} {:?}",
            edge.from, edge.to, edge.weight, edge.items
        )
        .expect("write");
    }
    if !report.skipped_files.is_empty() {
        res.push_str("skipped:\n");
        for skipped in &report.skipped_files {
            let position = match (skipped.line, skipped.column) {
                (Some(line), Some(column)) => format!(":{line}:{column}"),
                _ => String::new(),
            };
            let error = skipped
                .error
                .replace(&root.display().to_string(), "[TEMP_DIR]");
            writeln!(res, "  {}{position}: {error}", relative(&skipped.path)).expect("write");
        }
    }
    res
}

#[test]
fn use_groups_globs_renames() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub mod a;
pub mod b;
pub mod c;
//- /a.rs
use crate::{b::{self, Beta as B}, c::*};
pub fn f() -> B { b::make(); gamma(); B }
//- /b.rs
pub struct Beta;
pub fn make() {}
//- /c.rs
pub fn gamma() {}
"#
    ));
}

#[test]
fn self_super_crate_and_leading_colons() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub mod outer;
pub mod other;
//- /outer/mod.rs
pub mod inner;
pub struct Outer;
//- /outer/inner.rs
use super::Outer;
use self::deep::Deep;
use crate::other;
mod deep { pub struct Deep; }
pub fn f(_: Outer, _: Deep) { other::g(); super::super::other::g(); ::fixture::other::g(); }
//- /other.rs
pub fn g() {}
"#
    ));
}

#[test]
fn glob_in_test_module_is_test_only_and_hierarchical() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub fn total() -> u32 { 1 }
#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn adds() { assert_eq!(total(), 1); }
}
"#
    ));
}

#[test]
fn mod_rs_name_rs_and_nested_dirs() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
mod a;
mod b;
//- /a.rs
mod child;
//- /a/child.rs
pub struct C;
//- /b/mod.rs
mod grand;
//- /b/grand.rs
use crate::a::child::C;
pub fn f(_: C) {}
"#
    ));
}

#[test]
fn path_attributes_also_inside_inline_modules() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
#[path = "elsewhere/real.rs"]
mod renamed;
mod inline {
    #[path = "deep.rs"]
    pub mod deep;
}
//- /elsewhere/real.rs
pub fn real() { crate::inline::deep::d(); }
//- /inline/deep.rs
pub fn d() {}
"#
    ));
}

#[test]
fn cfg_modules_keep_their_predicate() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
#[cfg(unix)]
mod imp;
#[cfg(all(test, feature = "slow"))]
mod slow_tests {}
#[cfg(not(test))]
mod prod {}
//- /imp.rs
pub fn f() {}
"#
    ));
}

#[test]
fn modules_declared_inside_item_macros() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
macro_rules! cfg_rt { ($($item:item)*) => { $($item)* } }
cfg_rt! {
    pub mod runtime;
    pub mod inline { pub fn g() { crate::runtime::f(); } }
}
not_items! { $weird tokens => here }
//- /runtime.rs
pub fn f() {}
"#
    ));
}

#[test]
fn include_is_followed() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
mod target;
include!("generated.rs");
//- /generated.rs
pub fn generated() { crate::target::t(); }
//- /target.rs
pub fn t() {}
"#
    ));
}

#[test]
fn pub_use_chains_resolve_to_the_defining_module() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub mod facade;
pub mod user;
//- /facade/mod.rs
mod inner;
pub use inner::Thing;
//- /facade/inner/mod.rs
mod deepest;
pub use self::deepest::Thing;
//- /facade/inner/deepest.rs
pub struct Thing;
impl Thing { pub fn run(&self) {} }
//- /user.rs
use crate::facade::Thing;
pub fn f(thing: &Thing) { thing.run(); }
"#
    ));
}

#[test]
fn type_only_versus_code() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub mod types;
pub mod sig;
pub mod body;
//- /types.rs
pub struct Money(pub u32);
pub trait Priced { fn price(&self) -> Money; }
//- /sig.rs
pub struct Line { pub price: crate::types::Money }
pub fn total<T: crate::types::Priced>(items: &[T]) -> crate::types::Money { todo!() }
//- /body.rs
pub fn zero() -> u32 { let money = crate::types::Money(0); money.0 }
"#
    ));
}

#[test]
fn uses_then_unqualified_calls_count_at_each_use_site() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub mod payment;
pub mod order;
//- /payment.rs
pub struct PaymentService;
impl PaymentService {
    pub fn charge(&mut self, amount: u32) -> u32 { amount }
    pub fn status(&self) -> bool { true }
}
//- /order.rs
use crate::payment::PaymentService;
pub struct Orders { payments: PaymentService }
impl Orders {
    pub fn place(&mut self) {
        self.payments.charge(1);
        self.payments.charge(2);
        let _ = self.payments.status();
    }
}
"#
    ));
}

#[test]
fn crates_by_name_renamed_and_extern_crate_alias() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs crate:app deps:core_lib,util=tools
extern crate core_lib as cl;
use core_lib::Engine;
pub fn run(_: Engine) { tools::helper(); cl::boot(); std::mem::drop(1); }
//- /lib.rs crate:core_lib
pub struct Engine;
pub fn boot() {}
//- /lib.rs crate:util
pub fn helper() {}
"#
    ));
}

#[test]
fn unparsable_file_is_skipped_and_the_rest_analysed() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
mod broken;
mod fine;
mod missing;
//- /broken.rs
pub fn f( {
//- /fine.rs
pub fn g() { crate::broken::f(); }
"#
    ));
}

#[test]
fn not_a_workspace_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = analyze(dir.path(), &Options::new()).expect_err("an empty directory is no workspace");
    let message = err
        .to_string()
        .replace(&dir.path().display().to_string(), "[TEMP_DIR]");
    insta::assert_snapshot!(message, @"`[TEMP_DIR]` is not a Cargo workspace or package: no `Cargo.toml` in `[TEMP_DIR]`");
}

#[test]
fn broken_manifest_is_an_error_with_cargo_reason() {
    insta::assert_snapshot!(check(
        r#"
//- Cargo.toml
[package
//- /lib.rs
"#
    ));
}

#[test]
fn suggestion_for_a_two_way_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(
        dir.path(),
        r#"
//- /lib.rs
pub mod order;
pub mod payment;
//- /order.rs
use crate::payment::{PaymentService, Receipt};
pub struct OrderId(pub u64);
pub struct Order { pub id: OrderId, pub total: u32 }
pub fn find(id: &OrderId) -> Option<Order> { None }
pub fn checkout(payments: &mut PaymentService, order: &Order) -> Receipt {
    payments.charge(&order.id, order.total)
}
//- /payment.rs
use crate::order::{self, Order, OrderId};
pub struct Receipt { pub amount: u32 }
pub struct PaymentService { pub total: u32 }
impl PaymentService {
    pub fn new() -> Self { PaymentService { total: 0 } }
    pub fn charge(&mut self, order: &OrderId, amount: u32) -> Receipt { self.total += amount; Receipt { amount } }
}
pub fn verify(id: &OrderId) -> bool { order::find(id).is_some() }
"#,
    );
    let report = analyze(dir.path(), &Options::new()).expect("analyse");
    let suggestions: Vec<String> = report
        .suggestions
        .iter()
        .map(|suggestion| format!("{suggestion:#?}"))
        .collect();
    let text = suggestions
        .join("\n")
        .replace(&dir.path().display().to_string(), "[TEMP_DIR]");
    insta::assert_snapshot!(text);
}

/// The bundled example monolith has the dependency problems the README promises.
#[test]
fn shop_example_report() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop");
    let report = analyze(&shop, &Options::new()).expect("analyse examples/shop");
    let pairs: Vec<(&str, &str)> = report
        .bidirectional
        .iter()
        .map(|pair| (pair.a.as_str(), pair.b.as_str()))
        .collect();
    assert!(
        pairs.contains(&("shop::order", "shop::payment")),
        "order <-> payment missing: {pairs:?}"
    );
    assert!(
        pairs.contains(&("shop::coupon", "shop::member")),
        "member <-> coupon missing: {pairs:?}"
    );
    let order_to_payment = report
        .edges
        .iter()
        .find(|edge| edge.from == "shop::order" && edge.to == "shop::payment")
        .expect("an edge order -> payment");
    assert!(
        order_to_payment
            .items
            .iter()
            .any(|item| item == "PaymentService::charge"),
        "{order_to_payment:?}"
    );
    assert!(
        report.skipped_files.is_empty(),
        "{:?}",
        report.skipped_files
    );
    assert!(report.suggestions.len() == report.cut.len());
    // The three-module cycle runs through submodules (`display::home -> order`,
    // `member::profile -> display`): edges are lifted to the subtrees they join, so the default
    // report shows it.
    let cycle = ["shop::display", "shop::order", "shop::member"]
        .map(str::to_owned)
        .to_vec();
    assert!(
        report.elementary_cycles.contains(&cycle),
        "display -> order -> member -> display missing: {:?}",
        report.elementary_cycles
    );
    let again = analyze(&shop, &Options::new()).expect("analyse examples/shop again");
    assert!(again == report, "two runs over the same workspace differ");

    // With depth 1 the domain modules stand for their subtrees everywhere in the report.
    let mut options = Options::new();
    options.depth = Some(1);
    let report = analyze(&shop, &options).expect("analyse examples/shop at depth 1");
    let cycle = ["shop::display", "shop::order", "shop::member"]
        .map(str::to_owned)
        .to_vec();
    assert!(
        report.elementary_cycles.contains(&cycle),
        "display -> order -> member -> display missing: {:?}",
        report.elementary_cycles
    );
}

#[test]
fn depth_collapses_submodules_into_their_ancestor() {
    insta::assert_snapshot!(check_with_depth(
        r#"
//- /lib.rs
pub mod a;
pub mod b;
//- /a/mod.rs
pub mod inner;
//- /a/inner.rs
pub fn f() { crate::b::deep::g(); }
//- /b/mod.rs
pub mod deep;
pub fn h() { crate::a::inner::f(); }
//- /b/deep.rs
pub fn g() {}
"#,
        1
    ));
}

#[test]
fn uses_inside_function_bodies_and_extern_crate_self() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
extern crate self as me;
pub mod a;
pub mod b;
//- /a.rs
pub fn f() {
    use crate::b::Thing;
    let _ = Thing::new();
    me::b::helper();
}
//- /b.rs
pub struct Thing;
impl Thing { pub fn new() -> Self { Thing } }
pub fn helper() {}
"#
    ));
}

#[test]
fn trait_impls_and_bounds_are_references() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub mod port;
pub mod adapter;
pub mod model;
//- /port.rs
pub trait Store { fn load(&self, id: u64) -> Option<crate::model::Record>; }
//- /model.rs
pub struct Record;
//- /adapter.rs
pub struct Memory;
impl crate::port::Store for Memory {
    fn load(&self, _: u64) -> Option<crate::model::Record> { None }
}
pub fn use_store<S: crate::port::Store>(store: &S) { store.load(1); }
"#
    ));
}

#[test]
fn glob_reexports_see_only_what_is_public() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub mod facade;
pub mod user;
//- /facade/mod.rs
mod gen_a;
mod gen_b;
pub use gen_a::*;
pub use gen_b::*;
//- /facade/gen_a.rs
use super::*;
pub struct A;
//- /facade/gen_b.rs
use super::*;
pub struct B(pub A);
//- /user.rs
use crate::facade::*;
pub fn f(_: A, _: B) {}
"#
    ));
}

#[test]
fn raw_identifiers_name_files_without_r_hash() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
pub mod r#type;
pub mod user;
//- /type.rs
pub fn r#match() {}
//- /user.rs
pub fn f() { crate::r#type::r#match(); }
"#
    ));
}

#[test]
fn single_package_with_lib_and_bin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("src/bin")).expect("create dirs");
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"solo-app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .expect("write manifest");
    std::fs::write(root.join("src/lib.rs"), "pub mod engine;\n").expect("write lib");
    std::fs::write(root.join("src/engine.rs"), "pub fn start() {}\n").expect("write engine");
    std::fs::write(
        root.join("src/main.rs"),
        "fn main() { solo_app::engine::start(); }\n",
    )
    .expect("write main");
    std::fs::write(
        root.join("src/bin/tool.rs"),
        "use solo_app::engine;\nfn main() { engine::start(); }\n",
    )
    .expect("write tool");
    let report = analyze(root, &Options::new()).expect("a single package is analysed");
    insta::assert_snapshot!(render(&report, root));
}

#[test]
fn cfg_attr_paths_and_path_on_inline_module_in_non_mod_rs_file() {
    insta::assert_snapshot!(check(
        r#"
//- /lib.rs
#[cfg_attr(unix, path = "imp_unix.rs")]
#[cfg_attr(windows, path = "imp_windows.rs")]
mod imp;
mod algs;
//- /imp_unix.rs
pub fn unix() {}
//- /algs.rs
#[cfg(test)]
#[path = "."]
mod tests {
    #[path = "shared_tests.rs"]
    mod shared;
}
//- /shared_tests.rs
pub fn shared() { crate::imp::unix(); }
"#
    ));
}

#[test]
fn cycles_are_found_between_sibling_subtrees() {
    // No three single modules form a cycle, but the subtrees `a`, `b` and `c` do.
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(
        dir.path(),
        r#"
//- /lib.rs
pub mod a;
pub mod b;
pub mod c;
//- /a/mod.rs
pub mod inner;
pub struct A;
//- /a/inner.rs
pub fn uses_b() -> crate::b::B { crate::b::B }
//- /b.rs
pub struct B;
pub fn uses_c(_: crate::c::deep::C) {}
//- /c/mod.rs
pub mod deep;
//- /c/deep.rs
pub struct C(pub crate::a::A);
"#,
    );
    let report = analyze(dir.path(), &Options::new()).expect("analyse the fixture");
    // The module edges keep their real ends.
    assert!(
        report
            .edges
            .iter()
            .any(|edge| edge.from == "fixture::a::inner" && edge.to == "fixture::b")
    );
    let members: Vec<&str> = report
        .cycles
        .iter()
        .flat_map(|cycle| cycle.members.iter().map(String::as_str))
        .collect();
    assert_eq!(members, ["fixture::a", "fixture::b", "fixture::c"]);
    assert_eq!(
        report.elementary_cycles,
        [["fixture::a", "fixture::b", "fixture::c"]
            .map(str::to_owned)
            .to_vec()]
    );
    // The cut names lifted edges, and each has a suggestion with the items of the real edges.
    assert_eq!(report.cut.len(), 1, "{:?}", report.cut);
    assert_eq!(report.suggestions.len(), 1);
}

/// Issue 17, item 9: test modules (`#[cfg(test)] mod tests`, test targets) are not code that
/// ships, so metrics and candidate services leave them out unless tests are in scope.
#[test]
fn test_modules_are_left_out_of_metrics_and_services_by_default() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop");
    let in_metrics_or_services = |report: &Report, id: &str| {
        report.metrics.modules.iter().any(|unit| unit.id == id)
            || report
                .services
                .iter()
                .any(|service| service.modules.iter().any(|module| module == id))
    };
    let mut options = Options::new();
    options.include_tests = true;
    let report = analyze(&shop, &options).expect("analyse examples/shop with its tests");
    let test_modules: Vec<&str> = report
        .modules
        .iter()
        .filter(|module| module.test_only || module.id.starts_with("shop::test::"))
        .map(|module| module.id.as_str())
        .collect();
    assert!(
        test_modules.contains(&"shop::payment::tests")
            && test_modules.iter().any(|id| id.starts_with("shop::test::")),
        "the shop has unit-test modules and a test target: {test_modules:?}"
    );
    for id in &test_modules {
        assert!(
            !in_metrics_or_services(&report, id),
            "{id} is test code, yet in the metrics or a candidate service"
        );
    }
    assert!(in_metrics_or_services(&report, "shop::payment"));

    options.scope.include_test_only = true;
    let report = analyze(&shop, &options).expect("analyse examples/shop, tests in scope");
    for id in &test_modules {
        assert!(
            report.metrics.modules.iter().any(|unit| unit.id == *id),
            "{id}: asked for, test code is measured"
        );
    }
}
