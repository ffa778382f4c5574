//! Docs that cannot rot: every command in `README.md` and `docs/**/*.md` is run here, or is
//! covered by a named test, or by CI, or is explicitly marked as not run with a reason.
//!
//! The convention (also in `docs/doc-tests.md`, for people writing docs):
//!
//! - Code blocks whose language is `console`, `sh`, `bash` or `shell` hold commands. In a
//!   `console` block, a line starting with `$ ` is a command and the lines up to the next `$ `
//!   are its expected output (stdout and stderr together). In the other languages every line
//!   that is not blank and not a `#` comment is a command, whose output is not checked.
//! - Unmarked blocks are **run**, in page order, by one `bash` per page, in a sandbox: a fresh
//!   directory holding a copy of `examples/shop` (in a workspace of its own), `USER=dev`, no
//!   `FIG_*` or `UNLEASH_*` variables, and a `PATH` of the system directories and one `bin/`
//!   that stands for `~/.cargo/bin`: rustup's `cargo` and `rustc`, and `fig` once it is
//!   installed. On the pages under `docs/`, `fig` is installed from the start (they follow the
//!   README's Quick start); in `README.md` only from its `install` block on, so a command that
//!   uses `fig` before the README says how to get it fails with 127, as it would for a reader.
//!   `cargo run --release [--no-default-features] --` and `./target/release/fig` stand for the
//!   checkout's own build (the binary under test), installed or not; `cargo run [-q] --` (a
//!   debug build that recompiles) is refused: write `fig`.
//! - A comment on the line before the block changes that:
//!   - `<!-- doc-test: demo -->`: run against a real `fig demo` started for the page (on free
//!     ports; `127.0.0.1:8000`/`localhost:8000` in the block mean its proxy and `:8001` its
//!     admin API, in commands and in expected output). The page's `$ fig demo` line starts it.
//!   - `<!-- doc-test: file NAME -->`: the block (any language) is written to `NAME` in the
//!     sandbox at that point of the page.
//!   - `<!-- doc-test: covered-by MODULE::TEST[, MODULE::TEST...] -->`: not run here because it
//!     needs something this test cannot start (a real Unleash server, a proxy on fixed
//!     addresses); each `fn TEST` must exist in `tests/MODULE.rs`, which exercises the same
//!     commands.
//!   - `<!-- doc-test: ci -->`: each command appears, as written, in `.ci/run`.
//!   - `<!-- doc-test: install -->`: the block is `cargo install --locked --path .`, which the
//!     test does not run (a release build of the whole tool); it puts the binary under test,
//!     built with the default features as `cargo install` builds it, in `bin/` instead.
//!   - `<!-- doc-test: not-run REASON -->`: not run at all (a container engine, a cluster); the
//!     reason is required and printed.
//! - Expected output is compared line by line after collapsing runs of spaces; `...` alone on a
//!   line stands for any number of lines, `[..]` for any text within a line, and an RFC 3339 time
//!   matches any time. A command is expected to exit 0, or 2 when its expected output has a line
//!   starting with `error:`, or N when the command ends with the comment `# exit N`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::procs::{Proc, STARTUP};
use crate::support::{copy_dir, workspace_root};

/// How long one page's commands may take in all (analyses, a `cargo check`, a demo).
const PAGE_TIMEOUT: Duration = Duration::from_secs(180);

/// Programs that act on systems outside the sandbox; a block using them must be marked.
const OUTSIDE_TOOLS: [&str; 6] = ["docker", "kubectl", "helm", "systemctl", "sudo", "ssh"];

/// Languages of blocks that hold commands.
const SHELL_LANGUAGES: [&str; 4] = ["console", "sh", "bash", "shell"];

/// What the comment before a block says to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Run,
    Demo,
    File(String),
    CoveredBy(String),
    Ci,
    Install,
    NotRun(String),
}

/// A fenced code block of a page.
#[derive(Debug, Clone)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    language: String,
    mode: Mode,
    body: String,
}

/// A command of a block, with what it should print and how it should exit.
#[derive(Debug, Clone)]
struct DocCommand {
    /// Where it is written, `file:line`.
    place: String,
    /// As written in the docs.
    text: String,
    /// Expected output lines; `None` when not checked.
    expected: Option<Vec<String>>,
    status: i32,
    demo: bool,
}

/// The Markdown pages: README.md and every `.md` under docs/.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, acc: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read docs/")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, acc);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                acc.push(path);
            }
        }
    }
    let root = workspace_root();
    let mut acc = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut acc);
    acc
}

/// The fenced blocks of a Markdown text, with the mode set by a `<!-- doc-test: ... -->` comment
/// on the lines before each (blank lines may sit between).
fn blocks(text: &str, file: &str) -> Vec<Block> {
    let mut res = Vec::new();
    let mut marker: Option<(Mode, usize)> = None;
    let mut lines = text.lines().enumerate();
    while let Some((idx, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("<!-- doc-test:") {
            let rest = rest.trim_end_matches("-->").trim();
            marker = Some((parse_mode(rest, file, idx + 1), idx + 1));
            continue;
        }
        let fence = if trimmed.starts_with("```") {
            "```"
        } else if trimmed.starts_with("~~~") {
            "~~~"
        } else {
            if !trimmed.is_empty()
                && let Some((_, at)) = marker.take()
            {
                panic!("{file}:{at}: a doc-test comment must come right before a code block");
            }
            continue;
        };
        let language = trimmed
            .trim_start_matches(fence)
            .split([',', ' '])
            .next()
            .unwrap_or("")
            .to_owned();
        let indent = line.len() - line.trim_start().len();
        let mut body = String::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with(fence) && line.trim() == fence {
                break;
            }
            body.push_str(
                line.get(indent.min(line.len() - line.trim_start().len())..)
                    .unwrap_or(line),
            );
            body.push('\n');
        }
        let mode = marker.take().map_or(Mode::Run, |(mode, _)| mode);
        res.push(Block {
            line: idx + 1,
            language,
            mode,
            body,
        });
    }
    if let Some((_, at)) = marker {
        panic!("{file}:{at}: a doc-test comment must come right before a code block");
    }
    res
}

#[track_caller]
fn parse_mode(text: &str, file: &str, line: usize) -> Mode {
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    match word {
        "run" => Mode::Run,
        "demo" => Mode::Demo,
        "ci" => Mode::Ci,
        "install" => Mode::Install,
        "file" if !rest.is_empty() => Mode::File(rest.to_owned()),
        "covered-by" if rest.contains("::") => Mode::CoveredBy(rest.to_owned()),
        "not-run" if !rest.is_empty() => Mode::NotRun(rest.to_owned()),
        _ => panic!(
            "{file}:{line}: unknown doc-test comment `{text}`; see docs/doc-tests.md \
             (run, demo, file NAME, covered-by MODULE::TEST, ci, install, not-run REASON)"
        ),
    }
}

/// The commands of a shell block.
fn commands(block: &Block, file: &str) -> Vec<DocCommand> {
    let mut res: Vec<DocCommand> = Vec::new();
    let demo = block.mode == Mode::Demo;
    let place = |offset: usize| format!("{file}:{}", block.line + 1 + offset);
    let mut pending: Option<(usize, String)> = None;
    for (offset, line) in block.body.lines().enumerate() {
        // A command continued with a trailing backslash.
        if let Some((start, mut text)) = pending.take() {
            text.push('\n');
            text.push_str(line);
            if line.ends_with('\\') {
                pending = Some((start, text));
            } else {
                res.push(new_command(
                    place(start),
                    text,
                    block.language == "console",
                    demo,
                ));
            }
            continue;
        }
        if block.language == "console" {
            if let Some(text) = line.strip_prefix("$ ") {
                if text.ends_with('\\') {
                    pending = Some((offset, text.to_owned()));
                } else {
                    res.push(new_command(place(offset), text.to_owned(), true, demo));
                }
            } else if let Some(last) = res.last_mut() {
                last.expected
                    .get_or_insert_with(Vec::new)
                    .push(line.to_owned());
            } else {
                panic!(
                    "{}: output before the first `$ ` command of a console block",
                    place(offset)
                );
            }
        } else {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.ends_with('\\') {
                pending = Some((offset, trimmed.to_owned()));
            } else {
                res.push(new_command(place(offset), trimmed.to_owned(), false, demo));
            }
        }
    }
    if let Some((start, _)) = pending {
        panic!("{}: a command ends with a backslash", place(start));
    }
    for command in &mut res {
        if let Some(expected) = &mut command.expected {
            while expected.last().is_some_and(|line| line.trim().is_empty()) {
                expected.pop();
            }
            if expected.is_empty() {
                command.expected = None;
            }
        }
        if command
            .expected
            .as_ref()
            .is_some_and(|lines| lines.iter().any(|line| line.starts_with("error:")))
            && !command.text.contains("# exit ")
        {
            command.status = 2;
        }
    }
    res
}

fn new_command(place: String, text: String, console: bool, demo: bool) -> DocCommand {
    let status = text
        .rsplit_once("# exit ")
        .and_then(|(_, code)| code.trim().parse().ok())
        .unwrap_or(0);
    DocCommand {
        place,
        text,
        expected: console.then(Vec::new),
        status,
        demo,
    }
}

/// How a reader runs the checkout's own build without installing it; each stands for the binary
/// under test. (`cargo run --release` with or without `--no-default-features` prints the same
/// for the commands both builds have.)
const CHECKOUT_BUILDS: [&str; 4] = [
    "cargo run --release --no-default-features -- ",
    "cargo run --release -- ",
    "./target/release/fig ",
    "./target/debug/fig ",
];

/// Stand-ins that rebuild on every command and so make a reader wait: not in the docs.
const SLOW_STAND_INS: [&str; 4] = [
    "cargo run -q -- ",
    "cargo run -- ",
    "cargo run -q --release -- ",
    "cargo run --release -q -- ",
];

/// The command as the docs mean it, with the checkout's build written `fig` (to recognise
/// `fig demo`).
fn as_fig(text: &str) -> String {
    let mut text = text.to_owned();
    for alias in CHECKOUT_BUILDS {
        text = text.replace(alias, "fig ");
    }
    text
}

/// The command as the sandbox runs it: the checkout's build is the binary under test, by its
/// absolute path; a bare `fig` is whatever the sandbox's `PATH` holds.
fn as_run(text: &str) -> String {
    let mut text = text.to_owned();
    for alias in CHECKOUT_BUILDS {
        text = text.replace(alias, &format!("'{}' ", env!("CARGO_BIN_EXE_fig")));
    }
    text
}

/// The words of a command line, split on spaces (enough for the `fig demo` line).
fn words(text: &str) -> Vec<String> {
    let text = text.split(" #").next().unwrap_or(text);
    text.split_whitespace().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------------------
// Comparing output.

/// Collapses runs of whitespace and replaces RFC 3339 times by `[TIME]`.
fn normalize(line: &str) -> String {
    let line = times_to_placeholder(line);
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn times_to_placeholder(line: &str) -> String {
    // YYYY-MM-DDTHH:MM:SS, then optional fraction, then Z or an offset.
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut idx = 0;
    let shape = b"dddd-dd-ddTdd:dd:dd";
    while idx < bytes.len() {
        let fits = bytes.len() - idx >= shape.len()
            && shape.iter().enumerate().all(|(offset, &want)| {
                let got = bytes[idx + offset];
                if want == b'd' {
                    got.is_ascii_digit()
                } else {
                    got == want
                }
            });
        if fits {
            let mut end = idx + shape.len();
            if end < bytes.len() && bytes[end] == b'.' {
                end += 1;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
            }
            if end < bytes.len() && bytes[end] == b'Z' {
                end += 1;
            }
            out.push_str("[TIME]");
            idx = end;
        } else {
            let ch = line[idx..].chars().next().unwrap_or(' ');
            out.push(ch);
            idx += ch.len_utf8();
        }
    }
    out
}

/// Whether `actual` matches `pattern`, where `[..]` stands for any text.
fn line_matches(pattern: &str, actual: &str) -> bool {
    let pieces: Vec<&str> = pattern.split("[..]").collect();
    if pieces.len() == 1 {
        return pattern == actual;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether the actual lines match the expected ones, `...` lines standing for any lines.
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first.trim() == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, tail)| line_matches(first, line) && lines_match(rest, tail)),
    }
}

// ---------------------------------------------------------------------------------------------
// Running a page.

/// The directories a login shell's `PATH` has on a fresh Debian or Ubuntu machine.
const SYSTEM_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// What rustup puts in `~/.cargo/bin` that the docs use (`cargo check` in the architect's guide).
const TOOLCHAIN: [&str; 3] = ["cargo", "rustc", "rustup"];

/// A fresh directory with `examples/shop` in a workspace of its own, and a `bin/` standing for
/// `~/.cargo/bin`.
struct Sandbox {
    _temp: tempfile::TempDir,
    home: PathBuf,
    bin: PathBuf,
}

impl Sandbox {
    /// With `fig_installed`, `bin/` holds `fig` from the start, as after the README's install.
    fn new(fig_installed: bool) -> Sandbox {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let home = temp.path().join("home");
        let bin = temp.path().join("bin");
        std::fs::create_dir_all(&bin).expect("create bin/");
        copy_dir(
            &workspace_root().join("examples/shop"),
            &home.join("examples/shop"),
        );
        // The shop inherits its edition and dependencies from the root manifest: give it the
        // same `[workspace]` tables, with itself as the only member.
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
            .expect("read the root Cargo.toml");
        let start = manifest.find("[workspace]").expect("a [workspace] table");
        let end = manifest[start..]
            .find("\n[dependencies]")
            .map_or(manifest.len(), |at| start + at);
        let mut workspace = manifest[start..end].to_owned();
        let members = workspace.find("members = [").expect("a members list");
        let close = workspace[members..]
            .find(']')
            .expect("the end of the members list");
        workspace.replace_range(
            members..members + close + 1,
            "members = [\"examples/shop\"]",
        );
        std::fs::write(home.join("Cargo.toml"), workspace).expect("write the sandbox workspace");
        let real_path = std::env::var_os("PATH").unwrap_or_default();
        for tool in TOOLCHAIN {
            if let Some(found) = std::env::split_paths(&real_path)
                .map(|dir| dir.join(tool))
                .find(|path| path.is_file())
            {
                symlink(&found, &bin.join(tool));
            }
        }
        if fig_installed {
            symlink(Path::new(env!("CARGO_BIN_EXE_fig")), &bin.join("fig"));
        }
        Sandbox {
            _temp: temp,
            home,
            bin,
        }
    }

    /// A command with the sandbox's environment, in its home directory.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let mut paths = vec![self.bin.clone()];
        paths.extend(SYSTEM_PATH.iter().map(PathBuf::from));
        let real_home = std::env::var_os("HOME").map(PathBuf::from);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("FIG_")
                || key_text.starts_with("UNLEASH_")
                || key_text == "RUST_LOG"
                || key_text == "CLICOLOR_FORCE"
            {
                command.env_remove(&key);
            }
        }
        // `cargo` (for `cargo check` in the architect's guide) finds its toolchain through
        // these, which default to the real home.
        if let Some(real_home) = real_home {
            if std::env::var_os("RUSTUP_HOME").is_none() {
                command.env("RUSTUP_HOME", real_home.join(".rustup"));
            }
            if std::env::var_os("CARGO_HOME").is_none() {
                command.env("CARGO_HOME", real_home.join(".cargo"));
            }
        }
        command
            .current_dir(&self.home)
            .env("PATH", std::env::join_paths(paths).expect("a PATH"))
            .env("HOME", &self.home)
            .env("USER", "dev")
            .env("LOGNAME", "dev")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("CARGO_TARGET_DIR", self.home.join("target/cargo"))
            .stdin(Stdio::null());
        command
    }
}

fn symlink(original: &Path, link: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(original, link)
        .unwrap_or_else(|err| panic!("link {} to {}: {err}", link.display(), original.display()));
}

/// The addresses of a page's demo, and what they are written as in the docs.
struct DemoAddrs {
    proxy: String,
    admin: String,
}

impl DemoAddrs {
    fn as_written(&self, text: &str) -> String {
        text.replace(&self.proxy, "127.0.0.1:8000")
            .replace(&self.admin, "127.0.0.1:8001")
    }

    fn as_run(&self, text: &str) -> String {
        text.replace("localhost:8000", &self.proxy)
            .replace("127.0.0.1:8000", &self.proxy)
            .replace("localhost:8001", &self.admin)
            .replace("127.0.0.1:8001", &self.admin)
    }
}

/// One step of a page's script.
enum Step {
    Command(DocCommand),
    File(String, String),
    /// `cargo install --locked --path .`: the binary under test goes into `bin/`.
    Install,
}

/// Runs a page's steps in its sandbox and returns the failures, one paragraph each.
fn run_page(file: &str, steps: &[Step]) -> Vec<String> {
    // README.md says how to get `fig`; the pages under docs/ come after it.
    let sandbox = Sandbox::new(file != "README.md");
    let mut failures = Vec::new();

    // A page with demo blocks gets a demo, started as its `$ fig demo` line says.
    let demo_line = steps.iter().find_map(|step| match step {
        Step::Command(command) if command.demo && as_fig(&command.text).starts_with("fig demo") => {
            Some(command)
        }
        _ => None,
    });
    let has_demo_blocks = steps
        .iter()
        .any(|step| matches!(step, Step::Command(command) if command.demo));
    let mut demo: Option<(Proc, DemoAddrs)> = None;
    if has_demo_blocks {
        let Some(line) = demo_line else {
            return vec![format!(
                "{file}: demo blocks but no `$ fig demo` line to start the demo"
            )];
        };
        let args = words(&as_fig(&line.text));
        for arg in &args {
            assert!(
                arg != "--listen" && arg != "--admin",
                "{}: the demo is started on free ports; leave out --listen and --admin",
                line.place
            );
        }
        let mut command = sandbox.command(env!("CARGO_BIN_EXE_fig"));
        command
            .args(&args[1..])
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
        let mut process = Proc::spawn(&format!("fig demo ({file})"), command);
        let proxy = process.address("listening on http://").to_string();
        let admin = process.address("admin on http://").to_string();
        process.line_after("Ctrl-C stops everything.", STARTUP);
        demo = Some((process, DemoAddrs { proxy, admin }));
    }

    // One script: each command between markers, its status after it.
    let mut script = String::from("set -o pipefail\n");
    let mut commands = Vec::new();
    for step in steps {
        match step {
            Step::File(name, body) => {
                let _ = write!(
                    script,
                    "mkdir -p \"$(dirname '{name}')\" && cat > '{name}' <<'FIG_DOC_EOF'\n{body}FIG_DOC_EOF\n"
                );
            }
            Step::Install => {
                let _ = writeln!(
                    script,
                    "ln -sf '{}' '{}'",
                    env!("CARGO_BIN_EXE_fig"),
                    sandbox.bin.join("fig").display()
                );
            }
            Step::Command(command) => {
                let idx = commands.len();
                commands.push(command.clone());
                let mut text = as_run(&command.text);
                if command.demo && as_fig(&command.text).starts_with("fig demo") {
                    // Started above.
                    text = ":".to_owned();
                }
                if let Some((_, addrs)) = &demo {
                    text = addrs.as_run(&text);
                }
                let _ = write!(
                    script,
                    "printf '\\n\\036FIGDOC-BEGIN {idx}\\036\\n'\n{{ {text}\n}} 2>&1\nfig_doc_status=$?\nprintf '\\n\\036FIGDOC-END {idx} %d\\036\\n' \"$fig_doc_status\"\n"
                );
                // A person takes a moment between commands; the demo's proxy sees a flag change
                // within a second (two here, for a busy CI machine).
                if demo.is_some() && as_fig(&command.text).starts_with("fig flags") {
                    script.push_str("sleep 2\n");
                }
            }
        }
    }

    let mut child = sandbox
        .command("bash")
        .arg("-c")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let deadline = Instant::now() + PAGE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = reader.join().expect("the reader thread");
    if status.is_none() {
        failures.push(format!(
            "{file}: the commands did not finish within {PAGE_TIMEOUT:?}; output so far:\n{output}"
        ));
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }

    // Split the output by command.
    let mut results: BTreeMap<usize, (i32, String)> = BTreeMap::new();
    let mut rest = output.as_str();
    while let Some(begin) = rest.find("\u{1e}FIGDOC-BEGIN ") {
        let after = &rest[begin + "\u{1e}FIGDOC-BEGIN ".len()..];
        let Some(close) = after.find('\u{1e}') else {
            break;
        };
        let idx: usize = after[..close].parse().unwrap_or(usize::MAX);
        let body_start = &after[close + 1..];
        let Some(end) = body_start.find("\u{1e}FIGDOC-END ") else {
            break;
        };
        let body = &body_start[..end];
        let tail = &body_start[end + "\u{1e}FIGDOC-END ".len()..];
        let Some(close) = tail.find('\u{1e}') else {
            break;
        };
        let status: i32 = tail[..close]
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(-1);
        results.insert(idx, (status, body.to_owned()));
        rest = &tail[close + 1..];
    }

    for (idx, command) in commands.iter().enumerate() {
        let Some((status, body)) = results.get(&idx) else {
            failures.push(format!(
                "{}: `{}` did not run (an earlier command stopped the page?); bash stderr:\n{stderr}",
                command.place, command.text
            ));
            continue;
        };
        let mut body = body.clone();
        if let Some((_, addrs)) = &demo {
            body = addrs.as_written(&body);
        }
        let actual: Vec<String> = body
            .lines()
            .map(normalize)
            .skip_while(String::is_empty)
            .collect::<Vec<_>>();
        let mut actual = actual;
        while actual.last().is_some_and(String::is_empty) {
            actual.pop();
        }
        let is_demo_start = command.demo && as_fig(&command.text).starts_with("fig demo");
        if *status != command.status && !is_demo_start {
            failures.push(format!(
                "{}: `{}` exited {status}, the docs expect {}; it printed:\n{}",
                command.place,
                command.text,
                command.status,
                actual.join("\n")
            ));
            continue;
        }
        if let Some(expected) = &command.expected
            && !is_demo_start
        {
            let expected: Vec<String> = expected.iter().map(|line| normalize(line)).collect();
            if !lines_match(&expected, &actual) {
                failures.push(format!(
                    "{}: `{}` printed other output than the docs show.\n--- docs\n{}\n--- actual\n{}",
                    command.place,
                    command.text,
                    expected.join("\n"),
                    actual.join("\n")
                ));
            }
        }
    }
    if let Some((mut process, _)) = demo {
        process.signal("TERM");
        let status = process.wait(Duration::from_secs(30));
        if !status.success() {
            failures.push(format!(
                "{file}: the demo did not stop cleanly ({status}); stderr:\n{}",
                process.stderr()
            ));
        }
    }
    failures
}

/// Every page's commands, each run or accounted for.
#[test]
fn every_command_in_the_docs_is_run_or_covered() {
    let root = workspace_root();
    let ci = std::fs::read_to_string(root.join(".ci/run")).expect("read .ci/run");
    let mut failures = Vec::new();
    let mut summary = String::new();
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    // `FIG_DOCS_PAGE=runbook` runs the pages whose path contains `runbook` only (for writing docs).
    let only = std::env::var("FIG_DOCS_PAGE").unwrap_or_default();
    for page in pages() {
        let file = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        if !file.contains(&only) {
            continue;
        }
        let text = std::fs::read_to_string(&page).expect("read a page");
        let mut steps = Vec::new();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for block in blocks(&text, &file) {
            if let Mode::File(name) = &block.mode {
                steps.push(Step::File(name.clone(), block.body.clone()));
                *counts.entry("files").or_default() += 1;
                continue;
            }
            if !SHELL_LANGUAGES.contains(&block.language.as_str()) {
                continue;
            }
            let commands = commands(&block, &file);
            match &block.mode {
                Mode::Run | Mode::Demo => {
                    // A test must never reach a real cluster, registry or service manager.
                    for command in &commands {
                        let code = command.text.split(" #").next().unwrap_or("");
                        let mut words = code.split(|c: char| {
                            c.is_whitespace() || matches!(c, ';' | '(' | ')' | '|' | '&' | '`')
                        });
                        if words.any(|word| OUTSIDE_TOOLS.contains(&word)) {
                            failures.push(format!(
                                "{}: `{}` would act on a real system; mark the block \
                                 `<!-- doc-test: not-run REASON -->`",
                                command.place, command.text
                            ));
                        }
                    }
                    for command in &commands {
                        if let Some(slow) = SLOW_STAND_INS
                            .iter()
                            .find(|slow| command.text.contains(**slow))
                        {
                            failures.push(format!(
                                "{}: `{}` recompiles before every command; write `fig` (the \
                                 README's Quick start says how to install it)",
                                command.place,
                                slow.trim()
                            ));
                        }
                    }
                    if failures.iter().any(|failure| failure.starts_with(&file)) {
                        continue;
                    }
                    *counts.entry("run").or_default() += commands.len();
                    steps.extend(commands.into_iter().map(Step::Command));
                }
                Mode::CoveredBy(tests) => {
                    *counts.entry("covered").or_default() += commands.len();
                    for test in tests.split(", ") {
                        let (module, name) = test.split_once("::").unwrap_or(("", test));
                        let source =
                            std::fs::read_to_string(root.join(format!("tests/{module}.rs")))
                                .unwrap_or_default();
                        if !source.contains(&format!("fn {name}(")) {
                            failures.push(format!(
                                "{file}:{}: covered by `{test}`, but tests/{module}.rs has no `fn {name}`",
                                block.line
                            ));
                        }
                    }
                }
                Mode::Ci => {
                    *counts.entry("ci").or_default() += commands.len();
                    for command in &commands {
                        let text = command.text.split(" #").next().unwrap_or("").trim();
                        if !ci.contains(text) {
                            failures.push(format!(
                                "{}: `{}` is marked as run by CI, but .ci/run does not contain it",
                                command.place, command.text
                            ));
                        }
                    }
                }
                Mode::Install => {
                    *counts.entry("install").or_default() += commands.len();
                    for command in &commands {
                        if command.text.split(" #").next().unwrap_or("").trim()
                            != "cargo install --locked --path ."
                        {
                            failures.push(format!(
                                "{}: an install block holds `cargo install --locked --path .` \
                                 only, not `{}`",
                                command.place, command.text
                            ));
                        }
                    }
                    steps.push(Step::Install);
                }
                Mode::NotRun(reason) => {
                    *counts.entry("not run").or_default() += commands.len();
                    let _ = writeln!(
                        summary,
                        "  {file}:{}: {} command(s) not run: {reason}",
                        block.line,
                        commands.len()
                    );
                }
                Mode::File(_) => unreachable!("handled above"),
            }
        }
        if steps.iter().any(|step| matches!(step, Step::Command(_))) {
            failures.extend(run_page(&file, &steps));
        }
        let _ = writeln!(summary, "{file}: {counts:?}");
        for (key, count) in counts {
            *totals.entry(key).or_default() += count;
        }
    }
    eprintln!("docs commands:\n{summary}total: {totals:?}");
    assert!(
        failures.is_empty(),
        "{} problem(s) in the docs:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        !only.is_empty() || totals.get("run").copied().unwrap_or(0) > 20,
        "the docs should show commands that run: {totals:?}"
    );
}

/// The runner's own parts, on small inputs.
#[test]
fn doc_test_conventions() {
    let page = "text\n\n<!-- doc-test: demo -->\n```console\n$ fig route list # exit 1\nA  B\n...\n$ fig flags list\nerror: x\n```\n\n```toml\na = 1\n```\n";
    let blocks = blocks(page, "page.md");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].mode, Mode::Demo);
    assert_eq!(blocks[1].language, "toml");
    let commands = commands(&blocks[0], "page.md");
    assert_eq!(commands.len(), 2);
    assert_eq!(commands[0].status, 1);
    assert_eq!(commands[0].place, "page.md:5");
    assert_eq!(commands[1].status, 2);
    assert!(lines_match(
        &["A B".into(), "...".into()],
        &["A B".into(), "C".into(), "D".into()]
    ));
    assert!(!lines_match(&["A B".into()], &["A B".into(), "C".into()]));
    assert!(line_matches(
        "state file [..]/fig-demo/x",
        "state file /tmp/a/fig-demo/x"
    ));
    assert!(!line_matches(
        "state file [..]/fig-demo/x",
        "state file /tmp/a/x"
    ));
    assert_eq!(
        normalize("2026-11-22T05:42:07.572Z   dev  create"),
        "[TIME] dev create"
    );
    assert_eq!(
        as_fig("cargo run --release --no-default-features -- analyze ."),
        "fig analyze ."
    );
    assert_eq!(
        as_run("./target/release/fig flags list"),
        format!("'{}' flags list", env!("CARGO_BIN_EXE_fig"))
    );
}

/// Issue 17, item 4: in README.md, `fig` is on the `PATH` only from the step that installs it
/// (no `fig` of the machine's leaks in), while the checkout's build runs anywhere.
#[test]
fn fig_is_on_the_path_only_after_the_readme_installs_it() {
    let command = |text: &str, status: i32| {
        Step::Command(DocCommand {
            place: "README.md:1".to_owned(),
            text: text.to_owned(),
            expected: None,
            status,
            demo: false,
        })
    };
    let before = run_page("README.md", &[command("fig --version", 0)]);
    assert!(
        before.len() == 1 && before[0].contains("exited 127"),
        "{before:?}"
    );
    let steps = [
        command("cargo run --release --no-default-features -- --version", 0),
        command("command -v fig # exit 1", 1),
        Step::Install,
        command("fig --version", 0),
        command("cargo --version", 0),
    ];
    let after = run_page("README.md", &steps);
    assert!(after.is_empty(), "{after:?}");
    let guide = run_page("docs/guide/architect.md", &[command("fig --version", 0)]);
    assert!(guide.is_empty(), "{guide:?}");
}

/// The keys a reference section documents: the first column of its table (`kind.usage` counts
/// as `kind`), or else the names in its first `{a, b, c}`.
fn documented_keys(page: &str, heading: &str) -> BTreeSet<String> {
    let start = page
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no `{heading}` in the page"));
    let body = &page[start + heading.len() + 2..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut keys = BTreeSet::new();
    for line in body.lines() {
        if let Some(cell) = line.strip_prefix("| `") {
            for key in cell.split('|').next().unwrap_or("").split(", ") {
                let key = key.trim().trim_matches('`');
                keys.insert(key.split('.').next().unwrap_or(key).to_owned());
            }
        }
    }
    if keys.is_empty() {
        let open = body.find("`{").expect("a table or an inline {a, b}") + 2;
        let close = open + body[open..].find('}').expect("a closing brace");
        keys.extend(
            body[open..close]
                .split(',')
                .map(|key| key.trim().to_owned()),
        );
    }
    keys.remove("Key");
    keys
}

fn json_keys(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// docs/report-schema.md and docs/finding-codes.md say what the code does: the keys of each
/// documented shape are exactly those of `fig analyze --format json` on the shop, and every
/// finding code has its entry.
#[test]
fn the_reference_pages_match_the_code() {
    let root = workspace_root();
    let schema = std::fs::read_to_string(root.join("docs/report-schema.md")).expect("read");
    let output = crate::support::fig()
        .args(["analyze", "--format", "json"])
        .arg(root.join("examples/shop"))
        .output()
        .expect("fig runs");
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    for (heading, value) in [
        ("## Top level", &report),
        ("## crate", &report["crates"][0]),
        ("## module", &report["modules"][0]),
        ("## edge", &report["edges"][0]),
        ("## cycle", &report["cycles"][0]),
        ("## pair (`bidirectional`)", &report["bidirectional"][0]),
        ("## suggestion", &report["suggestions"][0]),
        ("## unit metrics", &report["metrics"]["modules"][0]),
        ("## endpoint", &report["endpoints"][0]),
    ] {
        assert_eq!(
            documented_keys(&schema, heading),
            json_keys(value),
            "docs/report-schema.md `{heading}` against the JSON"
        );
    }

    let codes = std::fs::read_to_string(root.join("docs/finding-codes.md")).expect("read");
    let documented: BTreeSet<&str> = codes
        .lines()
        .filter_map(|line| line.strip_prefix("## `"))
        .map(|line| line.trim_end_matches('`'))
        .collect();
    let real: BTreeSet<&str> = analyzer::check::Code::ALL
        .iter()
        .map(|code| code.as_str())
        .collect();
    assert_eq!(
        documented, real,
        "docs/finding-codes.md against analyzer::check::Code"
    );
}

/// Every relative link of README.md and docs/ points at a file that exists (on GitHub and in the
/// book alike), and a `#fragment` into a Markdown page at one of its headings.
#[test]
fn links_between_pages_resolve() {
    let root = workspace_root();
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("read a page");
        let mut in_code = false;
        for (idx, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            if in_code {
                continue;
            }
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                let tail = &rest[at + 2..];
                let end = tail.find(')').unwrap_or(tail.len());
                let target = &tail[..end];
                rest = &tail[end..];
                if target.contains("://")
                    || target.starts_with('#')
                    || target.starts_with("mailto:")
                {
                    continue;
                }
                let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
                let file = page.parent().expect("a directory").join(path);
                let place = format!(
                    "{}:{}",
                    page.strip_prefix(&root).unwrap_or(&page).display(),
                    idx + 1
                );
                if !file.exists() {
                    broken.push(format!("{place}: `{target}` does not exist"));
                    continue;
                }
                if !fragment.is_empty() && path.ends_with(".md") {
                    let target_text = std::fs::read_to_string(&file).unwrap_or_default();
                    let found = target_text.lines().any(|line| {
                        line.starts_with('#')
                            && crate::deploy::anchor(line.trim_start_matches('#')) == fragment
                    });
                    if !found {
                        broken.push(format!("{place}: `{target}`: no such heading"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Every key the proxy's config parser accepts (the fields of the `Raw*` types in
/// `strangler-proxy/src/config/`, one module per table, which deny unknown fields) is documented
/// in `docs/proxy-config.md` as `` `key` ``.
#[test]
fn every_proxy_config_key_is_documented() {
    let root = workspace_root();
    let mut files: Vec<_> = std::fs::read_dir(root.join("strangler-proxy/src/config"))
        .expect("read strangler-proxy/src/config")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    let source: String = files
        .iter()
        .map(|path| std::fs::read_to_string(path).expect("read a config module"))
        .collect::<Vec<_>>()
        .join("\n");
    let reference = std::fs::read_to_string(root.join("docs/proxy-config.md")).expect("read");
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut rename: Option<String> = None;
    for line in source.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed
            .trim_start_matches("pub(super) ")
            .strip_prefix("struct Raw")
        {
            current = rest.strip_suffix(" {").map(|name| format!("Raw{name}"));
            continue;
        }
        let Some(strukt) = &current else { continue };
        if trimmed == "}" {
            current = None;
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("#[serde(rename = \"") {
            rename = rest.split('"').next().map(str::to_owned);
            continue;
        }
        if trimmed.starts_with("#[") || trimmed.starts_with("//") {
            continue;
        }
        if let Some((field, _)) = trimmed.split_once(':') {
            let field = field.trim().trim_start_matches("pub ").trim();
            if !field.is_empty() && field.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                let key = rename.take().unwrap_or_else(|| field.to_owned());
                keys.insert(key, strukt.clone());
            }
        }
    }
    assert!(keys.len() > 40, "the Raw types were found: {keys:?}");
    let missing: Vec<String> = keys
        .iter()
        .filter(|(key, _)| {
            // `key`, `key = ...`, [key], [key.NAME], [table.key], or `{ ..., key = ... }`.
            ![
                format!("`{key}`"),
                format!("`{key} ="),
                format!("[{key}]"),
                format!("[{key}."),
                format!(".{key}]"),
                format!(" {key} = "),
            ]
            .iter()
            .any(|form| reference.contains(form.as_str()))
        })
        .map(|(key, strukt)| format!("{key} ({strukt})"))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys with no entry in docs/proxy-config.md: {missing:?}"
    );
}

/// The `$NAME`s a command line reads: `$NAME` and `${NAME}`, not `$(...)` or `$1`.
fn variables_read(text: &str) -> Vec<String> {
    let mut res = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let tail = rest[at + 1..].trim_start_matches('{');
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            res.push(name);
        }
        rest = &rest[at + 1..];
    }
    res
}

/// The names a command line sets: `NAME=...`, `export NAME=...`, `for NAME in`, `read NAME`.
fn variables_set(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut res = Vec::new();
    for (idx, word) in words.iter().enumerate() {
        let word = word.trim_start_matches(['(', ';', '&', '|']);
        if let Some((name, _)) = word.split_once('=')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            res.push(name.to_owned());
        }
        if matches!(words.get(idx.wrapping_sub(1)), Some(&("for" | "read")))
            || (idx > 0 && words[idx - 1] == "export")
        {
            res.push(word.split('=').next().unwrap_or(word).to_owned());
        }
    }
    res
}

/// Issue 17, item 4 (the README's Unleash line read `$CLIENT_TOKEN`, which nothing sets: HTTP
/// 401): every variable a command in the docs reads is set on the page before it, or is one the
/// shell or the system sets, or one `fig` reads (named in `src/`).
#[test]
fn commands_read_only_variables_that_something_sets() {
    let root = workspace_root();
    let mut source = String::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                source.push_str(&std::fs::read_to_string(&path).expect("read a source file"));
            }
        }
    }
    let from_system = ["HOME", "USER", "PATH", "PWD", "PROFILE", "MAINPID"];
    let mut unset = Vec::new();
    for page in pages() {
        let file = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&page).expect("read a page");
        let mut set: BTreeSet<String> = BTreeSet::new();
        for block in blocks(&text, &file) {
            if !SHELL_LANGUAGES.contains(&block.language.as_str())
                || matches!(block.mode, Mode::NotRun(_) | Mode::File(_))
            {
                continue;
            }
            for command in commands(&block, &file) {
                let code = command.text.split(" #").next().unwrap_or("");
                set.extend(variables_set(code));
                // The development server's script prints the exports of its URL and tokens.
                if code.contains("unleash-dev.sh env") {
                    set.extend(
                        ["UNLEASH_URL", "UNLEASH_CLIENT_TOKEN", "UNLEASH_ADMIN_TOKEN"]
                            .map(str::to_owned),
                    );
                }
                for name in variables_read(code) {
                    if !set.contains(&name)
                        && !from_system.contains(&name.as_str())
                        && !source.contains(&format!("\"{name}\""))
                    {
                        unset.push(format!(
                            "{}: `{}` reads `${name}`, which neither the page, the system nor \
                             fig sets",
                            command.place, command.text
                        ));
                    }
                }
            }
        }
    }
    assert!(unset.is_empty(), "{}", unset.join("\n"));
    assert_eq!(variables_read("a $B ${C_1} $(d) $1"), ["B", "C_1"]);
    assert_eq!(
        variables_set("export A=1 B=2; for pod in x"),
        ["A", "A", "B", "pod"]
    );
}
