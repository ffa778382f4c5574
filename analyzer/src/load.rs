//! The only IO of the analyzer: `cargo metadata` and reading source files.
//!
//! We run `cargo metadata --no-deps --offline` through `cargo_metadata`. `--no-deps` is the robust
//! choice: the analysis needs only the workspace members, their targets and their dependencies on
//! each other, and it must work on a machine that has never downloaded the workspace's external
//! dependencies (no network). guppy needs the full resolved graph, that is every dependency's
//! manifest on disk, so it would add a failure mode without adding information we use: the one
//! thing `--no-deps` does not tell, a registry dependency patched to a member
//! (`[patch.crates-io]`), we read from `Cargo.lock`, the resolved graph as cargo wrote it, or
//! from the patch table when there is no lock file ([`Patched`]).

use std::io;
use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, Edition, MetadataCommand, TargetKind};

use crate::Error;
use crate::report::Target;

/// Which kinds of targets to analyse besides libraries and binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetSelection {
    pub(crate) tests: bool,
    pub(crate) examples: bool,
}

/// The workspace as `cargo metadata` describes it, reduced to what the analysis needs.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    /// Sorted by Rust name.
    pub(crate) crates: Vec<LoadedCrate>,
}

/// One workspace member.
#[derive(Debug, Clone)]
pub(crate) struct LoadedCrate {
    /// Rust name: the lib target's name, else the package name with `-` turned into `_`.
    pub(crate) name: String,
    pub(crate) package: String,
    pub(crate) version: String,
    pub(crate) manifest_path: PathBuf,
    /// `use` paths are crate-relative in edition 2015.
    pub(crate) edition_2015: bool,
    /// Whether the crate has a library target (only a lib can be used by other crates).
    pub(crate) has_lib: bool,
    pub(crate) targets: Vec<Target>,
    /// Dependencies on other workspace members.
    pub(crate) deps: Vec<WorkspaceDep>,
}

/// A dependency of a member on another member.
#[derive(Debug, Clone)]
pub(crate) struct WorkspaceDep {
    /// The name code uses for it (the `package = ...` rename or the dependency's lib name).
    pub(crate) extern_name: String,
    /// Rust name of the member depended on.
    pub(crate) krate: String,
    /// Normal (or build) dependency, as opposed to a dev-dependency.
    pub(crate) normal: bool,
}

/// Runs `cargo metadata` on `path` (a directory holding `Cargo.toml`, or a `Cargo.toml`).
///
/// The workspace root gives every member; a member package's own directory gives that package
/// alone (so `fig analyze examples/shop` is about the shop, not the whole workspace around it).
pub(crate) fn load_workspace(path: &Path, selection: TargetSelection) -> Result<Workspace, Error> {
    let _span = tracing::info_span!("load", path = %path.display()).entered();
    let not_a_workspace = |reason: String| Error::NotAWorkspace {
        path: path.to_path_buf(),
        reason,
    };
    let manifest = if path.is_dir() {
        path.join("Cargo.toml")
    } else if path.file_name().is_some_and(|name| name == "Cargo.toml") {
        path.to_path_buf()
    } else if path.exists() {
        return Err(not_a_workspace(
            "not a directory or a `Cargo.toml`".to_owned(),
        ));
    } else {
        return Err(not_a_workspace("no such file or directory".to_owned()));
    };
    if !manifest.is_file() {
        return Err(not_a_workspace(format!(
            "no `Cargo.toml` in `{}`",
            path.display()
        )));
    }

    let mut command = MetadataCommand::new();
    command
        .manifest_path(&manifest)
        .no_deps()
        .other_options(vec!["--offline".to_owned()]);
    // Cargo runs in the caller's working directory, not the workspace's: rustup would pick the
    // toolchain named by a `rust-toolchain` file there, which may not be installed.
    let metadata = match command.exec() {
        Ok(metadata) => metadata,
        Err(cargo_metadata::Error::CargoMetadata { stderr }) => {
            return Err(not_a_workspace(cargo_message(&stderr)));
        }
        Err(err) => return Err(not_a_workspace(format!("cargo metadata failed: {err}"))),
    };

    // A path naming one member package of a larger workspace analyses that package alone.
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let root_manifest = metadata.workspace_root.as_std_path().join("Cargo.toml");
    let root_manifest = root_manifest.canonicalize().unwrap_or(root_manifest);
    let mut members: Vec<&cargo_metadata::Package> = metadata.workspace_packages();
    if manifest != root_manifest {
        members.retain(|package| package.manifest_path.as_std_path() == manifest);
    }
    let patched = Patched::read(
        metadata.workspace_root.as_std_path(),
        &metadata.workspace_packages(),
    );
    let rust_name = |package: &cargo_metadata::Package| -> String {
        package
            .targets
            .iter()
            .find(|target| target.kind.iter().any(is_lib_kind))
            .map_or_else(
                || package.name.replace('-', "_"),
                |target| target.name.replace('-', "_"),
            )
    };
    let mut crates = Vec::with_capacity(members.len());
    for package in &members {
        let name = rust_name(package);
        let mut targets = Vec::new();
        let mut has_lib = false;
        for target in &package.targets {
            let kind = if target.kind.iter().any(is_lib_kind) {
                has_lib = true;
                "lib"
            } else if target.kind.contains(&TargetKind::Bin) {
                "bin"
            } else if target.kind.contains(&TargetKind::Test) && selection.tests {
                "test"
            } else if target.kind.contains(&TargetKind::Bench) && selection.tests {
                "bench"
            } else if target.kind.contains(&TargetKind::Example) && selection.examples {
                "example"
            } else {
                continue;
            };
            targets.push(Target {
                kind: kind.to_owned(),
                name: target.name.clone(),
                root: target.src_path.clone().into_std_path_buf(),
            });
        }
        // Lib first, then by kind and name, so that ids are assigned deterministically.
        targets.sort_by(|a, b| {
            (a.kind != "lib", a.kind.as_str(), a.name.as_str()).cmp(&(
                b.kind != "lib",
                b.kind.as_str(),
                b.name.as_str(),
            ))
        });

        let mut deps = Vec::new();
        for dependency in &package.dependencies {
            let member = match &dependency.path {
                Some(dep_path) => members.iter().find(|member| {
                    member.name.as_str() == dependency.name
                        && member
                            .manifest_path
                            .parent()
                            .is_some_and(|dir| dir == dep_path)
                }),
                // A registry version patched to a workspace member (`[patch.crates-io]`).
                None => patched.resolve(package, &dependency.name).and_then(|dir| {
                    members.iter().find(|member| {
                        member.name.as_str() == dependency.name
                            && member
                                .manifest_path
                                .parent()
                                .is_some_and(|member_dir| member_dir.as_std_path() == dir)
                    })
                }),
            };
            let Some(member) = member else {
                continue;
            };
            let krate = rust_name(member);
            let extern_name = dependency
                .rename
                .as_ref()
                .map_or_else(|| krate.clone(), |rename| rename.replace('-', "_"));
            deps.push(WorkspaceDep {
                extern_name,
                krate,
                normal: dependency.kind != DependencyKind::Development,
            });
        }
        deps.sort_by(|a, b| (&a.extern_name, &a.krate).cmp(&(&b.extern_name, &b.krate)));
        deps.dedup_by(|a, b| {
            if a.extern_name == b.extern_name && a.krate == b.krate {
                b.normal |= a.normal;
                true
            } else {
                false
            }
        });

        crates.push(LoadedCrate {
            name,
            package: package.name.to_string(),
            version: package.version.to_string(),
            manifest_path: package.manifest_path.clone().into_std_path_buf(),
            edition_2015: package.edition == Edition::E2015,
            has_lib,
            targets,
            deps,
        });
    }
    crates.sort_by(|a, b| (&a.name, &a.package).cmp(&(&b.name, &b.package)));
    let root = if manifest == root_manifest {
        metadata.workspace_root.into_std_path_buf()
    } else {
        manifest.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    Ok(Workspace { root, crates })
}

/// Which registry dependencies of the members are really members: a registry version patched to
/// a path in the workspace (`[patch.crates-io] tokio = { path = "tokio" }` makes every
/// `tokio = "1"` of `tokio-util` a use of the member `tokio`).
///
/// `cargo metadata --no-deps` reports such a dependency as a registry one, so we read the
/// resolution where it is written: `Cargo.lock`, the resolved graph, where a member's dependency
/// on a path package has no `source`. Without a lock file (a workspace that was never built),
/// the root manifest's `[patch.*]` tables say the same for the names they patch. Either file
/// missing or unreadable leaves the dependencies as `cargo metadata` gave them.
#[derive(Debug, Default)]
struct Patched {
    /// From `Cargo.lock`, when there is one: per path package, what it depends on.
    locked: Option<Vec<LockedPackage>>,
    /// From `[patch.*]`: package name -> directory.
    patches: Vec<(String, PathBuf)>,
}

/// A path package of `Cargo.lock` and the path packages it depends on.
#[derive(Debug)]
struct LockedPackage {
    name: String,
    version: String,
    /// Name and directory of each member it depends on.
    deps: Vec<(String, PathBuf)>,
}

impl Patched {
    fn read(root: &Path, members: &[&cargo_metadata::Package]) -> Self {
        let member_dir = |name: &str, version: Option<&str>| -> Option<PathBuf> {
            members
                .iter()
                .find(|member| {
                    member.name.as_str() == name
                        && version.is_none_or(|version| member.version.to_string() == version)
                })
                .and_then(|member| member.manifest_path.parent())
                .map(|dir| dir.as_std_path().to_path_buf())
        };
        let mut res = Patched::default();
        if let Ok(text) = std::fs::read_to_string(root.join("Cargo.lock"))
            && let Ok(lock) = text.parse::<toml::Table>()
            && let Some(packages) = lock.get("package").and_then(toml::Value::as_array)
        {
            // Path packages have no `source`; name -> versions of path packages.
            let path_packages: Vec<(&str, &str)> = packages
                .iter()
                .filter(|package| package.get("source").is_none())
                .filter_map(|package| {
                    Some((
                        package.get("name")?.as_str()?,
                        package.get("version")?.as_str()?,
                    ))
                })
                .collect();
            let mut locked = Vec::new();
            for package in packages
                .iter()
                .filter(|package| package.get("source").is_none())
            {
                let (Some(name), Some(version)) = (
                    package.get("name").and_then(toml::Value::as_str),
                    package.get("version").and_then(toml::Value::as_str),
                ) else {
                    continue;
                };
                let mut deps = Vec::new();
                for dep in package
                    .get("dependencies")
                    .and_then(toml::Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(toml::Value::as_str)
                {
                    // `name`, `name version` or `name version (source)`.
                    let mut words = dep.split_whitespace();
                    let Some(dep_name) = words.next() else {
                        continue;
                    };
                    let dep_version = words.next();
                    if words.next().is_some() {
                        continue;
                    }
                    let is_path = path_packages.iter().any(|(path_name, path_version)| {
                        *path_name == dep_name
                            && dep_version.is_none_or(|version| version == *path_version)
                    });
                    if is_path && let Some(dir) = member_dir(dep_name, dep_version) {
                        deps.push((dep_name.to_owned(), dir));
                    }
                }
                locked.push(LockedPackage {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    deps,
                });
            }
            res.locked = Some(locked);
        }
        if let Ok(text) = std::fs::read_to_string(root.join("Cargo.toml"))
            && let Ok(manifest) = text.parse::<toml::Table>()
            && let Some(patch) = manifest.get("patch").and_then(toml::Value::as_table)
        {
            for registry in patch.values().filter_map(toml::Value::as_table) {
                for (key, spec) in registry {
                    let Some(path) = spec.get("path").and_then(toml::Value::as_str) else {
                        continue;
                    };
                    let name = spec
                        .get("package")
                        .and_then(toml::Value::as_str)
                        .unwrap_or(key);
                    let canonical = |dir: PathBuf| dir.canonicalize().unwrap_or(dir);
                    let patched_dir = canonical(root.join(path));
                    if let Some(dir) = member_dir(name, None)
                        && canonical(dir.clone()) == patched_dir
                    {
                        res.patches.push((name.to_owned(), dir));
                    }
                }
            }
        }
        res
    }

    /// The directory of the member that `package`'s registry dependency `name` resolves to.
    fn resolve(&self, package: &cargo_metadata::Package, name: &str) -> Option<&Path> {
        if let Some(locked) = &self.locked {
            let version = package.version.to_string();
            if let Some(locked) = locked
                .iter()
                .find(|locked| locked.name == package.name.as_str() && locked.version == version)
            {
                return locked
                    .deps
                    .iter()
                    .find(|(dep_name, _)| dep_name == name)
                    .map(|(_, dir)| dir.as_path());
            }
        }
        self.patches
            .iter()
            .find(|(patched, _)| patched == name)
            .map(|(_, dir)| dir.as_path())
    }
}

/// Reads one source file.
pub(crate) fn read_source(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
}

fn is_lib_kind(kind: &TargetKind) -> bool {
    matches!(
        kind,
        TargetKind::Lib
            | TargetKind::RLib
            | TargetKind::DyLib
            | TargetKind::CDyLib
            | TargetKind::StaticLib
            | TargetKind::ProcMacro
    )
}

/// Cargo's error output without its `error: ` prefix and noise, on one line when short.
fn cargo_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .collect();
    let message = lines.join("\n");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned()
}
