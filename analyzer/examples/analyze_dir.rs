//! Runs the analyzer on a directory and prints a one-line summary (used by
//! `scripts/robustness.sh` and for measuring peak memory with `/usr/bin/time -v`).
//!
//! Usage: `analyze_dir PATH [--details]`. Exit codes: 0 analysed, 2 not a workspace.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: analyze_dir PATH [--details]");
        return ExitCode::from(2);
    };
    let details = args.next().is_some_and(|arg| arg == "--details");
    let start = Instant::now();
    match analyzer::analyze(&path, &analyzer::Options::new()) {
        Ok(report) => {
            println!(
                "ok modules={} edges={} cycles={} bidirectional={} cut={} suggestions={} skipped={} loc={} ms={}",
                report.modules.len(),
                report.edges.len(),
                report.cycles.len(),
                report.bidirectional.len(),
                report.cut.len(),
                report.suggestions.len(),
                report.skipped_files.len(),
                report
                    .modules
                    .iter()
                    .map(|module| u64::from(module.lines_of_code))
                    .sum::<u64>(),
                start.elapsed().as_millis()
            );
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
