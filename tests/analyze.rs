//! `fig analyze`, `fig suggest` and `fig check` run as a user runs them, on `examples/shop` and on
//! tiny workspaces in `tests/fixtures/analyze/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use analyzer::report::{
    Access, Bidirectional, CandidateService, CrateEdge, CrateInfo, CutEdge, Cycle, Edge, EdgeScope,
    Hierarchy, Location, Method, Metrics, Module, Report, ServiceEdge, SkippedFile, Suggestion,
    Target, UnitMetrics, Usage,
};

use crate::support::{copy_dir, fig, run_for_snapshot, workspace_root};

fn shop() -> PathBuf {
    workspace_root().join("examples/shop")
}

fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/analyze").join(name)
}

/// A copy of a fixture workspace in a fresh temporary directory, so tests never write into the
/// repository (cargo may leave a `Cargo.lock`, a test may edit a file).
fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("create a temporary directory");
    let root = temp.path().join(name);
    copy_dir(&fixture(name), &root);
    (temp, root)
}

/// `fig <args>` with colour off, as its output is a pipe anyway.
fn fig_in(args: &[&str]) -> Command {
    let mut command = fig();
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE");
    command
}

/// Runs `fig` and renders the run for a snapshot, with `root` shown as `[WORKSPACE]`.
#[track_caller]
fn run(args: &[&str], root: &Path) -> String {
    // fig reports canonical paths; a temporary directory may sit behind a symlink.
    let canonical = std::fs::canonicalize(root).map_or_else(
        |_| root.display().to_string(),
        |path| path.display().to_string(),
    );
    let root = root.display().to_string();
    run_for_snapshot(
        &mut fig_in(args),
        &[
            (canonical.as_str(), "[WORKSPACE]"),
            (root.as_str(), "[WORKSPACE]"),
        ],
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

#[test]
fn analyze_shop_text() {
    let shop = shop();
    insta::assert_snapshot!(run(&["analyze", path_str(&shop)], &shop));
}

#[test]
fn analyze_shop_json() {
    let shop = shop();
    let snapshot = run(&["analyze", path_str(&shop), "--format", "json"], &shop);
    insta::assert_snapshot!(snapshot);
}

/// Colour only on a colour terminal (or when forced), never in a pipe or with `NO_COLOR`.
#[test]
fn analyze_text_colour() {
    let shop = shop();
    let forced = fig()
        .args(["analyze", path_str(&shop)])
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .expect("run fig");
    assert!(String::from_utf8_lossy(&forced.stdout).contains("\x1b["));
    let piped = fig()
        .args(["analyze", path_str(&shop)])
        .env_remove("CLICOLOR_FORCE")
        .env_remove("NO_COLOR")
        .output()
        .expect("run fig");
    assert!(!String::from_utf8_lossy(&piped.stdout).contains('\x1b'));
    let temp = tempfile::tempdir().expect("temporary directory");
    let file = temp.path().join("report.txt");
    let written = fig()
        .args(["analyze", path_str(&shop), "-o", path_str(&file)])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .expect("run fig");
    assert!(written.status.success());
    let text = std::fs::read_to_string(&file).expect("the report was written");
    assert!(
        text.contains("Cut list") && !text.contains('\x1b'),
        "files get no colour"
    );
}

/// At depth 1 the shop's modules are its subsystems, and the loop through their submodules
/// (`display::home -> order -> member::profile -> display`) shows as a three-module cycle.
#[test]
fn analyze_shop_by_subsystem() {
    let output = fig_in(&["analyze", path_str(&shop()), "--depth", "1"])
        .output()
        .expect("run fig");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("shop::display → shop::order → shop::member → shop::display"),
        "{text}"
    );
    assert!(
        !text.contains("shop::member::profile"),
        "collapsed into shop::member: {text}"
    );
}

#[test]
fn analyze_json_keeps_the_documented_contract() {
    let output = fig_in(&["analyze", path_str(&shop()), "--format", "json"])
        .output()
        .expect("run fig");
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(json["schema_version"], 1);
    for key in [
        "workspace_root",
        "crates",
        "modules",
        "edges",
        "cycles",
        "bidirectional",
        "cut",
        "suggestions",
        "metrics",
        "skipped_files",
        "services",
        "crate_edges",
        "elementary_cycles",
        "uncertain_edges",
    ] {
        assert!(json.get(key).is_some(), "missing top-level key `{key}`");
    }
    let edge = &json["edges"][0];
    for key in [
        "from",
        "to",
        "weight",
        "items",
        "kind",
        "locations",
        "resolutions",
    ] {
        assert!(edge.get(key).is_some(), "edges lack `{key}`: {edge}");
    }
    let suggestion = &json["suggestions"][0];
    assert_eq!(suggestion["kind"], "extract-interface");
    for key in ["from", "to", "trait_name", "methods"] {
        assert!(suggestion.get(key).is_some(), "suggestions lack `{key}`");
    }
}

/// Issue 18: a method call counts for a workspace type only where its receiver's type is known;
/// `thread::Builder::new().spawn()` is std's, and a call on a receiver nothing types is kept
/// apart as uncertain unless `--include-uncertain` is given.
#[test]
fn analyze_attributes_method_calls_by_receiver_type() {
    let edges_of = |json: &serde_json::Value, key: &str| -> Vec<String> {
        json[key]
            .as_array()
            .expect("an array of edges")
            .iter()
            .flat_map(|edge| {
                let from = edge["from"].as_str().unwrap_or_default().to_owned();
                let to = edge["to"].as_str().unwrap_or_default().to_owned();
                edge["resolutions"]
                    .as_array()
                    .expect("resolutions")
                    .iter()
                    .map(move |resolution| {
                        format!(
                            "{from} -> {to}: {} ({})",
                            resolution["item"].as_str().unwrap_or("<module>"),
                            resolution["how"].as_str().unwrap_or_default()
                        )
                    })
            })
            .collect()
    };
    let fixture = fixture("receivers");
    let output = fig_in(&["analyze", path_str(&fixture), "--format", "json"])
        .output()
        .expect("run fig");
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(
        edges_of(&json, "edges"),
        [
            "receivers::app -> receivers::pool: Builder (import)",
            "receivers::app -> receivers::pool: Builder (path)",
            "receivers::app -> receivers::pool: Builder::new (path)",
            "receivers::app -> receivers::pool: Builder::spawn (method-typed)",
        ]
    );
    assert_eq!(
        edges_of(&json, "uncertain_edges"),
        ["receivers::app -> receivers::pool: Builder::spawn (method-by-name)"]
    );
    let locations: Vec<u64> = json["uncertain_edges"][0]["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .filter_map(|location| location["line"].as_u64())
        .collect();
    assert_eq!(locations, [7], "only the closure's call is uncertain");

    let output = fig_in(&[
        "analyze",
        path_str(&fixture),
        "--format",
        "json",
        "--include-uncertain",
    ])
    .output()
    .expect("run fig");
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert!(edges_of(&json, "uncertain_edges").is_empty());
    assert!(
        edges_of(&json, "edges").contains(
            &"receivers::app -> receivers::pool: Builder::spawn (method-by-name)".to_owned()
        ),
        "{:?}",
        edges_of(&json, "edges")
    );
}

#[test]
fn analyze_shop_dot_and_mermaid_mark_cycle_edges() {
    let shop = shop();
    let dot = run(&["analyze", path_str(&shop), "--format", "dot"], &shop);
    assert!(dot.starts_with("exit_code: 0\n"), "{dot}");
    assert!(dot.contains("subgraph cluster_0"), "{dot}");
    assert!(
        dot.contains(r#""shop::payment" -> "shop::order" [label="#),
        "{dot}"
    );
    assert!(
        dot.contains("style=dashed"),
        "the cut edges are dashed: {dot}"
    );
    let mermaid = run(&["analyze", path_str(&shop), "--format", "mermaid"], &shop);
    assert!(mermaid.contains("flowchart TD"), "{mermaid}");
    assert!(
        mermaid.contains("linkStyle"),
        "cycle edges are styled: {mermaid}"
    );
}

#[test]
fn analyze_shop_html_has_the_graph_and_the_cycle() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let out = temp.path().join("report.html");
    let written = fig_in(&[
        "analyze",
        path_str(&shop()),
        "--format",
        "html",
        "-o",
        path_str(&out),
    ])
    .output()
    .expect("run fig");
    assert!(written.status.success(), "{written:?}");
    let html = std::fs::read_to_string(&out).expect("the report was written");
    // Issue 19: the page draws its map from the JSON document it embeds.
    assert!(
        html.contains(r#"<script type="application/json" id="fig-report">"#),
        "the JSON report is embedded"
    );
    assert!(html.contains(r#"id="fig-map""#), "there is a map");
    assert!(
        html.contains(r#"data-cycle="0""#),
        "the cycle is listed and opens its tangle"
    );
    assert!(html.contains("shop::order") && html.contains("shop::payment"));
    assert!(
        !html.contains("<link") && !html.contains("src=\"http") && !html.contains("src=\""),
        "no external resources"
    );
}

#[test]
fn html_report_of_a_fixture() {
    let report = fixture_report();
    let data = serde_json::to_string(&fig::output::report(&report)).expect("the JSON report");
    let html = templates::render_html(
        &report,
        &data,
        &templates::Meta {
            tool: "fig [VERSION]".to_owned(),
            live: None,
        },
    )
    .expect("the template renders");
    // The inlined script and styles are the same for every report; the snapshot is the page.
    let html = match (html.find("<style>"), html.find("</style>")) {
        (Some(start), Some(end)) => format!("{}<style>[map.css]{}", &html[..start], &html[end..]),
        _ => html,
    };
    let html = match html.rsplit_once("<script>") {
        Some((page, _)) => format!("{page}<script>[map.js]</script>\n</body>\n</html>\n"),
        None => html,
    };
    insta::assert_snapshot!(html);
}

#[test]
fn analyze_lists_unparsable_files_and_succeeds() {
    let (_temp, root) = fixture_copy("broken");
    insta::assert_snapshot!(run(
        &["analyze", path_str(&root), "--format", "json"],
        &root
    ));
}

#[test]
fn analyze_a_directory_that_is_not_a_workspace() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let root = temp.path().to_path_buf();
    insta::assert_snapshot!(run(&["analyze", path_str(&root)], &root));
}

#[test]
fn analyze_a_path_that_does_not_exist() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let missing = temp.path().join("nowhere");
    insta::assert_snapshot!(run(&["analyze", path_str(&missing)], temp.path()));
}

#[test]
fn suggest_shop_text() {
    let shop = shop();
    insta::assert_snapshot!(run(&["suggest", path_str(&shop)], &shop));
}

#[test]
fn suggest_json_matches_the_report() {
    let manifest = shop().join("Cargo.toml");
    let suggest = fig_in(&["suggest", path_str(&manifest), "--format", "json"])
        .output()
        .expect("run fig");
    assert!(
        suggest.status.success(),
        "a Cargo.toml works as the path too: {suggest:?}"
    );
    let suggest: serde_json::Value = serde_json::from_slice(&suggest.stdout).expect("JSON");
    let analyze = fig_in(&["analyze", path_str(&shop()), "--format", "json"])
        .output()
        .expect("run fig");
    let analyze: serde_json::Value = serde_json::from_slice(&analyze.stdout).expect("JSON");
    assert_eq!(suggest["schema_version"], 1);
    assert_eq!(suggest["suggestions"], analyze["suggestions"]);
}

#[test]
fn crate_level_graph() {
    let shop = shop();
    let dot = run(
        &[
            "analyze",
            path_str(&shop),
            "--format",
            "dot",
            "--level",
            "crate",
        ],
        &shop,
    );
    assert!(dot.contains(r#""shop";"#), "{dot}");
    assert!(
        !dot.contains("shop::order"),
        "no modules at crate level: {dot}"
    );
}

/// The generated trait code compiles: `cargo check --offline` on what `--emit` wrote.
#[test]
fn suggest_emit_compiles() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let out = temp.path().join("emitted");
    let emitted = fig_in(&["suggest", path_str(&shop()), "--emit", path_str(&out)])
        .output()
        .expect("run fig");
    assert!(emitted.status.success(), "{emitted:?}");
    let plan = std::fs::read_to_string(out.join("PLAN.md")).expect("PLAN.md was written");
    assert!(plan.contains("## 1."), "{plan}");
    let crates: Vec<String> = std::fs::read_dir(&out)
        .expect("read the emitted directory")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("src/lib.rs").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!crates.is_empty(), "one crate per suggestion");
    cargo_check(&out, temp.path());
}

/// Signatures as real code has them (paths into the crate, a `Result<T>` alias, borrowed
/// lifetimes from the impl, `const fn`, generics, third-party types) still give code that compiles.
#[test]
fn emitted_code_compiles_for_awkward_signatures() {
    let mut report = fixture_report();
    let method = |name: &str, signature: &str, class| Method {
        name: name.to_owned(),
        signature: signature.to_owned(),
        source: format!("shop::order::OrderRepository::{name}"),
        class,
        event: None,
    };
    let mut awkward = report.suggestions[0].clone();
    awkward.methods = vec![
        method(
            "find",
            "fn find(&self, id: crate::order::OrderId) -> Option<&'a Order>",
            Access::Query,
        ),
        method(
            "fee",
            "const fn fee(&self) -> super::money::Money",
            Access::Query,
        ),
        method("all", "fn all(&self) -> Result<Vec<Order>>", Access::Query),
        method(
            "each",
            "fn each<F: FnMut(&Order)>(&self, visit: F)",
            Access::Query,
        ),
        method(
            "store",
            "fn store<S: Storage<Order>>(&mut self, storage: &mut S) -> Result<(), super::Error>",
            Access::Command,
        ),
        method(
            "by_ids",
            "fn by_ids(&self, ids: &[OrderId]) -> std::collections::HashMap<OrderId, Order>",
            Access::Query,
        ),
        method(
            "stream",
            "fn stream(&self) -> impl Iterator<Item = Order> + '_",
            Access::Query,
        ),
        method(
            "fetch",
            "async fn fetch(&self, id: OrderId) -> Option<Order>",
            Access::Query,
        ),
        method(
            "filter",
            "fn filter(&self) -> Box<dyn Fn(&Order) -> bool + Send>",
            Access::Query,
        ),
        method(
            "since",
            "fn since(&self, at: chrono::DateTime<chrono::Utc>) -> Vec<Order>",
            Access::Query,
        ),
        method(
            "into_vec",
            "fn into_vec(mut self) -> Vec<Payload>",
            Access::Command,
        ),
        method(
            "into_boxed",
            "fn into_boxed<'bump>(mut self) -> Box<'bump, [T]>",
            Access::Command,
        ),
        method(
            "encode",
            "fn encode(&self, mut out: &mut Vec<u8>) -> Result",
            Access::Query,
        ),
        method(
            "public_key",
            "fn public_key(&self) -> PublicKey<C> where C: CurveArithmetic",
            Access::Query,
        ),
        method(
            "pair",
            "fn pair(&self, (left, right): (u32, u32)) -> u32",
            Access::Query,
        ),
        method(
            "load",
            "fn load(&self, io: Driver) -> Result<Option<Self>>",
            Access::Query,
        ),
        method(
            "sum",
            "fn sum<I>(&self, items: I) -> Scalar where I: IntoIterator, I::Item: core::borrow::Borrow<Scalar>",
            Access::Query,
        ),
        method(
            "encode_to",
            "fn encode_to<S: Sink>(&self, sink: &mut S) -> Result<(), S::Error>",
            Access::Command,
        ),
        method(
            "slice",
            "fn slice(&self, input: Input) -> Option<<Input as crate::Stream>::Slice>",
            Access::Query,
        ),
        method(
            "sign",
            "fn sign<D>(&self, digest: D) -> Vec<u8> where D: Digest<OutputSize = U64>",
            Access::Query,
        ),
        method(
            "features",
            "fn features<'g>(&self, graph: &'g Graph) -> impl Iterator<Item = &'g str> + use<'g>",
            Access::Query,
        ),
        method(
            "first",
            "fn first<I: crate::Stream>(&self, input: I) -> <I as crate::Stream>::Token",
            Access::Query,
        ),
        method("broken", "fn broken(&self, ->", Access::Query),
    ];
    // The same trait name twice: the second crate gets another package name.
    report.suggestions.push(awkward.clone());
    report.suggestions.push(awkward);
    let temp = tempfile::tempdir().expect("temporary directory");
    let out = temp.path().join("emitted");
    for file in templates::emit(&report, "fig [VERSION]").expect("the templates render") {
        let path = out.join(&file.path);
        std::fs::create_dir_all(path.parent().expect("files sit in a directory")).expect("mkdir");
        std::fs::write(&path, file.contents).expect("write an emitted file");
    }
    let lib = std::fs::read_to_string(out.join("order-lookup-2/src/lib.rs")).expect("second crate");
    assert!(lib.contains("pub struct DateTime<T0: ?Sized>"), "{lib}");
    assert!(lib.contains("pub trait Storage<T0: ?Sized> {}"), "{lib}");
    assert!(
        lib.contains("did not parse"),
        "the broken signature is reported: {lib}"
    );
    let plan = std::fs::read_to_string(out.join("PLAN.md")).expect("PLAN.md");
    assert!(plan.contains("fn broken(&self, ->"), "{plan}");
    cargo_check(&out, temp.path());
}

/// `fig suggest --format json` on `root`: the suggestions.
#[track_caller]
fn suggestions_json(root: &Path) -> Vec<serde_json::Value> {
    let out = fig_in(&["suggest", path_str(root), "--format", "json"])
        .output()
        .expect("run fig");
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    json["suggestions"].as_array().expect("suggestions").clone()
}

/// The suggestion into module `to`.
#[track_caller]
fn suggestion_into<'s>(suggestions: &'s [serde_json::Value], to: &str) -> &'s serde_json::Value {
    suggestions
        .iter()
        .find(|suggestion| suggestion["to"] == to)
        .unwrap_or_else(|| panic!("no suggestion into {to}: {suggestions:#?}"))
}

/// `fig suggest --emit` into `scratch/emitted`, which is returned.
#[track_caller]
fn emit(root: &Path, scratch: &Path) -> PathBuf {
    let out = scratch.join("emitted");
    let emitted = fig_in(&["suggest", path_str(root), "--emit", path_str(&out)])
        .output()
        .expect("run fig");
    assert!(emitted.status.success(), "{emitted:?}");
    out
}

// Issue 18: never two traits of one name in one home module. Two cut edges into
// `monolith::index` make one port; `web::search` and `cli::search` get a home each.
#[test]
fn suggestions_are_one_port_per_home_module() {
    let (_temp, root) = fixture_copy("suggest");
    let suggestions = suggestions_json(&root);
    let mut homes: Vec<(String, String)> = suggestions
        .iter()
        .filter(|suggestion| suggestion["trait_name"] != "")
        .map(|suggestion| {
            (
                suggestion["trait_home"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                suggestion["trait_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let n_traits = homes.len();
    homes.sort();
    homes.dedup();
    assert_eq!(
        homes.len(),
        n_traits,
        "a trait name twice in one home: {homes:?}"
    );
    let index = suggestion_into(&suggestions, "monolith::index");
    let mut callers = vec![index["from"].clone()];
    callers.extend(index["also_from"].as_array().cloned().unwrap_or_default());
    assert_eq!(
        callers,
        ["monolith::catalog", "monolith::orders"],
        "one port for both callers: {index:#}"
    );
    let methods: Vec<&str> = index["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(|method| method["name"].as_str())
        .collect();
    assert_eq!(methods, ["count_products", "has_order"]);
    assert_eq!(
        suggestions
            .iter()
            .filter(|suggestion| suggestion["to"] == "monolith::index")
            .count(),
        1
    );
    let web = suggestion_into(&suggestions, "monolith::web::search");
    let cli = suggestion_into(&suggestions, "monolith::cli::search");
    assert_ne!(web["trait_home"], cli["trait_home"]);
}

// Issue 18: a type-only edge gets a "move these types" step, never an empty trait.
#[test]
fn a_type_only_edge_moves_types_and_gets_no_trait() {
    let (temp, root) = fixture_copy("suggest");
    let suggestions = suggestions_json(&root);
    let ledger = suggestion_into(&suggestions, "monolith::ledger");
    assert_eq!(ledger["kind"], "move-types", "{ledger:#}");
    assert_eq!(ledger["trait_name"], "");
    assert_eq!(ledger["methods"], serde_json::json!([]));
    assert_eq!(ledger["moved_items"], serde_json::json!(["Account"]));
    let steps = ledger["steps"].to_string();
    assert!(
        !steps.contains("Define `trait"),
        "no trait to define: {steps}"
    );
    let out = emit(&root, temp.path());
    let lib = std::fs::read_to_string(out.join("ledger-types/src/lib.rs")).expect("ledger-types");
    assert!(!lib.contains("pub trait"), "{lib}");
    assert!(lib.contains("pub struct Account;"), "{lib}");
}

// Issue 18: the implementer is the type whose methods are called, not an entity the caller
// only builds (`Entry::new`, `Coupon::new`): that one moves.
#[test]
fn the_implementer_is_the_type_whose_methods_are_called() {
    let (_temp, root) = fixture_copy("suggest");
    let suggestions = suggestions_json(&root);
    let store = suggestion_into(&suggestions, "monolith::store");
    let steps = store["steps"].to_string();
    assert!(
        steps.contains("Implement `StoreQueries` for `Store` in"),
        "{steps}"
    );
    assert_eq!(store["moved_items"], serde_json::json!(["Entry"]));
    let shop = suggestions_json(&shop());
    let coupon = suggestion_into(&shop, "shop::coupon");
    let steps = coupon["steps"].to_string();
    assert!(
        steps.contains("Implement `CouponPort` for `CouponRepository` in"),
        "{steps}"
    );
    assert!(
        coupon["moved_items"]
            .as_array()
            .is_some_and(|items| items.contains(&serde_json::json!("Coupon"))),
        "{coupon:#}"
    );
}

// Issue 18: standard-library and dependency types keep their real paths in the generated code,
// and a receiver such as `self: Arc<Self>` stays as written; the emitted crates compile.
#[test]
fn std_and_dependency_types_keep_their_paths_in_emitted_code() {
    let (temp, root) = fixture_copy("suggest");
    let out = emit(&root, temp.path());
    let lib = std::fs::read_to_string(out.join("store-queries/src/lib.rs")).expect("store crate");
    for line in [
        "use std::sync::Arc;",
        "use std::borrow::Cow;",
        "use bytes::Bytes;",
        "fn snapshot(self: Arc<Self>) -> Cow<'static, str>;",
        "fn raw(&self, entry: &Entry) -> Bytes;",
    ] {
        assert!(lib.contains(line), "`{line}` missing:\n{lib}");
    }
    for placeholder in ["struct Arc", "struct Cow", "struct Bytes"] {
        assert!(!lib.contains(placeholder), "{placeholder}:\n{lib}");
    }
    let manifest =
        std::fs::read_to_string(out.join("store-queries/Cargo.toml")).expect("store manifest");
    assert!(
        manifest.contains("bytes = { version = \"1\" }"),
        "{manifest}"
    );
    cargo_check(&out, temp.path());
}

// Issue 18: a suggestion whose trait names a type another one moves comes after it, says so,
// and its generated crate imports the type from the other's.
#[test]
fn a_suggestion_comes_after_the_one_that_moves_its_types() {
    let suggestions = suggestions_json(&shop());
    let order: Vec<&str> = suggestions
        .iter()
        .filter_map(|suggestion| suggestion["to"].as_str())
        .collect();
    let member = order.iter().position(|to| *to == "shop::member");
    let coupon = order.iter().position(|to| *to == "shop::coupon");
    assert!(member < coupon, "{order:?}");
    let coupon = suggestion_into(&suggestions, "shop::coupon");
    assert_eq!(coupon["after"], serde_json::json!(["shop::member"]));
    let first_step = coupon["steps"][0].as_str().unwrap_or_default();
    assert!(
        first_step
            .starts_with("Do this after suggestion 1 (into `shop::member`): it moves `MemberId`"),
        "{first_step}"
    );
    let temp = tempfile::tempdir().expect("temporary directory");
    let out = emit(&shop(), temp.path());
    let lib = std::fs::read_to_string(out.join("coupon-port/src/lib.rs")).expect("coupon crate");
    // The member suggestion's trait is queries only (`MemberQueries`) since method calls are
    // attributed by receiver type: its crate is `member-queries`.
    assert!(lib.contains("use member_queries::MemberId;"), "{lib}");
    assert!(!lib.contains("pub struct MemberId"), "{lib}");
    let manifest = std::fs::read_to_string(out.join("coupon-port/Cargo.toml")).expect("manifest");
    assert!(
        manifest.contains("member-queries = { path = \"../member-queries\" }"),
        "{manifest}"
    );
    cargo_check(&out, temp.path());
}

/// The source directory of each named registry package of this project's own dependency tree.
fn registry_packages(names: &[&str]) -> Vec<PathBuf> {
    // This platform's packages only: the others (e.g. Windows-only crates of rustls'
    // dependencies) are never downloaded on a Linux machine, and `--offline` cannot fetch them.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(&host)
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "{out:?}");
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    names
        .iter()
        .map(|name| {
            let package = metadata["packages"]
                .as_array()
                .expect("packages")
                .iter()
                .find(|package| {
                    package["name"] == *name
                        && package["source"]
                            .as_str()
                            .is_some_and(|source| source.starts_with("registry+"))
                })
                .unwrap_or_else(|| panic!("{name} is no longer in the dependency tree"));
            Path::new(package["manifest_path"].as_str().expect("manifest path"))
                .parent()
                .expect("a directory")
                .to_path_buf()
        })
        .collect()
}

// Issue 18, the fast subset of the emit corpus (templates/scripts/emit-compiles.sh runs all of
// it): real crates whose generated crates name a dependency's type (`clap_lex`), the standard
// library's (`std::io`, `core::borrow`) and types earlier suggestions move.
#[test]
fn emitted_code_compiles_for_registry_crates() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let mut manifests = String::new();
    for (idx, dir) in registry_packages(&["clap_builder", "console", "chrono"])
        .iter()
        .enumerate()
    {
        let scratch = temp.path().join(idx.to_string());
        let out = emit(dir, &scratch);
        for entry in std::fs::read_dir(&out).expect("read the emitted directory") {
            let manifest = entry.expect("an entry").path().join("Cargo.toml");
            if let Ok(text) = std::fs::read_to_string(&manifest) {
                manifests.push_str(&text);
            }
        }
        cargo_check(&out, temp.path());
    }
    assert!(manifests.contains("clap_lex = { version"), "{manifests}");
    assert!(manifests.contains("= { path = \"../"), "{manifests}");
}

/// `cargo check --offline` in `dir`, with its own target directory under `scratch`.
#[track_caller]
fn cargo_check(dir: &Path, scratch: &Path) {
    let check = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["check", "--offline", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .output()
        .expect("run cargo check");
    assert!(
        check.status.success(),
        "the emitted code does not compile:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("fig.toml");
    std::fs::write(&path, text).expect("write fig.toml");
    path
}

#[test]
fn check_forbidden_dependency_lists_its_locations() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let config = write_config(
        temp.path(),
        r#"
[check]
[[check.forbid]]
from = "shop::display::**"
to = "shop::order::**"
reason = "pages render what the HTTP layer hands them"
"#,
    );
    let shop = shop();
    insta::assert_snapshot!(run(
        &["check", path_str(&shop), "--config", path_str(&config)],
        &shop
    ));
}

#[test]
fn check_github_annotations() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let shop = shop();
    // The rule at the top level instead of under [check] is a configuration error.
    let config = write_config(
        temp.path(),
        "[[forbid]]\nfrom = \"shop::display::**\"\nto = \"shop::order\"\n",
    );
    let output = run(
        &[
            "check",
            path_str(&shop),
            "--config",
            path_str(&config),
            "--format",
            "github",
        ],
        &shop,
    );
    assert!(output.starts_with("exit_code: 2\n"), "{output}");
    assert!(
        output.contains("fig.toml:1:3: `forbid` belongs in the [check] table"),
        "{output}"
    );
    let config = write_config(
        temp.path(),
        "[[check.forbid]]\nfrom = \"shop::display::**\"\nto = \"shop::order\"\n",
    );
    let output = run(
        &[
            "check",
            path_str(&shop),
            "--config",
            path_str(&config),
            "--format",
            "github",
        ],
        &shop,
    );
    assert!(output.starts_with("exit_code: 1\n"), "{output}");
    assert!(
        output.contains("::error file=src/display/home.rs,line=6,col=20,title=forbidden-dependency::`shop::display::home` depends on `shop::order`"),
        "{output}"
    );
}

#[test]
fn check_clean_config_passes() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let config = write_config(
        temp.path(),
        r#"
[check]
max_cycles = 10
[[check.forbid]]
from = "shop::money"
to = "shop::http::**"
reason = "money is a value type"
"#,
    );
    let shop = shop();
    insta::assert_snapshot!(run(
        &["check", path_str(&shop), "--config", path_str(&config)],
        &shop
    ));
}

#[test]
fn check_cycle_limit() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let config = write_config(temp.path(), "[check]\nmax_cycles = 0\n");
    let shop = shop();
    let output = run(
        &[
            "check",
            path_str(&shop),
            "--config",
            path_str(&config),
            "--format",
            "json",
        ],
        &shop,
    );
    assert!(output.starts_with("exit_code: 1\n"), "{output}");
    assert!(output.contains(r#""code": "cycle-limit""#), "{output}");
    assert!(output.contains(r#""code": "module-cycle""#), "{output}");
}

#[test]
fn check_bad_config_says_where() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let config = write_config(
        temp.path(),
        r#"[check]
max_cycles = 2

[[check.forbid]]
from = "shop::display::**"
to = "shop/order"

[[check.layer]]
name = "web"
modules = []
"#,
    );
    let shop = shop();
    let dir = temp.path().display().to_string();
    insta::assert_snapshot!(run_for_snapshot(
        &mut fig_in(&["check", path_str(&shop), "--config", path_str(&config)]),
        &[(dir.as_str(), "[TEMP_DIR]")],
    ));
}

#[test]
fn check_config_typo_says_where() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let config = write_config(temp.path(), "[check]\nmax_cylces = 2\n");
    let dir = temp.path().display().to_string();
    insta::assert_snapshot!(run_for_snapshot(
        &mut fig_in(&["check", path_str(&shop()), "--config", path_str(&config)]),
        &[(dir.as_str(), "[TEMP_DIR]")],
    ));
}

#[test]
fn check_against_a_fresh_baseline_passes() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let baseline = temp.path().join("baseline.json");
    let shop = shop();
    let written = fig_in(&[
        "check",
        path_str(&shop),
        "--write-baseline",
        path_str(&baseline),
    ])
    .output()
    .expect("run fig");
    assert!(written.status.success(), "{written:?}");
    let text = std::fs::read_to_string(&baseline).expect("the baseline was written");
    assert!(
        !text.contains("\"line\""),
        "no line numbers in a baseline: {text}"
    );
    assert!(text.contains("shop::payment"), "{text}");
    let config = write_config(temp.path(), "[check]\nno_new_cycles = true\n");
    let dir = temp.path().display().to_string();
    insta::assert_snapshot!(run_for_snapshot(
        &mut fig_in(&[
            "check",
            path_str(&shop),
            "--config",
            path_str(&config),
            "--baseline",
            path_str(&baseline),
        ]),
        &[(dir.as_str(), "[TEMP_DIR]")],
    ));
}

/// Write a baseline, add a cycle, check again: the new cycle fails the check and points at the
/// line that closed it.
#[test]
fn check_finds_a_new_cycle() {
    let (temp, root) = fixture_copy("layers");
    let baseline = temp.path().join("baseline.json");
    let written = fig_in(&[
        "check",
        path_str(&root),
        "--write-baseline",
        path_str(&baseline),
    ])
    .output()
    .expect("run fig");
    assert!(written.status.success(), "{written:?}");
    let store = root.join("src/store.rs");
    let mut source = std::fs::read_to_string(&store).expect("read store.rs");
    source.push_str(
        "\n/// Audits an order: the store now knows the domain, a new cycle.\npub fn audit(order: &crate::domain::Order) -> u64 {\n    order.id\n}\n",
    );
    std::fs::write(&store, source).expect("write store.rs");
    insta::assert_snapshot!(run(
        &["check", path_str(&root), "--baseline", path_str(&baseline)],
        &root
    ));
}

#[test]
fn check_layers() {
    let (temp, root) = fixture_copy("layers");
    // Upside down on purpose: `store` on top may not be used by `domain` below it.
    let config = write_config(
        temp.path(),
        r#"
[check]
[[check.layer]]
name = "storage"
modules = ["layers::store"]

[[check.layer]]
name = "logic"
modules = ["layers::domain", "layers::api"]
"#,
    );
    let output = run(
        &["check", path_str(&root), "--config", path_str(&config)],
        &root,
    );
    assert!(output.starts_with("exit_code: 1\n"), "{output}");
    assert!(output.contains("error[layer-violation]"), "{output}");
    assert!(output.contains("--> src/domain.rs:3:"), "{output}");
}

#[test]
fn check_a_directory_that_is_not_a_workspace() {
    let temp = tempfile::tempdir().expect("temporary directory");
    let output = fig_in(&["check", path_str(temp.path())])
        .output()
        .expect("run fig");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not a Cargo workspace or package"),
        "{stderr}"
    );
}

/// A small report in the shape of the shop's: order and payment depend on each other.
fn fixture_report() -> Report {
    let root = PathBuf::from("/fixture/shop");
    let file = |name: &str| root.join("src").join(name);
    let location = |name: &str, line| Location {
        file: file(name),
        line,
        column: 5,
    };
    let module = |id: &str, parent: Option<&str>, name: &str, lines, n_traits, n_types| Module {
        id: id.to_owned(),
        krate: "shop".to_owned(),
        parent: parent.map(str::to_owned),
        file: file(name),
        line: 1,
        lines_of_code: lines,
        inline: false,
        cfg: None,
        test_only: false,
        in_macro: false,
        n_traits,
        n_types,
    };
    let edge = |from: &str, to: &str, weight, items: &[&str], at: Location| Edge {
        from: from.to_owned(),
        to: to.to_owned(),
        weight,
        items: items.iter().map(|item| (*item).to_owned()).collect(),
        hierarchy: Hierarchy::Cross,
        usage: Usage::Code,
        test_only: false,
        locations: vec![at],
        resolutions: Vec::new(),
    };
    let metrics = |id: &str, fan_in, fan_out, abstractness: f64, lines| {
        let instability = if fan_in + fan_out == 0 {
            0.0
        } else {
            f64::from(fan_out) / f64::from(fan_in + fan_out)
        };
        UnitMetrics {
            id: id.to_owned(),
            fan_in,
            fan_out,
            instability,
            abstractness,
            distance: (abstractness + instability - 1.0).abs(),
            lines_of_code: lines,
        }
    };
    Report {
        workspace_root: root.clone(),
        scope: EdgeScope {
            include_hierarchical: false,
            include_test_only: false,
        },
        crates: vec![CrateInfo {
            name: "shop".to_owned(),
            package: "shop".to_owned(),
            version: "0.1.0".to_owned(),
            manifest_path: root.join("Cargo.toml"),
            targets: vec![Target {
                kind: "lib".to_owned(),
                name: "shop".to_owned(),
                root: file("lib.rs"),
            }],
            depends_on: Vec::new(),
        }],
        modules: vec![
            module("shop", None, "lib.rs", 4, 0, 0),
            module("shop::money", Some("shop"), "money.rs", 30, 0, 1),
            module("shop::order", Some("shop"), "order.rs", 80, 0, 3),
            module("shop::payment", Some("shop"), "payment.rs", 60, 1, 3),
        ],
        edges: vec![
            edge(
                "shop::order",
                "shop::money",
                3,
                &["Money"],
                location("order.rs", 2),
            ),
            edge(
                "shop::order",
                "shop::payment",
                4,
                &["PaymentService", "PaymentService::charge"],
                location("order.rs", 3),
            ),
            edge(
                "shop::payment",
                "shop::money",
                2,
                &["Money"],
                location("payment.rs", 2),
            ),
            edge(
                "shop::payment",
                "shop::order",
                2,
                &["OrderId", "OrderRepository::find"],
                location("payment.rs", 3),
            ),
        ],
        uncertain_edges: Vec::new(),
        crate_edges: Vec::<CrateEdge>::new(),
        cycles: vec![Cycle {
            members: vec!["shop::order".to_owned(), "shop::payment".to_owned()],
            weight: 6,
        }],
        crate_cycles: Vec::new(),
        elementary_cycles: vec![vec!["shop::order".to_owned(), "shop::payment".to_owned()]],
        elementary_cycles_truncated: false,
        bidirectional: vec![Bidirectional {
            a: "shop::order".to_owned(),
            b: "shop::payment".to_owned(),
            a_to_b_weight: 4,
            b_to_a_weight: 2,
            a_to_b_items: vec![
                "PaymentService".to_owned(),
                "PaymentService::charge".to_owned(),
            ],
            b_to_a_items: vec!["OrderId".to_owned(), "OrderRepository::find".to_owned()],
        }],
        cut: vec![CutEdge {
            from: "shop::payment".to_owned(),
            to: "shop::order".to_owned(),
            weight: 2,
        }],
        cut_exact: true,
        suggestions: vec![Suggestion {
            kind: "extract-interface".to_owned(),
            from: "shop::payment".to_owned(),
            to: "shop::order".to_owned(),
            also_from: Vec::new(),
            trait_name: "OrderLookup".to_owned(),
            trait_home: "shop::ports::order".to_owned(),
            implemented_by: "shop::order".to_owned(),
            methods: vec![
                Method {
                    name: "find".to_owned(),
                    signature: "fn find(&self, id: crate::order::OrderId) -> Option<Order>"
                        .to_owned(),
                    source: "shop::order::OrderRepository::find".to_owned(),
                    class: Access::Query,
                    event: None,
                },
                Method {
                    name: "mark_paid".to_owned(),
                    signature: "fn mark_paid(&mut self, id: OrderId) -> Result<(), OrderError>"
                        .to_owned(),
                    source: "shop::order::OrderRepository::mark_paid".to_owned(),
                    class: Access::Command,
                    event: Some("OrderPaid".to_owned()),
                },
            ],
            moved_items: vec!["OrderId".to_owned()],
            imports: Vec::new(),
            after: Vec::new(),
            steps: vec![
                "Create the module `shop::ports::order`.".to_owned(),
                "Implement `OrderLookup` for `OrderRepository`.".to_owned(),
            ],
        }],
        metrics: Metrics {
            modules: vec![
                metrics("shop::money", 2, 0, 0.0, 30),
                metrics("shop::order", 1, 2, 0.0, 80),
                metrics("shop::payment", 1, 2, 0.33, 60),
            ],
            crates: vec![metrics("shop", 0, 0, 0.14, 174)],
        },
        services: vec![
            CandidateService {
                name: "order".to_owned(),
                modules: vec!["shop::money".to_owned(), "shop::order".to_owned()],
                internal_weight: 3,
                external_weight: 6,
                endpoints: Vec::new(),
            },
            CandidateService {
                name: "payment".to_owned(),
                modules: vec!["shop::payment".to_owned()],
                internal_weight: 0,
                external_weight: 8,
                endpoints: Vec::new(),
            },
        ],
        service_edges: vec![ServiceEdge {
            from_service: "payment".to_owned(),
            to_service: "order".to_owned(),
            from: "shop::payment".to_owned(),
            to: "shop::order".to_owned(),
            weight: 2,
            items: vec!["OrderId".to_owned()],
        }],
        skipped_files: vec![SkippedFile {
            path: file("legacy.rs"),
            line: Some(7),
            column: Some(1),
            error: "expected `;`".to_owned(),
        }],
        endpoints: Vec::new(),
        domains: Vec::new(),
    }
}

/// The proxy crate keeps its layers (strangler-proxy/fig.toml, docs/ARCHITECTURE.md): `fig check`
/// passes on it, and fails with a `layer-violation` on a copy of it whose HTTP layer imports the
/// operations layer, as it did before the layers.
#[test]
fn proxy_crate_keeps_its_layers() {
    let proxy = workspace_root().join("strangler-proxy");
    let output = fig_in(&["check", path_str(&proxy)])
        .output()
        .expect("run fig check");
    assert!(
        output.status.success(),
        "fig check strangler-proxy failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // A copy whose `http::framing` reaches up into `ops`. The copy is a package of its own (no
    // workspace to inherit from); the analysis only reads the sources.
    let temp = tempfile::tempdir().expect("temporary directory");
    let copy = temp.path().join("strangler-proxy");
    copy_dir(&proxy.join("src"), &copy.join("src"));
    std::fs::copy(proxy.join("fig.toml"), copy.join("fig.toml")).expect("copy fig.toml");
    std::fs::write(
        copy.join("Cargo.toml"),
        "[package]\nname = \"strangler-proxy\"\nversion = \"0.0.0\"\nedition = \"2024\"\n",
    )
    .expect("write Cargo.toml");
    let framing = copy.join("src/http/framing.rs");
    let source = std::fs::read_to_string(&framing).expect("read framing.rs");
    std::fs::write(
        &framing,
        format!("{source}\n#[allow(unused_imports)]\nuse crate::ops::metrics::Extra;\n"),
    )
    .expect("write framing.rs");
    let output = fig_in(&["check", path_str(&copy)])
        .output()
        .expect("run fig check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "error[layer-violation]: `strangler_proxy::http::framing` (layer `http`) depends on \
             `strangler_proxy::ops::metrics` (layer `ops`, above it)"
        ),
        "{stdout}"
    );
}

/// Covers issue 19: the text report at scale puts the summary first and cuts each long list at
/// ten entries, heaviest first, with "and N more (--all)"; `--all` prints everything.
#[test]
fn text_report_cuts_long_lists_and_all_prints_them() {
    use crate::support::synthetic::{self, Shape};

    let temp = tempfile::tempdir().expect("temporary directory");
    let shape = Shape {
        crates: 2,
        subsystems: 4,
        modules: 4,
        leaves: 6,
    };
    synthetic::write_workspace(temp.path(), shape);
    let root = path_str(temp.path());
    let json = fig_in(&["analyze", root, "--format", "json"])
        .output()
        .expect("run fig");
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let n_cut = json["cut"].as_array().expect("cut").len();
    let n_modules = json["metrics"]["modules"]
        .as_array()
        .expect("metrics")
        .len();
    assert!(
        n_cut > 10 && n_modules > 10,
        "{n_cut} cut edges, {n_modules} modules"
    );

    let text = fig_in(&["analyze", root]).output().expect("run fig");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let summary = text.find("\nSummary\n").expect("a summary");
    let cycles = text.find("\nCycles\n").expect("a cycles section");
    assert!(summary < cycles, "the summary comes first: {text}");
    assert!(
        text.contains(&format!("… and {} more (--all)", n_cut - 10)),
        "the cut list stops at 10: {text}"
    );
    assert!(
        text.contains(&format!("… and {} more (--all)", n_modules - 10)),
        "the module metrics stop at 10: {text}"
    );
    // The cut list is ranked: its weights never go up.
    let cut_section = text
        .split("Cut list")
        .nth(1)
        .and_then(|rest| rest.split("Suggestions").next())
        .expect("a cut list");
    let weights: Vec<u32> = cut_section
        .lines()
        .filter_map(|line| line.trim().rsplit_once("weight "))
        .filter_map(|(_, weight)| weight.trim().parse().ok())
        .collect();
    assert_eq!(weights.len(), 10, "{cut_section}");
    assert!(
        weights.windows(2).all(|pair| pair[0] >= pair[1]),
        "{weights:?}"
    );

    let all = fig_in(&["analyze", root, "--all"])
        .output()
        .expect("run fig");
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    assert!(!all.contains("(--all)"), "--all prints everything: {all}");
    let all_cut = all
        .split("Cut list")
        .nth(1)
        .and_then(|rest| rest.split("Suggestions").next())
        .expect("a cut list");
    assert_eq!(
        all_cut
            .lines()
            .filter(|line| line.contains("weight "))
            .count(),
        n_cut
    );
}
