//! `fig plan`: from the report to the first route. Which HTTP endpoints belong to the module
//! being extracted, which need it together with other domains (and the edges to cut first), the
//! ordered checklist of the extraction, and with `--emit DIR` the proxy config whose routes send
//! exactly those endpoints to the new service behind a flag.
//!
//! The endpoints and their owners come from the analyzer (`analyzer::endpoints`); this command
//! only sorts them relative to one domain, weighs them by the traffic the proxy logged
//! (`--traffic`), and writes the routes. A route is merged into a `/prefix/**` pattern only when
//! every endpoint of the code under that prefix is owned by the extracted domain, so the emitted
//! routes never move an endpoint the plan does not own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;

use analyzer::endpoints::domain_of;
use analyzer::report::{DomainRole, Endpoint, Report};

use crate::commands::analyze::{self, ReportArgs};
use crate::output::{self, EndpointJson};

/// Arguments of `fig plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub report: ReportArgs,

    /// The top-level module to extract: `payment` or `shop::payment`.
    #[arg(long, value_name = "MODULE")]
    pub extract: String,

    /// Name of the new service (the proxy upstream) [default: MODULE-service].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// The flag that sends the endpoints to the service [default: the service's name].
    #[arg(long, value_name = "NAME")]
    pub flag: Option<String>,

    /// What the proxy observed: its access log (`access_log` in fig-proxy.toml; text or JSON
    /// lines). Endpoints are then ranked by requests, errors and p99.
    #[arg(long, value_name = "FILE")]
    pub traffic: Option<PathBuf>,

    /// Write `fig-proxy.toml`, `flags.sh` and `PLAN.md` into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub emit: Option<PathBuf>,

    /// The monolith's address in the emitted config.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub monolith_url: String,

    /// The new service's address in the emitted config.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8081")]
    pub service_url: String,

    /// The proxy's listen address in the emitted config.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub listen: String,

    /// The admin API's listen address in the emitted config.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8001")]
    pub admin_listen: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output formats of `fig plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The plan for a person.
    Text,
    /// The plan as one JSON document (`docs/report-schema.md`, "fig plan").
    Json,
}

/// `fig plan --format json`.
#[derive(Debug, Serialize)]
pub struct PlanJson {
    pub schema_version: u32,
    pub workspace_root: String,
    /// The domain extracted, `shop::payment`.
    pub extract: String,
    /// Its role: `domain`, `kernel` or `wiring` (no endpoint belongs to the last two).
    pub role: &'static str,
    pub service: String,
    pub flag: String,
    /// Endpoints that belong to the domain: they move first.
    pub owned: Vec<PlannedEndpointJson>,
    /// Endpoints that need the domain together with others.
    pub shared: Vec<PlannedEndpointJson>,
    /// Edges of the cut list between the domain and any other module: cut before the move.
    pub cut: Vec<CutStepJson>,
    /// The proxy routes that move the owned endpoints.
    pub routes: Vec<RouteJson>,
    /// The ordered checklist.
    pub steps: Vec<String>,
    /// Every domain as a candidate extraction, easiest first.
    pub candidates: Vec<CandidateJson>,
    /// Candidate services grouped by module coupling plus the endpoints that run modules
    /// together (weighted by their requests with `--traffic`), each with the endpoints it owns.
    pub services: Vec<output::ServiceJson>,
    /// Present with `--traffic`.
    pub traffic: Option<TrafficJson>,
}

#[derive(Debug, Serialize)]
pub struct PlannedEndpointJson {
    #[serde(flatten)]
    pub endpoint: EndpointJson,
    /// Shared endpoints: the other domains it needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub also_needs: Option<Vec<String>>,
    /// Shared endpoints: the cut-list edges between the domain and those.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<Vec<CutStepJson>>,
    /// With `--traffic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<StatsJson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CutStepJson {
    pub from: String,
    pub to: String,
    pub weight: u32,
    /// The trait `fig suggest` proposes for the edge, if any.
    pub trait_name: Option<String>,
    pub trait_home: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteJson {
    pub name: String,
    /// `pattern` or `exact`.
    pub kind: &'static str,
    pub path: String,
    /// Empty: every method.
    pub methods: Vec<String>,
    /// The endpoints it moves, `METHOD path`.
    pub endpoints: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CandidateJson {
    pub domain: String,
    pub owned: usize,
    pub shared: usize,
    pub cut_edges: usize,
    pub cut_weight: u32,
    pub requests: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsJson {
    pub requests: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct TrafficJson {
    pub file: String,
    pub lines: u64,
    /// Lines that were not a request (skipped).
    pub unreadable_lines: Vec<UnreadableJson>,
    /// Endpoints of the code, most requests first.
    pub by_load: Vec<LoadJson>,
    /// Requests the code declares no endpoint for, `METHOD path`, most first.
    pub not_in_code: Vec<LoadJson>,
    /// Endpoints of the code no request reached, `METHOD path`.
    pub not_in_traffic: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct UnreadableJson {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct LoadJson {
    pub endpoint: String,
    #[serde(flatten)]
    pub stats: StatsJson,
}

/// Runs `fig plan`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = analyze::load(&args.report)?;
    let traffic = match &args.traffic {
        Some(path) => Some(
            read_traffic(path, &report.endpoints)
                .with_context(|| format!("reading the traffic in `{}`", path.display()))?,
        ),
        None => None,
    };
    let plan = plan(&report, &args, traffic.as_ref())?;
    let text = match args.format {
        Format::Text => text(&plan),
        Format::Json => analyze::json(&plan)?,
    };
    analyze::emit(&text, None)?;
    if let Some(dir) = &args.emit {
        emit(dir, &plan, &args)?;
        eprintln!(
            "wrote fig-proxy.toml, flags.sh and PLAN.md to {} (check: fig proxy --config {} --check)",
            dir.display(),
            dir.join("fig-proxy.toml").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `fig demo --plan`: the plan for the bundled shop's payment module, with the demo's service
/// and flag, from the shop's source in this checkout.
pub fn print_shop_plan(flag: &str) -> anyhow::Result<ExitCode> {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    if !shop.join("Cargo.toml").is_file() {
        bail!(
            "the shop's source is not at {} (fig demo --plan reads the checkout fig was built from)",
            shop.display()
        );
    }
    // Parsed like the command line, so the defaults are `fig plan`'s own.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }
    let cli = <Cli as clap::Parser>::try_parse_from([
        std::ffi::OsString::from("fig plan"),
        shop.into_os_string(),
        "--extract".into(),
        "payment".into(),
        "--service".into(),
        "payment-service".into(),
        "--flag".into(),
        flag.into(),
    ])?;
    run(cli.args)
}

/// The domain `name` names: its id or its last segment.
fn find_domain<'r>(report: &'r Report, name: &str) -> anyhow::Result<&'r str> {
    let matches: Vec<&str> = report
        .domains
        .iter()
        .map(|domain| domain.id.as_str())
        .filter(|id| *id == name || id.rsplit("::").next() == Some(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let known: Vec<&str> = report
                .domains
                .iter()
                .filter(|domain| domain.role == DomainRole::Domain)
                .map(|domain| domain.id.as_str())
                .collect();
            bail!(
                "no top-level module `{name}` in {}; the domains are: {}",
                report.workspace_root.display(),
                if known.is_empty() {
                    "(none)".to_owned()
                } else {
                    known.join(", ")
                }
            )
        }
        many => bail!(
            "`{name}` names several top-level modules: {}; write one in full",
            many.join(", ")
        ),
    }
}

/// What an endpoint is to the domain being extracted.
enum Relation {
    Owned,
    Shared(Vec<String>),
    Other,
}

fn relation(endpoint: &Endpoint, domain: &str) -> Relation {
    if endpoint.owner.as_deref() == Some(domain) {
        return Relation::Owned;
    }
    if endpoint.needs.iter().any(|need| need == domain) {
        let others: Vec<String> = endpoint
            .needs
            .iter()
            .filter(|need| *need != domain)
            .cloned()
            .collect();
        return Relation::Shared(others);
    }
    Relation::Other
}

/// The cut-list edges between `domain` and `others` (any other domain when `others` is `None`).
fn cut_edges(report: &Report, domain: &str, others: Option<&[String]>) -> Vec<CutStepJson> {
    report
        .cut
        .iter()
        .filter(|edge| {
            let from = domain_of(&edge.from);
            let to = domain_of(&edge.to);
            let other = if from == domain {
                to
            } else if to == domain {
                from
            } else {
                return false;
            };
            other != domain && others.is_none_or(|list| list.iter().any(|name| name == other))
        })
        .map(|edge| {
            let suggestion = report
                .suggestions
                .iter()
                .find(|s| s.from == edge.from && s.to == edge.to);
            CutStepJson {
                from: edge.from.clone(),
                to: edge.to.clone(),
                weight: edge.weight,
                trait_name: suggestion.map(|s| s.trait_name.clone()),
                trait_home: suggestion.map(|s| s.trait_home.clone()),
            }
        })
        .collect()
}

fn plan(report: &Report, args: &Args, traffic: Option<&Traffic>) -> anyhow::Result<PlanJson> {
    let domain = find_domain(report, &args.extract)?;
    let short = domain.rsplit("::").next().unwrap_or(domain);
    let service = args
        .service
        .clone()
        .unwrap_or_else(|| format!("{}-service", short.replace('_', "-")));
    let flag = args.flag.clone().unwrap_or_else(|| service.clone());
    let root = &report.workspace_root;
    let stats_of = |endpoint: &Endpoint| {
        traffic.map(|traffic| {
            traffic
                .stats
                .get(&endpoint_key(endpoint))
                .cloned()
                .unwrap_or_default()
        })
    };
    let mut owned = Vec::new();
    let mut shared = Vec::new();
    for endpoint in &report.endpoints {
        match relation(endpoint, domain) {
            Relation::Owned => owned.push(PlannedEndpointJson {
                endpoint: output::endpoint(root, endpoint),
                also_needs: None,
                cut: None,
                traffic: stats_of(endpoint),
            }),
            Relation::Shared(others) => {
                let cut = cut_edges(report, domain, Some(&others));
                shared.push(PlannedEndpointJson {
                    endpoint: output::endpoint(root, endpoint),
                    also_needs: Some(others),
                    cut: Some(cut),
                    traffic: stats_of(endpoint),
                });
            }
            Relation::Other => {}
        }
    }
    if traffic.is_some() {
        // Least traffic first: the safest endpoint to move first heads the list.
        let requests = |planned: &PlannedEndpointJson| {
            planned.traffic.as_ref().map_or(0, |stats| stats.requests)
        };
        owned.sort_by_key(|planned| requests(planned));
        shared.sort_by_key(|planned| std::cmp::Reverse(requests(planned)));
    }
    let cut = cut_edges(report, domain, None);
    let owned_endpoints: Vec<&Endpoint> = report
        .endpoints
        .iter()
        .filter(|endpoint| matches!(relation(endpoint, domain), Relation::Owned))
        .collect();
    let routes = routes(&owned_endpoints, &report.endpoints, short);
    let steps = steps(
        args, domain, &service, &flag, &cut, &owned, &shared, &routes,
    );
    let mut candidates: Vec<CandidateJson> = report
        .domains
        .iter()
        .filter(|candidate| candidate.role == DomainRole::Domain)
        .map(|candidate| {
            let id = candidate.id.as_str();
            let mut n_owned = 0;
            let mut n_shared = 0;
            let mut requests = 0;
            for endpoint in &report.endpoints {
                match relation(endpoint, id) {
                    Relation::Owned => {
                        n_owned += 1;
                        requests += stats_of(endpoint).map_or(0, |stats| stats.requests);
                    }
                    Relation::Shared(_) => n_shared += 1,
                    Relation::Other => {}
                }
            }
            let cut = cut_edges(report, id, None);
            CandidateJson {
                domain: id.to_owned(),
                owned: n_owned,
                shared: n_shared,
                cut_edges: cut.len(),
                cut_weight: cut.iter().map(|edge| edge.weight).sum(),
                requests: traffic.map(|_| requests),
            }
        })
        .collect();
    // Easiest first: least to cut, then least traffic at stake, then most endpoints that move.
    candidates.sort_by(|a, b| {
        (
            a.cut_weight,
            a.requests.unwrap_or(0),
            std::cmp::Reverse(a.owned),
            &a.domain,
        )
            .cmp(&(
                b.cut_weight,
                b.requests.unwrap_or(0),
                std::cmp::Reverse(b.owned),
                &b.domain,
            ))
    });
    let services = services(report, traffic);
    Ok(PlanJson {
        schema_version: output::SCHEMA_VERSION,
        workspace_root: report.workspace_root.display().to_string(),
        extract: domain.to_owned(),
        role: report
            .domains
            .iter()
            .find(|candidate| candidate.id == domain)
            .map_or("domain", |candidate| output::domain_role(candidate.role)),
        service,
        flag,
        owned,
        shared,
        cut,
        routes,
        steps,
        candidates,
        services,
        traffic: traffic.map(|traffic| traffic.json(&report.endpoints)),
    })
}

/// Louvain on the module edges plus endpoint affinity: each endpoint pulls together the
/// modules whose code it runs, by 1 plus its requests.
fn services(report: &Report, traffic: Option<&Traffic>) -> Vec<output::ServiceJson> {
    let scoped: Vec<&analyzer::report::Edge> = report
        .edges
        .iter()
        .filter(|edge| analyzer::in_scope(edge, report.scope))
        .collect();
    let weight_of = |endpoint: &Endpoint| {
        1 + traffic
            .and_then(|traffic| traffic.stats.get(&endpoint_key(endpoint)))
            .map_or(0, |stats| stats.requests)
    };
    let affinity =
        analyzer::services::endpoint_affinity(&report.endpoints, &report.domains, &weight_of);
    let (mut services, _) =
        analyzer::services::candidates_with_affinity(&report.modules, &scoped, &affinity);
    analyzer::services::assign_endpoints(&mut services, &report.endpoints);
    services
        .into_iter()
        .map(|service| output::ServiceJson {
            name: service.name,
            modules: service.modules,
            internal_weight: service.internal_weight,
            external_weight: service.external_weight,
            endpoints: service.endpoints,
        })
        .collect()
}

fn endpoint_key(endpoint: &Endpoint) -> String {
    format!("{} {}", endpoint.method, endpoint.path)
}

/// The proxy path of an endpoint path: `{id}` -> `*`, `{*rest}` -> `**`.
fn proxy_pattern(path: &str) -> (String, bool) {
    let mut literal = true;
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            if segment.starts_with("{*") {
                literal = false;
                "**".to_owned()
            } else if segment.starts_with('{') || segment.contains('{') {
                literal = false;
                "*".to_owned()
            } else {
                segment.to_owned()
            }
        })
        .collect();
    (format!("/{}", segments.join("/")), literal)
}

/// The leading literal segments of a path pattern.
fn literal_prefix(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .take_while(|segment| !segment.contains('{'))
        .collect()
}

/// Whether some path of `pattern` (an endpoint's path) lies at or below `/prefix` (so that the
/// proxy pattern `/prefix/**` would match it).
fn overlaps(prefix: &[&str], pattern: &str) -> bool {
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    for (index, literal) in prefix.iter().enumerate() {
        match segments.get(index) {
            Some(segment) if segment.starts_with("{*") => return true,
            Some(segment) if segment.starts_with('{') || segment == literal => {}
            _ => return false,
        }
    }
    true
}

/// The routes that send exactly the owned endpoints: one `/prefix/**` for the shortest prefix
/// under which every endpoint of the code is owned, else one route per path pattern, with
/// methods when some endpoint on the same pattern stays.
fn routes(owned: &[&Endpoint], all: &[Endpoint], short: &str) -> Vec<RouteJson> {
    let is_owned = |endpoint: &Endpoint| {
        owned
            .iter()
            .any(|own| own.method == endpoint.method && own.path == endpoint.path)
    };
    let mut prefixes: BTreeMap<String, Vec<&Endpoint>> = BTreeMap::new();
    let mut singles: BTreeMap<String, Vec<&Endpoint>> = BTreeMap::new();
    for endpoint in owned {
        let literals = literal_prefix(&endpoint.path);
        let exclusive = (1..=literals.len()).find(|&len| {
            all.iter()
                .filter(|other| overlaps(&literals[..len], &other.path))
                .all(is_owned)
        });
        match exclusive {
            Some(len) => prefixes
                .entry(format!("/{}", literals[..len].join("/")))
                .or_default()
                .push(endpoint),
            None => singles
                .entry(proxy_pattern(&endpoint.path).0)
                .or_default()
                .push(endpoint),
        }
    }
    // A shorter exclusive prefix takes in the endpoints of longer ones below it.
    let keys: Vec<String> = prefixes.keys().cloned().collect();
    for key in &keys {
        if let Some(parent) = keys
            .iter()
            .find(|other| *other != key && key.starts_with(&format!("{other}/")))
            && let Some(moved) = prefixes.remove(key)
        {
            prefixes.entry(parent.clone()).or_default().extend(moved);
        }
    }
    let mut res = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut name_for = |path: &str| {
        // `/api/loans/*/return` -> `api-loans-return`.
        let base = path
            .split('/')
            .filter(|segment| !segment.is_empty() && !segment.starts_with('*'))
            .map(|segment| {
                segment
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("-");
        let base = if base.trim_matches('-').is_empty() {
            short.to_owned()
        } else {
            base.trim_matches('-').to_owned()
        };
        let mut name = base.clone();
        let mut n = 2;
        while !names.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    };
    for (prefix, endpoints) in prefixes {
        res.push(RouteJson {
            name: name_for(&prefix),
            kind: "pattern",
            path: format!("{prefix}/**"),
            methods: Vec::new(),
            endpoints: endpoints.iter().map(|e| endpoint_key(e)).collect(),
        });
    }
    for (pattern, endpoints) in singles {
        let (_, literal) = proxy_pattern(&endpoints[0].path);
        let any = endpoints.iter().any(|e| e.method == "ANY");
        let others_here = all
            .iter()
            .any(|other| !is_owned(other) && proxy_pattern(&other.path).0 == pattern);
        let methods: Vec<String> = if any || !others_here {
            Vec::new()
        } else {
            let set: BTreeSet<String> = endpoints
                .iter()
                .flat_map(|e| e.method.split(',').map(str::to_owned))
                .collect();
            set.into_iter().collect()
        };
        res.push(RouteJson {
            name: name_for(&pattern),
            kind: if literal { "exact" } else { "pattern" },
            path: pattern,
            methods,
            endpoints: endpoints.iter().map(|e| endpoint_key(e)).collect(),
        });
    }
    res
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each a different part of the plan"
)]
fn steps(
    args: &Args,
    domain: &str,
    service: &str,
    flag: &str,
    cut: &[CutStepJson],
    owned: &[PlannedEndpointJson],
    shared: &[PlannedEndpointJson],
    routes: &[RouteJson],
) -> Vec<String> {
    let path = args.report.path.display();
    let mut steps = Vec::new();
    if cut.is_empty() {
        steps.push(format!(
            "Cut these edges: none, `{domain}` is in no cycle of the cut list."
        ));
    } else {
        let list: Vec<String> = cut
            .iter()
            .map(|edge| match &edge.trait_name {
                Some(name) => format!(
                    "{} -> {} (weight {}, via trait `{name}`)",
                    edge.from, edge.to, edge.weight
                ),
                None => format!("{} -> {} (weight {})", edge.from, edge.to, edge.weight),
            })
            .collect();
        steps.push(format!("Cut these edges: {}.", list.join("; ")));
    }
    steps.push(format!(
        "Emit the interfaces: `fig suggest {path} --emit interfaces/` and make `{domain}` depend only on them."
    ));
    steps.push(format!(
        "Deploy the service `{service}` at {} serving {} endpoint(s): {}.",
        args.service_url,
        owned.len(),
        owned
            .iter()
            .map(|e| format!("{} {}", e.endpoint.method, e.endpoint.path))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let route_names: Vec<&str> = routes.iter().map(|route| route.name.as_str()).collect();
    steps.push(format!(
        "Create the flag, off: `fig flags create {flag}`; start `fig proxy --config fig-proxy.toml` (routes {}).",
        route_names.join(", ")
    ));
    steps.push(format!(
        "Shadow: the monolith answers while every GET is copied to `{service}`; compare with `fig route diff {}` until it shows no difference.",
        route_names.first().copied().unwrap_or(service)
    ));
    steps.push(format!(
        "Roll out to 10%, then 50%: `fig flags rollout {flag} 10`; the SLO rolls the route back if the service breaks it."
    ));
    steps.push(format!("Enable: `fig flags enable {flag}`."));
    if !shared.is_empty() {
        steps.push(format!(
            "Then the shared endpoints, once their edges are cut: {}.",
            shared
                .iter()
                .map(|e| format!(
                    "{} {} (also needs {})",
                    e.endpoint.method,
                    e.endpoint.path,
                    e.also_needs.as_deref().unwrap_or_default().join(", ")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    steps.push(format!(
        "Delete the code from the monolith: the handlers {} and what only they reach in `{domain}`.",
        owned
            .iter()
            .map(|e| format!("`{}`", e.endpoint.handler))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    steps
}

fn text(plan: &PlanJson) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan: extract `{}` as service `{}` behind flag `{}`",
        plan.extract, plan.service, plan.flag
    );
    match plan.role {
        "kernel" => {
            let _ = writeln!(
                out,
                "note: `{}` is the shared kernel (several domains use it, it uses none): no endpoint belongs to it; it goes along with every service that needs it",
                plan.extract
            );
        }
        "wiring" => {
            let _ = writeln!(
                out,
                "note: `{}` is wiring (it hosts handlers or ties domains together): no endpoint belongs to it; extract a domain it wires",
                plan.extract
            );
        }
        _ => {}
    }
    let show = |out: &mut String, planned: &PlannedEndpointJson| {
        let endpoint = &planned.endpoint;
        let _ = write!(
            out,
            "  {:<7} {:<32} {} ({}:{})",
            endpoint.method,
            endpoint.path,
            endpoint.handler,
            endpoint.location.file,
            endpoint.location.line
        );
        if let Some(stats) = &planned.traffic {
            let _ = write!(
                out,
                "  {} req, {} err, p99 {}",
                stats.requests,
                stats.errors,
                stats
                    .p99_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"))
            );
        }
        out.push('\n');
    };
    let _ = writeln!(
        out,
        "\nOwned endpoints ({}): they move first",
        plan.owned.len()
    );
    for planned in &plan.owned {
        show(&mut out, planned);
    }
    let _ = writeln!(
        out,
        "\nShared endpoints ({}): they need `{}` together with other domains",
        plan.shared.len(),
        plan.extract
    );
    for planned in &plan.shared {
        show(&mut out, planned);
        let _ = writeln!(
            out,
            "          also needs {}",
            planned.also_needs.as_deref().unwrap_or_default().join(", ")
        );
        for edge in planned.cut.as_deref().unwrap_or_default() {
            let _ = writeln!(
                out,
                "          cut {} -> {} (weight {}){}",
                edge.from,
                edge.to,
                edge.weight,
                edge.trait_name
                    .as_ref()
                    .map_or_else(String::new, |name| format!(", extract trait `{name}`"))
            );
        }
    }
    let _ = writeln!(out, "\nRoutes");
    for route in &plan.routes {
        let methods = if route.methods.is_empty() {
            String::new()
        } else {
            format!(" [{}]", route.methods.join(", "))
        };
        let _ = writeln!(
            out,
            "  {:<16} {} = \"{}\"{methods} -> {}",
            route.name, route.kind, route.path, plan.service
        );
    }
    let _ = writeln!(out, "\nSteps");
    for (index, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {step}", index + 1);
    }
    let _ = writeln!(out, "\nCandidate extractions (easiest first)");
    for candidate in &plan.candidates {
        let requests = candidate
            .requests
            .map_or_else(String::new, |requests| format!(", {requests} requests"));
        let _ = writeln!(
            out,
            "  {:<24} {} owned, {} shared, cut {} edge(s) of weight {}{requests}",
            candidate.domain,
            candidate.owned,
            candidate.shared,
            candidate.cut_edges,
            candidate.cut_weight
        );
    }
    let _ = writeln!(
        out,
        "\nCandidate services (module coupling and the endpoints that run modules together)"
    );
    for service in plan
        .services
        .iter()
        .filter(|service| !service.endpoints.is_empty())
    {
        let _ = writeln!(
            out,
            "  {:<16} {} module(s), endpoints: {}",
            service.name,
            service.modules.len(),
            service.endpoints.join(", ")
        );
    }
    if let Some(traffic) = &plan.traffic {
        let _ = writeln!(
            out,
            "\nTraffic ({} lines of {})",
            traffic.lines, traffic.file
        );
        for load in &traffic.by_load {
            let _ = writeln!(
                out,
                "  {:<40} {} req, {} err, p99 {}",
                load.endpoint,
                load.stats.requests,
                load.stats.errors,
                load.stats
                    .p99_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"))
            );
        }
        if !traffic.not_in_code.is_empty() {
            let _ = writeln!(out, "  seen in traffic, not in the code:");
            for load in &traffic.not_in_code {
                let _ = writeln!(out, "    {} ({} req)", load.endpoint, load.stats.requests);
            }
        }
        if !traffic.not_in_traffic.is_empty() {
            let _ = writeln!(
                out,
                "  in the code, not in traffic: {}",
                traffic.not_in_traffic.join(", ")
            );
        }
        for unreadable in &traffic.unreadable_lines {
            let _ = writeln!(
                out,
                "  warning: {}:{}: {}",
                traffic.file, unreadable.line, unreadable.reason
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Emit.

fn emit(dir: &Path, plan: &PlanJson, args: &Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let config = proxy_config(plan, args)?;
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing `{}`", path.display()))
    };
    write("fig-proxy.toml", &config)?;
    write(
        "flags.sh",
        &format!(
            "#!/bin/sh\n# Written by `fig plan`: the flag the routes of fig-proxy.toml read, created off.\nset -e\nfig flags --store \"$(dirname \"$0\")/flags.json\" create {} --description 'send the endpoints of {} to {}'\n",
            shell_word(&plan.flag),
            plan.extract,
            plan.service
        ),
    )?;
    let mut markdown = format!(
        "# Extract `{}` as `{}`\n\nWritten by `fig plan`. The routes are in `fig-proxy.toml`; the flag `{}` decides them.\n\n## Steps\n\n",
        plan.extract, plan.service, plan.flag
    );
    for (index, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(markdown, "{}. [ ] {step}", index + 1);
    }
    let _ = writeln!(markdown, "\n## Owned endpoints\n");
    for planned in &plan.owned {
        let e = &planned.endpoint;
        let _ = writeln!(
            markdown,
            "- `{} {}` — `{}` ({}:{})",
            e.method, e.path, e.handler, e.location.file, e.location.line
        );
    }
    let _ = writeln!(markdown, "\n## Shared endpoints\n");
    for planned in &plan.shared {
        let e = &planned.endpoint;
        let _ = writeln!(
            markdown,
            "- `{} {}` — also needs {}; cut first: {}",
            e.method,
            e.path,
            planned.also_needs.as_deref().unwrap_or_default().join(", "),
            planned
                .cut
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|edge| format!("`{} -> {}`", edge.from, edge.to))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    write("PLAN.md", &markdown)?;
    Ok(())
}

fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A TOML key: bare when it can be, else quoted.
fn toml_key(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        text.to_owned()
    } else {
        toml_string(text)
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A complete proxy config: the monolith and the service, the routes behind the flag with
/// shadow traffic and an SLO, the flags file next to it.
fn proxy_config(plan: &PlanJson, args: &Args) -> anyhow::Result<String> {
    for url in [&args.monolith_url, &args.service_url] {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("`{url}` is not an http:// or https:// URL");
        }
    }
    let mut routes = String::new();
    for route in &plan.routes {
        let methods = if route.methods.is_empty() {
            String::new()
        } else {
            format!(
                ", methods = [{}]",
                route
                    .methods
                    .iter()
                    .map(|method| toml_string(method))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let _ = write!(
            routes,
            r#"
# {endpoints}
[[routes]]
name = {name}
match = {{ {kind} = {path}{methods} }}
service = {upstream}
flag = {flag}
fallback = "monolith"
retry = {{ methods = ["GET", "HEAD", "OPTIONS"] }}
slo = {{ max_error_rate = "5%", max_p99 = "1s", window = "30s" }}
shadow = {{ percent = 100 }}
"#,
            endpoints = route.endpoints.join(", "),
            name = toml_string(&route.name),
            kind = route.kind,
            path = toml_string(&route.path),
            flag = toml_string(&plan.flag),
            upstream = toml_string(&plan.service),
        );
    }
    if plan.routes.is_empty() {
        routes.push_str("\n# No endpoint belongs to the module alone yet: cut the edges first.\n");
    }
    Ok(format!(
        r#"# Written by `fig plan --extract {extract}`: the endpoints of `{extract}` go to the service
# `{service}` when flag `{flag}` is on, else to the monolith. Every GET the monolith answers is
# copied to the service and the answers compared (`fig route diff`); the SLO rolls a route back
# when the service breaks it. Keys: docs/proxy-config.md.

[server]
listen = {listen}
access_log = "access.log"

[upstreams.monolith]
addresses = [{monolith}]

[upstreams.{upstream}]
addresses = [{service_url}]
{routes}
[flags]
file = "flags.json"

[admin]
listen = {admin}
"#,
        extract = plan.extract,
        service = plan.service,
        flag = plan.flag,
        monolith = toml_string(&args.monolith_url),
        service_url = toml_string(&args.service_url),
        upstream = toml_key(&plan.service),
        listen = toml_string(&args.listen),
        admin = toml_string(&args.admin_listen),
    ))
}

// ---------------------------------------------------------------------------------------------
// Traffic.

/// Requests per endpoint of the code, and the rest.
struct Traffic {
    file: String,
    lines: u64,
    unreadable: Vec<UnreadableJson>,
    /// `METHOD path` of an endpoint -> its stats.
    stats: BTreeMap<String, StatsJson>,
    /// `METHOD path` as requested, for requests no endpoint matches.
    unmatched: BTreeMap<String, StatsJson>,
}

impl Traffic {
    fn json(&self, endpoints: &[Endpoint]) -> TrafficJson {
        let mut by_load: Vec<LoadJson> = self
            .stats
            .iter()
            .map(|(endpoint, stats)| LoadJson {
                endpoint: endpoint.clone(),
                stats: stats.clone(),
            })
            .collect();
        by_load.sort_by(|a, b| {
            b.stats
                .requests
                .cmp(&a.stats.requests)
                .then_with(|| a.endpoint.cmp(&b.endpoint))
        });
        let mut not_in_code: Vec<LoadJson> = self
            .unmatched
            .iter()
            .map(|(endpoint, stats)| LoadJson {
                endpoint: endpoint.clone(),
                stats: stats.clone(),
            })
            .collect();
        not_in_code.sort_by(|a, b| {
            b.stats
                .requests
                .cmp(&a.stats.requests)
                .then_with(|| a.endpoint.cmp(&b.endpoint))
        });
        let not_in_traffic = endpoints
            .iter()
            .map(endpoint_key)
            .filter(|key| !self.stats.contains_key(key))
            .collect();
        TrafficJson {
            file: self.file.clone(),
            lines: self.lines,
            unreadable_lines: self
                .unreadable
                .iter()
                .map(|u| UnreadableJson {
                    line: u.line,
                    reason: u.reason.clone(),
                })
                .collect(),
            by_load,
            not_in_code,
            not_in_traffic,
        }
    }
}

/// One request of the log.
struct Request {
    method: String,
    path: String,
    status: u16,
    ms: Option<f64>,
}

/// Reads `fig proxy`'s access log: text lines
/// (`TIME CLIENT "METHOD URI" STATUS route=R upstream=U reason=X ms=T`) or JSON lines
/// (`{"method", "path" or "uri", "status", "ms" or "latency_ms"}`).
fn read_traffic(path: &Path, endpoints: &[Endpoint]) -> anyhow::Result<Traffic> {
    let text = std::fs::read_to_string(path)?;
    let mut latencies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut unmatched_latencies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut traffic = Traffic {
        file: path.display().to_string(),
        lines: 0,
        unreadable: Vec::new(),
        stats: BTreeMap::new(),
        unmatched: BTreeMap::new(),
    };
    let mut unreadable: u64 = 0;
    for (index, line) in text.lines().enumerate() {
        let line_number = index as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        traffic.lines += 1;
        let request = match parse_line(line) {
            Ok(request) => request,
            Err(reason) => {
                unreadable += 1;
                // At most a few warnings: a wrong file shows in the first lines.
                if traffic.unreadable.len() < 10 {
                    traffic.unreadable.push(UnreadableJson {
                        line: line_number,
                        reason,
                    });
                }
                continue;
            }
        };
        let (map, lat, key) = match match_endpoint(endpoints, &request.method, &request.path) {
            Some(endpoint) => (&mut traffic.stats, &mut latencies, endpoint_key(endpoint)),
            None => (
                &mut traffic.unmatched,
                &mut unmatched_latencies,
                format!("{} {}", request.method, request.path),
            ),
        };
        let stats = map.entry(key.clone()).or_default();
        stats.requests += 1;
        if request.status >= 500 {
            stats.errors += 1;
        }
        if let Some(ms) = request.ms {
            lat.entry(key).or_default().push(ms);
        }
    }
    if traffic.lines > 0 && unreadable == traffic.lines {
        bail!(
            "no line is a request of `fig proxy`'s access log (line 1: {})",
            traffic.unreadable[0].reason
        );
    }
    for (map, lat) in [
        (&mut traffic.stats, latencies),
        (&mut traffic.unmatched, unmatched_latencies),
    ] {
        for (key, mut values) in lat {
            values.sort_by(f64::total_cmp);
            // Nearest rank.
            let rank = ((values.len() as f64) * 0.99).ceil() as usize;
            let p99 = values[rank.clamp(1, values.len()) - 1];
            if let Some(stats) = map.get_mut(&key) {
                stats.p99_ms = Some(p99);
            }
        }
    }
    Ok(traffic)
}

fn parse_line(line: &str) -> Result<Request, String> {
    let trimmed = line.trim();
    if trimmed.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|err| format!("invalid JSON: {err}"))?;
        let field = |names: &[&str]| names.iter().find_map(|name| value.get(*name)).cloned();
        let method = field(&["method"])
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or("no `method`")?;
        let uri = field(&["path", "uri", "template", "route_path"])
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or("no `path`")?;
        let status = field(&["status"])
            .and_then(|v| v.as_u64())
            .and_then(|v| u16::try_from(v).ok())
            .ok_or("no `status`")?;
        let ms = field(&["ms", "latency_ms", "duration_ms"]).and_then(|v| v.as_f64());
        return Ok(Request {
            method: method.to_uppercase(),
            path: path_of(&uri),
            status,
            ms,
        });
    }
    let open = line.find('"').ok_or("no quoted request (\"METHOD URI\")")?;
    let close = line[open + 1..]
        .find('"')
        .map(|end| open + 1 + end)
        .ok_or("unterminated quoted request")?;
    let mut request = line[open + 1..close].split(' ');
    let method = request.next().unwrap_or_default().to_owned();
    let uri = request.next().ok_or("no URI in the quoted request")?;
    let mut rest = line[close + 1..].split_whitespace();
    let status: u16 = rest
        .next()
        .and_then(|status| status.parse().ok())
        .ok_or("no status after the request")?;
    let ms = rest
        .find_map(|field| field.strip_prefix("ms="))
        .and_then(|ms| ms.parse().ok());
    Ok(Request {
        method,
        path: path_of(uri),
        status,
        ms,
    })
}

/// The path of a URI: no scheme and authority (absolute form), no query.
fn path_of(uri: &str) -> String {
    let without_scheme = match uri.find("://") {
        Some(index) => {
            let rest = &uri[index + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => uri,
    };
    without_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or("/")
        .to_owned()
}

/// The endpoint a request went to: the matching pattern with the most literal segments.
fn match_endpoint<'e>(endpoints: &'e [Endpoint], method: &str, path: &str) -> Option<&'e Endpoint> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    endpoints
        .iter()
        .filter(|endpoint| {
            endpoint.method == "ANY"
                || endpoint.method.split(',').any(|m| m == method)
                || (method == "HEAD" && endpoint.method == "GET")
        })
        .filter_map(|endpoint| {
            let pattern: Vec<&str> = endpoint.path.split('/').filter(|s| !s.is_empty()).collect();
            let mut literals = 0;
            for (index, part) in pattern.iter().enumerate() {
                if part.starts_with("{*") {
                    return Some((endpoint, literals));
                }
                let segment = segments.get(index)?;
                if part.starts_with('{') {
                    continue;
                }
                if part != segment {
                    return None;
                }
                literals += 1;
            }
            (pattern.len() == segments.len()).then_some((endpoint, literals + 1))
        })
        .max_by_key(|(_, literals)| *literals)
        .map(|(endpoint, _)| endpoint)
}

#[cfg(test)]
mod tests {
    use super::{match_endpoint, parse_line};
    use analyzer::report::{Endpoint, Location};

    fn endpoint(method: &str, path: &str) -> Endpoint {
        Endpoint {
            method: method.to_owned(),
            path: path.to_owned(),
            handler: String::new(),
            framework: "axum".to_owned(),
            location: Location {
                file: "src/lib.rs".into(),
                line: 1,
                column: 1,
            },
            reaches: Vec::new(),
            needs: Vec::new(),
            owner: None,
        }
    }

    #[test]
    fn reads_the_proxys_text_lines_and_json_lines() {
        let text = r#"2026-12-07T19:41:32.512Z 127.0.0.1 "GET /payments/7?verbose=1" 200 route=payments upstream=monolith reason=flag-off ms=1.250"#;
        let request = parse_line(text).expect("a request");
        assert_eq!(
            (
                request.method.as_str(),
                request.path.as_str(),
                request.status
            ),
            ("GET", "/payments/7", 200)
        );
        assert_eq!(request.ms, Some(1.25));
        let json = r#"{"method":"post","uri":"http://shop.test/orders?x=1","status":502,"latency_ms":12.5}"#;
        let request = parse_line(json).expect("a request");
        assert_eq!(
            (
                request.method.as_str(),
                request.path.as_str(),
                request.status
            ),
            ("POST", "/orders", 502)
        );
        assert!(parse_line("garbage").is_err());
        assert!(parse_line(r#"{"method":"GET"}"#).is_err());
    }

    #[test]
    fn the_most_literal_pattern_wins() {
        let endpoints = [
            endpoint("GET", "/payments/{id}"),
            endpoint("GET", "/payments/latest"),
            endpoint("ANY", "/files/{*path}"),
            endpoint("POST", "/payments/{id}/refund"),
        ];
        let matched = |method: &str, path: &str| {
            match_endpoint(&endpoints, method, path).map(|found| found.path.clone())
        };
        assert_eq!(
            matched("GET", "/payments/latest").as_deref(),
            Some("/payments/latest")
        );
        assert_eq!(
            matched("GET", "/payments/7").as_deref(),
            Some("/payments/{id}")
        );
        assert_eq!(
            matched("HEAD", "/payments/7").as_deref(),
            Some("/payments/{id}")
        );
        assert_eq!(
            matched("GET", "/files/a/b/c").as_deref(),
            Some("/files/{*path}")
        );
        assert_eq!(matched("GET", "/payments/7/refund"), None);
        assert_eq!(
            matched("POST", "/payments/7/refund").as_deref(),
            Some("/payments/{id}/refund")
        );
    }
}
