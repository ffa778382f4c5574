//! The module tree of every target, and the raw facts of every module, from syn.
//!
//! Files are parsed in parallel, one breadth-first level of the module tree at a time: the roots of
//! all targets, then every file their `mod x;` declarations name, and so on. Each file is parsed
//! and reduced to plain values ([`ModuleFacts`]) on the worker thread that read it, because syn
//! trees cannot cross threads; the syn tree is dropped right after.
//!
//! Facts are unresolved: a `use` is its path as written, a reference is a path as written. The
//! names are resolved in `resolve.rs` once every module of the workspace is known.
//!
//! What we follow, like rustc does: inline and file modules, `name.rs` and `name/mod.rs`, nested
//! directories of non-`mod.rs` files (`a.rs` + `a/b.rs`), `#[path]` (also inside inline modules),
//! `include!("file.rs")` in item position, and modules declared inside item macros
//! (`cfg_rt! { pub mod runtime; }`: the body is parsed as items when it parses). `#[cfg]`'d
//! modules are kept, with their predicate noted.

use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, LineColumn, TokenStream, TokenTree};
use rayon::prelude::*;
use syn::visit::{self, Visit};

use crate::report::{Module, SkippedFile};

/// How deep module trees may nest before we stop following `mod` declarations (guards against
/// `#[path]` loops).
const MAX_MODULE_DEPTH: usize = 64;
/// How long a chain of fields, calls and `?` may be for its type to be known.
const MAX_CHAIN: usize = 32;
/// Stack size of the parsing threads: syn and the visitor recurse on deeply nested expressions.
const PARSER_STACK_SIZE: usize = 64 << 20;

/// A place in a source file: an index into [`Extracted::files`], a 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Loc {
    pub(crate) file: u32,
    pub(crate) line: u32,
    pub(crate) column: u32,
}

/// Where a reference sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefContext {
    pub(crate) loc: Loc,
    /// Inside a function body or another expression.
    pub(crate) code: bool,
    /// Under `#[cfg(test)]` or in a `#[test]` function.
    pub(crate) test_only: bool,
}

/// What kind of item a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemKind {
    Fn,
    Struct,
    Enum,
    Union,
    Trait,
    TypeAlias,
    Const,
    Static,
    Macro,
}

impl ItemKind {
    pub(crate) fn is_type(self) -> bool {
        matches!(
            self,
            Self::Struct | Self::Enum | Self::Union | Self::Trait | Self::TypeAlias
        )
    }
}

/// A function signature, as written in the source (whitespace collapsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FnSig {
    pub(crate) name: String,
    /// `async `, `unsafe `, `const ` as written before `fn`.
    pub(crate) qualifiers: String,
    /// `<T: Clone>` or empty.
    pub(crate) generics: String,
    /// The receiver as written (`&self`, `&mut self`, `self: Box<Self>`), if any.
    pub(crate) receiver: Option<String>,
    /// The receiver is `&mut self` (or `mut self` by value counts as not).
    pub(crate) mut_receiver: bool,
    /// Other parameters as written (`order: &Order`).
    pub(crate) params: Vec<String>,
    /// Some parameter is a `&mut` reference.
    pub(crate) mut_params: bool,
    /// ` -> Receipt` or empty.
    pub(crate) output: String,
    /// ` where T: Clone` or empty.
    pub(crate) where_clause: String,
    /// The return type, for receiver types of method chains (`None`: `()` or not a path type).
    pub(crate) ret: Option<TyRef>,
}

/// A type as written, reduced to what receiver types need: a path (without generic arguments,
/// `Self` replaced by the impl's self type, a generic parameter by its first trait bound) and the
/// type arguments of its last segment. `&T`, `&mut T`, `*const T` are `T`; `impl Trait` and
/// `dyn Trait` are `Trait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TyRef {
    pub(crate) path: Box<str>,
    /// Type arguments of the last segment, in order; `None` where one is not a path type.
    pub(crate) args: Vec<Option<TyRef>>,
}

/// The type of an expression as far as syntax tells it, unresolved: resolved in the module where
/// it was written by `infer.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TyExpr {
    /// A type written in the source (a typed parameter or `let`, a struct literal, `self`).
    Ty(TyRef),
    /// The field `.name` (or `.0`) of a value of the inner type.
    Field(Box<TyExpr>, Box<str>),
    /// What calling method `name` on a value of the inner type returns.
    Method(Box<TyExpr>, Box<str>),
    /// What calling the function or constructor at this path returns (`Type::new`, `make`).
    Call(Box<str>),
    /// The `T` of an `Option<T>` or `Result<T, _>` (`e?`, `Some(x)` patterns).
    Unwrap(Box<TyExpr>),
}

/// An item defined in a module.
#[derive(Debug, Clone)]
pub(crate) struct ItemDef {
    pub(crate) name: String,
    pub(crate) kind: ItemKind,
    /// For functions.
    pub(crate) sig: Option<FnSig>,
    /// For traits: their methods.
    pub(crate) methods: Vec<FnSig>,
    /// For structs and unions: field name (`0`, `1` for tuple structs) and type.
    pub(crate) fields: Vec<(Box<str>, Option<TyRef>)>,
    /// For type aliases: the aliased type.
    pub(crate) alias: Option<TyRef>,
}

/// An `impl` block: its self type's last path segment and its methods.
#[derive(Debug, Clone)]
pub(crate) struct ImplDef {
    pub(crate) self_ty: String,
    /// The self type's whole path as written (`super::model::Order`), resolved in the impl's
    /// module: an impl may sit in another module than its type.
    pub(crate) self_path: String,
    pub(crate) trait_name: Option<String>,
    pub(crate) methods: Vec<FnSig>,
}

/// What a `use` leaf binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `use a::b;` binds `b`, `use a::b as c;` binds `c`.
    Name(String),
    /// `use a::*;`
    Glob,
    /// `use a::Trait as _;`
    Underscore,
}

/// One leaf of a `use` tree, flattened: `use a::{b, c::*}` gives two.
#[derive(Debug, Clone)]
pub(crate) struct UseDecl {
    /// Segments as written, `crate`/`self`/`super` included; a leading `::` is the segment `::`.
    pub(crate) path: Vec<String>,
    pub(crate) binding: Binding,
    /// `pub use` (any `pub(...)` too): what a glob import of the module from outside sees.
    pub(crate) is_pub: bool,
    pub(crate) ctx: RefContext,
}

/// A path in code, types, patterns or macros, as written: segments joined with `::`, a leading
/// `::` kept.
#[derive(Debug, Clone)]
pub(crate) struct PathRef {
    pub(crate) path: Box<str>,
    pub(crate) ctx: RefContext,
}

/// A method call `.name(...)`, with its receiver's type as far as syntax tells it.
#[derive(Debug, Clone)]
pub(crate) struct MethodCall {
    pub(crate) name: Box<str>,
    /// `None` when nothing in the syntax tells the receiver's type (a closure parameter, a
    /// `let` from a macro, ...).
    pub(crate) receiver: Option<TyExpr>,
    pub(crate) ctx: RefContext,
}

impl TyExpr {
    /// How many fields, calls and unwraps deep the expression is.
    fn depth(&self) -> usize {
        match self {
            TyExpr::Ty(_) | TyExpr::Call(_) => 1,
            TyExpr::Field(inner, _) | TyExpr::Method(inner, _) | TyExpr::Unwrap(inner) => {
                1 + inner.depth()
            }
        }
    }
}

/// A local binding of a function body: a parameter, a `let`, a `match` arm, a closure
/// parameter, a loop variable. Bindings shadow items of the same name.
#[derive(Debug, Clone)]
struct Local {
    name: String,
    ty: Option<TyExpr>,
    /// For a name a `use` inside the body binds: the path it names (`helix_lsp::Notification`),
    /// which a path starting with the name stands for in that body, whatever the module's own
    /// imports of the name are.
    import: Option<Box<str>>,
}

/// Everything extracted from one module, unresolved.
#[derive(Debug, Clone)]
pub(crate) struct ModuleFacts {
    pub(crate) module: Module,
    /// Index of the target (crate root) this module belongs to, into the list of target roots.
    pub(crate) target: usize,
    /// The module's own name (last segment of its id).
    pub(crate) name: String,
    pub(crate) items: Vec<ItemDef>,
    pub(crate) impls: Vec<ImplDef>,
    pub(crate) uses: Vec<UseDecl>,
    pub(crate) refs: Vec<PathRef>,
    pub(crate) method_calls: Vec<MethodCall>,
    /// `extern crate name as alias;` pairs (alias is the name when there is no `as`).
    pub(crate) extern_crates: Vec<(String, String)>,
}

/// The root of one target to walk.
#[derive(Debug, Clone)]
pub(crate) struct TargetRoot {
    /// Module id of the root.
    pub(crate) id: String,
    /// Rust name of the crate.
    pub(crate) krate: String,
    pub(crate) file: PathBuf,
}

/// The module trees of all targets.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    /// Every file read, indexed by [`Loc::file`].
    pub(crate) files: Vec<PathBuf>,
    /// Every module; a module whose id appears twice (`#[cfg]` alternatives) is merged into one.
    pub(crate) modules: Vec<ModuleFacts>,
    pub(crate) skipped: Vec<SkippedFile>,
}

/// A file module waiting to be read.
#[derive(Debug, Clone)]
struct FileJob {
    target: usize,
    id: String,
    name: String,
    krate: String,
    parent: Option<String>,
    /// Candidate files in order (`x.rs`, then `x/mod.rs`).
    candidates: Vec<PathBuf>,
    /// For each candidate: whether it is a "mod-rs" file (its children live next to it).
    mod_rs: Vec<bool>,
    line: u32,
    cfg: Option<String>,
    test_only: bool,
    in_macro: bool,
    depth: usize,
}

/// What one file job produced.
#[derive(Debug, Default)]
struct FileOutput {
    /// The file itself first, then the files it `include!`s.
    files: Vec<PathBuf>,
    modules: Vec<ModuleFacts>,
    jobs: Vec<FileJob>,
    skipped: Vec<SkippedFile>,
}

/// Reads and walks the module trees of all `roots`, in parallel.
pub(crate) fn extract(
    roots: &[TargetRoot],
    read: &(dyn Fn(&Path) -> std::io::Result<String> + Sync),
) -> Extracted {
    let _span = tracing::info_span!("parse", targets = roots.len()).entered();
    let mut jobs: Vec<FileJob> = roots
        .iter()
        .enumerate()
        .map(|(target, root)| FileJob {
            target,
            id: root.id.clone(),
            name: root.id.rsplit("::").next().unwrap_or(&root.id).to_owned(),
            krate: root.krate.clone(),
            parent: None,
            candidates: vec![root.file.clone()],
            mod_rs: vec![true],
            line: 1,
            cfg: None,
            test_only: false,
            in_macro: false,
            depth: 0,
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .stack_size(PARSER_STACK_SIZE)
        .build();
    let mut extracted = Extracted::default();
    let mut seen: rustc_hash::FxHashSet<(usize, PathBuf)> = rustc_hash::FxHashSet::default();
    let run = |jobs: &[FileJob]| -> Vec<FileOutput> {
        jobs.par_iter().map(|job| run_job(job, read)).collect()
    };
    while !jobs.is_empty() {
        let outputs = match &pool {
            Ok(pool) => pool.install(|| run(&jobs)),
            Err(_) => run(&jobs),
        };
        let mut next = Vec::new();
        for output in outputs {
            let offset = u32::try_from(extracted.files.len()).unwrap_or(u32::MAX);
            let mut new_file = true;
            if let Some(first) = output.files.first() {
                // The same file reached twice from one target (`#[path]` loops) is walked once.
                let target = output
                    .modules
                    .first()
                    .map_or(usize::MAX, |module| module.target);
                new_file = seen.insert((target, first.clone()));
            }
            if !new_file {
                continue;
            }
            extracted.files.extend(output.files);
            for mut module in output.modules {
                relocate(&mut module, offset);
                extracted.modules.push(module);
            }
            extracted.skipped.extend(output.skipped);
            next.extend(
                output
                    .jobs
                    .into_iter()
                    .filter(|job| job.depth <= MAX_MODULE_DEPTH),
            );
        }
        jobs = next;
    }
    merge_duplicates(&mut extracted.modules);
    extracted
        .skipped
        .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    extracted.skipped.dedup();
    extracted
}

/// Shifts the worker-local file indices of a module's locations to global ones.
fn relocate(module: &mut ModuleFacts, offset: u32) {
    if offset == 0 {
        return;
    }
    for use_decl in &mut module.uses {
        use_decl.ctx.loc.file += offset;
    }
    for path_ref in &mut module.refs {
        path_ref.ctx.loc.file += offset;
    }
    for call in &mut module.method_calls {
        call.ctx.loc.file += offset;
    }
}

/// Merges modules with the same id (`#[cfg(unix)] mod imp;` and `#[cfg(windows)] mod imp;`) into
/// the first one; sorts by id.
fn merge_duplicates(modules: &mut Vec<ModuleFacts>) {
    modules.sort_by(|a, b| a.module.id.cmp(&b.module.id));
    let mut merged: Vec<ModuleFacts> = Vec::with_capacity(modules.len());
    for module in modules.drain(..) {
        match merged.last_mut() {
            Some(last) if last.module.id == module.module.id => {
                last.module.lines_of_code += module.module.lines_of_code;
                last.module.n_traits += module.module.n_traits;
                last.module.n_types += module.module.n_types;
                last.module.test_only &= module.module.test_only;
                last.items.extend(module.items);
                last.impls.extend(module.impls);
                last.uses.extend(module.uses);
                last.refs.extend(module.refs);
                last.method_calls.extend(module.method_calls);
                last.extern_crates.extend(module.extern_crates);
            }
            _ => merged.push(module),
        }
    }
    *modules = merged;
}

fn run_job(job: &FileJob, read: &(dyn Fn(&Path) -> std::io::Result<String> + Sync)) -> FileOutput {
    let mut output = FileOutput::default();
    let mut last_error = None;
    for (candidate, &mod_rs) in job.candidates.iter().zip(&job.mod_rs) {
        match read(candidate) {
            Ok(text) => {
                extract_file(job, candidate, mod_rs, text, read, &mut output);
                return output;
            }
            Err(err) => last_error = Some((candidate, err)),
        }
    }
    if let Some((_, err)) = last_error {
        let error = if job.candidates.len() > 1 {
            let names: Vec<String> = job
                .candidates
                .iter()
                .map(|candidate| format!("`{}`", candidate.display()))
                .collect();
            format!(
                "cannot read module `{}`: none of {} could be read: {err}",
                job.id,
                names.join(", ")
            )
        } else {
            format!("cannot read module `{}`: {err}", job.id)
        };
        // The file a reader expects (`x.rs`) rather than a `cfg_attr` alternative.
        let candidate = &job.candidates[job.candidates.len().saturating_sub(2)];
        output.skipped.push(SkippedFile {
            path: candidate.clone(),
            line: None,
            column: None,
            error,
        });
    }
    output
}

/// Strips a byte order mark and blanks a shebang line, keeping byte offsets and line numbers of
/// everything else as they are in the file.
fn prepare_source(mut text: String) -> String {
    if text.starts_with('\u{feff}') {
        text.replace_range(..3, "");
    }
    if text.starts_with("#!") && !text.starts_with("#![") {
        let end = text.find('\n').unwrap_or(text.len());
        text.replace_range(..end, &" ".repeat(end));
    }
    text
}

fn extract_file(
    job: &FileJob,
    path: &Path,
    mod_rs: bool,
    text: String,
    read: &(dyn Fn(&Path) -> std::io::Result<String> + Sync),
    output: &mut FileOutput,
) {
    let text = prepare_source(text);
    output.files.push(path.to_path_buf());
    let file_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let children_dir = if mod_rs {
        file_dir.clone()
    } else {
        let stem = path.file_stem().map(PathBuf::from).unwrap_or_default();
        file_dir.join(stem)
    };
    let parsed = syn::parse_file(&text);
    let module = Module {
        id: job.id.clone(),
        krate: job.krate.clone(),
        parent: job.parent.clone(),
        file: path.to_path_buf(),
        line: job.line,
        lines_of_code: 0,
        inline: false,
        cfg: job.cfg.clone(),
        test_only: job.test_only,
        in_macro: job.in_macro,
        n_traits: 0,
        n_types: 0,
    };
    let facts = new_facts(module, job.target, job.name.clone());
    match parsed {
        Ok(file) => {
            let code_lines = code_lines(&text);
            let mut extractor = Extractor {
                read,
                output,
                target: job.target,
                krate: &job.krate,
                depth: job.depth,
                file: 0,
                source: text,
                code_lines,
                current: 0,
                modules: vec![facts],
                code: false,
                test_only: job.test_only,
                in_macro: job.in_macro,
                imported: rustc_hash::FxHashSet::default(),
                any_glob: false,
                name_buffer: String::new(),
                locals: Vec::new(),
                self_ty: None,
                generics: Vec::new(),
            };
            extractor.prescan(&file.items);
            let scope = Scope {
                module: 0,
                children_dir,
                path_dir: file_dir,
            };
            let lines = (
                1,
                u32::try_from(extractor.code_lines.len()).unwrap_or(u32::MAX),
            );
            extractor.module_items(&file.items, &scope, lines);
            let modules = std::mem::take(&mut extractor.modules);
            drop(extractor);
            output.modules.extend(modules);
        }
        Err(err) => {
            let start = err.span().start();
            output.skipped.push(SkippedFile {
                path: path.to_path_buf(),
                line: Some(u32::try_from(start.line).unwrap_or(u32::MAX)),
                column: Some(u32::try_from(start.column + 1).unwrap_or(u32::MAX)),
                error: err.to_string(),
            });
            // The module still exists (other modules may name it); it has no known contents.
            output.modules.push(facts);
        }
    }
    // Spans are only needed while the syn tree lives; free this thread's source map.
    proc_macro2::extra::invalidate_current_thread_spans();
}

fn new_facts(module: Module, target: usize, name: String) -> ModuleFacts {
    ModuleFacts {
        module,
        target,
        name,
        items: Vec::new(),
        impls: Vec::new(),
        uses: Vec::new(),
        refs: Vec::new(),
        method_calls: Vec::new(),
        extern_crates: Vec::new(),
    }
}

/// Per line (index 0 is line 1): whether it holds code, not only blanks and comments.
fn code_lines(text: &str) -> Vec<bool> {
    let mut res = Vec::new();
    let mut in_block_comment = false;
    for line in text.lines() {
        let mut rest = line.trim();
        let mut has_code = false;
        loop {
            if in_block_comment {
                match rest.find("*/") {
                    Some(end) => {
                        in_block_comment = false;
                        rest = rest[end + 2..].trim_start();
                    }
                    None => break,
                }
            } else if rest.is_empty() || rest.starts_with("//") {
                break;
            } else if let Some(after) = rest.strip_prefix("/*") {
                in_block_comment = true;
                rest = after;
            } else {
                has_code = true;
                break;
            }
        }
        res.push(has_code);
    }
    res
}

/// Where the children of the module being walked live.
#[derive(Debug, Clone)]
struct Scope {
    /// Index into `Extractor::modules`.
    module: usize,
    /// Directory of `mod x;` files (`x.rs`, `x/mod.rs`).
    children_dir: PathBuf,
    /// Directory `#[path = "..."]` is relative to.
    path_dir: PathBuf,
}

/// Walks one file's syn tree and fills [`ModuleFacts`].
struct Extractor<'a> {
    read: &'a (dyn Fn(&Path) -> std::io::Result<String> + Sync),
    output: &'a mut FileOutput,
    target: usize,
    krate: &'a str,
    depth: usize,
    /// Worker-local index of the file being walked (0, or an `include!`d file).
    file: u32,
    source: String,
    code_lines: Vec<bool>,
    /// Index into `modules` of the module whose items are being walked.
    current: usize,
    modules: Vec<ModuleFacts>,
    code: bool,
    test_only: bool,
    in_macro: bool,
    /// Every name some `use` in the file binds: single-segment paths are kept only when they may
    /// refer to one of them (or when the file has a glob import).
    imported: rustc_hash::FxHashSet<String>,
    any_glob: bool,
    /// Reused for single names, to avoid an allocation per local variable.
    name_buffer: String,
    /// The local bindings in scope, innermost last.
    locals: Vec<Local>,
    /// `Self` where it is known: the impl's self type, or the trait being defined.
    self_ty: Option<TyRef>,
    /// Generic type parameters in scope and their first trait bound.
    generics: Vec<(String, Option<TyRef>)>,
}

impl Extractor<'_> {
    /// Collects the names bound by every `use` of the file, wherever it is.
    fn prescan(&mut self, items: &[syn::Item]) {
        struct Names<'n> {
            names: &'n mut rustc_hash::FxHashSet<String>,
            glob: &'n mut bool,
        }
        impl<'ast> Visit<'ast> for Names<'_> {
            fn visit_use_tree(&mut self, tree: &'ast syn::UseTree) {
                match tree {
                    syn::UseTree::Name(name) => {
                        self.names.insert(unraw(&name.ident));
                    }
                    syn::UseTree::Rename(rename) => {
                        self.names.insert(unraw(&rename.rename));
                    }
                    syn::UseTree::Glob(_) => *self.glob = true,
                    _ => visit::visit_use_tree(self, tree),
                }
            }
            fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
                // Child modules are part of the file too.
                visit::visit_item_mod(self, item);
            }
            // Only items and the statements of function bodies can hold a `use`: skipping
            // expressions, types and signatures keeps this pass cheap.
            fn visit_block(&mut self, block: &'ast syn::Block) {
                for stmt in &block.stmts {
                    if let syn::Stmt::Item(item) = stmt {
                        self.visit_item(item);
                    }
                }
            }
            fn visit_expr(&mut self, _: &'ast syn::Expr) {}
            fn visit_type(&mut self, _: &'ast syn::Type) {}
            fn visit_signature(&mut self, _: &'ast syn::Signature) {}
            fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
            fn visit_item_macro(&mut self, item: &'ast syn::ItemMacro) {
                if item.ident.is_none() {
                    for item in &macro_body_items(item.mac.tokens.clone()) {
                        self.visit_item(item);
                    }
                }
            }
        }
        let mut names = Names {
            names: &mut self.imported,
            glob: &mut self.any_glob,
        };
        for item in items {
            names.visit_item(item);
        }
    }

    fn loc(&self, span: proc_macro2::Span) -> Loc {
        let LineColumn { line, column } = span.start();
        Loc {
            file: self.file,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }

    fn ctx(&self, span: proc_macro2::Span) -> RefContext {
        RefContext {
            loc: self.loc(span),
            code: self.code,
            test_only: self.test_only,
        }
    }

    fn facts(&mut self) -> &mut ModuleFacts {
        &mut self.modules[self.current]
    }

    /// Counts lines of code in `first..=last` (1-based) for the current module.
    fn count_lines(&self, first: u32, last: u32) -> u32 {
        let first = first.max(1) as usize - 1;
        let last = (last as usize).min(self.code_lines.len());
        if first >= last {
            return 0;
        }
        let count = self.code_lines[first..last]
            .iter()
            .filter(|&&code| code)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Walks the items of a module. `lines` is the module's own line span, used for lines of code
    /// (inline child modules' lines are subtracted).
    fn module_items(&mut self, items: &[syn::Item], scope: &Scope, lines: (u32, u32)) {
        let saved = self.current;
        self.current = scope.module;
        let mut loc = self.count_lines(lines.0, lines.1);
        for item in items {
            if let syn::Item::Mod(item_mod) = item
                && item_mod.content.is_some()
            {
                let (first, last) = inline_lines(item_mod);
                loc = loc.saturating_sub(self.count_lines(first, last));
            }
            self.item(item, scope);
        }
        let facts = &mut self.modules[scope.module];
        facts.module.lines_of_code = facts.module.lines_of_code.saturating_add(loc);
        self.current = saved;
    }

    fn item(&mut self, item: &syn::Item, scope: &Scope) {
        let attrs = item_attrs(item);
        let saved_test = self.test_only;
        if is_test_attr(attrs) {
            self.test_only = true;
        }
        match item {
            syn::Item::Mod(item_mod) => self.item_mod(item_mod, scope),
            syn::Item::Use(item_use) => {
                let root = if item_use.leading_colon.is_some() {
                    vec!["::".to_owned()]
                } else {
                    Vec::new()
                };
                self.use_tree(
                    &item_use.tree,
                    root,
                    !matches!(item_use.vis, syn::Visibility::Inherited),
                );
            }
            syn::Item::Macro(item_macro) => self.item_macro(item_macro, scope),
            syn::Item::ExternCrate(extern_crate) => {
                let name = unraw(&extern_crate.ident);
                let alias = extern_crate
                    .rename
                    .as_ref()
                    .map_or_else(|| name.clone(), |(_, alias)| alias.to_string());
                self.facts().extern_crates.push((name, alias));
            }
            _ => {
                self.define(item);
                visit::visit_item(self, item);
            }
        }
        self.test_only = saved_test;
    }

    /// Records the definition an item makes in the current module.
    fn define(&mut self, item: &syn::Item) {
        let (name, kind, vis) = match item {
            syn::Item::Fn(f) => (&f.sig.ident, ItemKind::Fn, &f.vis),
            syn::Item::Struct(s) => (&s.ident, ItemKind::Struct, &s.vis),
            syn::Item::Enum(e) => (&e.ident, ItemKind::Enum, &e.vis),
            syn::Item::Union(u) => (&u.ident, ItemKind::Union, &u.vis),
            syn::Item::Trait(t) => (&t.ident, ItemKind::Trait, &t.vis),
            syn::Item::Type(t) => (&t.ident, ItemKind::TypeAlias, &t.vis),
            syn::Item::Const(c) => (&c.ident, ItemKind::Const, &c.vis),
            syn::Item::Static(s) => (&s.ident, ItemKind::Static, &s.vis),
            syn::Item::Impl(item_impl) => {
                self.define_impl(item_impl);
                return;
            }
            _ => return,
        };
        let is_pub = !matches!(vis, syn::Visibility::Inherited);
        let generics_len = self.generics.len();
        let saved_self = self.self_ty.take();
        let mut sig = None;
        let mut methods = Vec::new();
        let mut fields = Vec::new();
        let mut alias = None;
        match item {
            syn::Item::Fn(f) => {
                self.push_generics(&f.sig.generics);
                sig = Some(
                    self.signature(&f.sig, f.block.brace_token.span.open().byte_range().start),
                );
            }
            syn::Item::Struct(s) => {
                self.push_generics(&s.generics);
                fields = self.fields(&s.fields);
            }
            syn::Item::Union(u) => {
                self.push_generics(&u.generics);
                fields = self.fields(&syn::Fields::Named(u.fields.clone()));
            }
            syn::Item::Type(t) => {
                self.push_generics(&t.generics);
                alias = self.ty_ref(&t.ty);
            }
            syn::Item::Trait(t) => {
                self.push_generics(&t.generics);
                self.self_ty = Some(TyRef {
                    path: unraw(&t.ident).into(),
                    args: Vec::new(),
                });
                for trait_item in &t.items {
                    if let syn::TraitItem::Fn(f) = trait_item {
                        let end = match (&f.default, &f.semi_token) {
                            (Some(block), _) => block.brace_token.span.open().byte_range().start,
                            (None, Some(semi)) => semi.span.byte_range().start,
                            (None, None) => f.sig.paren_token.span.close().byte_range().end,
                        };
                        let len = self.generics.len();
                        self.push_generics(&f.sig.generics);
                        methods.push(self.signature(&f.sig, end));
                        self.generics.truncate(len);
                    }
                }
            }
            _ => {}
        }
        self.generics.truncate(generics_len);
        self.self_ty = saved_self;
        let facts = self.facts();
        if kind.is_type() {
            facts.module.n_types += 1;
        }
        if kind == ItemKind::Trait && is_pub {
            facts.module.n_traits += 1;
        }
        facts.items.push(ItemDef {
            name: unraw(name),
            kind,
            sig,
            methods,
            fields,
            alias,
        });
    }

    /// Records an impl block: its self type as written and the signatures of its methods (with
    /// `Self` standing for the self type in their return types).
    fn define_impl(&mut self, item_impl: &syn::ItemImpl) {
        let (Some(self_ty), Some(self_path)) = (
            last_type_segment(&item_impl.self_ty),
            type_path_text(&item_impl.self_ty),
        ) else {
            return;
        };
        let generics_len = self.generics.len();
        self.push_generics(&item_impl.generics);
        let saved_self = self.self_ty.take();
        self.self_ty = self.ty_ref(&item_impl.self_ty);
        let mut methods = Vec::new();
        for impl_item in &item_impl.items {
            if let syn::ImplItem::Fn(f) = impl_item {
                let len = self.generics.len();
                self.push_generics(&f.sig.generics);
                methods.push(
                    self.signature(&f.sig, f.block.brace_token.span.open().byte_range().start),
                );
                self.generics.truncate(len);
            }
        }
        self.self_ty = saved_self;
        self.generics.truncate(generics_len);
        let trait_name = item_impl
            .trait_
            .as_ref()
            .and_then(|(_, path, _)| path.segments.last().map(|segment| unraw(&segment.ident)));
        self.facts().impls.push(ImplDef {
            self_ty,
            self_path,
            trait_name,
            methods,
        });
    }

    /// The fields of a struct or union with their types.
    fn fields(&self, fields: &syn::Fields) -> Vec<(Box<str>, Option<TyRef>)> {
        fields
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let name = match &field.ident {
                    Some(ident) => unraw(ident),
                    None => index.to_string(),
                };
                (name.into_boxed_str(), self.ty_ref(&field.ty))
            })
            .collect()
    }

    /// Brings the type parameters of `generics` into scope, each with its first trait bound
    /// (from the parameter list or the where clause). The caller truncates `self.generics`.
    fn push_generics(&mut self, generics: &syn::Generics) {
        let start = self.generics.len();
        for param in generics.type_params() {
            let bound = self.bounds_ty(&param.bounds);
            self.generics.push((unraw(&param.ident), bound));
        }
        if let Some(where_clause) = &generics.where_clause {
            for predicate in &where_clause.predicates {
                let syn::WherePredicate::Type(predicate) = predicate else {
                    continue;
                };
                let syn::Type::Path(bounded) = &predicate.bounded_ty else {
                    continue;
                };
                let Some(ident) = bounded.path.get_ident() else {
                    continue;
                };
                let bound = self.bounds_ty(&predicate.bounds);
                if let Some(slot) = self.generics[start..]
                    .iter_mut()
                    .find(|(name, current)| current.is_none() && ident == name.as_str())
                {
                    slot.1 = bound;
                }
            }
        }
    }

    /// The type a `syn::Type` names, as far as receiver types need it.
    fn ty_ref(&self, ty: &syn::Type) -> Option<TyRef> {
        match ty {
            syn::Type::Reference(reference) => self.ty_ref(&reference.elem),
            syn::Type::Paren(paren) => self.ty_ref(&paren.elem),
            syn::Type::Group(group) => self.ty_ref(&group.elem),
            syn::Type::Ptr(ptr) => self.ty_ref(&ptr.elem),
            syn::Type::Path(type_path) if type_path.qself.is_none() => {
                self.path_ty(&type_path.path)
            }
            syn::Type::ImplTrait(impl_trait) => self.bounds_ty(&impl_trait.bounds),
            syn::Type::TraitObject(object) => self.bounds_ty(&object.bounds),
            _ => None,
        }
    }

    fn bounds_ty(
        &self,
        bounds: &syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]>,
    ) -> Option<TyRef> {
        bounds.iter().find_map(|bound| match bound {
            syn::TypeParamBound::Trait(bound) => self.path_ty(&bound.path),
            _ => None,
        })
    }

    /// A type path: `Self` and generic parameters replaced, generic arguments kept for the last
    /// segment.
    fn path_ty(&self, path: &syn::Path) -> Option<TyRef> {
        let first = path.segments.first()?;
        if path.leading_colon.is_none() && first.ident == "Self" {
            return if path.segments.len() == 1 {
                self.self_ty.clone()
            } else {
                None
            };
        }
        if path.leading_colon.is_none()
            && path.segments.len() == 1
            && let Some((_, bound)) = self
                .generics
                .iter()
                .rev()
                .find(|(name, _)| first.ident == name.as_str())
        {
            return bound.clone();
        }
        let last = path.segments.last()?;
        let args = match &last.arguments {
            syn::PathArguments::AngleBracketed(arguments) => arguments
                .args
                .iter()
                .filter_map(|argument| match argument {
                    syn::GenericArgument::Type(ty) => Some(self.ty_ref(ty)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(TyRef {
            path: path_text(path).into_boxed_str(),
            args,
        })
    }

    /// A path in an expression or pattern as text, with a leading `Self` replaced by the self
    /// type's path.
    fn expr_path(&self, path: &syn::Path) -> Option<Box<str>> {
        let first = path.segments.first()?;
        if path.leading_colon.is_none() && first.ident == "Self" {
            let self_ty = self.self_ty.as_ref()?;
            let mut text = self_ty.path.to_string();
            for segment in path.segments.iter().skip(1) {
                text.push_str("::");
                text.push_str(&unraw(&segment.ident));
            }
            return Some(text.into_boxed_str());
        }
        Some(path_text(path).into_boxed_str())
    }

    /// Whether `name` is a local value binding (not a name a `use` in the body binds).
    fn is_local(&self, name: &str) -> bool {
        self.locals
            .iter()
            .rev()
            .find(|local| local.name == name)
            .is_some_and(|local| local.import.is_none())
    }

    /// The path a `use` inside the enclosing bodies binds `name` to, if one does and no local
    /// value shadows it.
    fn body_import(&self, name: &str) -> Option<&str> {
        self.locals
            .iter()
            .rev()
            .find(|local| local.name == name)?
            .import
            .as_deref()
    }

    /// The type of an expression, as far as syntax tells it.
    fn ty_of(&self, expr: &syn::Expr) -> Option<TyExpr> {
        self.ty_of_at(expr, 0)
    }

    /// [`Self::ty_of`], `depth` levels into a chain: a chain longer than [`MAX_CHAIN`] has no
    /// known type, which keeps the recursion here and in `infer.rs` bounded.
    fn ty_of_at(&self, expr: &syn::Expr, depth: usize) -> Option<TyExpr> {
        if depth > MAX_CHAIN {
            return None;
        }
        let depth = depth + 1;
        match expr {
            syn::Expr::Path(path) if path.qself.is_none() => {
                let ident = path.path.get_ident()?;
                let local = self
                    .locals
                    .iter()
                    .rev()
                    .find(|local| ident == local.name.as_str())?;
                // `let b = b.with(..)` again and again must not grow the types without bound.
                local
                    .ty
                    .as_ref()
                    .filter(|ty| ty.depth() + depth <= MAX_CHAIN)
                    .cloned()
            }
            syn::Expr::Field(field) => {
                let base = self.ty_of_at(&field.base, depth)?;
                let name = match &field.member {
                    syn::Member::Named(ident) => unraw(ident),
                    syn::Member::Unnamed(index) => index.index.to_string(),
                };
                Some(TyExpr::Field(Box::new(base), name.into_boxed_str()))
            }
            syn::Expr::MethodCall(call) => {
                let base = self.ty_of_at(&call.receiver, depth)?;
                Some(TyExpr::Method(
                    Box::new(base),
                    unraw(&call.method).into_boxed_str(),
                ))
            }
            syn::Expr::Call(call) => match &*call.func {
                syn::Expr::Path(func) if func.qself.is_none() => {
                    if let Some(ident) = func.path.get_ident()
                        && self.is_local(&unraw(ident))
                    {
                        return None;
                    }
                    Some(TyExpr::Call(self.expr_path(&func.path)?))
                }
                _ => None,
            },
            syn::Expr::Struct(literal) if literal.qself.is_none() => Some(TyExpr::Ty(TyRef {
                path: self.expr_path(&literal.path)?,
                args: Vec::new(),
            })),
            syn::Expr::Reference(reference) => self.ty_of_at(&reference.expr, depth),
            syn::Expr::Paren(paren) => self.ty_of_at(&paren.expr, depth),
            syn::Expr::Group(group) => self.ty_of_at(&group.expr, depth),
            syn::Expr::Await(awaited) => self.ty_of_at(&awaited.base, depth),
            syn::Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => {
                self.ty_of_at(&unary.expr, depth)
            }
            syn::Expr::Try(tried) => {
                Some(TyExpr::Unwrap(Box::new(self.ty_of_at(&tried.expr, depth)?)))
            }
            syn::Expr::Cast(cast) => self.ty_ref(&cast.ty).map(TyExpr::Ty),
            _ => None,
        }
    }

    /// Brings the bindings of a pattern into scope; `ty` is the type of the value matched.
    fn bind(&mut self, pat: &syn::Pat, ty: Option<TyExpr>) {
        match pat {
            syn::Pat::Ident(ident) => {
                if let Some((_, sub)) = &ident.subpat {
                    self.bind(sub, ty.clone());
                }
                // `None`, `MAX`: an upper-case name alone is a constant or a unit variant.
                let binds = ident.by_ref.is_some()
                    || ident.mutability.is_some()
                    || ident.subpat.is_some()
                    || !unraw(&ident.ident).starts_with(|ch: char| ch.is_uppercase());
                if binds {
                    self.locals.push(Local {
                        name: unraw(&ident.ident),
                        ty,
                        import: None,
                    });
                }
            }
            syn::Pat::Type(typed) => {
                let ty = self.ty_ref(&typed.ty).map(TyExpr::Ty);
                self.bind(&typed.pat, ty);
            }
            syn::Pat::Reference(reference) => self.bind(&reference.pat, ty),
            syn::Pat::Paren(paren) => self.bind(&paren.pat, ty),
            syn::Pat::TupleStruct(tuple) => {
                let unwraps = tuple.qself.is_none()
                    && tuple.elems.len() == 1
                    && (tuple.path.is_ident("Some") || tuple.path.is_ident("Ok"));
                for elem in &tuple.elems {
                    let hint = if unwraps {
                        ty.clone().map(|ty| TyExpr::Unwrap(Box::new(ty)))
                    } else {
                        None
                    };
                    self.bind(elem, hint);
                }
            }
            syn::Pat::Struct(structure) => {
                let base = if structure.qself.is_none() {
                    self.expr_path(&structure.path).map(|path| TyRef {
                        path,
                        args: Vec::new(),
                    })
                } else {
                    None
                };
                for field in &structure.fields {
                    let name = match &field.member {
                        syn::Member::Named(ident) => unraw(ident),
                        syn::Member::Unnamed(index) => index.index.to_string(),
                    };
                    let hint = base.clone().map(|base| {
                        TyExpr::Field(Box::new(TyExpr::Ty(base)), name.into_boxed_str())
                    });
                    self.bind(&field.pat, hint);
                }
            }
            syn::Pat::Tuple(tuple) => {
                for elem in &tuple.elems {
                    self.bind(elem, None);
                }
            }
            syn::Pat::Slice(slice) => {
                for elem in &slice.elems {
                    self.bind(elem, None);
                }
            }
            syn::Pat::Or(or) => {
                for case in &or.cases {
                    self.bind(case, ty.clone());
                }
            }
            _ => {}
        }
    }

    fn item_mod(&mut self, item_mod: &syn::ItemMod, scope: &Scope) {
        let name = unraw(&item_mod.ident);
        let cfg = cfg_predicate(&item_mod.attrs);
        let test_only = self.test_only || cfg.as_deref().is_some_and(cfg_is_test);
        let path_attr = path_attribute(&item_mod.attrs);
        let parent = &self.modules[scope.module];
        let id = format!("{}::{name}", parent.module.id);
        let line = u32::try_from(item_mod.ident.span().start().line).unwrap_or(0);
        match &item_mod.content {
            Some((_, items)) => {
                let module = Module {
                    id,
                    krate: self.krate.to_owned(),
                    parent: Some(parent.module.id.clone()),
                    file: self.output.files[self.file as usize].clone(),
                    line,
                    lines_of_code: 0,
                    inline: true,
                    cfg,
                    test_only,
                    in_macro: self.in_macro,
                    n_traits: 0,
                    n_types: 0,
                };
                self.modules
                    .push(new_facts(module, self.target, name.clone()));
                let index = self.modules.len() - 1;
                // Like rustc: a `#[path]` on an inline module names a directory relative to the
                // file's own directory (without the non-mod-rs file's name), for historical
                // reasons; without it, the module's name is appended to the children's directory.
                let dir = match &path_attr {
                    Some(path) => without_cur_dir(&scope.path_dir.join(path)),
                    None => scope.children_dir.join(&name),
                };
                let child = Scope {
                    module: index,
                    children_dir: dir.clone(),
                    path_dir: dir,
                };
                let saved_test = self.test_only;
                self.test_only = test_only;
                let (first, last) = inline_lines(item_mod);
                self.module_items(items, &child, (first, last));
                self.test_only = saved_test;
            }
            None => {
                let (candidates, mod_rs) = match path_attr {
                    // A file named by `#[path]` owns its directory, like a `mod.rs`.
                    Some(path) => (
                        vec![without_cur_dir(&scope.path_dir.join(path))],
                        vec![true],
                    ),
                    None => {
                        // `#[cfg_attr(unix, path = "unix.rs")]` alternatives first, the first
                        // one that exists is read.
                        let mut candidates: Vec<PathBuf> = cfg_attr_paths(&item_mod.attrs)
                            .into_iter()
                            .map(|path| without_cur_dir(&scope.path_dir.join(path)))
                            .collect();
                        let mut mod_rs = vec![true; candidates.len()];
                        candidates.push(scope.children_dir.join(format!("{name}.rs")));
                        candidates.push(scope.children_dir.join(&name).join("mod.rs"));
                        mod_rs.extend([false, true]);
                        (candidates, mod_rs)
                    }
                };
                self.output.jobs.push(FileJob {
                    target: self.target,
                    id,
                    name,
                    krate: self.krate.to_owned(),
                    parent: Some(parent.module.id.clone()),
                    candidates,
                    mod_rs,
                    line,
                    cfg,
                    test_only,
                    in_macro: self.in_macro,
                    depth: self.depth + 1,
                });
            }
        }
    }

    fn item_macro(&mut self, item_macro: &syn::ItemMacro, scope: &Scope) {
        let mac = &item_macro.mac;
        if item_macro.ident.is_some() {
            // `macro_rules! name { ... }`: a definition; its body is a template, not code.
            if let Some(ident) = &item_macro.ident {
                self.facts().items.push(ItemDef {
                    name: ident.to_string(),
                    kind: ItemKind::Macro,
                    sig: None,
                    methods: Vec::new(),
                    fields: Vec::new(),
                    alias: None,
                });
            }
            return;
        }
        if mac.path.is_ident("include") {
            self.include(mac, scope);
            return;
        }
        self.macro_path(&mac.path);
        let items = macro_body_items(mac.tokens.clone());
        if items.is_empty() {
            self.scan_tokens(mac.tokens.clone());
        } else {
            let saved = self.in_macro;
            self.in_macro = true;
            for item in &items {
                self.item(item, scope);
            }
            self.in_macro = saved;
        }
    }

    /// Follows `include!("file.rs")`: its items become part of the current module.
    fn include(&mut self, mac: &syn::Macro, scope: &Scope) {
        let Ok(literal) = syn::parse2::<syn::LitStr>(mac.tokens.clone()) else {
            return;
        };
        let current_file = self.output.files[self.file as usize].clone();
        let path = current_file
            .parent()
            .unwrap_or(Path::new(""))
            .join(literal.value());
        if self.output.files.contains(&path) {
            return;
        }
        let text = match (self.read)(&path) {
            Ok(text) => prepare_source(text),
            Err(err) => {
                self.output.skipped.push(SkippedFile {
                    path,
                    line: None,
                    column: None,
                    error: format!(
                        "cannot read file included from `{}`: {err}",
                        current_file.display()
                    ),
                });
                return;
            }
        };
        // Parsing a second file while the first one's syn tree is alive keeps both source maps.
        match syn::parse_file(&text) {
            Ok(file) => {
                self.output.files.push(path);
                let saved_file = self.file;
                self.file = u32::try_from(self.output.files.len() - 1).unwrap_or(u32::MAX);
                let saved_source = std::mem::replace(&mut self.source, text);
                let included_lines = code_lines(&self.source);
                let saved_lines = std::mem::replace(&mut self.code_lines, included_lines);
                let lines = (1, u32::try_from(self.code_lines.len()).unwrap_or(u32::MAX));
                self.prescan(&file.items);
                self.module_items(&file.items, scope, lines);
                self.code_lines = saved_lines;
                self.source = saved_source;
                self.file = saved_file;
            }
            Err(err) => {
                let start = err.span().start();
                self.output.skipped.push(SkippedFile {
                    path,
                    line: Some(u32::try_from(start.line).unwrap_or(u32::MAX)),
                    column: Some(u32::try_from(start.column + 1).unwrap_or(u32::MAX)),
                    error: err.to_string(),
                });
            }
        }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, mut prefix: Vec<String>, is_pub: bool) {
        match tree {
            syn::UseTree::Path(use_path) => {
                prefix.push(unraw(&use_path.ident));
                self.use_tree(&use_path.tree, prefix, is_pub);
            }
            syn::UseTree::Name(use_name) => {
                let name = unraw(&use_name.ident);
                let ctx = self.ctx(use_name.ident.span());
                if name == "self" {
                    // `use a::b::{self}` binds `b`.
                    let Some(last) = prefix.last().cloned() else {
                        return;
                    };
                    self.facts().uses.push(UseDecl {
                        is_pub,
                        path: prefix,
                        binding: Binding::Name(last),
                        ctx,
                    });
                } else {
                    prefix.push(name.clone());
                    self.facts().uses.push(UseDecl {
                        is_pub,
                        path: prefix,
                        binding: Binding::Name(name),
                        ctx,
                    });
                }
            }
            syn::UseTree::Rename(rename) => {
                let name = unraw(&rename.ident);
                let ctx = self.ctx(rename.ident.span());
                if name != "self" {
                    prefix.push(name);
                }
                let binding = if rename.rename == "_" {
                    Binding::Underscore
                } else {
                    Binding::Name(unraw(&rename.rename))
                };
                self.facts().uses.push(UseDecl {
                    is_pub,
                    path: prefix,
                    binding,
                    ctx,
                });
            }
            syn::UseTree::Glob(glob) => {
                let ctx = self.ctx(glob.star_token.span);
                self.facts().uses.push(UseDecl {
                    is_pub,
                    path: prefix,
                    binding: Binding::Glob,
                    ctx,
                });
            }
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(tree, prefix.clone(), is_pub);
                }
            }
        }
    }

    fn macro_path(&mut self, path: &syn::Path) {
        if path.segments.len() > 1 || path.leading_colon.is_some() {
            self.record_path(path);
        }
    }

    fn record_path(&mut self, path: &syn::Path) {
        use std::fmt::Write as _;
        let Some(first) = path.segments.first() else {
            return;
        };
        let single = path.segments.len() == 1 && path.leading_colon.is_none();
        if single {
            // Most single names are locals: check them against the imported names without
            // allocating.
            let mut name = std::mem::take(&mut self.name_buffer);
            name.clear();
            let _ = write!(name, "{}", first.ident);
            if let Some(stripped) = name.strip_prefix("r#") {
                name = stripped.to_owned();
            }
            if let Some(path) = self.body_import(&name) {
                let path: Box<str> = path.into();
                let ctx = self.ctx(first.ident.span());
                self.facts().refs.push(PathRef { path, ctx });
            } else if (self.any_glob || self.imported.contains(name.as_str()))
                && !self.is_local(&name)
            {
                let ctx = self.ctx(first.ident.span());
                self.facts().refs.push(PathRef {
                    path: name.as_str().into(),
                    ctx,
                });
            }
            self.name_buffer = name;
            return;
        }
        if first.ident == "Self" {
            return;
        }
        let mut text = String::with_capacity(32);
        if path.leading_colon.is_some() {
            text.push_str("::");
        }
        for (index, segment) in path.segments.iter().enumerate() {
            if index > 0 {
                text.push_str("::");
            }
            let _ = write!(text, "{}", segment.ident);
        }
        if text.contains("r#") {
            text = text.replace("r#", "");
        }
        // `Notification::Exit` after a `use helix_lsp::Notification;` in the body.
        if path.leading_colon.is_none()
            && let Some(first_name) = text.split("::").next()
            && let Some(import) = self.body_import(first_name)
        {
            text = format!("{import}{}", &text[first_name.len()..]);
        }
        let ctx = self.ctx(first.ident.span());
        self.facts().refs.push(PathRef {
            path: text.into_boxed_str(),
            ctx,
        });
    }

    /// Finds paths (`a::b::c`, and imported single names) in a macro body we cannot parse.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let mut segments: Vec<proc_macro2::Ident> = Vec::new();
        let mut leading = false;
        let mut pending_colons = 0;
        let flush =
            |this: &mut Self, segments: &mut Vec<proc_macro2::Ident>, leading: &mut bool| {
                if !segments.is_empty() {
                    let path = syn::Path {
                        leading_colon: if *leading {
                            Some(Default::default())
                        } else {
                            None
                        },
                        segments: segments.drain(..).map(syn::PathSegment::from).collect(),
                    };
                    this.record_path(&path);
                }
                *leading = false;
            };
        // `pub(crate)`, `pub(in a::b)`: a visibility is never a use.
        let mut after_pub = false;
        // `let name`, `let mut name`: a binding, which shadows items of the same name.
        let mut after_let = false;
        for token in tokens {
            let was_after_pub = std::mem::replace(&mut after_pub, false);
            match token {
                TokenTree::Ident(ident) => {
                    if !segments.is_empty() && pending_colons != 2 {
                        flush(self, &mut segments, &mut leading);
                    }
                    if segments.is_empty() && pending_colons == 2 {
                        leading = true;
                    }
                    pending_colons = 0;
                    if ident == "pub" {
                        after_pub = true;
                        continue;
                    }
                    if ident == "let" {
                        after_let = true;
                        continue;
                    }
                    if after_let && ident != "mut" && ident != "ref" {
                        after_let = false;
                        self.locals.push(Local {
                            name: unraw(&ident),
                            ty: None,
                            import: None,
                        });
                    }
                    segments.push(ident);
                }
                TokenTree::Group(group)
                    if was_after_pub && group.delimiter() == Delimiter::Parenthesis => {}
                TokenTree::Punct(punct) if punct.as_char() == ':' => {
                    pending_colons += 1;
                    if pending_colons > 2 {
                        flush(self, &mut segments, &mut leading);
                        pending_colons = 0;
                    }
                }
                TokenTree::Group(group) => {
                    flush(self, &mut segments, &mut leading);
                    pending_colons = 0;
                    if group.delimiter() != Delimiter::None || !group.stream().is_empty() {
                        self.scan_tokens(group.stream());
                    }
                }
                _ => {
                    flush(self, &mut segments, &mut leading);
                    pending_colons = 0;
                }
            }
        }
        flush(self, &mut segments, &mut leading);
    }

    /// The signature's parts, sliced out of the source text by byte offsets. `end` is where the
    /// signature stops (the body's `{` or the `;`). Slicing is much cheaper than turning syn
    /// nodes back into tokens.
    fn signature(&self, sig: &syn::Signature, end: usize) -> FnSig {
        let mut qualifiers = String::new();
        if sig.constness.is_some() {
            qualifiers.push_str("const ");
        }
        if sig.asyncness.is_some() {
            qualifiers.push_str("async ");
        }
        if sig.unsafety.is_some() {
            qualifiers.push_str("unsafe ");
        }
        let slice = |from: usize, to: usize| -> String {
            collapse_whitespace(self.source.get(from..to.max(from)).unwrap_or(""))
        };
        let generics = match (&sig.generics.lt_token, &sig.generics.gt_token) {
            (Some(lt), Some(gt)) => slice(lt.span.byte_range().start, gt.span.byte_range().end),
            _ => String::new(),
        };
        let paren = &sig.paren_token.span;
        let params_end = paren.close().byte_range().start;
        let inside = slice(paren.open().byte_range().end, params_end);
        let mut pieces = split_top_level(&inside);
        let mut receiver = None;
        let mut mut_receiver = false;
        let mut mut_params = false;
        for input in &sig.inputs {
            match input {
                syn::FnArg::Receiver(recv) => {
                    mut_receiver = recv.reference.is_some() && recv.mutability.is_some();
                }
                syn::FnArg::Typed(typed) => {
                    if let syn::Type::Reference(reference) = &*typed.ty
                        && reference.mutability.is_some()
                    {
                        mut_params = true;
                    }
                }
            }
        }
        if matches!(sig.inputs.first(), Some(syn::FnArg::Receiver(_))) && !pieces.is_empty() {
            receiver = Some(pieces.remove(0));
        }
        let after_params = paren.close().byte_range().end;
        let where_start = sig
            .generics
            .where_clause
            .as_ref()
            .map(|clause| clause.where_token.span.byte_range().start);
        let output = match &sig.output {
            syn::ReturnType::Default => String::new(),
            syn::ReturnType::Type(arrow, _) => {
                let from = arrow.spans[1].byte_range().end;
                format!(" -> {}", slice(from, where_start.unwrap_or(end)))
            }
        };
        let where_clause = match where_start {
            Some(from) => format!(" {}", slice(from, end).trim_end_matches(',')),
            None => String::new(),
        };
        let _ = after_params;
        let ret = match &sig.output {
            syn::ReturnType::Default => None,
            syn::ReturnType::Type(_, ty) => self.ty_ref(ty),
        };
        FnSig {
            ret,
            name: unraw(&sig.ident),
            qualifiers,
            generics,
            receiver,
            mut_receiver,
            params: pieces,
            mut_params,
            output,
            where_clause,
        }
    }

    /// Walks a function's signature as type-only and its body as code.
    fn function(
        &mut self,
        attrs: &[syn::Attribute],
        sig: &syn::Signature,
        block: Option<&syn::Block>,
    ) {
        let saved_test = self.test_only;
        if is_test_attr(attrs) {
            self.test_only = true;
        }
        let saved_code = self.code;
        // A function body sees its parameters, not the locals of a body it is nested in.
        let saved_locals = std::mem::take(&mut self.locals);
        let generics_len = self.generics.len();
        self.push_generics(&sig.generics);
        self.visit_signature(sig);
        for input in &sig.inputs {
            match input {
                syn::FnArg::Receiver(_) => {
                    let ty = self.self_ty.clone().map(TyExpr::Ty);
                    self.locals.push(Local {
                        name: "self".to_owned(),
                        ty,
                        import: None,
                    });
                }
                syn::FnArg::Typed(typed) => {
                    let ty = self.ty_ref(&typed.ty).map(TyExpr::Ty);
                    self.bind(&typed.pat, ty);
                }
            }
        }
        if let Some(block) = block {
            self.code = true;
            self.visit_block(block);
        }
        self.generics.truncate(generics_len);
        self.locals = saved_locals;
        self.code = saved_code;
        self.test_only = saved_test;
    }
}

impl<'ast> Visit<'ast> for Extractor<'_> {
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.record_path(path);
        for segment in &path.segments {
            self.visit_path_arguments(&segment.arguments);
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let ctx = self.ctx(call.method.span());
        let name = unraw(&call.method).into_boxed_str();
        let receiver = self.ty_of(&call.receiver);
        self.facts().method_calls.push(MethodCall {
            name,
            receiver,
            ctx,
        });
        visit::visit_expr_method_call(self, call);
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let generics_len = self.generics.len();
        self.push_generics(&item.generics);
        let saved_self = self.self_ty.take();
        self.self_ty = self.ty_ref(&item.self_ty);
        visit::visit_item_impl(self, item);
        self.self_ty = saved_self;
        self.generics.truncate(generics_len);
    }

    fn visit_item_trait(&mut self, item: &'ast syn::ItemTrait) {
        let generics_len = self.generics.len();
        self.push_generics(&item.generics);
        let saved_self = self.self_ty.replace(TyRef {
            path: unraw(&item.ident).into_boxed_str(),
            args: Vec::new(),
        });
        visit::visit_item_trait(self, item);
        self.self_ty = saved_self;
        self.generics.truncate(generics_len);
    }

    // Local scopes: a binding is visible from after its pattern to the end of its block, arm,
    // branch, loop body or closure body, and shadows items of the same name.

    fn visit_block(&mut self, block: &'ast syn::Block) {
        let len = self.locals.len();
        visit::visit_block(self, block);
        self.locals.truncate(len);
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let Some(init) = &local.init {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        self.visit_pat(&local.pat);
        let ty = local.init.as_ref().and_then(|init| self.ty_of(&init.expr));
        self.bind(&local.pat, ty);
    }

    fn visit_expr_match(&mut self, expr: &'ast syn::ExprMatch) {
        self.visit_expr(&expr.expr);
        let ty = self.ty_of(&expr.expr);
        for arm in &expr.arms {
            let len = self.locals.len();
            self.visit_pat(&arm.pat);
            self.bind(&arm.pat, ty.clone());
            if let Some((_, guard)) = &arm.guard {
                self.visit_expr(guard);
            }
            self.visit_expr(&arm.body);
            self.locals.truncate(len);
        }
    }

    fn visit_expr_let(&mut self, expr: &'ast syn::ExprLet) {
        // The bindings live until the enclosing `if`, `while` or arm ends.
        self.visit_expr(&expr.expr);
        self.visit_pat(&expr.pat);
        let ty = self.ty_of(&expr.expr);
        self.bind(&expr.pat, ty);
    }

    fn visit_expr_if(&mut self, expr: &'ast syn::ExprIf) {
        let len = self.locals.len();
        self.visit_expr(&expr.cond);
        self.visit_block(&expr.then_branch);
        self.locals.truncate(len);
        if let Some((_, else_branch)) = &expr.else_branch {
            self.visit_expr(else_branch);
        }
    }

    fn visit_expr_while(&mut self, expr: &'ast syn::ExprWhile) {
        let len = self.locals.len();
        self.visit_expr(&expr.cond);
        self.visit_block(&expr.body);
        self.locals.truncate(len);
    }

    fn visit_expr_for_loop(&mut self, expr: &'ast syn::ExprForLoop) {
        self.visit_expr(&expr.expr);
        let len = self.locals.len();
        self.visit_pat(&expr.pat);
        self.bind(&expr.pat, None);
        self.visit_block(&expr.body);
        self.locals.truncate(len);
    }

    fn visit_expr_closure(&mut self, expr: &'ast syn::ExprClosure) {
        let len = self.locals.len();
        for input in &expr.inputs {
            self.visit_pat(input);
            self.bind(input, None);
        }
        if let syn::ReturnType::Type(_, ty) = &expr.output {
            self.visit_type(ty);
        }
        self.visit_expr(&expr.body);
        self.locals.truncate(len);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.macro_path(&mac.path);
        // Most macros in code take expressions (`format!`, `assert_eq!`, `vec!`): walk them as
        // such, so that method calls count too; otherwise look for paths among the tokens.
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        match syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
            Ok(exprs) => {
                for expr in &exprs {
                    self.visit_expr(expr);
                }
            }
            Err(_) => {
                let len = self.locals.len();
                self.scan_tokens(mac.tokens.clone());
                self.locals.truncate(len);
            }
        }
    }

    fn visit_item(&mut self, item: &'ast syn::Item) {
        // Items nested in function bodies: `use`s count for the enclosing module, other items are
        // walked for their references; a module inside a function is not part of the tree.
        match item {
            syn::Item::Use(item_use) => {
                let root = if item_use.leading_colon.is_some() {
                    vec!["::".to_owned()]
                } else {
                    Vec::new()
                };
                let before = self.facts().uses.len();
                self.use_tree(&item_use.tree, root, false);
                // The names it binds are the body's: they stand for their paths there.
                let bound: Vec<(String, Box<str>)> = self.facts().uses[before..]
                    .iter()
                    .filter_map(|use_decl| match &use_decl.binding {
                        Binding::Name(name) => {
                            let path = match use_decl.path.split_first() {
                                Some((first, rest)) if first == "::" => {
                                    format!("::{}", rest.join("::"))
                                }
                                _ => use_decl.path.join("::"),
                            };
                            Some((name.clone(), path.into_boxed_str()))
                        }
                        _ => None,
                    })
                    .collect();
                for (name, path) in bound {
                    self.locals.push(Local {
                        name,
                        ty: None,
                        import: Some(path),
                    });
                }
            }
            syn::Item::Mod(_) => {}
            _ => visit::visit_item(self, item),
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.function(&item.attrs, &item.sig, Some(&item.block));
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.function(&item.attrs, &item.sig, Some(&item.block));
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        self.function(&item.attrs, &item.sig, item.default.as_ref());
    }

    fn visit_expr(&mut self, expr: &'ast syn::Expr) {
        let saved = self.code;
        self.code = true;
        visit::visit_expr(self, expr);
        self.code = saved;
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let saved = self.test_only;
        if let syn::ImplItem::Const(c) = item
            && is_test_attr(&c.attrs)
        {
            self.test_only = true;
        }
        visit::visit_impl_item(self, item);
        self.test_only = saved;
    }
}

/// The items of an item macro's body: the body itself when it parses as items (after inner
/// attributes, as in `feature! { #![unix] mod symlink; }`), else the items of the braced groups
/// inside it that do (`cfg_if! { if #[cfg(unix)] { mod unix; } else { mod windows; } }`).
fn macro_body_items(tokens: TokenStream) -> Vec<syn::Item> {
    fn groups(tokens: TokenStream, depth: usize, acc: &mut Vec<syn::Item>) {
        for token in tokens {
            if let TokenTree::Group(group) = token
                && group.delimiter() == Delimiter::Brace
            {
                match parse_items(group.stream()) {
                    Ok(items) => acc.extend(items),
                    Err(_) if depth < 4 => groups(group.stream(), depth + 1, acc),
                    Err(_) => {}
                }
            }
        }
    }
    match parse_items(tokens.clone()) {
        Ok(items) => items,
        Err(_) => {
            let mut acc = Vec::new();
            groups(tokens, 0, &mut acc);
            acc
        }
    }
}

/// Parses a macro body as a sequence of items, after any inner attributes.
fn parse_items(tokens: TokenStream) -> syn::Result<Vec<syn::Item>> {
    use syn::parse::Parser;
    let parser = |input: syn::parse::ParseStream<'_>| {
        input.call(syn::Attribute::parse_inner)?;
        let mut items = Vec::new();
        while !input.is_empty() {
            items.push(input.parse()?);
        }
        Ok(items)
    };
    parser.parse2(tokens)
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// `#[test]`, or a `#[cfg(...)]` that needs `test`.
fn is_test_attr(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| attr.path().is_ident("test"))
        || cfg_predicate(attrs).as_deref().is_some_and(cfg_is_test)
}

/// Whether a cfg predicate can only hold in test builds: `test`, or `all(..., test, ...)`.
pub(crate) fn cfg_is_test(predicate: &str) -> bool {
    if predicate == "test" {
        return true;
    }
    let Some(inner) = predicate
        .strip_prefix("all(")
        .and_then(|rest| rest.strip_suffix(')'))
    else {
        return false;
    };
    let mut depth = 0;
    let mut start = 0;
    for (index, ch) in inner.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                if inner[start..index].trim() == "test" {
                    return true;
                }
                start = index + 1;
            }
            _ => {}
        }
    }
    inner[start..].trim() == "test"
}

/// The predicates of all `#[cfg(...)]` attributes, as written (several are joined with `all`).
fn cfg_predicate(attrs: &[syn::Attribute]) -> Option<String> {
    let predicates: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .filter_map(|attr| attr.meta.require_list().ok())
        .map(|list| tokens_to_string(list.tokens.clone()))
        .collect();
    match predicates.len() {
        0 => None,
        1 => predicates.into_iter().next(),
        _ => Some(format!("all({})", predicates.join(", "))),
    }
}

/// The value of `#[path = "..."]`.
fn path_attribute(attrs: &[syn::Attribute]) -> Option<String> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("path"))
        .find_map(|attr| match &attr.meta {
            syn::Meta::NameValue(name_value) => match &name_value.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(literal),
                    ..
                }) => Some(literal.value()),
                _ => None,
            },
            _ => None,
        })
}

/// The paths of `#[cfg_attr(predicate, path = "...")]` attributes, in order.
fn cfg_attr_paths(attrs: &[syn::Attribute]) -> Vec<String> {
    let mut res = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("cfg_attr")) {
        let parser = syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated;
        let Ok(metas) = attr.parse_args_with(parser) else {
            continue;
        };
        for meta in metas.iter().skip(1) {
            if let syn::Meta::NameValue(name_value) = meta
                && name_value.path.is_ident("path")
                && let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(literal),
                    ..
                }) = &name_value.value
            {
                res.push(literal.value());
            }
        }
    }
    res
}

/// Renders tokens the way people write cfg predicates: `all(unix, feature = "x")`.
fn tokens_to_string(tokens: TokenStream) -> String {
    let mut res = String::new();
    for token in tokens {
        match token {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                res.push_str(open);
                res.push_str(&tokens_to_string(group.stream()));
                res.push_str(close);
            }
            TokenTree::Punct(punct) => match punct.as_char() {
                ',' => res.push_str(", "),
                '=' => res.push_str(" = "),
                other => res.push(other),
            },
            TokenTree::Ident(ident) => res.push_str(&ident.to_string()),
            TokenTree::Literal(literal) => res.push_str(&literal.to_string()),
        }
    }
    res
}

fn collapse_whitespace(text: &str) -> String {
    let mut res = String::with_capacity(text.len());
    let mut space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            space = true;
        } else {
            if space
                && !res.is_empty()
                && !matches!(ch, ')' | ']' | '>' | ',')
                && !res.ends_with(['(', '[', '<'])
            {
                res.push(' ');
            }
            space = false;
            res.push(ch);
        }
    }
    // A trailing comma before a closing delimiter reads oddly once on one line.
    res.replace(",)", ")").replace(",>", ">")
}

/// A path's segments joined with `::` (a leading `::` kept), without generic arguments and `r#`.
fn path_text(path: &syn::Path) -> String {
    let mut text = String::with_capacity(32);
    if path.leading_colon.is_some() {
        text.push_str("::");
    }
    for (index, segment) in path.segments.iter().enumerate() {
        if index > 0 {
            text.push_str("::");
        }
        text.push_str(&unraw(&segment.ident));
    }
    text
}

/// The path of a type as written (`super::model::Order<T>` gives `super::model::Order`).
fn type_path_text(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(type_path) if type_path.qself.is_none() => Some(path_text(&type_path.path)),
        syn::Type::Reference(reference) => type_path_text(&reference.elem),
        syn::Type::Paren(paren) => type_path_text(&paren.elem),
        syn::Type::Group(group) => type_path_text(&group.elem),
        _ => None,
    }
}

/// The last segment of a type path (`crate::a::PaymentService<T>` gives `PaymentService`).
fn last_type_segment(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(type_path) => type_path
            .path
            .segments
            .last()
            .map(|segment| unraw(&segment.ident)),
        syn::Type::Reference(reference) => last_type_segment(&reference.elem),
        syn::Type::Paren(paren) => last_type_segment(&paren.elem),
        syn::Type::Group(group) => last_type_segment(&group.elem),
        _ => None,
    }
}

/// Splits a parameter list at its top-level commas (not those inside `<>`, `()`, `[]`, `{}`).
fn split_top_level(text: &str) -> Vec<String> {
    let mut res = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut previous = ' ';
    for (index, ch) in text.char_indices() {
        match ch {
            '<' | '(' | '[' | '{' => depth += 1,
            // `->` inside `Fn(u8) -> u8` is not a closing angle bracket.
            '>' if previous != '-' => depth -= 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                let piece = text[start..index].trim();
                if !piece.is_empty() {
                    res.push(piece.to_owned());
                }
                start = index + 1;
            }
            _ => {}
        }
        previous = ch;
    }
    let piece = text[start..].trim();
    if !piece.is_empty() {
        res.push(piece.to_owned());
    }
    res
}

/// First and last line of an inline module (`mod x { ... }`), without turning it into tokens.
fn inline_lines(item_mod: &syn::ItemMod) -> (u32, u32) {
    let first = item_mod.mod_token.span.start().line;
    let last = match &item_mod.content {
        Some((brace, _)) => brace.span.close().end().line,
        None => first,
    };
    (
        u32::try_from(first).unwrap_or(0),
        u32::try_from(last).unwrap_or(0),
    )
}

/// An identifier's name without the `r#` of a raw identifier (`r#type` is the module `type`, in
/// the file `type.rs`).
fn unraw(ident: &proc_macro2::Ident) -> String {
    let name = ident.to_string();
    match name.strip_prefix("r#") {
        Some(stripped) => stripped.to_owned(),
        None => name,
    }
}

/// `a/./b.rs` as `a/b.rs` (`#[path = "."]` is a common idiom); `..` is kept, symlinks may
/// make it mean something else than its lexical reading.
fn without_cur_dir(path: &Path) -> PathBuf {
    path.components()
        .filter(|component| *component != std::path::Component::CurDir)
        .collect()
}
