//! HTTP endpoints declared in the code, and what each one reaches.
//!
//! **Discovery** is syntactic, like the rest of the analyzer. Files that mention a routing
//! construct are parsed again (the module facts keep no expressions) and every function body is
//! searched for router-building expressions:
//!
//! - axum: `Router::new().route(path, get(h).post(h2))`, `nest(prefix, router)`, `merge(router)`,
//!   `route_service`, method routers (`get`, `post`, ..., `any`, `on(MethodFilter::X, h)`),
//!   `{param}` and `:param` paths;
//! - actix-web: `#[get("/x")]` and friends, `#[route("/x", method = "GET")]`, `web::resource`,
//!   `web::scope`, `App::service`, `App::route`, `web::get().to(h)`, `configure(f)` and the
//!   `ServiceConfig` functions it names;
//! - Rocket: `#[get("/x")]`, `#[route(GET, uri = "/x")]`, `routes![..]`, `mount(prefix, ..)`.
//!
//! A router a function returns (or builds and serves) is one value; `nest`/`merge`/`service`/
//! `configure`/`mount` of a call to another function include that function's routers, resolved
//! through the same name resolution as the module edges (`resolve.rs`). Routers no one includes
//! are the roots; their routes, with prefixes applied, are the endpoints. Local `let` bindings of
//! routers are followed within a function.
//!
//! **Reach** walks from the handler function through the references inside each function's
//! lines (the module facts' references, attributed to functions by their line span): a path to a
//! function or an associated function follows into it, a method call follows into the method of
//! a workspace type the same function names (the edges' heuristic, per function rather than per
//! module), a type counts but is not followed. Trait items are ports: they count as reached, but
//! a call through a trait is not a call into the domain that implements it.
//!
//! **Ownership**: each top-level module (`crate::name`) is a domain, the kernel (used by several
//! domains, using none) or wiring (using several domains, used by none but wiring), from the
//! module edges (see [`DomainRole`]). An endpoint *needs* a domain when it calls that domain's code
//! from the handler or from wiring and kernel code on the way (calls inside a domain's code are
//! that domain's own dependencies, cut with its edges). One domain needed: the owner. None: the
//! domain whose types it names most, if unique. Several: shared.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};

use crate::modules::{Extracted, ItemKind};
use crate::report::{Domain, DomainRole, Edge, Endpoint, Location, Reach};
use crate::resolve::{Res, Resolver, split_path};

/// How many functions one endpoint's reach may visit (a bound on pathological graphs).
const MAX_REACH_FUNCTIONS: usize = 4096;
/// Stack size of the threads that parse and walk route files.
const PARSER_STACK_SIZE: usize = 64 << 20;
/// How deep includes of routers may nest (guards against a router that includes itself).
const MAX_INCLUDE_DEPTH: usize = 32;

/// Words whose presence in a file makes it worth parsing for routes.
const MARKERS: [&str; 7] = [
    ".route(",
    ".nest(",
    ".service(",
    ".mount(",
    "routes!",
    "#[get(",
    "#[post(",
];

/// The endpoints of the workspace and the domains they are attributed to.
pub(crate) fn discover(
    extracted: &Extracted,
    resolver: &mut Resolver<'_>,
    scoped_edges: &[&Edge],
    read: &(dyn Fn(&Path) -> std::io::Result<String> + Sync),
) -> (Vec<Endpoint>, Vec<Domain>) {
    let _span = tracing::info_span!("endpoints").entered();
    // syn and the evaluation of router expressions recurse on deeply nested code: big stacks,
    // as for the first parse (`modules.rs`).
    match rayon::ThreadPoolBuilder::new()
        .stack_size(PARSER_STACK_SIZE)
        .build()
    {
        Ok(pool) => pool.install(|| discover_in(extracted, resolver, scoped_edges, read)),
        Err(_) => discover_in(extracted, resolver, scoped_edges, read),
    }
}

fn discover_in(
    extracted: &Extracted,
    resolver: &mut Resolver<'_>,
    scoped_edges: &[&Edge],
    read: &(dyn Fn(&Path) -> std::io::Result<String> + Sync),
) -> (Vec<Endpoint>, Vec<Domain>) {
    let started = std::time::Instant::now();
    let file_modules = file_modules(extracted);
    let parsed: Vec<FileRoutes> = extracted
        .files
        .par_iter()
        .enumerate()
        .filter_map(|(file_index, path)| {
            let module = file_modules.get(&(file_index as u32))?;
            let text = read(path).ok()?;
            if !MARKERS.iter().any(|marker| text.contains(marker))
                && !text.contains("#[put(")
                && !text.contains("#[delete(")
            {
                return None;
            }
            let file = syn::parse_file(&text).ok()?;
            Some(routes_of_file(&file, file_index as u32, module))
        })
        .collect();
    let module_index: FxHashMap<&str, u32> = extracted
        .modules
        .iter()
        .enumerate()
        .map(|(index, facts)| (facts.module.id.as_str(), index as u32))
        .collect();
    let mut routers: FxHashMap<(u32, String), Vec<Entry>> = FxHashMap::default();
    let mut attributed: FxHashMap<(u32, String), Vec<Attributed>> = FxHashMap::default();
    let mut attributed_order: Vec<(u32, String)> = Vec::new();
    let mut produced_order: Vec<(u32, String)> = Vec::new();
    for file in &parsed {
        // Routers built by tests are not the application's endpoints.
        let is_test = |module: u32| extracted.modules[module as usize].module.test_only;
        for (module, function, entries) in &file.routers {
            let Some(&module) = module_index.get(module.as_str()) else {
                continue;
            };
            if is_test(module) {
                continue;
            }
            let key = (module, function.clone());
            if !routers.contains_key(&key) {
                produced_order.push(key.clone());
            }
            routers
                .entry(key)
                .or_default()
                .extend(entries.iter().cloned());
        }
        for (module, function, attribute) in &file.attributed {
            let Some(&module) = module_index.get(module.as_str()) else {
                continue;
            };
            if is_test(module) {
                continue;
            }
            let key = (module, function.clone());
            if !attributed.contains_key(&key) {
                attributed_order.push(key.clone());
            }
            attributed.entry(key).or_default().push(attribute.clone());
        }
    }
    let mut flattener = Flattener {
        resolver,
        routers: &routers,
        attributed: &attributed,
        included: FxHashSet::default(),
        attributed_used: FxHashSet::default(),
        out: Vec::new(),
    };
    // A first pass finds which routers are included by others; only the rest are roots.
    for key in &produced_order {
        let mut sink = Vec::new();
        flattener.flatten(key.0, &routers[key], "", 0, &mut sink);
    }
    let included = std::mem::take(&mut flattener.included);
    flattener.attributed_used.clear();
    for key in &produced_order {
        if included.contains(key) {
            continue;
        }
        let mut sink = Vec::new();
        flattener.flatten(key.0, &routers[key], "", 0, &mut sink);
        flattener.out.extend(sink);
    }
    // Attribute handlers that no router registers keep their own path (Rocket needs `mount`,
    // actix-web `service`, but the declaration is still the best evidence of an endpoint).
    for key in &attributed_order {
        if flattener.attributed_used.contains(key) {
            continue;
        }
        for attribute in &attributed[key] {
            flattener.out.push(Flat {
                method: attribute.method.clone(),
                path: attribute.path.clone(),
                handler: Some(Handler::Resolved(key.0, key.1.clone())),
                framework: attribute.framework,
                loc: attribute.loc,
            });
        }
    }
    let flat = std::mem::take(&mut flattener.out);

    let mut spans = FnSpans::default();
    let methods = MethodIndex::new(resolver);
    let no_roles: FxHashMap<&str, DomainRole> = FxHashMap::default();
    // Full reaches first: which domains host handlers and whose code endpoints run decide the
    // roles, and the roles decide what each endpoint needs.
    let full: Vec<Option<Reached>> = flat
        .iter()
        .map(|route| match &route.handler {
            Some(Handler::Resolved(module, function)) => {
                let walk = Walk {
                    extracted,
                    methods: &methods,
                    role_of: &no_roles,
                    read,
                };
                Some(walk.reach(resolver, &mut spans, &(*module, function.clone()), None))
            }
            _ => None,
        })
        .collect();
    let mut hosts: FxHashSet<&str> = FxHashSet::default();
    let mut code_run: FxHashSet<&str> = FxHashSet::default();
    for (route, reached) in flat.iter().zip(&full) {
        if let Some(Handler::Resolved(module, _)) = &route.handler {
            hosts.insert(domain_of(&extracted.modules[*module as usize].module.id));
        }
        for (module, &(_, code)) in reached.iter().flatten() {
            if code {
                code_run.insert(domain_of(&extracted.modules[*module as usize].module.id));
            }
        }
    }
    let domains = domain_roles(extracted, scoped_edges, &hosts, &code_run);
    let role_of: FxHashMap<&str, DomainRole> = domains
        .iter()
        .map(|domain| (domain.id.as_str(), domain.role))
        .collect();
    let mut endpoints: BTreeMap<(String, String, String, std::path::PathBuf), Endpoint> =
        BTreeMap::new();
    for (route, reached) in flat.into_iter().zip(full) {
        let handler_name = match &route.handler {
            Some(Handler::Resolved(module, function)) => {
                format!(
                    "{}::{function}",
                    extracted.modules[*module as usize].module.id
                )
            }
            Some(Handler::Written(text)) => text.clone(),
            None => "<service>".to_owned(),
        };
        let (reaches, needs, owner) = match (&route.handler, reached) {
            (Some(Handler::Resolved(module, function)), Some(reaches)) => {
                let start = (*module, function.clone());
                let walk = Walk {
                    extracted,
                    methods: &methods,
                    role_of: &role_of,
                    read,
                };
                let home = domain_of(&extracted.modules[*module as usize].module.id);
                let needs_walk = walk.reach(resolver, &mut spans, &start, Some(home));
                ownership(extracted, &reaches, &needs_walk, home, &role_of)
            }
            _ => (Vec::new(), Vec::new(), None),
        };
        let location = Location {
            file: extracted
                .files
                .get(route.loc.0 as usize)
                .cloned()
                .unwrap_or_default(),
            line: route.loc.1,
            column: route.loc.2,
        };
        let endpoint = Endpoint {
            method: route.method,
            path: route.path,
            handler: handler_name,
            framework: route.framework.as_str().to_owned(),
            location,
            reaches,
            needs,
            owner,
        };
        // One endpoint per (path, method, handler, file): a router served twice is listed
        // once, two binaries that both serve `GET /` with a closure are two endpoints.
        endpoints
            .entry((
                endpoint.path.clone(),
                endpoint.method.clone(),
                endpoint.handler.clone(),
                endpoint.location.file.clone(),
            ))
            .or_insert(endpoint);
    }
    let endpoints: Vec<Endpoint> = endpoints.into_values().collect();
    tracing::info!(
        endpoints = endpoints.len(),
        files_with_routes = parsed.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "endpoints found"
    );
    (endpoints, domains)
}

/// The top-level module a module belongs to: `shop::payment::card` -> `shop::payment`; a crate
/// root is its own.
pub fn domain_of(module: &str) -> &str {
    match module.match_indices("::").nth(1) {
        Some((index, _)) => &module[..index],
        None => module,
    }
}

/// Which framework declared a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framework {
    Axum,
    Actix,
    Rocket,
}

impl Framework {
    fn as_str(self) -> &'static str {
        match self {
            Framework::Axum => "axum",
            Framework::Actix => "actix-web",
            Framework::Rocket => "rocket",
        }
    }
}

/// (file index, line, column).
type Loc3 = (u32, u32, u32);

/// A route handler attribute (`#[get("/x")]`) on a function.
#[derive(Debug, Clone)]
struct Attributed {
    method: String,
    path: String,
    framework: Framework,
    loc: Loc3,
}

/// A route, or a reference to routers built elsewhere, as written in one function.
#[derive(Debug, Clone)]
enum Entry {
    Route {
        method: String,
        path: String,
        /// The handler's path as written, or `None` for a service or closure.
        handler: Option<String>,
        framework: Framework,
        loc: Loc3,
    },
    /// Routers another function builds (or an attributed handler), under `prefix`.
    Include {
        prefix: String,
        /// Path as written in the module of the enclosing function.
        target: String,
        framework: Framework,
        loc: Loc3,
    },
    Nested {
        prefix: String,
        entries: Vec<Entry>,
    },
}

/// What one parsed file holds: routers per function, attributed handlers.
#[derive(Debug, Default)]
struct FileRoutes {
    /// (module id, function name, entries).
    routers: Vec<(String, String, Vec<Entry>)>,
    /// (module id, function name, attribute).
    attributed: Vec<(String, String, Attributed)>,
}

/// A resolved handler.
#[derive(Debug, Clone)]
enum Handler {
    /// (module index, `name` or `Type::name`).
    Resolved(u32, String),
    Written(String),
}

/// A route with its prefixes applied.
#[derive(Debug, Clone)]
struct Flat {
    method: String,
    path: String,
    handler: Option<Handler>,
    framework: Framework,
    loc: Loc3,
}

/// The module id of each file's top (an `include!`d file has none and is skipped).
fn file_modules(extracted: &Extracted) -> FxHashMap<u32, String> {
    let index: FxHashMap<&Path, u32> = extracted
        .files
        .iter()
        .enumerate()
        .map(|(index, path)| (path.as_path(), index as u32))
        .collect();
    let mut res = FxHashMap::default();
    for facts in &extracted.modules {
        if facts.module.inline {
            continue;
        }
        if let Some(&file) = index.get(facts.module.file.as_path()) {
            res.entry(file).or_insert_with(|| facts.module.id.clone());
        }
    }
    res
}

// ---------------------------------------------------------------------------------------------
// Discovery: syntax to entries.

fn routes_of_file(file: &syn::File, file_index: u32, module: &str) -> FileRoutes {
    let mut collector = Collector {
        file: file_index,
        module: vec![module.to_owned()],
        self_ty: None,
        out: FileRoutes::default(),
    };
    collector.visit_file(file);
    collector.out
}

struct Collector {
    file: u32,
    /// The module stack: the file's module, then inline modules.
    module: Vec<String>,
    self_ty: Option<String>,
    out: FileRoutes,
}

impl Collector {
    fn loc(&self, span: proc_macro2::Span) -> Loc3 {
        let start = span.start();
        (
            self.file,
            u32::try_from(start.line).unwrap_or(u32::MAX),
            u32::try_from(start.column + 1).unwrap_or(u32::MAX),
        )
    }

    fn function(&mut self, attrs: &[syn::Attribute], sig: &syn::Signature, block: &syn::Block) {
        // `#[test]`, `#[tokio::test]`, `#[actix_web::test]`: a test's router is no endpoint.
        if attrs.iter().any(|attr| {
            attr.path()
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "test")
        }) {
            return;
        }
        let name = match &self.self_ty {
            Some(ty) => format!("{ty}::{}", sig.ident),
            None => sig.ident.to_string(),
        };
        let module = self.module.last().cloned().unwrap_or_default();
        for attr in attrs {
            if let Some(attribute) = self.route_attribute(attr) {
                self.out
                    .attributed
                    .push((module.clone(), name.clone(), attribute));
            }
        }
        let mut body = Body {
            collector: self,
            locals: FxHashMap::default(),
            produced: Vec::new(),
        };
        body.visit_block(block);
        let entries: Vec<Entry> = body
            .produced
            .into_iter()
            .filter(|(_, consumed)| !consumed)
            .flat_map(|(entries, _)| entries)
            .collect();
        if !entries.is_empty() {
            self.out.routers.push((module, name, entries));
        }
    }

    /// `#[get("/x")]`, `#[actix_web::post("/x")]`, `#[route("/x", method = "GET")]` (actix-web),
    /// `#[route(GET, uri = "/x")]` (Rocket).
    fn route_attribute(&self, attr: &syn::Attribute) -> Option<Attributed> {
        let last = attr.path().segments.last()?.ident.to_string();
        let syn::Meta::List(list) = &attr.meta else {
            return None;
        };
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        let args = syn::parse::Parser::parse2(parser, list.tokens.clone()).ok()?;
        let loc = self.loc(attr.span());
        let method = match last.as_str() {
            "get" | "post" | "put" | "delete" | "patch" | "head" | "options" | "trace"
            | "connect" => last.to_uppercase(),
            "route" => {
                // actix-web: ("/x", method = "GET", ...); Rocket: (GET, uri = "/x").
                let mut methods = Vec::new();
                let mut path = None;
                for arg in &args {
                    match arg {
                        syn::Expr::Lit(lit) => path = string_lit(&lit.lit),
                        syn::Expr::Assign(assign) => {
                            let key = expr_path(&assign.left).unwrap_or_default();
                            let value = match &*assign.right {
                                syn::Expr::Lit(lit) => string_lit(&lit.lit),
                                _ => None,
                            };
                            match key.as_str() {
                                "method" => methods.extend(value),
                                "uri" => path = value,
                                _ => {}
                            }
                        }
                        syn::Expr::Path(p) => {
                            methods.extend(expr_path(&syn::Expr::Path(p.clone())));
                        }
                        _ => {}
                    }
                }
                let path = path?;
                let framework = if path.contains('<') || args.len() > 1 && methods.len() == 1 {
                    guess_framework(&path)
                } else {
                    Framework::Actix
                };
                let method = if methods.is_empty() {
                    "ANY".to_owned()
                } else {
                    methods.join(",").to_uppercase()
                };
                return Some(Attributed {
                    path: normalize_path(&path),
                    method,
                    framework,
                    loc,
                });
            }
            _ => return None,
        };
        let syn::Expr::Lit(lit) = args.first()? else {
            return None;
        };
        // actix-web inserts the leading slash (`#[post("login")]` in scope `/users` is
        // `/users/login`; `#[get("")]` is the scope itself).
        let path = string_lit(&lit.lit)?;
        Some(Attributed {
            framework: guess_framework(&path),
            path: normalize_path(&path),
            method,
            loc,
        })
    }
}

/// Rocket writes parameters `<id>`, actix-web `{id}`.
fn guess_framework(path: &str) -> Framework {
    if path.contains('<') {
        Framework::Rocket
    } else {
        Framework::Actix
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_none() {
            return;
        }
        let parent = self.module.last().cloned().unwrap_or_default();
        self.module.push(format!("{parent}::{}", item.ident));
        visit::visit_item_mod(self, item);
        self.module.pop();
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let saved = self.self_ty.take();
        self.self_ty = last_type_segment(&item.self_ty);
        visit::visit_item_impl(self, item);
        self.self_ty = saved;
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        let saved = self.self_ty.take();
        self.function(&item.attrs, &item.sig, &item.block);
        self.self_ty = saved;
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.function(&item.attrs, &item.sig, &item.block);
    }
}

/// A value a router-building expression evaluates to.
#[derive(Debug, Clone)]
enum Value {
    /// A router, app, or `ServiceConfig` with its routes.
    Router(Framework, Vec<Entry>),
    /// `web::scope(prefix)` with its services.
    Scope(String, Vec<Entry>),
    /// `web::resource(path)` with its methods.
    Resource(String, Vec<(String, Option<String>)>, Loc3),
    /// `get(h).post(h2)` (axum).
    MethodRouter(Vec<(String, Option<String>)>),
    /// `web::get().to(h)` (actix-web).
    ActixRoute(String, Option<String>),
    /// A path or a call of a path: maybe a function that builds routers, maybe a handler.
    Ref(String, Loc3),
    /// `routes![a, b]` (Rocket).
    RocketRoutes(Vec<(String, Loc3)>),
    /// A tuple of services.
    Many(Vec<Value>),
    Other,
}

impl Value {
    fn is_router(&self) -> bool {
        matches!(
            self,
            Value::Router(..) | Value::Scope(..) | Value::Resource(..)
        )
    }
}

/// Walks one function body.
struct Body<'c> {
    collector: &'c mut Collector,
    /// `let` bindings of routers: name -> index into `produced`.
    locals: FxHashMap<String, usize>,
    /// Router values built here, and whether another one in this body consumed them.
    produced: Vec<(Vec<Entry>, bool)>,
}

const HTTP_METHODS: [&str; 9] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "connect",
];

impl Body<'_> {
    fn loc(&self, span: proc_macro2::Span) -> Loc3 {
        self.collector.loc(span)
    }

    fn local(&mut self, name: &str) -> Option<Vec<Entry>> {
        let index = *self.locals.get(name)?;
        let (entries, consumed) = self.produced.get_mut(index)?;
        *consumed = true;
        Some(entries.clone())
    }

    fn eval(&mut self, expr: &syn::Expr) -> Value {
        match expr {
            syn::Expr::Paren(inner) => self.eval(&inner.expr),
            syn::Expr::Group(inner) => self.eval(&inner.expr),
            syn::Expr::Reference(inner) => self.eval(&inner.expr),
            syn::Expr::Try(inner) => self.eval(&inner.expr),
            syn::Expr::Await(inner) => self.eval(&inner.base),
            syn::Expr::Block(block) => match block.block.stmts.last() {
                Some(syn::Stmt::Expr(tail, None)) => self.eval(tail),
                _ => Value::Other,
            },
            syn::Expr::Tuple(tuple) => {
                Value::Many(tuple.elems.iter().map(|elem| self.eval(elem)).collect())
            }
            syn::Expr::Path(path) => {
                let text = path_text(&path.path);
                if path.path.segments.len() == 1
                    && let Some(entries) = self.local(&text)
                {
                    return Value::Router(Framework::Axum, entries);
                }
                Value::Ref(text, self.loc(path.span()))
            }
            // `configure(|cfg| routes::config(cfg, flag))`: the closure's call is what registers.
            syn::Expr::Closure(closure) => match self.eval(&closure.body) {
                value @ (Value::Ref(..) | Value::Router(..) | Value::Scope(..)) => value,
                _ => Value::Ref("<closure>".to_owned(), self.loc(expr.span())),
            },
            syn::Expr::Macro(mac) => self.eval_macro(&mac.mac),
            syn::Expr::Call(call) => self.eval_call(call),
            syn::Expr::MethodCall(call) => self.eval_method(call),
            _ => Value::Other,
        }
    }

    fn eval_macro(&mut self, mac: &syn::Macro) -> Value {
        let name = mac
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string())
            .unwrap_or_default();
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        let Ok(args) = syn::parse::Parser::parse2(parser, mac.tokens.clone()) else {
            return Value::Other;
        };
        match name.as_str() {
            "routes" => Value::RocketRoutes(
                args.iter()
                    .filter_map(|arg| Some((expr_path(arg)?, self.loc(arg.span()))))
                    .collect(),
            ),
            "services" => Value::Many(args.iter().map(|arg| self.eval(arg)).collect()),
            _ => Value::Other,
        }
    }

    fn eval_call(&mut self, call: &syn::ExprCall) -> Value {
        let Some(func) = expr_path(&call.func) else {
            return Value::Other;
        };
        let segments: Vec<&str> = func.split("::").collect();
        let last = segments.last().copied().unwrap_or_default();
        let before = segments
            .len()
            .checked_sub(2)
            .and_then(|index| segments.get(index))
            .copied()
            .unwrap_or_default();
        let first_string = call.args.first().and_then(|arg| match arg {
            syn::Expr::Lit(lit) => string_lit(&lit.lit),
            _ => None,
        });
        let loc = self.loc(call.span());
        match (before, last) {
            ("Router", "new") => Value::Router(Framework::Axum, Vec::new()),
            ("App", "new") => Value::Router(Framework::Actix, Vec::new()),
            ("rocket", "build" | "custom") => Value::Router(Framework::Rocket, Vec::new()),
            ("web" | "", "scope") | ("Scope", "new") if first_string.is_some() => {
                Value::Scope(first_string.unwrap_or_default(), Vec::new())
            }
            // actix-files: a directory served under a prefix.
            ("Files", "new") if first_string.is_some() => Value::Resource(
                join(&first_string.unwrap_or_default(), "/{*path}"),
                vec![("GET".to_owned(), Some("actix_files::Files".to_owned()))],
                loc,
            ),
            ("web" | "", "resource") | ("Resource", "new") if first_string.is_some() => {
                Value::Resource(first_string.unwrap_or_default(), Vec::new(), loc)
            }
            ("web", method) if HTTP_METHODS.contains(&method) && call.args.is_empty() => {
                Value::ActixRoute(method.to_uppercase(), None)
            }
            ("web", "route") if call.args.is_empty() => Value::ActixRoute("ANY".to_owned(), None),
            ("web", "method") => {
                let method = call
                    .args
                    .first()
                    .and_then(expr_path)
                    .and_then(|path| path.rsplit("::").next().map(str::to_uppercase))
                    .unwrap_or_else(|| "ANY".to_owned());
                Value::ActixRoute(method, None)
            }
            (_, method)
                if HTTP_METHODS.contains(&method)
                    && call.args.len() == 1
                    && matches!(before, "" | "routing") =>
            {
                let handler = self.handler(&call.args[0]);
                Value::MethodRouter(vec![(method.to_uppercase(), handler)])
            }
            (_, "any") if call.args.len() == 1 && matches!(before, "" | "routing") => {
                let handler = self.handler(&call.args[0]);
                Value::MethodRouter(vec![("ANY".to_owned(), handler)])
            }
            (_, "on") if call.args.len() == 2 && matches!(before, "" | "routing") => {
                let method = method_filter(&call.args[0]);
                let handler = self.handler(&call.args[1]);
                Value::MethodRouter(vec![(method, handler)])
            }
            (_, verb)
                if call.args.len() == 1
                    && matches!(before, "" | "routing")
                    && verb
                        .strip_suffix("_service")
                        .is_some_and(|verb| HTTP_METHODS.contains(&verb) || verb == "any") =>
            {
                let verb = verb.trim_end_matches("_service");
                let method = if verb == "any" {
                    "ANY".to_owned()
                } else {
                    verb.to_uppercase()
                };
                Value::MethodRouter(vec![(method, None)])
            }
            // A helper of the application's own, `route("/foo", get(handler))`: a path and a
            // method router make a route whatever the function is called.
            _ if call.args.len() == 2
                && first_string
                    .as_deref()
                    .is_some_and(|path| path.starts_with('/'))
                && matches!(self.eval(&call.args[1]), Value::MethodRouter(_)) =>
            {
                let Value::MethodRouter(methods) = self.eval(&call.args[1]) else {
                    return Value::Other;
                };
                let path = normalize_path(&first_string.unwrap_or_default());
                Value::Router(
                    Framework::Axum,
                    methods
                        .into_iter()
                        .map(|(method, handler)| Entry::Route {
                            method,
                            path: path.clone(),
                            handler,
                            framework: Framework::Axum,
                            loc,
                        })
                        .collect(),
                )
            }
            _ => Value::Ref(func, loc),
        }
    }

    /// The handler's path as written; a closure or anything else is `None`.
    fn handler(&mut self, expr: &syn::Expr) -> Option<String> {
        match expr {
            syn::Expr::Path(_) => expr_path(expr),
            syn::Expr::Closure(_) => Some("<closure>".to_owned()),
            // `handler.layer(..)`, `handler.with_state(..)`: the handler is the receiver.
            syn::Expr::MethodCall(call) => self.handler(&call.receiver),
            syn::Expr::Reference(inner) => self.handler(&inner.expr),
            syn::Expr::Paren(inner) => self.handler(&inner.expr),
            _ => None,
        }
    }

    fn eval_method(&mut self, call: &syn::ExprMethodCall) -> Value {
        let method = call.method.to_string();
        let loc = self.loc(call.method.span());
        let args: Vec<&syn::Expr> = call.args.iter().collect();
        let first_string = args.first().and_then(|arg| match arg {
            syn::Expr::Lit(lit) => string_lit(&lit.lit),
            _ => None,
        });
        let receiver = self.eval(&call.receiver);
        match (method.as_str(), receiver) {
            // axum's method routers chain: `get(h).post(h2)`.
            (name, Value::MethodRouter(mut methods))
                if (HTTP_METHODS.contains(&name) || name == "any") && args.len() == 1 =>
            {
                let handler = self.handler(args[0]);
                methods.push((
                    if name == "any" {
                        "ANY".to_owned()
                    } else {
                        name.to_uppercase()
                    },
                    handler,
                ));
                Value::MethodRouter(methods)
            }
            // `get(h).post_service(svc)`: a service for one method.
            (name, Value::MethodRouter(mut methods))
                if args.len() == 1
                    && name
                        .strip_suffix("_service")
                        .is_some_and(|verb| HTTP_METHODS.contains(&verb) || verb == "any") =>
            {
                let verb = name.trim_end_matches("_service");
                methods.push((
                    if verb == "any" {
                        "ANY".to_owned()
                    } else {
                        verb.to_uppercase()
                    },
                    None,
                ));
                Value::MethodRouter(methods)
            }
            ("on", Value::MethodRouter(mut methods)) if args.len() == 2 => {
                let filter = method_filter(args[0]);
                let handler = self.handler(args[1]);
                methods.push((filter, handler));
                Value::MethodRouter(methods)
            }
            // actix-web: `web::get().to(h)`.
            ("to", Value::ActixRoute(verb, _)) if args.len() == 1 => {
                Value::ActixRoute(verb, self.handler(args[0]))
            }
            ("guard", Value::ActixRoute(verb, handler)) => {
                let guarded = args
                    .first()
                    .and_then(|arg| match arg {
                        syn::Expr::Call(call) => expr_path(&call.func),
                        _ => None,
                    })
                    .and_then(|path| path.rsplit("::").next().map(str::to_uppercase))
                    .filter(|verb| HTTP_METHODS.contains(&verb.to_lowercase().as_str()));
                Value::ActixRoute(guarded.unwrap_or(verb), handler)
            }
            // actix-web resources: `.route(web::get().to(h))`, `.to(h)`.
            ("route", Value::Resource(path, mut methods, at)) if args.len() == 1 => {
                if let Value::ActixRoute(verb, handler) = self.eval(args[0]) {
                    methods.push((verb, handler));
                }
                Value::Resource(path, methods, at)
            }
            ("to", Value::Resource(path, mut methods, at)) if args.len() == 1 => {
                methods.push(("ANY".to_owned(), self.handler(args[0])));
                Value::Resource(path, methods, at)
            }
            // `.route(path, ...)`: axum routers, actix-web apps and scopes.
            ("route", receiver) if args.len() == 2 && first_string.is_some() => {
                let path = first_string.unwrap_or_default();
                let (framework, mut entries, scope) = open(receiver);
                let framework = match self.eval(args[1]) {
                    Value::MethodRouter(methods) => {
                        for (verb, handler) in methods {
                            entries.push(Entry::Route {
                                method: verb,
                                path: normalize_path(&path),
                                handler,
                                framework: Framework::Axum,
                                loc,
                            });
                        }
                        Framework::Axum
                    }
                    Value::ActixRoute(verb, handler) => {
                        entries.push(Entry::Route {
                            method: verb,
                            path: normalize_path(&path),
                            handler,
                            framework: Framework::Actix,
                            loc,
                        });
                        Framework::Actix
                    }
                    _ => framework,
                };
                close(framework, entries, scope)
            }
            ("route_service", receiver) if args.len() == 2 && first_string.is_some() => {
                let (framework, mut entries, scope) = open(receiver);
                entries.push(Entry::Route {
                    method: "ANY".to_owned(),
                    path: normalize_path(&first_string.unwrap_or_default()),
                    handler: None,
                    framework,
                    loc,
                });
                close(framework, entries, scope)
            }
            // A service under a prefix (`ServeDir`): every method, every path below it.
            ("nest_service", receiver) if args.len() == 2 && first_string.is_some() => {
                let (framework, mut entries, scope) = open(receiver);
                entries.push(Entry::Route {
                    method: "ANY".to_owned(),
                    path: join(
                        &normalize_path(&first_string.unwrap_or_default()),
                        "/{*path}",
                    ),
                    handler: None,
                    framework,
                    loc,
                });
                close(framework, entries, scope)
            }
            ("nest" | "mount", receiver) if args.len() == 2 && first_string.is_some() => {
                let prefix = normalize_path(&first_string.unwrap_or_default());
                let (framework, mut entries, scope) = open(receiver);
                let inner = self.eval(args[1]);
                let framework = if method == "mount" {
                    Framework::Rocket
                } else {
                    framework
                };
                entries.extend(registered(inner, &prefix, framework));
                close(framework, entries, scope)
            }
            ("merge" | "service" | "configure", receiver) if args.len() == 1 => {
                let (framework, mut entries, scope) = open(receiver);
                let inner = self.eval(args[0]);
                let framework = if method == "merge" {
                    framework
                } else {
                    Framework::Actix
                };
                entries.extend(registered(inner, "", framework));
                close(framework, entries, scope)
            }
            // Everything else on a router (`layer`, `with_state`, `wrap`, `app_data`, ...)
            // keeps its routes.
            (_, receiver @ (Value::Router(..) | Value::Scope(..) | Value::Resource(..))) => {
                receiver
            }
            (_, Value::MethodRouter(methods)) => Value::MethodRouter(methods),
            (_, Value::ActixRoute(verb, handler)) => Value::ActixRoute(verb, handler),
            _ => Value::Other,
        }
    }

    /// Records a router-building expression found in the body.
    fn produce(&mut self, value: Value) -> Option<usize> {
        let entries = match value {
            Value::Router(_, entries) => entries,
            Value::Scope(prefix, entries) => vec![Entry::Nested { prefix, entries }],
            Value::Resource(..) => registered(value, "", Framework::Actix),
            _ => return None,
        };
        if entries.is_empty() {
            return None;
        }
        self.produced.push((entries, false));
        Some(self.produced.len() - 1)
    }
}

/// The routes so far of a receiver a routing method is called on; an unknown receiver (a
/// `ServiceConfig` parameter, a router from elsewhere) starts empty.
fn open(receiver: Value) -> (Framework, Vec<Entry>, Option<String>) {
    match receiver {
        Value::Router(framework, entries) => (framework, entries, None),
        Value::Scope(prefix, entries) => (Framework::Actix, entries, Some(prefix)),
        Value::Resource(path, methods, loc) => (
            Framework::Actix,
            registered(Value::Resource(path, methods, loc), "", Framework::Actix),
            None,
        ),
        _ => (Framework::Axum, Vec::new(), None),
    }
}

fn close(framework: Framework, entries: Vec<Entry>, scope: Option<String>) -> Value {
    match scope {
        Some(prefix) => Value::Scope(prefix, entries),
        None => Value::Router(framework, entries),
    }
}

/// The entries a value adds when it is registered (`nest`, `merge`, `service`, `mount`) under
/// `prefix`.
fn registered(value: Value, prefix: &str, framework: Framework) -> Vec<Entry> {
    let entries = match value {
        Value::Router(_, entries) => entries,
        Value::Scope(scope, entries) => vec![Entry::Nested {
            prefix: normalize_path(&scope),
            entries,
        }],
        Value::Resource(path, methods, loc) => methods
            .into_iter()
            .map(|(method, handler)| Entry::Route {
                method,
                path: normalize_path(&path),
                handler,
                framework: Framework::Actix,
                loc,
            })
            .collect(),
        Value::Ref(target, loc) if target != "<closure>" => vec![Entry::Include {
            prefix: String::new(),
            target,
            framework,
            loc,
        }],
        Value::RocketRoutes(paths) => paths
            .into_iter()
            .map(|(target, loc)| Entry::Include {
                prefix: String::new(),
                target,
                framework: Framework::Rocket,
                loc,
            })
            .collect(),
        Value::Many(values) => values
            .into_iter()
            .flat_map(|value| registered(value, "", framework))
            .collect(),
        _ => Vec::new(),
    };
    if prefix.is_empty() || prefix == "/" {
        entries
    } else {
        vec![Entry::Nested {
            prefix: prefix.to_owned(),
            entries,
        }]
    }
}

impl<'ast> Visit<'ast> for Body<'_> {
    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let (syn::Pat::Ident(ident), Some(init)) = (&local.pat, &local.init)
            && matches!(&*init.expr, syn::Expr::MethodCall(_) | syn::Expr::Call(_))
        {
            let value = self.eval(&init.expr);
            if value.is_router() {
                if let Some(index) = self.produce(value) {
                    self.locals.insert(ident.ident.to_string(), index);
                } else if let Value::Router(..) = self.eval(&init.expr) {
                    // An empty router bound to a name, filled by later statements.
                    self.produced.push((Vec::new(), false));
                    self.locals
                        .insert(ident.ident.to_string(), self.produced.len() - 1);
                }
                return;
            }
        }
        visit::visit_local(self, local);
    }

    fn visit_expr(&mut self, expr: &'ast syn::Expr) {
        if let syn::Expr::Assign(assign) = expr
            && let syn::Expr::Path(target) = &*assign.left
            && target.path.segments.len() == 1
        {
            // `app = app.route(..)`: the binding now holds the bigger router.
            let name = path_text(&target.path);
            let value = self.eval(&assign.right);
            if value.is_router()
                && let Some(index) = self.produce(value)
            {
                self.locals.insert(name, index);
                return;
            }
        }
        if matches!(expr, syn::Expr::MethodCall(_) | syn::Expr::Call(_)) {
            let value = self.eval(expr);
            if value.is_router() && self.produce(value).is_some() {
                return;
            }
        }
        visit::visit_expr(self, expr);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {
        // Items inside a body are visited by the collector as functions of their own.
    }
}

/// `MethodFilter::GET` -> `GET`.
fn method_filter(expr: &syn::Expr) -> String {
    expr_path(expr)
        .and_then(|path| path.rsplit("::").next().map(str::to_uppercase))
        .unwrap_or_else(|| "ANY".to_owned())
}

fn string_lit(lit: &syn::Lit) -> Option<String> {
    match lit {
        syn::Lit::Str(text) => Some(text.value()),
        _ => None,
    }
}

fn expr_path(expr: &syn::Expr) -> Option<String> {
    match expr {
        syn::Expr::Path(path) => Some(path_text(&path.path)),
        syn::Expr::Paren(inner) => expr_path(&inner.expr),
        syn::Expr::Group(inner) => expr_path(&inner.expr),
        _ => None,
    }
}

fn path_text(path: &syn::Path) -> String {
    let mut res = String::new();
    if path.leading_colon.is_some() {
        res.push_str("::");
    }
    for (index, segment) in path.segments.iter().enumerate() {
        if index > 0 {
            res.push_str("::");
        }
        res.push_str(&segment.ident.to_string());
    }
    res
}

fn last_type_segment(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(path) => path
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string()),
        _ => None,
    }
}

/// One path syntax for every framework: parameters `{name}`, catch-alls `{*name}`, no query,
/// a leading `/`. axum 0.7 `:id` and `*rest`, actix-web `{id:\d+}` and `{tail:.*}`, Rocket
/// `<id>` and `<path..>`.
pub fn normalize_path(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let mut res = String::new();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        res.push('/');
        if let Some(name) = segment.strip_prefix(':') {
            res.push_str(&format!("{{{name}}}"));
        } else if let Some(name) = segment.strip_prefix('*') {
            res.push_str(&format!("{{*{name}}}"));
        } else if let Some(inner) = segment
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix('>'))
        {
            match inner.strip_suffix("..") {
                Some(name) => res.push_str(&format!("{{*{name}}}")),
                None => res.push_str(&format!("{{{inner}}}")),
            }
        } else if let Some(inner) = segment
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
        {
            match inner.split_once(':') {
                Some((name, regex)) if regex.contains(".*") || regex.contains(".+") => {
                    res.push_str(&format!("{{*{name}}}"));
                }
                Some((name, _)) => res.push_str(&format!("{{{name}}}")),
                None => res.push_str(segment),
            }
        } else {
            res.push_str(segment);
        }
    }
    // The root, or a path written with a trailing slash (axum and actix-web tell them apart).
    if res.is_empty() || (path.ends_with('/') && path.len() > 1) {
        res.push('/');
    }
    res
}

/// `prefix` + `path`: `/api` + `/users` = `/api/users`; `/api` + `/` = `/api`.
fn join(prefix: &str, path: &str) -> String {
    if prefix.is_empty() || prefix == "/" {
        return path.to_owned();
    }
    if path.is_empty() || path == "/" {
        return prefix.to_owned();
    }
    format!("{}{}", prefix.trim_end_matches('/'), path)
}

// ---------------------------------------------------------------------------------------------
// Flattening: entries to routes, includes resolved.

struct Flattener<'r, 'a> {
    resolver: &'r mut Resolver<'a>,
    routers: &'r FxHashMap<(u32, String), Vec<Entry>>,
    attributed: &'r FxHashMap<(u32, String), Vec<Attributed>>,
    /// Functions whose routers some other router includes.
    included: FxHashSet<(u32, String)>,
    attributed_used: FxHashSet<(u32, String)>,
    out: Vec<Flat>,
}

impl Flattener<'_, '_> {
    fn flatten(
        &mut self,
        module: u32,
        entries: &[Entry],
        prefix: &str,
        depth: usize,
        sink: &mut Vec<Flat>,
    ) {
        if depth > MAX_INCLUDE_DEPTH {
            return;
        }
        for entry in entries {
            match entry {
                Entry::Route {
                    method,
                    path,
                    handler,
                    framework,
                    loc,
                } => {
                    let handler = handler.as_ref().map(|written| {
                        self.resolve_fn(module, written)
                            .or_else(|| nested_fn(module, written))
                            .map_or_else(
                                || Handler::Written(written.clone()),
                                |(m, name)| Handler::Resolved(m, name),
                            )
                    });
                    sink.push(Flat {
                        method: method.clone(),
                        path: join(prefix, path),
                        handler,
                        framework: *framework,
                        loc: *loc,
                    });
                }
                Entry::Nested {
                    prefix: inner,
                    entries,
                } => {
                    let prefix = join(prefix, inner);
                    self.flatten(module, entries, &prefix, depth + 1, sink);
                }
                Entry::Include {
                    prefix: inner,
                    target,
                    framework,
                    loc,
                } => {
                    let prefix = join(prefix, inner);
                    let Some(key) = self.resolve_fn(module, target) else {
                        continue;
                    };
                    if let Some(attributes) = self.attributed.get(&key) {
                        self.attributed_used.insert(key.clone());
                        for attribute in attributes {
                            sink.push(Flat {
                                method: attribute.method.clone(),
                                path: join(&prefix, &attribute.path),
                                handler: Some(Handler::Resolved(key.0, key.1.clone())),
                                // `routes!` is Rocket's, whatever the path looks like.
                                framework: if *framework == Framework::Rocket {
                                    Framework::Rocket
                                } else {
                                    attribute.framework
                                },
                                loc: attribute.loc,
                            });
                        }
                    } else if let Some(entries) = self.routers.get(&key) {
                        self.included.insert(key.clone());
                        self.flatten(key.0, entries, &prefix, depth + 1, sink);
                    } else {
                        let _ = loc;
                    }
                }
            }
        }
    }

    /// A function path written in `module`, as (module, `name` or `Type::name`).
    fn resolve_fn(&mut self, module: u32, written: &str) -> Option<(u32, String)> {
        let facts = self.resolver.facts;
        let mut segments = Vec::new();
        for segment in split_path(written) {
            segments.push(self.resolver.intern(segment)?);
        }
        let (res, rest) = self.resolver.resolve_path(module, &segments, false, 0)?;
        match res {
            Res::Item(target, item) => {
                let item = &facts[target as usize].items[item as usize];
                match (item.kind, rest.first()) {
                    (ItemKind::Fn, None) => Some((target, item.name.clone())),
                    (kind, Some(method)) if kind.is_type() => {
                        Some((target, format!("{}::{method}", item.name)))
                    }
                    _ => None,
                }
            }
            // A function generated by a macro, or `Self::handler`.
            Res::Named(target, name) if rest.is_empty() => Some((target, name.to_owned())),
            _ => None,
        }
    }
}

/// A handler written as one name that is no module item: a function declared inside the
/// function that builds the router (axum's "routes and handlers close together"). The reach
/// walk finds it by its name in the module.
fn nested_fn(module: u32, written: &str) -> Option<(u32, String)> {
    let is_ident = !written.is_empty()
        && !written.contains("::")
        && written
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    is_ident.then(|| (module, written.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Domains.

/// The role of every top-level module, from the in-scope module edges lifted to them, the
/// domains that host handlers (`hosts`) and those whose code some endpoint runs (`code_run`).
///
/// Wiring, found from the crate roots outwards: a module no non-wiring module depends on that
/// hosts handlers and either defines no type or uses several domains (`http`, `routes`), or that
/// uses several domains without any endpoint running its code (`state`). Kernel: a module that
/// uses no domain and that several domains use (`money`). The rest are domains.
fn domain_roles(
    extracted: &Extracted,
    edges: &[&Edge],
    hosts: &FxHashSet<&str>,
    code_run: &FxHashSet<&str>,
) -> Vec<Domain> {
    let mut n_types: FxHashMap<&str, u32> = FxHashMap::default();
    for facts in &extracted.modules {
        *n_types.entry(domain_of(&facts.module.id)).or_default() += facts.module.n_types;
    }
    let mut all: BTreeSet<&str> = BTreeSet::new();
    let mut roots: FxHashSet<&str> = FxHashSet::default();
    for facts in &extracted.modules {
        if facts.module.test_only {
            continue;
        }
        let domain = domain_of(&facts.module.id);
        all.insert(domain);
        if facts.module.parent.is_none() {
            roots.insert(facts.module.id.as_str());
        }
    }
    let mut out: FxHashMap<&str, BTreeSet<&str>> = FxHashMap::default();
    let mut incoming: FxHashMap<&str, BTreeSet<&str>> = FxHashMap::default();
    for edge in edges {
        let from = domain_of(&edge.from);
        let to = domain_of(&edge.to);
        if from == to || roots.contains(from) || roots.contains(to) {
            continue;
        }
        out.entry(from).or_default().insert(to);
        incoming.entry(to).or_default().insert(from);
    }
    let empty = BTreeSet::new();
    let mut wiring: FxHashSet<&str> = roots.iter().copied().collect();
    loop {
        let mut changed = false;
        for &domain in &all {
            if wiring.contains(domain) {
                continue;
            }
            let outs = out.get(domain).unwrap_or(&empty);
            let ins = incoming.get(domain).unwrap_or(&empty);
            let glue = if hosts.contains(domain) {
                outs.len() >= 2 || n_types.get(domain).copied().unwrap_or(0) == 0
            } else {
                outs.len() >= 2 && !code_run.contains(domain)
            };
            if glue && ins.iter().all(|from| wiring.contains(from)) {
                wiring.insert(domain);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    all.iter()
        .map(|&domain| {
            let role = if wiring.contains(domain) {
                DomainRole::Wiring
            } else {
                let outs = out
                    .get(domain)
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|to| !wiring.contains(*to))
                    .count();
                let ins = incoming
                    .get(domain)
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|from| !wiring.contains(*from))
                    .count();
                if outs == 0 && ins >= 2 {
                    DomainRole::Kernel
                } else {
                    DomainRole::Domain
                }
            };
            Domain {
                id: domain.to_owned(),
                role,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reach.

/// Method name -> (type module, type name, whether the type is a trait).
struct MethodIndex<'a> {
    by_name: FxHashMap<&'a str, Vec<(u32, &'a str, bool)>>,
}

impl<'a> MethodIndex<'a> {
    fn new(resolver: &Resolver<'a>) -> Self {
        let mut by_name: FxHashMap<&'a str, Vec<(u32, &'a str, bool)>> = FxHashMap::default();
        for (index, module) in resolver.facts.iter().enumerate() {
            for item in &module.items {
                if item.kind == ItemKind::Trait {
                    for method in &item.methods {
                        by_name.entry(method.name.as_str()).or_default().push((
                            index as u32,
                            item.name.as_str(),
                            true,
                        ));
                    }
                }
            }
        }
        for (&(type_module, type_name), methods) in &resolver.inherent {
            for (_, sig) in methods {
                by_name
                    .entry(sig.name.as_str())
                    .or_default()
                    .push((type_module, type_name, false));
            }
        }
        for candidates in by_name.values_mut() {
            candidates.sort_unstable();
            candidates.dedup();
        }
        MethodIndex { by_name }
    }
}

/// The line spans of the functions of each file, parsed when first needed.
#[derive(Default)]
struct FnSpans {
    /// file index -> (module id, `name` or `Type::name`, first line, last line).
    by_file: FxHashMap<u32, Vec<(String, String, u32, u32)>>,
    /// module index -> index of its file.
    file_of: FxHashMap<u32, Option<u32>>,
}

impl FnSpans {
    fn span(
        &mut self,
        extracted: &Extracted,
        read: &(dyn Fn(&Path) -> std::io::Result<String> + Sync),
        module: u32,
        function: &str,
    ) -> Option<(u32, u32, u32)> {
        let facts = &extracted.modules[module as usize];
        let file = (*self.file_of.entry(module).or_insert_with(|| {
            extracted
                .files
                .iter()
                .position(|path| *path == facts.module.file)
                .map(|index| index as u32)
        }))?;
        let spans = self.by_file.entry(file).or_insert_with(|| {
            let mut collector = SpanCollector {
                module: vec![top_module(extracted, file)],
                self_ty: None,
                out: Vec::new(),
            };
            if let Ok(text) = read(&extracted.files[file as usize])
                && let Ok(parsed) = syn::parse_file(&text)
            {
                collector.visit_file(&parsed);
            }
            collector.out
        });
        spans
            .iter()
            .find(|(id, name, _, _)| *id == facts.module.id && name == function)
            .map(|&(_, _, first, last)| (file, first, last))
    }
}

fn top_module(extracted: &Extracted, file: u32) -> String {
    let path = &extracted.files[file as usize];
    extracted
        .modules
        .iter()
        .find(|facts| !facts.module.inline && facts.module.file == *path)
        .map(|facts| facts.module.id.clone())
        .unwrap_or_default()
}

struct SpanCollector {
    module: Vec<String>,
    self_ty: Option<String>,
    out: Vec<(String, String, u32, u32)>,
}

impl SpanCollector {
    fn push(&mut self, name: String, span: proc_macro2::Span) {
        let first = u32::try_from(span.start().line).unwrap_or(u32::MAX);
        let last = u32::try_from(span.end().line).unwrap_or(u32::MAX);
        let module = self.module.last().cloned().unwrap_or_default();
        self.out.push((module, name, first, last));
    }
}

impl<'ast> Visit<'ast> for SpanCollector {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_none() {
            return;
        }
        let parent = self.module.last().cloned().unwrap_or_default();
        self.module.push(format!("{parent}::{}", item.ident));
        visit::visit_item_mod(self, item);
        self.module.pop();
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let saved = self.self_ty.take();
        self.self_ty = last_type_segment(&item.self_ty);
        visit::visit_item_impl(self, item);
        self.self_ty = saved;
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.push(item.sig.ident.to_string(), item.span());
        let saved = self.self_ty.take();
        visit::visit_item_fn(self, item);
        self.self_ty = saved;
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        let name = match &self.self_ty {
            Some(ty) => format!("{ty}::{}", item.sig.ident),
            None => item.sig.ident.to_string(),
        };
        self.push(name, item.span());
        visit::visit_impl_item_fn(self, item);
    }
}

struct Walk<'w, 'a> {
    extracted: &'w Extracted,
    methods: &'w MethodIndex<'a>,
    role_of: &'w FxHashMap<&'w str, DomainRole>,
    read: &'w (dyn Fn(&Path) -> std::io::Result<String> + Sync),
}

/// What a walk found: per module, (weight, code called).
type Reached = BTreeMap<u32, (u32, bool)>;

impl<'a> Walk<'_, 'a> {
    /// Walks from `start`. With `home`, the walk does not enter the code of any domain (role
    /// [`DomainRole::Domain`]) other than `home`: what is left is what the endpoint itself needs.
    fn reach(
        &self,
        resolver: &mut Resolver<'a>,
        spans: &mut FnSpans,
        start: &(u32, String),
        home: Option<&str>,
    ) -> Reached {
        let facts = resolver.facts;
        let mut reached: Reached = BTreeMap::new();
        let mut seen: FxHashSet<(u32, String)> = FxHashSet::default();
        let mut queue: VecDeque<(u32, String)> = VecDeque::new();
        seen.insert(start.clone());
        queue.push_back(start.clone());
        while let Some((module, function)) = queue.pop_front() {
            if seen.len() > MAX_REACH_FUNCTIONS {
                break;
            }
            let Some((file, first, last)) =
                spans.span(self.extracted, self.read, module, &function)
            else {
                continue;
            };
            let module_facts = &facts[module as usize];
            let mut types: FxHashSet<(u32, &str)> = FxHashSet::default();
            if let Some((self_ty, _)) = function.split_once("::") {
                types.insert((module, self_ty));
                if let Some(interned) = resolver.intern(self_ty)
                    && let Some((Res::Item(type_module, item), _)) =
                        resolver.resolve_path(module, &[interned], false, 0)
                {
                    types.insert((
                        type_module,
                        facts[type_module as usize].items[item as usize]
                            .name
                            .as_str(),
                    ));
                }
            }
            let mut follow: Vec<(u32, String, bool)> = Vec::new();
            for path_ref in &module_facts.refs {
                let loc = path_ref.ctx.loc;
                if loc.file != file || loc.line < first || loc.line > last {
                    continue;
                }
                let segments = split_path(&path_ref.path);
                let Some((res, rest)) = resolver.resolve_path(module, &segments, false, 0) else {
                    continue;
                };
                let target = res.module();
                let entry = reached.entry(target).or_default();
                entry.0 = entry.0.saturating_add(1);
                if let Res::Item(target, item) = res {
                    let item = &facts[target as usize].items[item as usize];
                    match (item.kind, rest.first()) {
                        (ItemKind::Fn, None) => {
                            follow.push((target, item.name.clone(), true));
                        }
                        (ItemKind::Struct | ItemKind::Union | ItemKind::TypeAlias, Some(name)) => {
                            types.insert((target, item.name.as_str()));
                            follow.push((target, format!("{}::{name}", item.name), true));
                        }
                        (kind, _) if kind.is_type() => {
                            types.insert((target, item.name.as_str()));
                        }
                        _ => {}
                    }
                }
            }
            for call in &module_facts.method_calls {
                let loc = call.ctx.loc;
                if loc.file != file || loc.line < first || loc.line > last {
                    continue;
                }
                let Some(candidates) = self.methods.by_name.get(&*call.name) else {
                    continue;
                };
                if let Some(&(type_module, type_name, is_trait)) = candidates
                    .iter()
                    .find(|(m, name, _)| types.contains(&(*m, *name)))
                {
                    let entry = reached.entry(type_module).or_default();
                    entry.0 = entry.0.saturating_add(1);
                    // A call through a trait is a call through a port.
                    if !is_trait {
                        follow.push((type_module, format!("{type_name}::{}", call.name), true));
                    }
                }
            }
            for (target, name, code) in follow {
                if code {
                    reached.entry(target).or_default().1 = true;
                }
                let target_domain = domain_of(&facts[target as usize].module.id);
                if let Some(home) = home
                    && target_domain != home
                    && self.role_of.get(target_domain) == Some(&DomainRole::Domain)
                {
                    // The endpoint calls this domain; what that domain calls is its own affair.
                    continue;
                }
                let key = (target, name);
                if seen.insert(key.clone()) {
                    queue.push_back(key);
                }
            }
        }
        reached
    }
}

/// Reaches as the report lists them, the domains needed, and the owner.
fn ownership(
    extracted: &Extracted,
    reached: &Reached,
    needs_walk: &Reached,
    home: &str,
    role_of: &FxHashMap<&str, DomainRole>,
) -> (Vec<Reach>, Vec<String>, Option<String>) {
    {
        let id = |index: &u32| extracted.modules[*index as usize].module.id.clone();
        let reaches: Vec<Reach> = reached
            .iter()
            .map(|(module, &(weight, code))| Reach {
                module: id(module),
                weight,
                code,
            })
            .collect();
        let is_domain = |domain: &str| role_of.get(domain) == Some(&DomainRole::Domain);
        let mut needs: BTreeSet<String> = BTreeSet::new();
        let mut type_weight: BTreeMap<String, u32> = BTreeMap::new();
        if is_domain(home) {
            needs.insert(home.to_owned());
        }
        for (module, &(weight, code)) in needs_walk {
            let module_id = id(module);
            let domain = domain_of(&module_id).to_owned();
            if !is_domain(&domain) {
                continue;
            }
            if code {
                needs.insert(domain.clone());
            }
            *type_weight.entry(domain).or_default() += weight;
        }
        let owner = match needs.len() {
            1 => needs.iter().next().cloned(),
            0 => {
                let max = type_weight.values().copied().max().unwrap_or(0);
                let top: Vec<&String> = type_weight
                    .iter()
                    .filter(|(_, weight)| **weight == max && max > 0)
                    .map(|(domain, _)| domain)
                    .collect();
                (top.len() == 1).then(|| top[0].clone())
            }
            _ => None,
        };
        (reaches, needs.into_iter().collect(), owner)
    }
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
