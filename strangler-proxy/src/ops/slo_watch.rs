//! The SLO watcher: every [`CHECK_INTERVAL`] it reads each route's window
//! (`protection::slo`) and pins a route whose service broke its SLO to its fallback, as
//! `POST /routes/{name}/rollback` would; optionally it turns the route's flag off in the flag
//! store too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::watch;

use crate::config::{Config, FlagStoreConfig};
use crate::decision::state::{FlagOff, PinInfo};
use crate::ops::runtime::Proxy;
use crate::protection::slo::{CHECK_INTERVAL, decide};

/// Who turns a flag off in the flag store after an SLO rollback.
#[derive(Debug, Clone)]
enum FlagSwitch {
    /// No flag store.
    None,
    /// The embedded file store: an atomic, audited edit.
    File(PathBuf),
    /// Unleash, through its Admin API; `None` without an admin token.
    Unleash(Option<feature_flags::UnleashAdmin>, String),
}

impl FlagSwitch {
    fn new(config: &Config) -> FlagSwitch {
        match &config.flags {
            None => FlagSwitch::None,
            Some(FlagStoreConfig::File(path)) => FlagSwitch::File(path.clone()),
            Some(FlagStoreConfig::Unleash { url, .. }) => {
                let admin = config.unleash_admin.as_ref().and_then(|admin| {
                    feature_flags::UnleashAdmin::new(
                        url,
                        &admin.token,
                        admin.project.as_deref(),
                        admin.environment.as_deref(),
                    )
                    .inspect_err(|err| {
                        tracing::warn!(error = %err, "cannot set up the Unleash admin client; SLO rollbacks will not turn flags off");
                    })
                    .ok()
                });
                FlagSwitch::Unleash(admin, url.clone())
            }
        }
    }

    /// Turns `flag` off; the answer is a sentence for the state file and the admin API.
    async fn turn_off(&self, flag: &str, route: &str) -> Result<String, String> {
        match self {
            FlagSwitch::None => Err("the proxy has no flag store".to_owned()),
            FlagSwitch::File(path) => {
                let store = feature_flags::FileStore::new(
                    path.clone(),
                    format!("fig proxy (slo rollback of route {route})"),
                );
                let name = flag.to_owned();
                let change = tokio::task::spawn_blocking(move || store.disable(&name))
                    .await
                    .map_err(|err| format!("the flag store task failed: {err}"))?
                    .map_err(|err| err.to_string())?;
                Ok(format!(
                    "flag `{flag}` turned off in {} ({})",
                    path.display(),
                    change.summary()
                ))
            }
            FlagSwitch::Unleash(None, _) => Err(
                "no Unleash admin token (flags.unleash.admin_token_file or $FIG_UNLEASH_ADMIN_TOKEN)"
                    .to_owned(),
            ),
            FlagSwitch::Unleash(Some(admin), url) => {
                let change = admin.disable(flag).await.map_err(|err| err.to_string())?;
                Ok(format!(
                    "flag `{flag}` turned off in Unleash at {url} ({})",
                    change.summary()
                ))
            }
        }
    }
}

/// Checks every SLO each [`CHECK_INTERVAL`] until `stop` changes.
pub(crate) async fn run(proxy: Proxy, mut stop: watch::Receiver<bool>) {
    let switch = Arc::new(FlagSwitch::new(&proxy.config()));
    let mut interval = tokio::time::interval(CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = interval.tick() => {}
        }
        check(&proxy, Instant::now(), &switch);
    }
}

/// One look at every window: a route whose service broke its SLO is pinned to its fallback.
fn check(proxy: &Proxy, now: Instant, switch: &Arc<FlagSwitch>) {
    let shared = &proxy.shared;
    let active = shared.active.load();
    for (config, compiled) in active.config.routes.iter().zip(active.routes.routes()) {
        let Some(window) = &compiled.slo else {
            continue;
        };
        if compiled.pin.load(Ordering::SeqCst) {
            continue;
        }
        let Some(breach) = decide(window.config(), &window.stats(now)) else {
            continue;
        };
        let reason = breach.to_string();
        match shared.pins.pin(&config.name, PinInfo::slo(reason.clone())) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(err) => {
                tracing::error!(route = %config.name, error = %err, "the SLO rollback is in force but could not be saved; it is lost on restart");
            }
        }
        window.reset();
        shared
            .metrics
            .slo
            .count_rollback(&config.name, breach.kind.as_str());
        tracing::warn!(
            route = %config.name,
            service = %config.service,
            fallback = %config.fallback,
            "{reason}: route rolled back to its fallback; `fig route restore {}` undoes it",
            config.name
        );
        if window.config().turn_off_flag
            && let Some(flag) = config.flag.clone()
        {
            let proxy = proxy.clone();
            let switch = switch.clone();
            let route = config.name.clone();
            tokio::spawn(async move {
                let result = switch.turn_off(&flag, &route).await;
                let ok = result.is_ok();
                match &result {
                    Ok(message) => tracing::info!(route = %route, "{message}"),
                    Err(err) => tracing::warn!(
                        route = %route,
                        flag = %flag,
                        "could not turn the flag off after the SLO rollback (the rollback holds): {err}"
                    ),
                }
                proxy.shared.metrics.slo.count_flag_off(&route, ok);
                let message =
                    result.unwrap_or_else(|err| format!("turning flag `{flag}` off failed: {err}"));
                let flag_off = FlagOff {
                    flag,
                    done: ok,
                    message,
                };
                if let Err(err) = proxy.shared.pins.note_flag_off(&route, flag_off) {
                    tracing::error!(route = %route, error = %err, "cannot save the flag turn-off in the state file");
                }
            });
        }
    }
}
