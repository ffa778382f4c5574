//! The HTML report of `examples/shop` in a real browser: headless Chromium, driven over the
//! DevTools protocol (`headless_chrome`), opens the file `fig analyze --format html` wrote.
//!
//! It checks what a person looking at the page would: the page renders (a title, a laid-out
//! body, the module graph drawn), nothing is logged as an error or thrown, and the cycles and the
//! suggestions are on screen (elements with a non-zero size in the layout, not hidden), not merely
//! somewhere in the DOM. It saves a screenshot of the whole page and prints where.
//!
//! Chromium is found as `$CHROME`, else `chromium`, `chromium-browser`, `google-chrome` on the
//! `PATH` (Debian's `chromium` package; `.ci/run` installs it). Without one the test says loudly
//! that it skipped, except when `CI=true` or `FIG_REQUIRE_CHROMIUM=1`, where it fails.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use headless_chrome::protocol::cdp::Log::LogEntryLevel;
use headless_chrome::protocol::cdp::Page::{
    CaptureScreenshot, CaptureScreenshotFormatOption, Viewport,
};
use headless_chrome::protocol::cdp::Runtime::ConsoleAPICalledEventTypeOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions};
use serde_json::Value;

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

/// What the page's script-free layout looks like, measured in the browser.
const MEASURE: &str = r"
(() => {
  const box = (el) => {
    const rect = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return {
      text: el.textContent.trim().slice(0, 120),
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
  const graph = document.querySelector('svg');
  return JSON.stringify({
    title: document.title,
    bodyHeight: document.documentElement.scrollHeight,
    graph: graph ? box(graph) : null,
    cycles: section('cycles', 'li'),
    suggestions: section('suggestions', 'h3'),
  });
})()
";

#[test]
fn the_shop_report_renders_in_chromium_with_cycles_and_suggestions_visible() {
    let test = "browser::the_shop_report_renders_in_chromium_with_cycles_and_suggestions_visible";
    let Some(chromium) = chromium(test) else {
        return;
    };

    // The report, as a user writes it.
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out_dir).expect("create the output directory");
    let report = out_dir.join("shop-report.html");
    let output = fig()
        .arg("analyze")
        .arg(workspace_root().join("examples/shop"))
        .args(["--format", "html", "-o"])
        .arg(&report)
        .output()
        .expect("fig runs");
    assert!(
        output.status.success(),
        "fig analyze --format html failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Running as root (CI) needs Chromium's sandbox off; the page is our own file.
    let options = LaunchOptions::default_builder()
        .path(Some(chromium.clone()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((WIDTH, 900)))
        // Containers often have a small /dev/shm; Chromium then crashes tabs without this.
        .args(vec![std::ffi::OsStr::new("--disable-dev-shm-usage")])
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .expect("launch options");
    let browser = Browser::new(options)
        .unwrap_or_else(|err| panic!("cannot start {}: {err:#}", chromium.display()));
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(Duration::from_secs(60));

    // Everything the page logs as an error or throws.
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
                ConsoleAPICalledEventTypeOption::Error | ConsoleAPICalledEventTypeOption::Assert
            )
            .then(|| format!("console error: {:?}", called.params.args)),
            Event::RuntimeExceptionThrown(thrown) => Some(format!(
                "exception: {}",
                thrown.params.exception_details.text
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

    let url = format!("file://{}", report.display());
    tab.navigate_to(&url)
        .and_then(|tab| tab.wait_until_navigated())
        .unwrap_or_else(|err| panic!("cannot open {url}: {err:#}"));

    let measured = tab
        .evaluate(MEASURE, false)
        .expect("measure the page")
        .value
        .and_then(|value| value.as_str().map(str::to_owned))
        .expect("the measurement is a string");
    let page: Value = serde_json::from_str(&measured).expect("the measurement is JSON");

    // A screenshot of the whole page, whatever the checks say, to look at.
    let height = page["bodyHeight"]
        .as_f64()
        .unwrap_or(900.0)
        .clamp(900.0, 16_000.0);
    // The whole page, not only the window: `captureBeyondViewport`, which `Tab::capture_screenshot`
    // does not expose, hence the protocol call.
    let shot = tab
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
    let screenshot = out_dir.join("shop-report.png");
    std::fs::write(&screenshot, &png).expect("write the screenshot");
    eprintln!("screenshot of the report: {}", screenshot.display());
    assert!(png.starts_with(b"\x89PNG"), "a PNG");

    let visible = |item: &Value| {
        item["shown"].as_bool() == Some(true)
            && item["width"].as_f64().unwrap_or(0.0) > 0.0
            && item["height"].as_f64().unwrap_or(0.0) > 0.0
    };
    assert!(
        page["title"]
            .as_str()
            .is_some_and(|title| !title.is_empty()),
        "the page has a title: {page:#}"
    );
    assert!(
        page["graph"].is_object() && visible(&page["graph"]),
        "the module graph is drawn: {page:#}"
    );

    // The shop has one cycle through display, order and member (docs/README.md): listed, and
    // on screen.
    let cycles = &page["cycles"];
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
    let suggestions = &page["suggestions"];
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

    let problems = problems
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(problems.is_empty(), "the page logged errors: {problems:#?}");
}
