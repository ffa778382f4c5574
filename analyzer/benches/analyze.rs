//! How long `analyze` takes on a large workspace, next to the baseline of merely reading and
//! parsing the same files with syn on one thread.
//!
//! The workspace is `FIG_BENCH_WORKSPACE` when set (e.g. a checkout of a large public workspace),
//! else a synthetic one of about 400k lines generated into a temporary directory: 8 crates of 60
//! modules, each module with types, impls, free functions and bodies that call into other
//! modules through `use`s and qualified paths.
//!
//! `FIG_BENCH_GENERATE_ONLY=DIR cargo bench -p analyzer --bench analyze` writes the synthetic
//! workspace to DIR and exits, to measure peak memory with
//! `/usr/bin/time -v target/release/examples/analyze_dir DIR`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group};

const CRATES: usize = 8;
const MODULES_PER_CRATE: usize = 60;
const TYPES_PER_MODULE: usize = 13;

fn bench(c: &mut Criterion) {
    let generated;
    let workspace: PathBuf = match std::env::var_os("FIG_BENCH_WORKSPACE") {
        Some(path) => PathBuf::from(path),
        None => {
            generated = tempfile::tempdir().expect("tempdir");
            generate(generated.path());
            generated.path().to_path_buf()
        }
    };
    let options = analyzer::Options::new();
    let report = analyzer::analyze(&workspace, &options).expect("the benchmark workspace loads");
    let mut files: Vec<PathBuf> = report
        .modules
        .iter()
        .filter(|module| !module.inline)
        .map(|module| module.file.clone())
        .collect();
    files.sort();
    files.dedup();
    let lines: usize = files
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .map(|text| text.lines().count())
        .sum();
    eprintln!(
        "workspace {}: {} files, {lines} lines, {} modules, {} edges",
        workspace.display(),
        files.len(),
        report.modules.len(),
        report.edges.len()
    );

    let mut group = c.benchmark_group("analyze");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(3));
    group.bench_function("read_and_parse_single_thread", |b| {
        b.iter(|| {
            let mut items = 0;
            for file in &files {
                let Ok(text) = std::fs::read_to_string(file) else {
                    continue;
                };
                if let Ok(parsed) = syn::parse_file(&text) {
                    items += parsed.items.len();
                }
            }
            items
        });
    });
    group.bench_function("analyze", |b| {
        b.iter(|| {
            analyzer::analyze(&workspace, &options)
                .expect("analyze")
                .edges
                .len()
        });
    });
    group.finish();
}

/// Writes a synthetic workspace of about 400k lines into `dir`.
fn generate(dir: &Path) {
    let members: Vec<String> = (0..CRATES)
        .map(|krate| format!("\"crate{krate}\""))
        .collect();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[workspace]\nmembers = [{}]\nresolver = \"3\"\n",
            members.join(", ")
        ),
    )
    .expect("write workspace manifest");
    for krate in 0..CRATES {
        let root = dir.join(format!("crate{krate}"));
        std::fs::create_dir_all(root.join("src/domain")).expect("create dirs");
        let mut manifest = format!(
            "[package]\nname = \"crate{krate}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\n"
        );
        if krate > 0 {
            writeln!(
                manifest,
                "crate{} = {{ path = \"../crate{}\" }}",
                krate - 1,
                krate - 1
            )
            .expect("write");
        }
        std::fs::write(root.join("Cargo.toml"), manifest).expect("write manifest");
        let mut lib = String::from("//! Generated crate.\n\npub mod domain;\n");
        if krate > 0 {
            writeln!(
                lib,
                "\npub use crate{}::domain::m0::Type0 as Upstream;",
                krate - 1
            )
            .expect("write");
        }
        std::fs::write(root.join("src/lib.rs"), lib).expect("write lib");
        let mut domain = String::from("//! Generated modules.\n\n");
        for module in 0..MODULES_PER_CRATE {
            writeln!(domain, "pub mod m{module};").expect("write");
            std::fs::write(
                root.join(format!("src/domain/m{module}.rs")),
                module_source(krate, module),
            )
            .expect("write module");
        }
        std::fs::write(root.join("src/domain/mod.rs"), domain).expect("write domain");
    }
}

/// One module of about 830 lines: types with impls, and bodies that use neighbouring modules.
fn module_source(krate: usize, module: usize) -> String {
    let next = (module + 1) % MODULES_PER_CRATE;
    let other = (module * 7 + 3) % MODULES_PER_CRATE;
    let mut res = String::with_capacity(40_000);
    writeln!(res, "//! Generated module {module} of crate {krate}.\n").expect("write");
    writeln!(res, "use std::collections::HashMap;\n").expect("write");
    writeln!(
        res,
        "use crate::domain::m{next}::{{Type0 as NextType, helper_0}};"
    )
    .expect("write");
    writeln!(res, "use super::m{other};\n").expect("write");
    for index in 0..TYPES_PER_MODULE {
        writeln!(
            res,
            r#"/// A generated type.
#[derive(Debug, Clone, Default)]
pub struct Type{index} {{
    pub id: u64,
    pub name: String,
    pub values: Vec<u32>,
    pub index: HashMap<String, usize>,
}}

impl Type{index} {{
    /// Makes one.
    pub fn new(id: u64, name: &str) -> Self {{
        Type{index} {{ id, name: name.to_owned(), values: Vec::new(), index: HashMap::new() }}
    }}

    /// Adds a value.
    pub fn insert_value(&mut self, value: u32) -> usize {{
        self.values.push(value);
        let position = self.values.len() - 1;
        self.index.insert(format!("{{}}-{{}}", self.name, value), position);
        position
    }}

    /// Sums the values, scaled by the neighbour.
    pub fn total(&self, next: &NextType) -> u64 {{
        let mut sum = 0u64;
        for (position, value) in self.values.iter().enumerate() {{
            if position % 2 == 0 {{
                sum += u64::from(*value) * next.id;
            }} else {{
                sum = sum.saturating_sub(u64::from(*value));
            }}
        }}
        match self.values.first() {{
            Some(first) if *first > 10 => sum + helper_0(*first),
            Some(_) => sum,
            None => m{other}::helper_1(0),
        }}
    }}

    /// Looks a value up.
    pub fn find(&self, key: &str) -> Option<u32> {{
        let position = self.index.get(key)?;
        self.values.get(*position).copied().filter(|value| *value != 0)
    }}

    /// Builds a report line.
    pub fn describe(&self) -> String {{
        let other = m{other}::Type{index}::new(self.id + 1, "other");
        let names: Vec<String> = self.values.iter().map(|value| format!("{{}}:{{}}", other.name, value)).collect();
        names.join(", ")
    }}

    /// Merges another one in.
    pub fn merge(&mut self, other: &Type{index}) {{
        for value in &other.values {{
            self.insert_value(*value);
        }}
        self.id = self.id.max(other.id);
    }}
}}
"#
        )
        .expect("write");
    }
    for index in 0..4 {
        writeln!(
            res,
            r#"/// A generated helper.
pub fn helper_{index}(input: u32) -> u64 {{
    let mut acc = u64::from(input);
    let mut values = Vec::with_capacity(8);
    for step in 0..8u32 {{
        acc = acc.wrapping_mul(31).wrapping_add(u64::from(step));
        values.push(acc % 97);
    }}
    let next = NextType::new(acc, "helper");
    values.iter().sum::<u64>() + next.id
}}
"#
        )
        .expect("write");
    }
    res
}

criterion_group!(benches, bench);

fn main() {
    if let Some(dir) = std::env::var_os("FIG_BENCH_GENERATE_ONLY") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create the output directory");
        generate(&dir);
        eprintln!("generated a synthetic workspace in {}", dir.display());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
