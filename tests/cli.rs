//! What people expect of any CLI (issue 17, item 10): shell completions, a man page, the same
//! option names for the same things in every command, and counts that read as English.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use clap::CommandFactory as _;

use crate::support::fig;

/// A tiny workspace whose two modules use each other once each: one two-way pair, one cycle.
fn one_pair_workspace(dir: &Path) {
    let files = [
        (
            "Cargo.toml",
            "[package]\nname = \"pair\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
        ),
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "src/a.rs",
            "pub struct A;\npub fn make_b() -> crate::b::B {\n    crate::b::B\n}\n",
        ),
        (
            "src/b.rs",
            "pub struct B;\npub fn take_a(_a: crate::a::A) {}\n",
        ),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create a directory");
        std::fs::write(path, text).expect("write a fixture file");
    }
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `fig completions SHELL` prints a script the shell accepts, naming the subcommands.
#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = fig()
            .args(["completions", shell])
            .output()
            .expect("fig runs");
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{shell}: {stderr}");
        for word in ["analyze", "check", "flags", "format"] {
            assert!(stdout.contains(word), "{shell} completions lack `{word}`");
        }
    }
    // bash loads it and registers the completion for `fig`.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("fig.bash");
    let output = fig()
        .args(["completions", "bash"])
        .output()
        .expect("fig runs");
    std::fs::write(&script, &output.stdout).expect("write the script");
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p fig", script.display()))
        .output()
        .expect("bash runs");
    let (stdout, stderr) = text(&loaded);
    assert!(loaded.status.success(), "bash: {stderr}");
    assert!(
        stdout.contains("-F _fig") && stdout.trim_end().ends_with(" fig"),
        "{stdout}"
    );

    let output = fig()
        .args(["completions", "tcsh"])
        .output()
        .expect("fig runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// `fig man` prints roff for fig(1) listing every command; `fig man analyze` the command's own
/// page with its options; `--out-dir` writes every page.
#[test]
fn man_pages() {
    let output = fig().arg("man").output().expect("fig runs");
    let (page, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(page.contains(".TH fig 1"), "{page}");
    for command in [
        "analyze", "suggest", "check", "flags", "proxy", "route", "demo",
    ] {
        assert!(page.contains(command), "fig(1) does not list `{command}`");
    }
    assert!(page.contains("Exit status"), "fig(1) gives the exit codes");

    let output = fig().args(["man", "analyze"]).output().expect("fig runs");
    let (page, _) = text(&output);
    assert!(output.status.success());
    assert!(page.contains(".TH fig-analyze 1"), "{page}");
    assert!(
        page.contains(r"\-\-format") && page.contains(r"\-\-output"),
        "{page}"
    );

    let output = fig().args(["man", "nonsense"]).output().expect("fig runs");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("`fig nonsense` is not a fig command"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("man1");
    let output = fig()
        .args(["man", "--out-dir"])
        .arg(&out)
        .output()
        .expect("fig runs");
    assert!(output.status.success(), "{}", text(&output).1);
    for name in [
        "fig.1",
        "fig-analyze.1",
        "fig-check.1",
        "fig-flags-create.1",
    ] {
        assert!(out.join(name).is_file(), "{name} was not written");
    }
}

/// The same thing has the same name everywhere: every command that prints a report or data
/// writes it to a file with `-o/--output FILE`, every `--format` has a `text` for people, a
/// config file is `-c/--config`. Old spellings stay as hidden aliases.
#[test]
fn option_names_are_the_same_in_every_command() {
    let mut cli = fig::Cli::command();
    cli.build();
    let mut commands = Vec::new();
    fn walk(command: &clap::Command, path: String, acc: &mut Vec<(String, clap::Command)>) {
        for sub in command.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let name = format!("{path} {}", sub.get_name()).trim().to_owned();
            acc.push((name.clone(), sub.clone()));
            walk(sub, name, acc);
        }
    }
    walk(&cli, String::new(), &mut commands);
    let mut problems = Vec::new();
    let mut with_output = BTreeSet::new();
    for (name, command) in &commands {
        for arg in command.get_arguments() {
            let long = arg.get_long().unwrap_or("");
            let short = arg.get_short();
            let is_file = arg
                .get_value_names()
                .is_some_and(|names| names.iter().any(|value| value == "FILE"));
            match long {
                "output" => {
                    with_output.insert(name.clone());
                    if short != Some('o') || !is_file {
                        problems.push(format!("fig {name}: --output should be -o/--output FILE"));
                    }
                }
                "config" if short != Some('c') => {
                    problems.push(format!("fig {name}: --config should also be -c"));
                }
                "format" => {
                    let values: Vec<String> = arg
                        .get_possible_values()
                        .iter()
                        .flat_map(|value| value.get_name_and_aliases().map(str::to_owned))
                        .collect();
                    if !values.iter().any(|value| value == "text") {
                        problems.push(format!(
                            "fig {name}: --format has no `text` for people ({values:?})"
                        ));
                    }
                }
                "to" | "out" | "output-file" => {
                    problems.push(format!("fig {name}: --{long} should be -o/--output"));
                }
                _ => {}
            }
        }
    }
    for name in ["analyze", "suggest", "check", "flags export"] {
        if !with_output.contains(name) {
            problems.push(format!("fig {name} has no -o/--output FILE"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `-o` writes what stdout would have shown, for `check` too (whose exit code stays 1 on
/// findings), and the old `fig flags export --to` still works.
#[test]
fn output_goes_to_the_file_and_old_spellings_still_work() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let workspace = dir.path().join("pair");
    one_pair_workspace(&workspace);
    std::fs::write(workspace.join("fig.toml"), "[check]\nmax_cycles = 0\n").expect("write");
    let out = dir.path().join("findings.txt");
    let output = fig()
        .args(["check", "-o"])
        .arg(&out)
        .arg(&workspace)
        .output()
        .expect("fig runs");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output).1);
    assert!(output.stdout.is_empty(), "nothing on stdout with -o");
    let written = std::fs::read_to_string(&out).expect("the findings file");
    assert!(written.contains("error[cycle-limit]"), "{written}");

    let out = dir.path().join("suggestions.json");
    let output = fig()
        .args(["suggest", "--format", "json", "--output"])
        .arg(&out)
        .arg(&workspace)
        .output()
        .expect("fig runs");
    assert!(output.status.success(), "{}", text(&output).1);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("JSON");
    assert_eq!(
        json["suggestions"].as_array().map(Vec::len),
        Some(1),
        "{json}"
    );

    let store = dir.path().join("flags.json");
    let flags = |args: &[&str]| {
        let output = fig()
            .arg("flags")
            .arg("--store")
            .arg(&store)
            .args(args)
            .output()
            .expect("fig runs");
        assert!(output.status.success(), "{args:?}: {}", text(&output).1);
        text(&output).0
    };
    flags(&["create", "f"]);
    for option in ["-o", "--output", "--to"] {
        let file = dir.path().join(format!("export{option}.json"));
        flags(&["export", option, file.to_str().expect("a UTF-8 path")]);
        let exported = std::fs::read_to_string(&file).expect("the export");
        assert!(exported.contains("\"name\": \"f\""), "{option}: {exported}");
    }
    assert_eq!(
        flags(&["list", "--format", "text"]),
        flags(&["list", "--format", "table"])
    );
}

/// One of a thing is singular: `1 two-way pair`, `1 module cycle`, `the direct reference`.
#[test]
fn counts_of_one_are_singular() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let workspace = dir.path().join("pair");
    one_pair_workspace(&workspace);
    std::fs::write(
        workspace.join("fig.toml"),
        "[check]\nmax_cycles = 0\nmax_bidirectional = 0\n",
    )
    .expect("write");
    let baseline = dir.path().join("baseline.json");
    let output = fig()
        .arg("check")
        .arg(&workspace)
        .arg("--write-baseline")
        .arg(&baseline)
        .output()
        .expect("fig runs");
    let (stdout, stderr) = text(&output);
    assert!(
        stderr.contains(": 2 cycle edges, 1 two-way pair\n"),
        "{stderr}"
    );
    assert!(
        stdout.contains("1 module cycle, at most 0 allowed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 two-way module pair, at most 0 allowed"),
        "{stdout}"
    );

    let output = fig()
        .args(["suggest"])
        .arg(&workspace)
        .output()
        .expect("fig runs");
    let (stdout, _) = text(&output);
    // The one reference `b` makes to `a` is to a type: a "move these types" step counts it.
    assert!(stdout.contains(": 1 reference (first at"), "{stdout}");
    assert!(!stdout.contains(" 1 references"), "{stdout}");
}

/// Issue 17, item 11: the README's first command (`cargo run --release --no-default-features --
/// analyze`) builds the analyzer only: no async runtime, HTTP stack, TLS or example app in its
/// dependency tree, while the default build (what `cargo install --path .` installs) keeps
/// every command.
#[test]
fn the_first_command_builds_only_the_analyzer() {
    let root = crate::support::workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    assert!(
        readme.contains("cargo run --release --no-default-features -- analyze examples/shop"),
        "the README's first command is the analyzer-only build"
    );
    let tree = |features: &[&str]| {
        let output = std::process::Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "tree",
                "--offline",
                "-p",
                "fig",
                "-e",
                "normal,build",
                "--prefix",
                "none",
                "--format",
                "{p}",
            ])
            .args(features)
            .output()
            .expect("cargo tree runs");
        assert!(
            output.status.success(),
            "cargo tree: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect::<BTreeSet<String>>()
    };
    let minimal = tree(&["--no-default-features"]);
    let full = tree(&[]);
    for heavy in [
        "tokio",
        "hyper",
        "reqwest",
        "rustls",
        "axum",
        "shop",
        "payment-service",
        "strangler-proxy",
        "feature-flags",
        "unleash-yggdrasil",
        "mimalloc",
    ] {
        assert!(
            !minimal.contains(heavy),
            "`{heavy}` is built by the analyzer-only fig"
        );
        assert!(
            full.contains(heavy),
            "`{heavy}` is missing from the full fig"
        );
    }
    assert!(minimal.contains("analyzer") && minimal.contains("templates"));
}
