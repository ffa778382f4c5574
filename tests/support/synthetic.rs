//! A synthetic workspace of the size the HTML report must handle (issue 19): `n_crates` crates,
//! each a tree of subsystems, modules and leaves (`c3::s1::m2::l4`), with `use` edges that mostly
//! run one way (down the tree's order, and to lower crates) and a few that run back, which make
//! tangles. Deterministic: the same arguments write the same files.

use std::fmt::Write as _;
use std::path::Path;

/// The shape of the workspace; 8 crates of 5 × 5 × 9 give 2,048 modules.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub crates: usize,
    pub subsystems: usize,
    pub modules: usize,
    pub leaves: usize,
}

impl Shape {
    /// About 2,000 modules.
    pub const LARGE: Shape = Shape {
        crates: 8,
        subsystems: 5,
        modules: 5,
        leaves: 9,
    };
}

/// Writes the workspace into `root` (which exists).
pub fn write_workspace(root: &Path, shape: Shape) {
    let members: Vec<String> = (0..shape.crates).map(|k| format!("\"c{k}\"")).collect();
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[workspace]\nmembers = [{}]\nresolver = \"2\"\n",
            members.join(", ")
        ),
    )
    .expect("write the workspace manifest");
    // A small linear congruential generator keeps the edges the same on every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % bound.max(1)
    };
    for krate in 0..shape.crates {
        let dir = root.join(format!("c{krate}"));
        std::fs::create_dir_all(dir.join("src")).expect("create a crate");
        let mut manifest = format!(
            "[package]\nname = \"c{krate}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n"
        );
        for lower in krate.saturating_sub(2)..krate {
            let _ = writeln!(manifest, "c{lower} = {{ path = \"../c{lower}\" }}");
        }
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("write a crate manifest");
        // Every module of the crate, in tree order: (path segments, type name).
        let mut all: Vec<Vec<String>> = vec![Vec::new()];
        for s in 0..shape.subsystems {
            all.push(vec![format!("s{s}")]);
            for m in 0..shape.modules {
                all.push(vec![format!("s{s}"), format!("m{m}")]);
                for l in 0..shape.leaves {
                    all.push(vec![format!("s{s}"), format!("m{m}"), format!("l{l}")]);
                }
            }
        }
        let type_name = |path: &[String]| {
            if path.is_empty() {
                "Root".to_owned()
            } else {
                format!("T{}", path.join("_"))
            }
        };
        for (idx, path) in all.iter().enumerate() {
            let mut text = String::new();
            let children: Vec<&Vec<String>> = all
                .iter()
                .filter(|other| other.len() == path.len() + 1 && other.starts_with(path))
                .collect();
            for child in &children {
                let _ = writeln!(
                    text,
                    "pub mod {};",
                    child.last().expect("a child has a name")
                );
            }
            let own = type_name(path);
            let _ = writeln!(text, "\npub struct {own};\n");
            // Edges: two or three to modules later in tree order (downwards), one in twenty
            // back up (a tangle), one in six to a lower crate.
            let n_uses = if path.len() == 3 { 2 + next(2) } else { 1 };
            for use_idx in 0..n_uses {
                let back = next(20) == 0;
                let target = if back && idx > 1 {
                    // Back to a module not long before, in the same subsystem when possible.
                    idx - 1 - next(idx.min(12))
                } else if idx + 1 < all.len() {
                    idx + 1 + next((all.len() - idx - 1).min(40))
                } else {
                    continue;
                };
                let target_path = &all[target];
                if target_path.is_empty() || target_path == path || path.starts_with(target_path) {
                    continue;
                }
                let name = type_name(target_path);
                let crate_name = if krate > 0 && next(6) == 0 {
                    format!("c{}", krate - 1)
                } else {
                    "crate".to_owned()
                };
                let _ = writeln!(
                    text,
                    "use {crate_name}::{}::{name} as U{use_idx};\npub fn f{use_idx}(_value: &U{use_idx}) -> Option<U{use_idx}> {{ None }}\n",
                    target_path.join("::")
                );
            }
            let file = if path.is_empty() {
                dir.join("src/lib.rs")
            } else if children.is_empty() {
                dir.join("src")
                    .join(path[..path.len() - 1].join("/"))
                    .join(format!("{}.rs", path[path.len() - 1]))
            } else {
                dir.join("src").join(path.join("/")).join("mod.rs")
            };
            std::fs::create_dir_all(file.parent().expect("a file has a directory"))
                .expect("create a module directory");
            std::fs::write(&file, text).expect("write a module");
        }
    }
}
