//! Runs the analyzer on a directory and prints a one-line summary (used by
//! `scripts/robustness.sh` and for measuring peak memory with `/usr/bin/time -v`).
//!
//! Usage: `analyze_dir PATH [--details | --phases | --baseline | --edges]`. Exit codes: 0 analysed,
//! 2 not a workspace. `--edges` prints one tab-separated line per module (`module`, id, file) and
//! per edge and location (`edge` or `uncertain`, from, to, file:line:column, items with how each
//! was resolved), for sampling edges to check by hand (`scripts/edge-sample.py`).

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
    let edge_lines = flag.as_ref().is_some_and(|arg| arg == "--edges");
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
                "ok modules={} edges={} uncertain_edges={} cycles={} bidirectional={} cut={} suggestions={} skipped={} endpoints={} loc={} ms={}",
                report.modules.len(),
                report.edges.len(),
                report.uncertain_edges.len(),
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
            // CPU time is steadier than wall time on a busy machine: the process's (with the
            // `cargo metadata` it waited for) up to here, from /proc on Linux.
            let analyze_cpu_ms = cpu_ms("/proc/self/stat", true);
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
                let thread_cpu_start = cpu_ms("/proc/thread-self/stat", false);
                let mut lines = 0;
                for file in &files {
                    let Ok(text) = std::fs::read_to_string(file) else {
                        continue;
                    };
                    lines += text.lines().count();
                    let _ = syn::parse_file(&text);
                }
                let thread_cpu_end = cpu_ms("/proc/thread-self/stat", false);
                println!(
                    "baseline files={} lines={lines} ms={} cpu_ms={} analyze_cpu_ms={}",
                    files.len(),
                    start.elapsed().as_millis(),
                    thread_cpu_end.saturating_sub(thread_cpu_start),
                    analyze_cpu_ms
                );
            }
            if edge_lines {
                for module in &report.modules {
                    println!("module\t{}\t{}", module.id, module.file.display());
                }
                for (kind, edges) in [
                    ("edge", &report.edges),
                    ("uncertain", &report.uncertain_edges),
                ] {
                    for edge in edges {
                        let items: Vec<String> = edge
                            .resolutions
                            .iter()
                            .map(|resolution| {
                                format!(
                                    "{}={}",
                                    resolution.item.as_deref().unwrap_or("<module>"),
                                    resolution.resolution.as_str()
                                )
                            })
                            .collect();
                        for location in &edge.locations {
                            println!(
                                "{kind}\t{}\t{}\t{}:{}:{}\t{}",
                                edge.from,
                                edge.to,
                                location.file.display(),
                                location.line,
                                location.column,
                                items.join(" ")
                            );
                        }
                    }
                }
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

/// User + system CPU time in ms from a `/proc/.../stat` file (with the waited-for children's
/// when `children`); 0 where there is no such file.
fn cpu_ms(path: &str, children: bool) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0;
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17: indices 11-14 here. Clock ticks are 100 Hz
    // on Linux.
    let mut ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    if children {
        ticks += fields.get(13).copied().unwrap_or(0) + fields.get(14).copied().unwrap_or(0);
    }
    ticks * 10
}
