//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;
use std::process::Command;

pub mod faulty;
pub mod procs;
pub mod synthetic;
pub mod tls;
pub mod unleash;
pub mod upstreams;
pub mod wire;

/// The `fig` binary under test.
pub fn fig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fig"))
}

/// The workspace root (where the root `Cargo.toml` is).
#[allow(dead_code)]
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command and renders what it did as uv's snapshots do: exit code, stdout, stderr, with
/// each `(from, to)` of `filters` replaced (e.g. a temporary path by `[TEMP_DIR]`).
#[allow(dead_code)]
pub fn run_for_snapshot(command: &mut Command, filters: &[(&str, &str)]) -> String {
    let output = command.output().expect("the command starts");
    let mut text = format!(
        "exit_code: {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
        output
            .status
            .code()
            .map_or_else(|| "signal".to_owned(), |code| code.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    for (from, to) in filters {
        text = text.replace(from, to);
    }
    text
}

/// Copies a directory tree (a fixture) into `to`, which is created.
#[allow(dead_code)]
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read the fixture directory") {
        let entry = entry.expect("read a fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a fixture file");
        }
    }
}

/// Splits a command line as a POSIX shell does for what `fig demo`'s banner prints: words
/// separated by spaces, single quotes keeping a word with spaces together, and a ` # ` comment
/// at the end dropped.
#[allow(dead_code)]
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.trim().chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            '#' if !quoted && !in_word => break,
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}
