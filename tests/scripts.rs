//! The scripts in `scripts/` that turn raw measurements into the numbers we report, run on inputs
//! whose answer is known.
//!
//! They are Python (the shared bench's summary is too). Without `python3` the test says loudly
//! that it skipped, except when `CI=true` (`.ci/run` installs it), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::workspace_root;

/// `python3`, or `None` after saying why the test is skipped.
fn python3(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("python3"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let why = "no python3 on the PATH (.ci/run installs it)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI=true, but {why}"
        );
        eprintln!("SKIPPED {test}: {why}");
    }
    found
}

const HEADER: &str = "round,conns,target,rps,avg_us,p50_us,p75_us,p90_us,p99_us,socket_errors,non2xx,proxy_cpu_us_per_req,upstream_cpu_us_per_req\n";

/// One `raw.csv` row: round, connections, target, req/s, p99 and proxy CPU per request (empty for
/// `direct`, as the bench writes it).
fn row(round: u32, conns: u32, target: &str, rps: f64, p99: f64, cpu: Option<f64>) -> String {
    let cpu = cpu.map_or(String::new(), |cpu| cpu.to_string());
    format!("{round},{conns},{target},{rps},500,450,520,700,{p99},0,0,{cpu},7.0\n")
}

fn write_run(dir: &Path, rows: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("raw.csv"), format!("{HEADER}{}", rows.concat())).unwrap();
}

fn ratios(python: &Path, args: &[&str]) -> std::process::Output {
    Command::new(python)
        .arg(workspace_root().join("scripts/bench-ratios.py"))
        .args(args)
        .output()
        .expect("cannot run scripts/bench-ratios.py")
}

#[test]
fn bench_ratios_pairs_each_round_and_pools_runs() {
    let test = "scripts::bench_ratios_pairs_each_round_and_pools_runs";
    let Some(python) = python3(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("proxy-a"), tmp.path().join("proxy-b"));
    // Fig's req/s against NGINX per round: 1.10 and 0.90 in run a, 1.05 in run b. Its p99: 0.90,
    // 1.20, 1.00. Its CPU per request: 10 against 12 every time.
    write_run(
        &a,
        &[
            row(1, 32, "direct", 150_000.0, 400.0, None),
            row(1, 32, "nginx", 50_000.0, 1_000.0, Some(12.0)),
            row(1, 32, "fig", 55_000.0, 900.0, Some(10.0)),
            row(2, 32, "fig", 45_000.0, 1_200.0, Some(10.0)),
            row(2, 32, "nginx", 50_000.0, 1_000.0, Some(12.0)),
            row(2, 32, "direct", 150_000.0, 400.0, None),
        ],
    );
    write_run(
        &b,
        &[
            row(1, 32, "nginx", 60_000.0, 1_000.0, Some(12.0)),
            row(1, 32, "fig", 63_000.0, 1_000.0, Some(10.0)),
            row(1, 32, "direct", 150_000.0, 400.0, None),
        ],
    );
    let out_file = tmp.path().join("ratios.md");
    let output = ratios(
        &python,
        &[
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench-ratios failed: {stderr}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        text,
        "--out holds the table printed"
    );
    assert!(
        text.starts_with("# Per-round ratios, fig / peer (2 run(s), 3 rounds)"),
        "{text}"
    );
    let line = |peer: &str, metric: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("| {peer} | {metric} |")))
            .unwrap_or_else(|| panic!("no {peer} {metric} row in:\n{text}"))
            .to_owned()
    };
    // | peer | metric | median | interval | min-max | better in |
    let cells = |line: String| -> Vec<String> {
        line.split('|')
            .map(|cell| cell.trim().to_owned())
            .filter(|cell| !cell.is_empty())
            .collect()
    };
    let rps = cells(line("nginx", "req/s"));
    assert_eq!(
        (&rps[2][..], &rps[4][..], &rps[5][..]),
        ("1.050", "0.90-1.10", "2 of 3")
    );
    let p99 = cells(line("nginx", "p99"));
    assert_eq!(
        (&p99[2][..], &p99[4][..], &p99[5][..]),
        ("1.000", "0.90-1.20", "1 of 3")
    );
    let cpu = cells(line("nginx", "proxy CPU/req"));
    assert_eq!((&cpu[2][..], &cpu[5][..]), ("0.833", "3 of 3"));
    // The interval of the median lies within the range of the ratios.
    let (low, high) = rps[3].split_once('-').unwrap();
    let (low, high): (f64, f64) = (low.parse().unwrap(), high.parse().unwrap());
    assert!(
        (0.9..=1.05).contains(&low) && (1.05..=1.1).contains(&high),
        "interval {low}-{high}"
    );
    // `direct` has no CPU figure: no row rather than a made-up one.
    assert!(
        !text.contains("| direct | proxy CPU/req |"),
        "a CPU ratio to direct:\n{text}"
    );
    assert!(text.contains("| direct | req/s |"), "{text}");
}

#[test]
fn bench_ratios_names_what_is_missing() {
    let test = "scripts::bench_ratios_names_what_is_missing";
    let Some(python) = python3(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("proxy-a");
    write_run(&run, &[row(1, 32, "nginx", 50_000.0, 1_000.0, Some(12.0))]);

    let output = ratios(&python, &[run.to_str().unwrap(), "--target", "fig"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no target `fig` in the results (have: nginx)"),
        "{stderr}"
    );

    let missing = tmp.path().join("nowhere");
    let output = ratios(&python, &[missing.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read") && stderr.contains("nowhere/raw.csv"),
        "{stderr}"
    );
}
