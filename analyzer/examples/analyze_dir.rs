//! Runs the analyzer on a directory and prints a one-line summary (used by
//! `scripts/robustness.sh` and for measuring peak memory with `/usr/bin/time -v`).
//!
//! Usage: `analyze_dir PATH [--details | --phases | --baseline]`. Exit codes: 0 analysed, 2 not a workspace.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: analyze_dir PATH [--details]");
        return ExitCode::from(2);
    };
    let flag = args.next();
    let details = flag.as_ref().is_some_and(|arg| arg == "--details");
    let phases = flag.as_ref().is_some_and(|arg| arg == "--phases");
    let baseline = flag.as_ref().is_some_and(|arg| arg == "--baseline");
    let start = Instant::now();
    let mut options = analyzer::Options::new();
    options.depth = std::env::var("FIG_DEPTH")
        .ok()
        .and_then(|depth| depth.parse().ok());
    if phases {
        options.progress = Some(std::sync::Arc::new(move |phase| {
            eprintln!("{:>6} ms  {phase:?}", start.elapsed().as_millis());
        }));
    }
    match analyzer::analyze(&path, &options) {
        Ok(report) => {
            println!(
                "ok modules={} edges={} cycles={} bidirectional={} cut={} suggestions={} skipped={} endpoints={} loc={} ms={}",
                report.modules.len(),
                report.edges.len(),
                report.cycles.len(),
                report.bidirectional.len(),
                report.cut.len(),
                report.suggestions.len(),
                report.skipped_files.len(),
                report.endpoints.len(),
                report
                    .modules
                    .iter()
                    .map(|module| u64::from(module.lines_of_code))
                    .sum::<u64>(),
                start.elapsed().as_millis()
            );
            if baseline {
                // What `analyze` is compared with: reading and parsing the same files, one thread.
                let mut files: Vec<&std::path::Path> = report
                    .modules
                    .iter()
                    .filter(|module| !module.inline)
                    .map(|module| module.file.as_path())
                    .collect();
                files.sort();
                files.dedup();
                let start = Instant::now();
                let mut lines = 0;
                for file in &files {
                    let Ok(text) = std::fs::read_to_string(file) else {
                        continue;
                    };
                    lines += text.lines().count();
                    let _ = syn::parse_file(&text);
                }
                println!(
                    "baseline files={} lines={lines} ms={}",
                    files.len(),
                    start.elapsed().as_millis()
                );
            }
            if details {
                for edge in &report.edges {
                    println!(
                        "edge {} -> {} w={} {:?} {:?} test={} items={:?}",
                        edge.from,
                        edge.to,
                        edge.weight,
                        edge.hierarchy,
                        edge.usage,
                        edge.test_only,
                        edge.items
                    );
                }
                for cycle in &report.cycles {
                    println!("cycle {:?}", cycle.members);
                }
                for pair in &report.bidirectional {
                    println!("pair {} <-> {}", pair.a, pair.b);
                }
                for suggestion in &report.suggestions {
                    println!("suggest {suggestion:#?}");
                }
                for skipped in &report.skipped_files {
                    println!("skipped {skipped:?}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("error {err}");
            ExitCode::from(2)
        }
    }
}
