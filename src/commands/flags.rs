//! `fig flags`: read and change feature flags in the file store or on an Unleash server.
//!
//! The store is chosen once per run: `--store FILE` (or `$FIG_FLAGS_STORE`, else `./flags.json`)
//! is the embedded file store; `--unleash URL` (or `$FIG_UNLEASH_URL`) is an Unleash server,
//! read through its client API with `--token` and changed through its Admin API with
//! `--admin-token`. Tokens also come from `$FIG_UNLEASH_TOKEN` / `$UNLEASH_CLIENT_TOKEN` and
//! `$FIG_UNLEASH_ADMIN_TOKEN` / `$UNLEASH_ADMIN_TOKEN`. `UNLEASH_URL` alone never switches the
//! store to Unleash, so a shell that happens to export it still edits the local file.
//!
//! Output is a table for a person or `--format json` for scripts. Every error (unknown flag,
//! bad percentage, unreachable server, refused token) is one line on stderr and exit code 2,
//! with nothing written.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use feature_flags::{
    Change, ClientFeature, ClientFeatures, Context, FileStore, Flags, ListEdit, Stickiness,
    UnleashAdmin, UnleashConfig,
};
use serde_json::json;

/// Version of the JSON shapes `fig flags --format json` prints.
const SCHEMA_VERSION: u32 = 1;

/// Arguments of `fig flags`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The flags file [default: $FIG_FLAGS_STORE, else ./flags.json].
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "unleash")]
    pub store: Option<PathBuf>,
    /// Use the Unleash server at URL instead of a file [env: FIG_UNLEASH_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub unleash: Option<String>,
    /// Unleash client token, for reading [env: FIG_UNLEASH_TOKEN or UNLEASH_CLIENT_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN", alias = "client-token")]
    pub token: Option<String>,
    /// Unleash admin token, for changes [env: FIG_UNLEASH_ADMIN_TOKEN or UNLEASH_ADMIN_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Unleash project [default: default].
    #[arg(long, global = true, value_name = "P")]
    pub project: Option<String>,
    /// Unleash environment changed by writes [default: development].
    #[arg(long, global = true, value_name = "E")]
    pub environment: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Who is making the change, for the audit log [default: $USER].
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub command: FlagsCommand,
}

/// How `fig flags` prints its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a person (`text` works too, as in the other commands).
    #[value(alias = "text")]
    Table,
    /// One JSON document with a `schema_version`, for scripts.
    Json,
}

/// Stickiness of a gradual rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StickinessArg {
    /// userId, else sessionId, else random.
    Default,
    /// userId only.
    #[value(name = "userId")]
    UserId,
    /// sessionId only.
    #[value(name = "sessionId")]
    SessionId,
    /// A new draw on every evaluation.
    Random,
}

/// The `fig flags` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FlagsCommand {
    /// List every flag: name, on/off, strategies, description.
    List,
    /// Show one flag in full.
    Show {
        /// The flag.
        name: String,
    },
    /// Create a flag (off, no strategies).
    Create {
        /// The flag: 1 to 100 letters, digits, `.`, `_`, `-`, `~`.
        name: String,
        /// What the flag is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Switch a flag on (a flag without strategies gets a 100% rollout, as in Unleash).
    Enable {
        /// The flag.
        name: String,
    },
    /// Switch a flag off.
    Disable {
        /// The flag.
        name: String,
    },
    /// Set a flag's gradual rollout: a flexibleRollout strategy with the flag's name as groupId.
    Rollout {
        /// The flag.
        name: String,
        /// Percentage of users, 0 to 100.
        percent: u32,
        /// Which context field keeps a user in the same bucket [default: the rollout's
        /// current stickiness, else `default`].
        #[arg(long, value_enum)]
        stickiness: Option<StickinessArg>,
    },
    /// Set or edit the flag's list of user ids: a strategy that turns the flag on for them
    /// while the flag is on (`enable` keeps it). Strategies add up: a user gets the flag when
    /// any of them says so, so beside a 100% rollout the list changes nothing.
    #[command(group(clap::ArgGroup::new("edit").required(true).multiple(true).args(["ids", "add", "remove"])))]
    Users {
        /// The flag.
        name: String,
        /// The whole list: replaces the one the flag has.
        #[arg(conflicts_with_all = ["add", "remove"])]
        ids: Vec<String>,
        /// Add these user ids to the list (repeatable, or comma-separated).
        #[arg(long, value_name = "ID", value_delimiter = ',')]
        add: Vec<String>,
        /// Remove these user ids from the list (repeatable, or comma-separated).
        #[arg(long, value_name = "ID", value_delimiter = ',')]
        remove: Vec<String>,
    },
    /// Set or edit the flag's list of IP addresses or CIDR blocks (remoteAddress): a strategy
    /// that turns the flag on for them while the flag is on (`enable` keeps it); strategies add
    /// up, as for `users`.
    #[command(group(clap::ArgGroup::new("edit").required(true).multiple(true).args(["cidrs", "add", "remove"])))]
    Ips {
        /// The flag.
        name: String,
        /// The whole list, such as 10.0.0.0/8 192.168.1.7: replaces the one the flag has.
        #[arg(conflicts_with_all = ["add", "remove"])]
        cidrs: Vec<String>,
        /// Add these addresses to the list (repeatable, or comma-separated).
        #[arg(long, value_name = "CIDR", value_delimiter = ',')]
        add: Vec<String>,
        /// Remove these addresses from the list (repeatable, or comma-separated).
        #[arg(long, value_name = "CIDR", value_delimiter = ',')]
        remove: Vec<String>,
    },
    /// Delete a flag (on Unleash: archive it, as its UI does).
    Delete {
        /// The flag.
        name: String,
    },
    /// Would this context get the flag, with which variant, and which strategy decided?
    Eval {
        /// The flag.
        name: String,
        /// The userId.
        #[arg(long)]
        user: Option<String>,
        /// The sessionId.
        #[arg(long)]
        session: Option<String>,
        /// The remoteAddress.
        #[arg(long)]
        ip: Option<String>,
        /// A custom context property, KEY=VALUE (repeatable).
        #[arg(long = "prop", value_name = "K=V")]
        props: Vec<String>,
    },
    /// The audit log of one flag (file store).
    History {
        /// The flag.
        name: String,
    },
    /// Write every flag as client API JSON, to stdout or a file.
    Export {
        /// The file to write (atomically) instead of stdout (`--to` is the old name).
        #[arg(short = 'o', long = "output", value_name = "FILE", alias = "to")]
        to: Option<PathBuf>,
    },
    /// Replace the store's flags with a client API JSON file (file store), or create and update
    /// them on the server (Unleash).
    Import {
        /// A file in the client API format, such as one written by `export`.
        file: PathBuf,
    },
}

/// Runs `fig flags`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::from_args(&args)?;
    let mut out = std::io::stdout().lock();
    let text = match store {
        Store::File(path) => run_file(&args, path)?,
        Store::Unleash(server) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(run_unleash(&args, &server))?
        }
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

enum Store {
    File(PathBuf),
    Unleash(Server),
}

/// An Unleash server and the tokens to use it with.
pub(crate) struct Server {
    pub(crate) url: String,
    /// The client token: `--token`, else `$FIG_UNLEASH_TOKEN`, else `$UNLEASH_CLIENT_TOKEN`.
    pub(crate) token: Option<String>,
    /// The admin token: `--admin-token`, else `$FIG_UNLEASH_ADMIN_TOKEN`, else
    /// `$UNLEASH_ADMIN_TOKEN`.
    pub(crate) admin_token: Option<String>,
}

impl Server {
    /// The server at `url` with the tokens given on the command line, else from the environment.
    pub(crate) fn new(url: String, token: Option<String>, admin_token: Option<String>) -> Server {
        Server {
            url,
            token: token
                .or_else(|| env("FIG_UNLEASH_TOKEN"))
                .or_else(|| env("UNLEASH_CLIENT_TOKEN")),
            admin_token: admin_token
                .or_else(|| env("FIG_UNLEASH_ADMIN_TOKEN"))
                .or_else(|| env("UNLEASH_ADMIN_TOKEN")),
        }
    }
}

/// A variable of the environment, when it is set and not blank.
fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

impl Store {
    fn from_args(args: &Args) -> anyhow::Result<Store> {
        if let Some(path) = &args.store {
            return Ok(Store::File(path.clone()));
        }
        if let Some(url) = args.unleash.clone().or_else(|| env("FIG_UNLEASH_URL")) {
            return Ok(Store::Unleash(Server::new(
                url,
                args.token.clone(),
                args.admin_token.clone(),
            )));
        }
        let path = env("FIG_FLAGS_STORE").unwrap_or_else(|| "flags.json".to_owned());
        Ok(Store::File(PathBuf::from(path)))
    }
}

/// Who the audit log names: `--actor`, else `$USER`, else `$LOGNAME` (containers and cron often
/// set only one of them), else `unknown`.
fn actor(args: &Args) -> String {
    let non_empty = |name: String| (!name.trim().is_empty()).then_some(name);
    args.actor
        .clone()
        .and_then(non_empty)
        .or_else(|| std::env::var("USER").ok().and_then(non_empty))
        .or_else(|| std::env::var("LOGNAME").ok().and_then(non_empty))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn stickiness(arg: Option<StickinessArg>) -> Option<Stickiness> {
    Some(match arg? {
        StickinessArg::Default => Stickiness::Default,
        StickinessArg::UserId => Stickiness::UserId,
        StickinessArg::SessionId => Stickiness::SessionId,
        StickinessArg::Random => Stickiness::Random,
    })
}

fn run_file(args: &Args, path: PathBuf) -> anyhow::Result<String> {
    let store = FileStore::new(path, actor(args));
    let format = args.format;
    let res = match &args.command {
        FlagsCommand::List => print_list(&store.read()?, format),
        FlagsCommand::Show { name } => print_show(&store.read()?, name, format)?,
        FlagsCommand::Create { name, description } => {
            print_change(&store.create(name, description.as_deref())?, format)
        }
        FlagsCommand::Enable { name } => print_change(&store.enable(name)?, format),
        FlagsCommand::Disable { name } => print_change(&store.disable(name)?, format),
        FlagsCommand::Rollout {
            name,
            percent,
            stickiness: stick,
        } => print_change(&store.rollout(name, *percent, stickiness(*stick))?, format),
        FlagsCommand::Users {
            name,
            ids,
            add,
            remove,
        } => print_change(&store.users(name, &list_edit(ids, add, remove))?, format),
        FlagsCommand::Ips {
            name,
            cidrs,
            add,
            remove,
        } => print_change(&store.ips(name, &list_edit(cidrs, add, remove))?, format),
        FlagsCommand::Delete { name } => print_change(&store.delete(name)?, format),
        FlagsCommand::Eval {
            name,
            user,
            session,
            ip,
            props,
        } => {
            let mut ctx = eval_context(user, session, ip, props)?;
            // Constraints on `environment` see the environment the command works in.
            ctx.environment = args.environment.clone();
            print_eval(&store.read()?, name, &ctx, format)?
        }
        FlagsCommand::History { name } => {
            let entries = store.history(name)?;
            if entries.is_empty() && !store.read()?.features.iter().any(|f| &f.name == name) {
                bail!(feature_flags::Error::UnknownFlag(name.clone()));
            }
            print_history(&entries, format)
        }
        FlagsCommand::Export { to } => export(&store.read()?, to.as_deref())?,
        FlagsCommand::Import { file } => {
            let features = feature_flags::load_file(file)?;
            print_changes(&store.import(features)?, format)
        }
    };
    Ok(res)
}

async fn run_unleash(args: &Args, server: &Server) -> anyhow::Result<String> {
    let format = args.format;
    let admin = || -> anyhow::Result<UnleashAdmin> {
        let Some(token) = &server.admin_token else {
            bail!(
                "changing flags on Unleash needs an admin token: --admin-token or $FIG_UNLEASH_ADMIN_TOKEN"
            );
        };
        Ok(UnleashAdmin::new(
            &server.url,
            token,
            args.project.as_deref(),
            args.environment.as_deref(),
        )?)
    };
    let read = || async {
        let Some(token) = &server.token else {
            bail!("reading flags from Unleash needs a client token: --token or $FIG_UNLEASH_TOKEN");
        };
        let mut config = UnleashConfig::new(server.url.clone(), token.clone());
        config.project = args.project.clone();
        config.environment = args.environment.clone();
        anyhow::Ok(feature_flags::fetch_features(&config).await?)
    };
    let res = match &args.command {
        FlagsCommand::List => print_list(&read().await?, format),
        FlagsCommand::Show { name } => print_show(&read().await?, name, format)?,
        FlagsCommand::Create { name, description } => {
            let change = admin()?.create(name, description.as_deref()).await?;
            settle(args, server, std::slice::from_ref(&change)).await;
            print_change(&change, format)
        }
        FlagsCommand::Enable { name } => {
            let change = admin()?.enable(name).await?;
            settle(args, server, std::slice::from_ref(&change)).await;
            print_change(&change, format)
        }
        FlagsCommand::Disable { name } => {
            let change = admin()?.disable(name).await?;
            settle(args, server, std::slice::from_ref(&change)).await;
            print_change(&change, format)
        }
        FlagsCommand::Rollout {
            name,
            percent,
            stickiness: stick,
        } => {
            let change = admin()?.rollout(name, *percent, stickiness(*stick)).await?;
            settle(args, server, std::slice::from_ref(&change)).await;
            print_change(&change, format)
        }
        FlagsCommand::Users {
            name,
            ids,
            add,
            remove,
        } => {
            let change = admin()?.users(name, &list_edit(ids, add, remove)).await?;
            settle(args, server, std::slice::from_ref(&change)).await;
            print_change(&change, format)
        }
        FlagsCommand::Ips {
            name,
            cidrs,
            add,
            remove,
        } => {
            let change = admin()?.ips(name, &list_edit(cidrs, add, remove)).await?;
            settle(args, server, std::slice::from_ref(&change)).await;
            print_change(&change, format)
        }
        FlagsCommand::Delete { name } => {
            let change = admin()?.delete(name).await?;
            settle(args, server, std::slice::from_ref(&change)).await;
            print_change(&change, format)
        }
        FlagsCommand::Eval {
            name,
            user,
            session,
            ip,
            props,
        } => {
            let mut ctx = eval_context(user, session, ip, props)?;
            // Constraints on `environment` see the environment the command works in.
            ctx.environment = args.environment.clone();
            print_eval(&read().await?, name, &ctx, format)?
        }
        FlagsCommand::History { .. } => bail!(
            "history is kept by the file store; on Unleash, see the flag's event log in its UI or /api/admin/events"
        ),
        FlagsCommand::Export { to } => export(&read().await?, to.as_deref())?,
        FlagsCommand::Import { file } => {
            let features = feature_flags::load_file(file)?;
            let changes = admin()?.import(&features).await?;
            settle(args, server, &changes).await;
            print_changes(&changes, format)
        }
    };
    Ok(res)
}

/// How long a write waits for Unleash's client API to show it (see [`settle`]).
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// After a write through the Admin API, waits (at most [`SETTLE_LIMIT`]) until the client API
/// shows it, so that the next `fig flags list`/`show`/`eval`, which read the client API, see what
/// was just written: Unleash serves the client API from a cache refreshed about every second.
/// Says so on stderr when it cannot wait (no client token) or gave up; the write stands either
/// way.
async fn settle(args: &Args, server: &Server, changes: &[Change]) {
    if changes.is_empty() {
        return;
    }
    let Some(token) = &server.token else {
        eprintln!(
            "note: without a client token fig cannot wait for the change to reach Unleash's client API; readers may not see it for a second or two"
        );
        return;
    };
    let mut config = UnleashConfig::new(server.url.clone(), token.clone());
    config.project = args.project.clone();
    config.environment = args.environment.clone();
    match feature_flags::wait_until_visible(&config, changes, SETTLE_LIMIT).await {
        Ok(Some(_)) => {}
        Ok(None) => eprintln!(
            "note: Unleash's client API does not show the change after {}s; readers see it once the server's cache refreshes (is the client token for environment `{}`?)",
            SETTLE_LIMIT.as_secs(),
            args.environment.as_deref().unwrap_or("development")
        ),
        Err(err) => eprintln!(
            "note: the change is written, but fig could not read it back through the client API: {err}"
        ),
    }
}

/// The list edit of `users`/`ips`: the positional list replaces, `--add`/`--remove` edit.
fn list_edit(set: &[String], add: &[String], remove: &[String]) -> ListEdit {
    if set.is_empty() {
        ListEdit::Change {
            add: add.to_vec(),
            remove: remove.to_vec(),
        }
    } else {
        ListEdit::Set(set.to_vec())
    }
}

fn eval_context(
    user: &Option<String>,
    session: &Option<String>,
    ip: &Option<String>,
    props: &[String],
) -> anyhow::Result<Context> {
    let mut properties = HashMap::new();
    for prop in props {
        let Some((key, value)) = prop.split_once('=') else {
            bail!("--prop `{prop}` is not KEY=VALUE");
        };
        if key.is_empty() {
            bail!("--prop `{prop}` has an empty key");
        }
        properties.insert(key.to_owned(), value.to_owned());
    }
    if let Some(ip) = ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        bail!("--ip `{ip}` is not an IP address");
    }
    Ok(Context {
        user_id: user.clone(),
        session_id: session.clone(),
        remote_address: ip.clone(),
        properties,
        ..Context::default()
    })
}

fn find<'a>(features: &'a ClientFeatures, name: &str) -> anyhow::Result<&'a ClientFeature> {
    features
        .features
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| feature_flags::Error::UnknownFlag(name.to_owned()).into())
}

fn print_list(features: &ClientFeatures, format: Format) -> String {
    let flags = Flags::from_features(features.clone()).list();
    match format {
        Format::Json => json_text(&json!({ "schema_version": SCHEMA_VERSION, "flags": flags })),
        Format::Table => {
            if flags.is_empty() {
                return "no flags\n".to_owned();
            }
            let rows: Vec<Vec<String>> = flags
                .iter()
                .map(|flag| {
                    let feature = features.features.iter().find(|f| f.name == flag.name);
                    let strategies = feature
                        .map(|f| {
                            f.strategies
                                .iter()
                                .flatten()
                                .map(feature_flags::describe_strategy)
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                        .unwrap_or_default();
                    vec![
                        flag.name.clone(),
                        if flag.enabled { "on" } else { "off" }.to_owned(),
                        strategies,
                        flag.description.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(&["NAME", "STATE", "STRATEGIES", "DESCRIPTION"], &rows)
        }
    }
}

fn print_show(features: &ClientFeatures, name: &str, format: Format) -> anyhow::Result<String> {
    let feature = find(features, name)?;
    Ok(match format {
        Format::Json => json_text(&json!({ "schema_version": SCHEMA_VERSION, "flag": feature })),
        Format::Table => {
            let mut res = format!(
                "name:        {}\nstate:       {}\n",
                feature.name,
                if feature.enabled { "on" } else { "off" }
            );
            if let Some(description) = feature.description.as_ref().filter(|d| !d.is_empty()) {
                res.push_str(&format!("description: {description}\n"));
            }
            res.push_str(&format!(
                "project:     {}\n",
                feature.project.as_deref().unwrap_or("default")
            ));
            let strategies: Vec<_> = feature.strategies.iter().flatten().collect();
            if strategies.is_empty() {
                res.push_str("strategies:  none (on for everyone when the flag is on)\n");
            } else {
                res.push_str("strategies:\n");
                for (idx, strategy) in strategies.iter().enumerate() {
                    res.push_str(&format!(
                        "  {idx}. {}\n",
                        feature_flags::describe_strategy(strategy)
                    ));
                }
            }
            let variants: Vec<_> = feature.variants.iter().flatten().collect();
            if !variants.is_empty() {
                res.push_str("variants:\n");
                for variant in variants {
                    res.push_str(&format!("  {} (weight {})\n", variant.name, variant.weight));
                }
            }
            res
        }
    })
}

fn print_change(change: &Change, format: Format) -> String {
    // Said once, on stderr, so that JSON on stdout stays data.
    if let Some(note) = change.note() {
        eprintln!("note: {note}");
    }
    let list_change = change.list_change();
    match format {
        Format::Json => {
            let mut doc = json!({
                "schema_version": SCHEMA_VERSION,
                "flag": change.flag,
                "action": change.action,
                "summary": change.summary(),
                "old": change.old,
                "new": change.new,
            });
            if let Some((added, removed, now)) = &list_change {
                doc["added"] = json!(added);
                doc["removed"] = json!(removed);
                doc["list"] = json!(now);
            }
            json_text(&doc)
        }
        Format::Table => {
            let mut res = format!(
                "{} {}: {}\n",
                past(&change.action),
                change.flag,
                change.summary()
            );
            if let Some((added, removed, now)) = &list_change {
                let words = |entries: &[String]| {
                    if entries.is_empty() {
                        "none".to_owned()
                    } else {
                        entries.join(", ")
                    }
                };
                res.push_str(&format!(
                    "  added: {}; removed: {}; list now: {}\n",
                    words(added),
                    words(removed),
                    words(now)
                ));
            }
            res
        }
    }
}

fn print_changes(changes: &[Change], format: Format) -> String {
    match format {
        Format::Json => json_text(&json!({
            "schema_version": SCHEMA_VERSION,
            "changes": changes.iter().map(|change| json!({
                "flag": change.flag,
                "action": change.action,
                "summary": change.summary(),
            })).collect::<Vec<_>>(),
        })),
        Format::Table if changes.is_empty() => "imported: nothing changed\n".to_owned(),
        Format::Table => changes
            .iter()
            .map(|change| format!("imported {}: {}\n", change.flag, change.summary()))
            .collect(),
    }
}

fn past(action: &str) -> &str {
    match action {
        "create" => "created",
        "enable" => "enabled",
        "disable" => "disabled",
        "rollout" => "rolled out",
        "users" => "set users of",
        "ips" => "set addresses of",
        "delete" => "deleted",
        other => other,
    }
}

fn print_eval(
    features: &ClientFeatures,
    name: &str,
    ctx: &Context,
    format: Format,
) -> anyhow::Result<String> {
    find(features, name)?;
    let flags = Flags::from_features(features.clone());
    let eval = flags.evaluate(name, ctx);
    Ok(match format {
        Format::Json => json_text(&json!({
            "schema_version": SCHEMA_VERSION,
            "flag": name,
            "enabled": eval.enabled,
            "variant": eval.variant,
            "reason": eval.reason,
        })),
        Format::Table => {
            let reason = match &eval.reason {
                feature_flags::Reason::NotFound => "no such flag".to_owned(),
                feature_flags::Reason::Disabled => "the flag is off".to_owned(),
                feature_flags::Reason::Dependency => "a parent flag is not as required".to_owned(),
                feature_flags::Reason::NoStrategies => "on, with no strategies".to_owned(),
                feature_flags::Reason::Strategy { index, .. } => {
                    let strategy = find(features, name)?
                        .strategies
                        .iter()
                        .flatten()
                        .nth(*index)
                        .map(feature_flags::describe_strategy)
                        .unwrap_or_default();
                    format!("strategy {index}: {strategy}")
                }
                feature_flags::Reason::NoStrategyMatched => "no strategy matched".to_owned(),
            };
            format!(
                "{name}: {}\nreason:  {reason}\nvariant: {}\n",
                if eval.enabled { "enabled" } else { "disabled" },
                eval.variant.name
            )
        }
    })
}

fn print_history(entries: &[feature_flags::AuditEntry], format: Format) -> String {
    match format {
        Format::Json => json_text(&json!({ "schema_version": SCHEMA_VERSION, "entries": entries })),
        Format::Table if entries.is_empty() => "no recorded changes\n".to_owned(),
        Format::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.time.clone(),
                        e.actor.clone(),
                        e.action.clone(),
                        e.summary.clone(),
                    ]
                })
                .collect();
            table(&["TIME", "ACTOR", "ACTION", "CHANGE"], &rows)
        }
    }
}

fn export(features: &ClientFeatures, to: Option<&std::path::Path>) -> anyhow::Result<String> {
    let text = feature_flags::to_json(features);
    match to {
        None => Ok(text),
        Some(path) => {
            feature_flags::write_atomically(path, text.as_bytes(), feature_flags::FileMode::Keep)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            Ok(String::new())
        }
    }
}

fn json_text(value: &serde_json::Value) -> String {
    let mut res = serde_json::to_string_pretty(value).unwrap_or_default();
    res.push('\n');
    res
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (idx, cell) in row.iter().enumerate() {
            widths[idx] = widths[idx].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut res = String::new();
        for (idx, cell) in cells.iter().enumerate() {
            if idx + 1 == cells.len() {
                res.push_str(cell);
            } else {
                res.push_str(&format!("{cell:<width$}  ", width = widths[idx]));
            }
        }
        res.trim_end().to_owned() + "\n"
    };
    let mut res = line(header.to_vec());
    for row in rows {
        res.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    res
}
