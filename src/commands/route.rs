//! `fig route`: look at the routes of a running proxy, roll one back, restore it, reload.
//!
//! Every subcommand is one or two calls to the proxy's admin API (`strangler_proxy::admin`):
//! `list` and `status` read `GET /routes` (and `status` also `/healthz` and `/readyz`),
//! `rollback NAME` and `restore NAME` post to `/routes/NAME/rollback|restore`, and `reload` posts
//! to `/reload`, and `diff NAME` reads `GET /routes/NAME/diff` (shadow traffic). The admin API answers a rollback only once it is in force, so when `fig route
//! rollback` returns, the next request already goes to the route's fallback.
//!
//! The token comes from `--token`, else `--token-file`, else `$FIG_ADMIN_TOKEN`, else
//! `$FIG_ADMIN_TOKEN_FILE`, else the proxy's config given with `--config` (its `admin.token`,
//! `admin.token_file`, or the token `fig proxy` generated next to it); `--config` also gives
//! the admin address when `--admin` and `$FIG_ADMIN_URL` do not. Output is a
//! table for a person or `--format json` for scripts (`list` and `diff` print the admin API's own
//! document); `diff` also renders a self-contained HTML page with `--format html`.
//! Every failure (unreachable admin API, refused token, unknown route, refused config) is one line
//! on stderr and exit code 2.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};
use strangler_proxy::admin::api::{
    MatchDoc, PathDoc, PinAnswer, ReloadAnswer, RouteDoc, RouteState, RoutesDoc,
};
use strangler_proxy::config::DEFAULT_ADMIN_LISTEN;
use strangler_proxy::state::{PinInfo, PinnedBy};

/// Version of the JSON shapes `fig route --format json` prints (`list` prints the admin API's
/// document, which carries the admin API's own `schema_version`).
const SCHEMA_VERSION: u32 = 1;

/// Arguments of `fig route`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The proxy's admin API [env: FIG_ADMIN_URL] [default: http://127.0.0.1:9901].
    #[arg(long, global = true, value_name = "URL")]
    pub admin: Option<String>,
    /// Bearer token of the admin API [default: $FIG_ADMIN_TOKEN].
    #[arg(long, global = true, value_name = "T", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the bearer token, such as the `admin.token` that `fig demo` writes
    /// [default: $FIG_ADMIN_TOKEN_FILE].
    #[arg(long, global = true, value_name = "F")]
    pub token_file: Option<PathBuf>,
    /// The proxy's config file: its admin address and token (also the token `fig proxy`
    /// generated next to it), when not given otherwise.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: RouteCommand,
}

/// How `fig route` prints its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a person.
    #[value(alias = "text")]
    Table,
    /// One JSON document with a `schema_version`, for scripts.
    Json,
    /// A self-contained HTML page (only `fig route diff`).
    Html,
}

/// The `fig route` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RouteCommand {
    /// Every route: what it matches, its flag, where it sends requests, its counters.
    List,
    /// Is the proxy up and ready, and which routes are rolled back.
    Status,
    /// Send every request of a route to its fallback (the monolith) now, whatever its flag says.
    /// Kept in the proxy's state file, so a restart keeps it.
    Rollback {
        /// The route's name, as in `fig route list`.
        name: String,
    },
    /// Undo a rollback: the route's flag decides again.
    Restore {
        /// The route's name, as in `fig route list`.
        name: String,
    },
    /// Re-read the proxy's config file; a config with a mistake is refused and the old one
    /// keeps serving.
    Reload,
    /// How a route's shadow traffic compares: counts, % different, the most common differing
    /// paths, and the newest samples with their field-level differences.
    Diff {
        /// The route's name, as in `fig route list`.
        name: String,
        /// How many samples to show.
        #[arg(long, value_name = "N", default_value_t = 5)]
        limit: usize,
    },
}

/// Runs `fig route`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(&args)?;
    if args.format == Format::Html && !matches!(args.command, RouteCommand::Diff { .. }) {
        bail!("--format html is only for `fig route diff`; use table or json");
    }
    let text = match &args.command {
        RouteCommand::List => list(&admin, args.format)?,
        RouteCommand::Status => status(&admin, args.format)?,
        RouteCommand::Rollback { name } => pin(&admin, name, Action::Rollback, args.format)?,
        RouteCommand::Restore { name } => pin(&admin, name, Action::Restore, args.format)?,
        RouteCommand::Reload => reload(&admin, args.format)?,
        RouteCommand::Diff { name, limit } => diff(&admin, name, *limit, args.format)?,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A client of one admin API.
struct Admin {
    base: String,
    token: Option<String>,
    client: Client,
}

/// An answer of the admin API: status and body.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Admin {
    fn new(args: &Args) -> anyhow::Result<Admin> {
        let proxy_config = args
            .config
            .as_deref()
            .map(|path| {
                // Read as `fig proxy` reads it, so a config that needs the Unleash admin token
                // from the environment loads here too.
                let overrides = strangler_proxy::Overrides {
                    unleash_admin_token: ["FIG_UNLEASH_ADMIN_TOKEN", "UNLEASH_ADMIN_TOKEN"]
                        .into_iter()
                        .find_map(env_value),
                    ..strangler_proxy::Overrides::default()
                };
                strangler_proxy::Config::load(path, &overrides)
                    .with_context(|| format!("cannot read the proxy config {}", path.display()))
            })
            .transpose()?;
        let given = args
            .admin
            .clone()
            .or_else(|| std::env::var("FIG_ADMIN_URL").ok())
            .filter(|url| !url.trim().is_empty())
            .or_else(|| proxy_config.as_ref().and_then(config_admin_url))
            .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.to_owned());
        let mut base = given.trim().trim_end_matches('/').to_owned();
        if !base.contains("://") {
            base = format!("http://{base}");
        }
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--admin {given}: give an http:// URL such as http://{DEFAULT_ADMIN_LISTEN}");
        }
        let token = match (&args.token, &args.token_file) {
            (Some(token), _) => Some(token.trim().to_owned()),
            (None, Some(file)) => Some(read_token(file)?),
            (None, None) => match (
                env_value("FIG_ADMIN_TOKEN"),
                env_value("FIG_ADMIN_TOKEN_FILE"),
                &proxy_config,
            ) {
                (Some(token), _, _) => Some(token),
                (None, Some(file), _) => Some(read_token(Path::new(&file))?),
                (None, None, Some(config)) => {
                    match (&config.admin.token, &config.admin.generated_token_file) {
                        (Some(token), _) => Some(token.clone()),
                        (None, Some(file)) if file.exists() => Some(read_token(file)?),
                        (None, _) => None,
                    }
                }
                (None, None, None) => None,
            },
        }
        .filter(|token| !token.is_empty());
        // The admin API is usually on loopback: a proxy from the environment must not get in
        // the way, and a hung proxy must not hang the operator.
        let client = Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Admin {
            base,
            token,
            client,
        })
    }

    fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(self.client.get(format!("{}{path}", self.base)), path)
    }

    fn post(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(self.client.post(format!("{}{path}", self.base)), path)
    }

    /// Sends a request and turns every way it can fail into one clear sentence. Answers with a
    /// status the caller may want to handle (404, 422, 5xx) come back as `Ok`.
    fn send(&self, mut request: RequestBuilder, path: &str) -> anyhow::Result<Answer> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(|err| {
            let cause = root_cause(&err);
            if err.is_timeout() {
                anyhow::anyhow!("the admin API at {} did not answer in time ({cause})", self.base)
            } else {
                anyhow::anyhow!(
                    "cannot reach the admin API at {} ({cause}); is the proxy running, and is --admin its admin address?",
                    self.base
                )
            }
        })?;
        let status = response.status();
        if response.headers().contains_key("x-fig-upstream") {
            bail!(
                "{} is the proxy's listener, not its admin API; give --admin the admin address (`admin on http://...` in the proxy's output)",
                self.base
            );
        }
        let text = response
            .text()
            .with_context(|| format!("cannot read the admin API's answer to {path}"))?;
        if status == StatusCode::UNAUTHORIZED {
            let hint = if self.token.is_some() {
                "the token was refused"
            } else {
                "it needs a token"
            };
            bail!(
                "the admin API at {} answered 401: {hint}; pass --token, --token-file or set FIG_ADMIN_TOKEN",
                self.base
            );
        }
        let body = if path == "/healthz" || path == "/readyz" {
            Value::String(text.trim().to_owned())
        } else {
            serde_json::from_str(&text).map_err(|_| {
                anyhow::anyhow!(
                    "the admin API at {} answered {path} with {status} and a body that is not JSON; is --admin the proxy's admin address?",
                    self.base
                )
            })?
        };
        Ok(Answer { status, body })
    }

    /// `GET /routes`, as the admin API's own JSON document (for `--format json`) and typed.
    fn routes(&self) -> anyhow::Result<(Value, RoutesDoc)> {
        let answer = self.get("/routes")?;
        if answer.status != StatusCode::OK {
            bail!(
                "GET /routes answered {}: {}",
                answer.status,
                error_text(&answer.body)
            );
        }
        let doc = self.typed("/routes", answer.body.clone())?;
        Ok((answer.body, doc))
    }

    /// `body` read as the document `path` answers.
    fn typed<T: serde::de::DeserializeOwned>(&self, path: &str, body: Value) -> anyhow::Result<T> {
        serde_json::from_value(body).map_err(|err| {
            anyhow::anyhow!(
                "the admin API at {} answered {path} with a document this fig route does not understand ({err}); are the proxy and fig the same version?",
                self.base
            )
        })
    }
}

/// A non-empty environment variable, trimmed.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn read_token(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the token file {}", file.display()))?;
    Ok(text.trim().to_owned())
}

/// The admin URL of a proxy config: its `admin.listen`, on loopback when it listens on every
/// address; `None` when it is off or on port 0 (known only once the proxy runs).
fn config_admin_url(config: &strangler_proxy::Config) -> Option<String> {
    let mut listen = config.admin.listen.filter(|addr| addr.port() != 0)?;
    if listen.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if listen.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        listen.set_ip(loopback);
    }
    Some(format!("http://{listen}"))
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn error_text(body: &Value) -> String {
    body.get("error")
        .and_then(Value::as_str)
        .map_or_else(|| body.to_string(), str::to_owned)
}

fn to_json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn list(admin: &Admin, format: Format) -> anyhow::Result<String> {
    let (raw, routes) = admin.routes()?;
    if format == Format::Json {
        return Ok(to_json(&raw));
    }
    let mut rows = vec![
        [
            "ROUTE", "MATCH", "FLAG", "SERVICE", "FALLBACK", "STATE", "REQUESTS", "ERRORS",
        ]
        .map(str::to_owned),
    ];
    for route in &routes.routes {
        let requests: u64 = route.requests.values().sum();
        rows.push([
            route.name.clone(),
            describe_match(&route.matcher),
            describe_flag(route),
            route.service.clone(),
            route.fallback.clone(),
            describe_state(route),
            requests.to_string(),
            errors_seen(route).to_string(),
        ]);
    }
    let mut out = align(&rows);
    if rows.len() == 1 {
        out.push_str("(no routes: every request goes to the default upstream)\n");
    }
    for route in &routes.routes {
        if let Some(pin) = slo_pin(route) {
            out.push_str(&format!(
                "{} rolled back: {}\n",
                route.name,
                describe_pin(pin)
            ));
        }
    }
    if routes.routes.iter().any(|route| route.flag.is_some()) {
        out.push_str("flag: on or off for everyone, or `varies` when its strategies decide per user (a gradual rollout, a user list)\n");
    }
    out.push_str(&format!(
        "requests no route matches go to `{}`; flags {}\n",
        routes.default_upstream,
        describe_flag_store(&routes)
    ));
    Ok(out)
}

/// The errors a route saw: the responses with a 5xx status it answered (the service's, the
/// fallback's or the proxy's own 502/504), plus the requests whose service failed (a failure
/// status, no connection, a timeout) and that the fallback answered instead. An SLO rollback's
/// error rate counts the service's answers, so this is never 0 on a route rolled back for errors.
fn errors_seen(route: &RouteDoc) -> u64 {
    // `circuit-open` fallbacks never tried the service: a protection at work, not an error seen.
    let service_failed: u64 = route
        .fallbacks
        .iter()
        .filter(|(cause, _)| cause.as_str() != "circuit-open")
        .map(|(_, count)| count)
        .sum();
    route.responses_5xx + service_failed
}

/// The flag store in words: loaded or not, how old the flags are, and its error.
fn describe_flag_store(routes: &RoutesDoc) -> String {
    let mut res = if routes.flags_ready {
        "loaded".to_owned()
    } else {
        "NOT loaded yet (flagged routes use their fallback)".to_owned()
    };
    // How old the flags are matters once the store fails; a healthy one is a poll away.
    if let Some(error) = &routes.flags_error {
        res.push_str(&format!("; STORE ERROR: {error}"));
        if routes.flags_ready {
            let age = routes
                .flags_staleness_seconds
                .map_or_else(String::new, |seconds| {
                    format!(", last confirmed {seconds:.1}s ago")
                });
            res.push_str(&format!(" (the last good flags keep serving{age})"));
        }
    }
    res
}

fn status(admin: &Admin, format: Format) -> anyhow::Result<String> {
    let health = admin.get("/healthz")?;
    let ready = admin.get("/readyz")?;
    let (_, routes) = admin.routes()?;
    let all = &routes.routes;
    let rolled_back: Vec<&str> = all
        .iter()
        .filter(|route| is_pinned(route))
        .map(|route| route.name.as_str())
        .collect();
    // The circuit of each route's service (routes whose service has no breaker are left out).
    let circuits: Vec<(&str, &str, &str)> = all
        .iter()
        .filter_map(|route| {
            let circuit = route.circuit.as_ref()?;
            Some((
                route.name.as_str(),
                circuit.upstream.as_str(),
                circuit.state.as_str(),
            ))
        })
        .collect();
    let doc = json!({
        "schema_version": SCHEMA_VERSION,
        "admin": admin.base,
        "healthy": health.status == StatusCode::OK,
        "ready": ready.status == StatusCode::OK,
        "flags_ready": routes.flags_ready,
        "flags_error": routes.flags_error,
        "flags_staleness_seconds": routes.flags_staleness_seconds,
        "default_upstream": routes.default_upstream,
        "state_file": routes.state_file,
        "routes": all.len(),
        "rolled_back": rolled_back,
        "pins": all
            .iter()
            .filter(|route| is_pinned(route))
            .map(|route| (route.name.clone(), json!(route.pin)))
            .collect::<serde_json::Map<String, Value>>(),
        "circuits": circuits
            .iter()
            .map(|(route, upstream, state)| json!({"route": route, "upstream": upstream, "state": state}))
            .collect::<Vec<_>>(),
        "certificates": routes.certificates,
    });
    if format == Format::Json {
        return Ok(to_json(&doc));
    }
    let mut rows = vec![
        ["admin".to_owned(), admin.base.clone()],
        ["health".to_owned(), text(&health.body)],
        ["ready".to_owned(), text(&ready.body)],
        ["flags".to_owned(), describe_flag_store(&routes)],
        [
            "routes".to_owned(),
            if rolled_back.is_empty() {
                format!("{} (none rolled back)", all.len())
            } else {
                format!("{} (rolled back: {})", all.len(), rolled_back.join(", "))
            },
        ],
    ];
    // One line per rolled-back route: who, when and why.
    for route in all.iter().filter(|route| is_pinned(route)) {
        rows.push([
            format!("  {}", route.name),
            route
                .pin
                .as_ref()
                .map_or_else(|| "by admin".to_owned(), describe_pin),
        ]);
    }
    rows.extend([
        [
            "default upstream".to_owned(),
            routes.default_upstream.clone(),
        ],
        [
            "state file".to_owned(),
            routes
                .state_file
                .clone()
                .unwrap_or_else(|| "none (rollbacks are lost on restart)".to_owned()),
        ],
    ]);
    for (route, upstream, state) in &circuits {
        rows.push([
            "circuit".to_owned(),
            format!("{route}: service `{upstream}` circuit {state}"),
        ]);
    }
    // One line per TLS certificate: what it serves and when it expires.
    for cert in &routes.certificates {
        let names = if cert.names.is_empty() {
            String::new()
        } else {
            format!(" for {}", cert.names.join(", "))
        };
        let default = if cert.default { " (default)" } else { "" };
        rows.push([
            "certificate".to_owned(),
            format!(
                "{}{names}{default}: {}, {}",
                cert.file,
                cert.subject,
                describe_expiry(&cert.not_after, cert.expires_in_seconds)
            ),
        ]);
    }
    Ok(align(&rows))
}

/// `expires 2027-03-01T00:00:00Z (in 83 days)`, or `EXPIRED ...`.
fn describe_expiry(not_after: &str, seconds_left: i64) -> String {
    const DAY: i64 = 86_400;
    if seconds_left < 0 {
        format!("EXPIRED {not_after} ({} days ago)", -seconds_left / DAY)
    } else if seconds_left < DAY {
        format!("expires {not_after} (in {} hours)", seconds_left / 3600)
    } else {
        format!("expires {not_after} (in {} days)", seconds_left / DAY)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Rollback,
    Restore,
}

fn pin(admin: &Admin, name: &str, action: Action, format: Format) -> anyhow::Result<String> {
    let verb = match action {
        Action::Rollback => "rollback",
        Action::Restore => "restore",
    };
    // The route as it was: its upstreams make the answer useful, and its pin says whether an SLO
    // rollback turned its flag off.
    let route: Option<RouteDoc> = admin
        .routes()
        .ok()
        .and_then(|(_, routes)| routes.routes.into_iter().find(|route| route.name == name));
    let answer = admin.post(&format!("/routes/{}/{verb}", path_segment(name)))?;
    match answer.status {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            let known = admin
                .routes()
                .ok()
                .map(|(_, routes)| {
                    routes
                        .routes
                        .into_iter()
                        .map(|route| route.name)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if known.is_empty() {
                bail!("no route named `{name}`");
            }
            bail!(
                "no route named `{name}`; the routes are: {}",
                known.join(", ")
            );
        }
        status => bail!(
            "{verb} of route `{name}` failed ({status}): {}",
            error_text(&answer.body)
        ),
    }
    let answer: PinAnswer = admin.typed(&format!("/routes/{name}/{verb}"), answer.body)?;
    let changed = answer.changed;
    if format == Format::Json {
        return Ok(to_json(&json!({
            "schema_version": SCHEMA_VERSION,
            "route": name,
            "action": verb,
            "state": answer.state,
            "changed": changed,
        })));
    }
    let target = |upstream: fn(&RouteDoc) -> &str| {
        route
            .as_ref()
            .map_or_else(String::new, |route| format!(" `{}`", upstream(route)))
    };
    Ok(match (action, changed) {
        (Action::Rollback, true) => format!(
            "rolled back route `{name}`: every request now goes to its fallback{}; undo with `fig route restore {name}`\n",
            target(|route| &route.fallback)
        ),
        (Action::Rollback, false) => format!("route `{name}` was already rolled back\n"),
        (Action::Restore, true) => {
            let mut out = format!(
                "restored route `{name}`: {}\n",
                match route.as_ref().and_then(|route| route.flag.as_deref()) {
                    Some(flag) => format!(
                        "flag `{flag}` decides again between{} and{}",
                        target(|route| &route.service),
                        target(|route| &route.fallback)
                    ),
                    None => format!(
                        "requests go to its service{} again",
                        target(|route| &route.service)
                    ),
                }
            );
            let flag_off = route
                .as_ref()
                .and_then(|route| route.pin.as_ref())
                .and_then(|pin| pin.flag_off.as_ref());
            if let Some(flag_off) = flag_off
                && flag_off.done
            {
                out.push_str(&format!(
                    "note: the SLO rollback turned flag `{}` off; it stays off until you turn it on again (`fig flags enable {}`)\n",
                    flag_off.flag, flag_off.flag
                ));
            }
            out
        }
        (Action::Restore, false) => {
            format!("route `{name}` was not rolled back; nothing to restore\n")
        }
    })
}

fn reload(admin: &Admin, format: Format) -> anyhow::Result<String> {
    let answer = admin.post("/reload")?;
    match answer.status {
        StatusCode::OK => {}
        StatusCode::UNPROCESSABLE_ENTITY => {
            let refused: ReloadAnswer = admin.typed("/reload", answer.body)?;
            bail!(
                "the proxy refused the new config and keeps serving the old one: {}",
                refused.error.as_deref().unwrap_or("no reason given")
            )
        }
        status => bail!("reload failed ({status}): {}", error_text(&answer.body)),
    }
    if format == Format::Json {
        return Ok(to_json(
            &json!({"schema_version": SCHEMA_VERSION, "reloaded": true}),
        ));
    }
    Ok("config reloaded\n".to_owned())
}

/// Escapes what would change the meaning of a URL path; route names are letters, digits, `-`,
/// `_` and `.`, so this only matters for names that cannot exist anyway.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn is_pinned(route: &RouteDoc) -> bool {
    route.state != RouteState::Flag
}

/// The pin of a route the SLO checker rolled back.
fn slo_pin(route: &RouteDoc) -> Option<&PinInfo> {
    route
        .pin
        .as_ref()
        .filter(|pin| is_pinned(route) && pin.by == PinnedBy::Slo)
}

fn describe_match(matcher: &MatchDoc) -> String {
    let mut out = match &matcher.path {
        // As written in the config, so that it can be found there.
        PathDoc::Prefix(path) => format!("prefix {path}"),
        PathDoc::Exact(path) => format!("exact {path}"),
        PathDoc::Pattern(path) => path.clone(),
    };
    if !matcher.methods.is_empty() {
        out = format!("{} {out}", matcher.methods.join(","));
    }
    if let Some(host) = &matcher.host {
        out.push_str(&format!(" host={host}"));
    }
    for (name, value) in &matcher.headers {
        out.push_str(&format!(" {name}={value}"));
    }
    out
}

fn describe_flag(route: &RouteDoc) -> String {
    match (&route.flag, &route.flag_state, route.flag_enabled) {
        (Some(flag), Some(state), _) => format!("{flag} ({state})"),
        // A proxy older than `flag_state`: the flag for a request without a user.
        (Some(flag), None, Some(true)) => format!("{flag} (on)"),
        (Some(flag), None, _) => format!("{flag} (off)"),
        (None, _, _) => "-".to_owned(),
    }
}

/// A pin from `GET /routes` in words: `by slo at TIME: REASON; flag ...`.
fn describe_pin(pin: &PinInfo) -> String {
    let mut out = format!("by {}", pin.by.as_str());
    if let Some(at) = &pin.at {
        out.push_str(&format!(" at {at}"));
    }
    if let Some(reason) = &pin.reason {
        out.push_str(&format!(": {reason}"));
    }
    if let Some(flag_off) = &pin.flag_off {
        out.push_str(&format!("; {}", flag_off.message));
    }
    out
}

fn describe_state(route: &RouteDoc) -> String {
    if slo_pin(route).is_some() {
        "ROLLED BACK (slo)".to_owned()
    } else if is_pinned(route) {
        "ROLLED BACK".to_owned()
    } else if route.flag.is_none() {
        "to service".to_owned()
    } else {
        "by flag".to_owned()
    }
}

/// Left-aligns columns with two spaces between them; the last column is not padded.
fn align<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (idx, cell) in row.iter().enumerate() {
            if idx + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[idx]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn diff(admin: &Admin, name: &str, limit: usize, format: Format) -> anyhow::Result<String> {
    let answer = admin.get(&format!(
        "/routes/{}/diff?limit={limit}",
        path_segment(name)
    ))?;
    match answer.status {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => bail!("{}", error_text(&answer.body)),
        status => bail!(
            "GET /routes/{name}/diff answered {status}: {}",
            error_text(&answer.body)
        ),
    }
    let doc = answer.body;
    match format {
        Format::Json => Ok(to_json(&doc)),
        Format::Html => {
            templates::render_diff_html(&diff_report(&doc), &crate::commands::analyze::meta())
                .context("cannot render the diff page")
        }
        Format::Table => Ok(diff_text(&doc)),
    }
}

/// One line on how the route is shadowed.
fn diff_setup(doc: &Value) -> String {
    let shadow = &doc["shadow"];
    if shadow.is_null() {
        return "shadow traffic is not configured for this route".to_owned();
    }
    let methods: Vec<&str> = shadow["methods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let target = match shadow["target"].as_str() {
        Some("other") | None => "the upstream that did not answer".to_owned(),
        Some(name) => format!("`{name}`"),
    };
    format!(
        "{}% of users' {} requests are copied to {target}",
        shadow["percent"],
        methods.join(", ")
    )
}

fn count(doc: &Value, key: &str) -> u64 {
    doc["counts"][key].as_u64().unwrap_or(0)
}

fn sum(doc: &Value, key: &str) -> u64 {
    doc["counts"][key]
        .as_object()
        .into_iter()
        .flat_map(|map| map.values())
        .filter_map(Value::as_u64)
        .sum()
}

fn diff_counts(doc: &Value) -> Vec<(String, u64)> {
    vec![
        ("mirrored".to_owned(), count(doc, "mirrored")),
        ("compared".to_owned(), count(doc, "compared")),
        ("equal".to_owned(), count(doc, "equal")),
        ("different".to_owned(), count(doc, "different")),
        ("shadow errors".to_owned(), count(doc, "errors")),
        ("not compared".to_owned(), sum(doc, "skipped")),
        ("dropped".to_owned(), sum(doc, "dropped")),
    ]
}

fn side(value: &Value) -> String {
    let upstream = text(&value["upstream"]);
    match value["status"].as_u64() {
        Some(status) => format!("{upstream} {status}"),
        None => format!("{upstream} failed"),
    }
}

fn field_value(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| "(absent)".to_owned(), str::to_owned)
}

/// The admin API's diff document, reshaped for the text and HTML output.
fn diff_report(doc: &Value) -> templates::DiffReport {
    let samples = doc["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|sample| {
            let differences: Vec<templates::FieldDiff> = sample["differences"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|difference| templates::FieldDiff {
                    path: text(&difference["path"]),
                    primary: field_value(&difference["primary"]),
                    shadow: field_value(&difference["shadow"]),
                    detail: difference["detail"].as_str().unwrap_or("").to_owned(),
                })
                .collect();
            let total = usize::try_from(sample["total_differences"].as_u64().unwrap_or(0))
                .unwrap_or(usize::MAX);
            templates::DiffSample {
                time: text(&sample["time"]),
                request: format!("{} {}", text(&sample["method"]), text(&sample["uri"])),
                primary: side(&sample["primary"]),
                shadow: side(&sample["shadow"]),
                error: sample["shadow"]["error"].as_str().map(str::to_owned),
                more: total.saturating_sub(differences.len()),
                differences,
            }
        })
        .collect();
    templates::DiffReport {
        route: text(&doc["route"]),
        setup: diff_setup(doc),
        counts: diff_counts(doc),
        different_percent: format!(
            "{:.1}%",
            doc["counts"]["different_percent"].as_f64().unwrap_or(0.0)
        ),
        top_paths: doc["top_paths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| (text(&entry["path"]), entry["count"].as_u64().unwrap_or(0)))
            .collect(),
        samples,
    }
}

fn diff_text(doc: &Value) -> String {
    let report = diff_report(doc);
    let mut out = format!("route `{}`: {}\n", report.route, report.setup);
    let mut header = [const { String::new() }; 7];
    let mut values = [const { String::new() }; 7];
    for (idx, (name, value)) in report.counts.iter().enumerate().take(7) {
        header[idx] = name.to_uppercase();
        values[idx] = if name == "different" {
            format!("{value} ({})", report.different_percent)
        } else {
            value.to_string()
        };
    }
    out.push_str(&align(&[header, values]));
    let kinds: Vec<String> = ["status", "header", "body"]
        .iter()
        .map(|kind| {
            format!(
                "{kind} {}",
                doc["counts"]["different_by_kind"][*kind]
                    .as_u64()
                    .unwrap_or(0)
            )
        })
        .collect();
    out.push_str(&format!("different by kind: {}\n", kinds.join(", ")));
    if report.top_paths.is_empty() {
        out.push_str("no differences recorded\n");
    } else {
        out.push_str("most common differing paths:\n");
        for (path, count) in &report.top_paths {
            out.push_str(&format!("  {count:>6}  {path}\n"));
        }
    }
    if !report.samples.is_empty() {
        out.push_str("samples, newest first:\n");
    }
    for sample in &report.samples {
        out.push_str(&format!(
            "  {}  {}\n    primary {}, shadow {}\n",
            sample.time, sample.request, sample.primary, sample.shadow
        ));
        if let Some(error) = &sample.error {
            out.push_str(&format!("    shadow failed: {error}\n"));
        }
        for difference in &sample.differences {
            let detail = if difference.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", difference.detail)
            };
            out.push_str(&format!(
                "    {}: {} -> {}{detail}\n",
                difference.path, difference.primary, difference.shadow
            ));
        }
        if sample.more > 0 {
            out.push_str(&format!("    and {} more\n", sample.more));
        }
    }
    out
}
