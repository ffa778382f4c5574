//! The HTML report in a real browser: headless Chromium, driven over the DevTools protocol
//! (`headless_chrome`), opens the file `fig analyze --format html` wrote, or the page
//! `fig analyze --serve --watch` serves.
//!
//! It checks what a person looking at the page would: the page renders (a title, a laid-out
//! body, the module graph drawn), nothing is logged as an error or thrown, and the cycles and the
//! suggestions are on screen (elements with a non-zero size in the layout, not hidden), not merely
//! somewhere in the DOM. On the shop, on a generated 2,000-module workspace and on tokio from the
//! local registry (issue 19) it explores the map as an architect would: the page embeds the JSON
//! report, search finds a module deep in the tree, focusing it shows the neighbour counts of the
//! JSON, closing a subtree lifts its edges to it with the weights the JSON adds up to, every
//! module is reachable in the tree, and the file stays under 5 MB. It saves screenshots and
//! prints where, with the time the map took to become usable (a measurement, not a check: speed
//! is measured in `scripts/bench-map.sh`, docs/benchmarks.md).
//!
//! Chromium is found as `$CHROME`, else `chromium`, `chromium-browser`, `google-chrome` on the
//! `PATH` (Debian's `chromium` package; `.ci/run` installs it). Without one the test says loudly
//! that it skipped, except when `CI=true` or `FIG_REQUIRE_CHROMIUM=1`, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use headless_chrome::protocol::cdp::Log::LogEntryLevel;
use headless_chrome::protocol::cdp::Page::{
    CaptureScreenshot, CaptureScreenshotFormatOption, Viewport,
};
use headless_chrome::protocol::cdp::Runtime::ConsoleAPICalledEventTypeOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use crate::support::procs::Proc;
use crate::support::synthetic::{self, Shape};
use crate::support::{fig, workspace_root};

/// The page's width in the screenshot, a laptop screen.
const WIDTH: u32 = 1280;

/// Chromium, or `None` after saying why the test is skipped.
fn chromium(test: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os("CHROME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from);
    let on_path = || {
        let path = std::env::var_os("PATH")?;
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
            .find(|candidate| candidate.is_file())
    };
    let found = from_env.or_else(on_path);
    if found.is_none() {
        let required = std::env::var("CI").as_deref() == Ok("true")
            || std::env::var("FIG_REQUIRE_CHROMIUM").as_deref() == Ok("1");
        let why = "no Chromium: set CHROME, or install Debian's `chromium` (as .ci/run does)";
        assert!(
            !required,
            "{test}: CI=true or FIG_REQUIRE_CHROMIUM=1, but {why}"
        );
        eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    }
    found
}

/// The largest report file the map may be (issue 19).
const MAX_REPORT_BYTES: u64 = 5 * 1024 * 1024;

/// A tab in headless Chromium that records everything the page logs as an error or throws.
struct Page {
    // Kept alive: the tab dies with the browser.
    _browser: Browser,
    tab: Arc<Tab>,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Page {
    fn open(chromium: &Path, url: &str) -> Page {
        // Running as root (CI) needs Chromium's sandbox off; the page is our own file.
        let options = LaunchOptions::default_builder()
            .path(Some(chromium.to_path_buf()))
            .headless(true)
            .sandbox(false)
            .window_size(Some((WIDTH, 900)))
            // Containers often have a small /dev/shm; Chromium then crashes tabs without this.
            .args(vec![std::ffi::OsStr::new("--disable-dev-shm-usage")])
            .idle_browser_timeout(Duration::from_secs(300))
            .build()
            .expect("launch options");
        let browser = Browser::new(options)
            .unwrap_or_else(|err| panic!("cannot start {}: {err:#}", chromium.display()));
        let tab = browser.new_tab().expect("a tab");
        tab.set_default_timeout(Duration::from_secs(120));
        let problems = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = problems.clone();
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let problem = match event {
                Event::LogEntryAdded(added) => {
                    let entry = &added.params.entry;
                    matches!(entry.level, LogEntryLevel::Error)
                        .then(|| format!("log error: {} ({:?})", entry.text, entry.url))
                }
                Event::RuntimeConsoleAPICalled(called) => matches!(
                    called.params.Type,
                    ConsoleAPICalledEventTypeOption::Error
                        | ConsoleAPICalledEventTypeOption::Assert
                )
                .then(|| format!("console error: {:?}", called.params.args)),
                Event::RuntimeExceptionThrown(thrown) => Some(format!(
                    "exception: {} {:?}",
                    thrown.params.exception_details.text,
                    thrown
                        .params
                        .exception_details
                        .exception
                        .as_ref()
                        .and_then(|exception| exception.description.clone())
                )),
                _ => None,
            };
            if let Some(problem) = problem {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(problem);
            }
        }))
        .expect("listen to the page's events");
        tab.enable_log().expect("enable the Log domain");
        tab.enable_runtime().expect("enable the Runtime domain");
        tab.navigate_to(url)
            .and_then(|tab| tab.wait_until_navigated())
            .unwrap_or_else(|err| panic!("cannot open {url}: {err:#}"));
        Page {
            _browser: browser,
            tab,
            problems,
        }
    }

    /// Evaluates `expr`, which yields a string of JSON, and parses it.
    fn json(&self, expr: &str) -> Value {
        let text = self
            .tab
            .evaluate(&format!("JSON.stringify({expr})"), false)
            .unwrap_or_else(|err| panic!("evaluate {expr}: {err:#}"))
            .value
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_else(|| "null".to_owned());
        serde_json::from_str(&text).expect("the page answers JSON")
    }

    /// Runs `code` (statements) in the page.
    fn run(&self, code: &str) {
        self.tab
            .evaluate(&format!("(() => {{ {code} }})()"), false)
            .unwrap_or_else(|err| panic!("run {code}: {err:#}"));
    }

    /// Waits, polling, until `expr` is true; fails after `timeout`.
    #[track_caller]
    fn wait_for(&self, expr: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.json(&format!("Boolean({expr})")) != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "`{expr}` is not true after {timeout:?}; problems: {:?}",
                self.problems()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A screenshot of the page, `height` pixels from the top, written to `path`.
    fn screenshot(&self, path: &Path, height: f64) {
        // The whole page, not only the window: `captureBeyondViewport`, which
        // `Tab::capture_screenshot` does not expose, hence the protocol call.
        let shot = self
            .tab
            .call_method(CaptureScreenshot {
                format: Some(CaptureScreenshotFormatOption::Png),
                quality: None,
                clip: Some(Viewport {
                    x: 0.0,
                    y: 0.0,
                    width: f64::from(WIDTH),
                    height,
                    scale: 1.0,
                }),
                from_surface: Some(true),
                capture_beyond_viewport: Some(true),
                optimize_for_speed: None,
            })
            .expect("a screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.data)
            .expect("the screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, &png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
    }
}

/// Where the tests write reports and screenshots.
fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("create the output directory");
    dir
}

/// Runs `fig analyze` on `workspace` and returns the HTML file it wrote and the JSON report.
fn analyze(workspace: &Path, name: &str) -> (PathBuf, Value) {
    let report = out_dir().join(format!("{name}-report.html"));
    let output = fig()
        .arg("analyze")
        .arg(workspace)
        .args(["--format", "html", "-o"])
        .arg(&report)
        .output()
        .expect("fig runs");
    assert!(
        output.status.success(),
        "fig analyze --format html failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = fig()
        .arg("analyze")
        .arg(workspace)
        .args(["--format", "json"])
        .output()
        .expect("fig runs");
    assert!(output.status.success(), "fig analyze --format json failed");
    let json = serde_json::from_slice(&output.stdout).expect("the JSON report parses");
    (report, json)
}

/// The in-scope edges of the JSON report: (from, to, weight).
fn in_scope_edges(json: &Value) -> Vec<(String, String, u64)> {
    let hierarchical = json["scope"]["include_hierarchical"].as_bool() == Some(true);
    let test_only = json["scope"]["include_test_only"].as_bool() == Some(true);
    json["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|edge| hierarchical || edge["kind"]["hierarchy"] == "cross")
        .filter(|edge| test_only || edge["kind"]["test_only"] != true)
        .map(|edge| {
            (
                edge["from"].as_str().expect("from").to_owned(),
                edge["to"].as_str().expect("to").to_owned(),
                edge["weight"].as_u64().expect("weight"),
            )
        })
        .filter(|(from, to, _)| from != to)
        .collect()
}

fn in_subtree(id: &str, top: &str) -> bool {
    id == top
        || id
            .strip_prefix(top)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// Explores the map of `html` as an architect would and checks each step against `json`:
/// search finds `deep`, focusing it shows its neighbour counts, closing a subtree lifts its
/// edges, every module is reachable. Returns the page, for more checks, and prints how long the
/// map took to become usable.
fn explore(chromium: &Path, html: &Path, json: &Value, deep: &str, name: &str) -> Page {
    let size = std::fs::metadata(html).expect("the report exists").len();
    assert!(
        size < MAX_REPORT_BYTES,
        "{name}: the report is {size} bytes, over 5 MB"
    );
    let started = Instant::now();
    let page = Page::open(chromium, &format!("file://{}", html.display()));
    page.wait_for(
        "document.body.dataset.mapReady === 'true'",
        Duration::from_secs(60),
    );
    let ready_ms = page.json("Number(document.body.dataset.readyMs)");
    eprintln!(
        "{name}: {size} bytes, {} modules; map usable {ready_ms} ms after navigation started ({} ms with the browser's start)",
        json["modules"].as_array().map_or(0, Vec::len),
        started.elapsed().as_millis()
    );

    // Data once: the page carries the JSON report itself.
    // A report over 4 MB is embedded gzipped; the browser inflates it as the page does.
    let embedded = page
        .tab
        .evaluate(
            "(async () => {
               const source = document.getElementById('fig-report');
               if (source.dataset.encoding !== 'gzip+base64') return source.textContent;
               const bytes = Uint8Array.from(atob(source.textContent.trim()), (c) => c.charCodeAt(0));
               const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
               return new Response(stream).text();
             })()",
            true,
        )
        .expect("read the embedded report")
        .value
        .and_then(|value| value.as_str().map(str::to_owned))
        .expect("the embedded report is text");
    let embedded: Value = serde_json::from_str(&embedded).expect("the embedded report is JSON");
    assert!(
        &embedded == json,
        "{name}: the page embeds the --format json document"
    );

    page.screenshot(&out_dir().join(format!("{name}-map.png")), 1500.0);

    // Search finds a module deep in the tree; choosing it focuses it.
    page.run(&format!(
        "const input = document.getElementById('map-search'); input.value = {deep:?}; input.dispatchEvent(new Event('input'));"
    ));
    let found = page.json(&format!(
        "[...document.querySelectorAll('#map-results li[data-module]')].map((li) => li.dataset.module).includes({deep:?})"
    ));
    assert_eq!(found, Value::Bool(true), "{name}: search finds {deep}");
    page.run(&format!(
        "document.querySelector('#map-results li[data-module={deep:?}]').click();"
    ));
    let edges = in_scope_edges(json);
    let uses: BTreeSet<&str> = edges
        .iter()
        .filter(|(from, _, _)| from == deep)
        .map(|(_, to, _)| to.as_str())
        .collect();
    let used_by: BTreeSet<&str> = edges
        .iter()
        .filter(|(_, to, _)| to == deep)
        .map(|(from, _, _)| from.as_str())
        .collect();
    let focus = page.json(
        "({ focus: document.querySelector('[data-focus]')?.dataset.focus,
            uses: Number(document.querySelector('#map-focus [data-role=uses]')?.dataset.count),
            usedBy: Number(document.querySelector('#map-focus [data-role=used-by]')?.dataset.count),
            inTree: document.querySelector(`#map-tree li[data-module=\"${document.querySelector('[data-focus]')?.dataset.focus}\"]`) !== null,
            inGraph: [...document.querySelectorAll('#map-view .node')].map((node) => node.dataset.module) })",
    );
    assert_eq!(focus["focus"], deep, "{name}: the focus panel shows {deep}");
    assert_eq!(
        (focus["uses"].as_u64(), focus["usedBy"].as_u64()),
        (Some(uses.len() as u64), Some(used_by.len() as u64)),
        "{name}: the focus shows the neighbour counts of the JSON: {focus}"
    );
    assert_eq!(
        focus["inTree"], true,
        "{name}: the tree opens down to {deep}"
    );
    let in_graph: BTreeSet<String> = focus["inGraph"]
        .as_array()
        .expect("graph nodes")
        .iter()
        .filter_map(|node| node.as_str().map(str::to_owned))
        .collect();
    assert!(
        in_graph.contains(deep),
        "{name}: the focus graph shows {deep}"
    );
    page.screenshot(&out_dir().join(format!("{name}-focus.png")), 1500.0);

    // Back to the whole in one step.
    page.run("document.getElementById('map-whole').click();");
    assert_eq!(
        page.json("document.querySelector('[data-focus]') === null"),
        true,
        "{name}: Whole map leaves the focus"
    );

    // Closing a subtree lifts its edges: the open module with the most open descendants.
    let target = page
        .json(
            "(() => {
               const open = [...document.querySelectorAll('#map-tree li[data-module]')]
                 .filter((li) => li.querySelector(':scope > ul'));
               open.sort((a, b) => b.querySelectorAll('li').length - a.querySelectorAll('li').length
                 || a.dataset.module.length - b.dataset.module.length);
               // Not a root when another choice exists: a subsystem is the interesting case.
               const inner = open.filter((li) => li.parentElement.parentElement.id !== 'map-tree');
               return (inner[0] || open[0])?.dataset.module ?? null;
             })()",
        )
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{name}: no open subtree to close"));
    page.run(&format!(
        "document.querySelector('#map-tree li[data-module={target:?}] > .row > .tw').click();"
    ));
    let graph = page.json(
        "({ nodes: [...document.querySelectorAll('#map-view .node')].map((node) => [node.dataset.module, node.dataset.expanded]),
            edges: [...document.querySelectorAll('#map-view g.edge[data-from]')].map((edge) => [edge.dataset.from, edge.dataset.to, Number(edge.dataset.weight)]) })",
    );
    let nodes: BTreeMap<String, bool> = graph["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| {
            (
                node[0].as_str().expect("id").to_owned(),
                node[1].as_str() == Some("true"),
            )
        })
        .collect();
    assert!(
        nodes
            .keys()
            .all(|id| id == &target || !in_subtree(id, &target)),
        "{name}: nothing inside {target} is drawn once it is closed"
    );
    // What the JSON says the closed subtree weighs towards each module on the map.
    let cover = |node: &str, open: bool, id: &str| {
        if open {
            id == node
        } else {
            in_subtree(id, node)
        }
    };
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (other, open) in &nodes {
        if other == &target {
            continue;
        }
        for (from, to, weight) in &edges {
            if in_subtree(from, &target) && cover(other, *open, to) {
                *expected.entry((target.clone(), other.clone())).or_default() += weight;
            }
            if in_subtree(to, &target) && cover(other, *open, from) {
                *expected.entry((other.clone(), target.clone())).or_default() += weight;
            }
        }
    }
    let drawn: BTreeMap<(String, String), u64> = graph["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| {
            (
                (
                    edge[0].as_str().expect("from").to_owned(),
                    edge[1].as_str().expect("to").to_owned(),
                ),
                edge[2].as_u64().expect("weight"),
            )
        })
        .filter(|((from, to), _)| from == &target || to == &target)
        .collect();
    assert!(
        !expected.is_empty(),
        "{name}: {target} has edges to lift (choose another subtree)"
    );
    if !expected.is_empty() {
        assert!(
            nodes.contains_key(&target),
            "{name}: the closed {target} is drawn"
        );
    }
    assert_eq!(
        drawn, expected,
        "{name}: closing {target} lifts its edges with the JSON's weights"
    );

    // Every module is reachable: open the tree level by level until nothing is closed.
    let n_modules = json["modules"].as_array().expect("modules").len();
    for _ in 0..64 {
        page.run("document.getElementById('map-expand').click();");
        if page
            .json("document.querySelectorAll('#map-tree li[data-module]').length")
            .as_u64()
            == Some(n_modules as u64)
        {
            break;
        }
    }
    assert_eq!(
        page.json("document.querySelectorAll('#map-tree li[data-module]').length"),
        Value::from(n_modules),
        "{name}: every module is in the tree once it is open"
    );
    // The matrix covers every open module, not the first 60.
    page.run("document.querySelector('.tabs button[data-view=matrix]').click();");
    assert_eq!(
        page.json("Number(document.querySelector('canvas.matrix').dataset.rows)"),
        Value::from(n_modules),
        "{name}: the matrix has a row per open module"
    );
    page.run("document.getElementById('map-collapse').click(); document.querySelector('.tabs button[data-view=graph]').click();");
    page
}

#[track_caller]
fn assert_no_problems(page: &Page, name: &str) {
    let problems = page.problems();
    assert!(
        problems.is_empty(),
        "{name}: the page logged errors: {problems:#?}"
    );
}

/// What the page's layout looks like, measured in the browser.
const MEASURE: &str = r"
(() => {
  const box = (el) => {
    const rect = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return {
      text: el.textContent.trim().slice(0, 400),
      html: el.innerHTML.slice(0, 2000),
      width: rect.width,
      height: rect.height,
      shown: style.display !== 'none' && style.visibility !== 'hidden' && Number(style.opacity) > 0,
    };
  };
  // The elements of a section: everything after its <h2> up to the next <h2>.
  const section = (id, selector) => {
    const heading = document.getElementById(id);
    if (!heading) return { heading: null, items: [] };
    const items = [];
    for (let el = heading.nextElementSibling; el && el.tagName !== 'H2'; el = el.nextElementSibling) {
      if (el.matches(selector)) items.push(box(el));
      el.querySelectorAll(selector).forEach((inner) => items.push(box(inner)));
    }
    return { heading: box(heading), items };
  };
  const graph = document.querySelector('#map-view svg');
  return {
    title: document.title,
    bodyHeight: document.documentElement.scrollHeight,
    graph: graph ? box(graph) : null,
    cycles: section('cycles', 'li'),
    suggestions: section('suggestions', 'h3'),
    steps: section('suggestions', 'ol.steps li'),
    summary: [...document.querySelectorAll('#fig-summary li')].map((li) => [li.dataset.count, li.textContent]),
  };
})()
";

#[test]
fn the_shop_report_renders_in_chromium_with_cycles_and_suggestions_visible() {
    let test = "browser::the_shop_report_renders_in_chromium_with_cycles_and_suggestions_visible";
    let Some(chromium) = chromium(test) else {
        return;
    };
    let (report, json) = analyze(&workspace_root().join("examples/shop"), "shop");
    let page = explore(
        &chromium,
        &report,
        &json,
        "shop::coupon::eligibility",
        "shop",
    );
    let page_data = page.json(MEASURE);
    let height = page_data["bodyHeight"]
        .as_f64()
        .unwrap_or(900.0)
        .clamp(900.0, 16_000.0);
    page.screenshot(&out_dir().join("shop-report.png"), height);

    let visible = |item: &Value| {
        item["shown"].as_bool() == Some(true)
            && item["width"].as_f64().unwrap_or(0.0) > 0.0
            && item["height"].as_f64().unwrap_or(0.0) > 0.0
    };
    assert!(
        page_data["title"]
            .as_str()
            .is_some_and(|title| !title.is_empty()),
        "the page has a title: {page_data:#}"
    );
    assert!(
        page_data["graph"].is_object() && visible(&page_data["graph"]),
        "the module graph is drawn: {page_data:#}"
    );

    // The shop has one cycle through display, order and member (docs/README.md): listed, and
    // on screen.
    let cycles = &page_data["cycles"];
    assert!(
        visible(&cycles["heading"]),
        "the Cycles heading is visible: {cycles:#}"
    );
    let cycle_items = cycles["items"].as_array().cloned().unwrap_or_default();
    assert!(
        cycle_items.iter().any(|item| {
            let text = item["text"].as_str().unwrap_or("");
            visible(item)
                && ["shop::display", "shop::order", "shop::member"]
                    .iter()
                    .all(|module| text.contains(module))
        }),
        "the cycle through display, order and member is listed and visible: {cycles:#}"
    );

    // One suggestion per edge of the cut list, each a visible heading naming a trait.
    let suggestions = &page_data["suggestions"];
    assert!(
        visible(&suggestions["heading"]),
        "the Suggestions heading is visible: {suggestions:#}"
    );
    let suggestion_items = suggestions["items"].as_array().cloned().unwrap_or_default();
    assert!(
        !suggestion_items.is_empty()
            && suggestion_items.iter().all(|item| {
                visible(item) && item["text"].as_str().unwrap_or("").contains("Extract")
            }),
        "every suggestion is a visible `Extract ...` heading: {suggestions:#}"
    );
    // Issue 17: the steps are rendered, code as code, no raw backticks.
    let steps = page_data["steps"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!steps.is_empty(), "the suggestions have steps");
    assert!(
        steps.iter().all(|step| {
            !step["text"].as_str().unwrap_or("`").contains('`')
                && step["html"].as_str().unwrap_or("").contains("<code>")
        }),
        "steps show code as <code>, without backticks: {steps:#?}"
    );
    // Issue 17: both counts are named.
    let summary = page_data["summary"].to_string();
    assert!(
        summary.contains("strongly connected components") && summary.contains("elementary cycles"),
        "the summary names both cycle counts: {summary}"
    );

    // The tangle view: its members only, the cut edges marked, a suggestion beside each.
    page.run("document.querySelector('.tabs button[data-view=tangles]').click();");
    let tangle = page.json(
        "({ nodes: [...document.querySelectorAll('.tangle-graph .node')].map((node) => node.dataset.module).sort(),
            cut: [...document.querySelectorAll('.tangle-graph g.edge.cut[data-from]')].map((edge) => `${edge.dataset.from} -> ${edge.dataset.to}`).sort(),
            advice: [...document.querySelectorAll('[data-cut]')].map((item) => [item.dataset.cut, item.querySelectorAll('ol.steps li').length, item.querySelectorAll('.loc').length]) })",
    );
    let members: Vec<Value> = json["cycles"][0]["members"]
        .as_array()
        .expect("members")
        .clone();
    let mut members_sorted = members.clone();
    members_sorted.sort_by_key(|member| member.as_str().unwrap_or("").to_owned());
    assert_eq!(
        tangle["nodes"],
        Value::from(members_sorted),
        "the tangle shows its members only"
    );
    let mut cut: Vec<String> = json["cut"]
        .as_array()
        .expect("cut")
        .iter()
        .map(|edge| {
            format!(
                "{} -> {}",
                edge["from"].as_str().unwrap_or(""),
                edge["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    cut.sort();
    assert_eq!(
        tangle["cut"],
        Value::from(cut.clone()),
        "the cut edges are marked"
    );
    let advice = tangle["advice"].as_array().expect("advice");
    assert_eq!(
        advice.len(),
        cut.len(),
        "each cut edge has its advice: {tangle}"
    );
    assert!(
        advice
            .iter()
            .all(|item| item[1].as_u64() > Some(0) && item[2].as_u64() > Some(0)),
        "each cut edge has its suggestion's steps and the lines to change: {tangle}"
    );
    page.screenshot(&out_dir().join("shop-tangle.png"), 1500.0);
    assert_no_problems(&page, "shop");
}

/// Covers issue 19: a workspace of about 2,000 modules.
#[test]
fn a_2000_module_workspace_is_explorable_in_chromium() {
    let test = "browser::a_2000_module_workspace_is_explorable_in_chromium";
    let Some(chromium) = chromium(test) else {
        return;
    };
    let temp = tempfile::tempdir().expect("temporary directory");
    synthetic::write_workspace(temp.path(), Shape::LARGE);
    let (report, json) = analyze(temp.path(), "synthetic");
    let n_modules = json["modules"].as_array().expect("modules").len();
    assert!(n_modules >= 2000, "the workspace has {n_modules} modules");
    assert!(
        !json["cycles"].as_array().expect("cycles").is_empty(),
        "the workspace has tangles"
    );
    let page = explore(&chromium, &report, &json, "c5::s3::m4::l7", "synthetic");
    assert_no_problems(&page, "synthetic");
}

/// Covers issue 19: tokio, a single crate of about 480 modules, from the local cargo registry.
#[test]
fn tokio_from_the_registry_is_explorable_in_chromium() {
    let test = "browser::tokio_from_the_registry_is_explorable_in_chromium";
    let Some(chromium) = chromium(test) else {
        return;
    };
    let Some(tokio) = registry_tokio() else {
        eprintln!("\n*** SKIPPED {test}: no tokio-1.* in the local cargo registry ***\n");
        return;
    };
    let (report, json) = analyze(&tokio, "tokio");
    // The deepest module, a fair test of search and of opening the tree.
    let deep = json["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .filter_map(|module| module["id"].as_str())
        .max_by_key(|id| (id.matches("::").count(), std::cmp::Reverse(id.to_owned())))
        .expect("tokio has modules")
        .to_owned();
    let page = explore(&chromium, &report, &json, &deep, "tokio");
    assert_no_problems(&page, "tokio");
}

/// The newest `tokio-1.*` source in the local cargo registry.
fn registry_tokio() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .flat_map(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("tokio-1."))
                && path.join("Cargo.toml").is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// Covers issue 19: `fig analyze --serve --watch` follows the workspace; cutting an edge of a
/// cycle makes the cycle disappear from the open page, which keeps its focus.
#[test]
fn the_served_report_follows_the_workspace_and_a_cut_cycle_disappears() {
    let test = "browser::the_served_report_follows_the_workspace_and_a_cut_cycle_disappears";
    let Some(chromium) = chromium(test) else {
        return;
    };
    let temp = tempfile::tempdir().expect("temporary directory");
    let root = temp.path();
    std::fs::create_dir_all(root.join("src")).expect("src");
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("manifest");
    std::fs::write(root.join("src/lib.rs"), "pub mod a;\npub mod b;\n").expect("lib.rs");
    std::fs::write(
        root.join("src/a.rs"),
        "use crate::b::B;\npub struct A;\npub fn a(_b: &B) {}\n",
    )
    .expect("a.rs");
    let cyclic_b = "use crate::a::A;\npub struct B;\npub fn b(_a: &A) {}\n";
    std::fs::write(root.join("src/b.rs"), cyclic_b).expect("b.rs");

    let mut command = fig();
    command
        .arg("analyze")
        .arg(root)
        .args(["--serve", "127.0.0.1:0", "--watch"]);
    let mut server = Proc::spawn("fig analyze --serve", command);
    let address = server
        .line_after("serving http://", crate::support::procs::STARTUP)
        .trim()
        .trim_end_matches('/')
        .to_owned();
    let page = Page::open(&chromium, &format!("http://{address}/"));
    page.wait_for(
        "document.body.dataset.mapReady === 'true'",
        Duration::from_secs(60),
    );
    let sccs = "document.querySelector('[data-count=sccs] b').textContent";
    assert_eq!(page.json(sccs), "1", "one cycle before the edit");
    // Focus a module; the reload must keep it.
    page.run(
        "const input = document.getElementById('map-search'); input.value = 'demo::a'; input.dispatchEvent(new Event('input'));
         document.querySelector('#map-results li[data-module=\"demo::a\"]').click();",
    );
    assert_eq!(
        page.json("document.querySelector('[data-focus]').dataset.focus"),
        "demo::a"
    );
    page.wait_for(
        "document.getElementById('live-status').textContent.startsWith('live')",
        Duration::from_secs(10),
    );

    // Cut the edge b -> a.
    std::fs::write(root.join("src/b.rs"), "pub struct B;\npub fn b() {}\n").expect("edit b.rs");
    page.wait_for(
        &format!("document.body.dataset.mapReady === 'true' && {sccs} === '0'"),
        Duration::from_secs(60),
    );
    assert_eq!(
        page.json("document.querySelector('[data-focus]')?.dataset.focus"),
        "demo::a",
        "the page keeps its focus across the update"
    );
    assert_eq!(
        page.json("document.querySelectorAll('#map-view g.edge[data-from]').length"),
        Value::from(1),
        "one edge is left, a -> b"
    );
    // A broken file keeps the last good analysis and says why.
    std::fs::write(root.join("Cargo.toml"), "[package\n").expect("break the manifest");
    page.wait_for(
        "document.getElementById('live-status').textContent.includes('failed')",
        Duration::from_secs(60),
    );
    assert_eq!(
        page.json(sccs),
        "0",
        "the last good analysis stays on the page"
    );
    assert_no_problems(&page, "live");
    drop(server);
}

#[test]
fn serve_refuses_an_address_that_is_not_loopback() {
    let output = fig()
        .arg("analyze")
        .arg(workspace_root().join("examples/shop"))
        .args(["--serve", "0.0.0.0:0"])
        .output()
        .expect("fig runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--allow-remote"),
        "{stderr}"
    );
}

/// Covers issue 19: a report whose JSON is over 4 MB (rust-analyzer's is 10.5 MB) is embedded
/// gzipped; the browser inflates it and the map works the same. The shop's report, with one
/// edge given 150,000 reference locations, is made that large without a large workspace.
#[test]
fn a_report_over_4_mb_is_embedded_gzipped_and_the_map_still_works() {
    let test = "browser::a_report_over_4_mb_is_embedded_gzipped_and_the_map_still_works";
    let Some(chromium) = chromium(test) else {
        return;
    };
    let shop = std::fs::canonicalize(workspace_root().join("examples/shop")).expect("the shop");
    let mut report = analyzer::analyze(&shop, &analyzer::Options::new()).expect("analyse the shop");
    let edge = report
        .edges
        .iter_mut()
        .find(|edge| edge.from == "shop::order" && edge.to == "shop::member")
        .expect("order uses member");
    let location = edge.locations[0].clone();
    edge.locations = vec![location; 150_000];
    let data = serde_json::to_string(&fig::output::report(&report)).expect("the JSON report");
    assert!(data.len() > templates::report::EMBED_PLAIN_MAX_BYTES);
    let html = templates::render_html(
        &report,
        &data,
        &templates::Meta {
            tool: "fig test".to_owned(),
            live: None,
        },
    )
    .expect("render");
    assert!(
        html.contains(r#"data-encoding="gzip+base64""#),
        "the large document is gzipped"
    );
    let file = out_dir().join("large-report.html");
    std::fs::write(&file, &html).expect("write the report");
    let json: Value = serde_json::from_str(&data).expect("JSON");
    let page = explore(
        &chromium,
        &file,
        &json,
        "shop::coupon::eligibility",
        "large",
    );
    assert_no_problems(&page, "large");
}
