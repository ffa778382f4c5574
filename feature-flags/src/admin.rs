//! Changing flags on an Unleash server through its Admin API (admin token).
//!
//! The operations mirror [`crate::FileStore`]'s and write the same strategies, so a team can
//! move from a file to a server and keep its habits. Every argument is validated before the
//! first request, so a bad name or percentage writes nothing. Endpoints used (Unleash 5+):
//! `POST /api/admin/projects/{project}/features`, `.../features/{name}/environments/{env}/on|off`,
//! `.../environments/{env}/strategies[/{id}]` and `DELETE .../features/{name}` (archive).

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use unleash_types::client_features::{ClientFeature, ClientFeatures, Constraint, StrategyVariant};

use crate::edit::{self, Change, ListEdit, Stickiness};
use crate::error::{Error, Result};
use crate::unleash::{base_url, check_status, url_encode};

/// A client of Unleash's Admin API for one project and environment.
#[derive(Clone, Debug)]
pub struct UnleashAdmin {
    http: reqwest::Client,
    base: String,
    project: String,
    environment: String,
}

/// A strategy as the Admin API returns it (with its id).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdminStrategy {
    id: String,
    name: String,
    #[serde(default)]
    constraints: Vec<Constraint>,
    #[serde(default)]
    parameters: Option<std::collections::HashMap<String, String>>,
    #[serde(default)]
    variants: Vec<StrategyVariant>,
    #[serde(default)]
    segments: Vec<i32>,
    #[serde(default)]
    disabled: Option<bool>,
}

impl AdminStrategy {
    fn to_strategy(&self) -> unleash_types::client_features::Strategy {
        unleash_types::client_features::Strategy {
            name: self.name.clone(),
            sort_order: None,
            segments: Some(self.segments.clone()),
            constraints: Some(self.constraints.clone()),
            parameters: self.parameters.clone(),
            variants: Some(self.variants.clone()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdminFeature {
    name: String,
    #[serde(rename = "type")]
    feature_type: Option<String>,
    description: Option<String>,
    project: Option<String>,
    #[serde(default)]
    environments: Vec<AdminEnvironment>,
}

#[derive(Debug, Deserialize)]
struct AdminEnvironment {
    name: String,
    enabled: bool,
    #[serde(default)]
    strategies: Vec<AdminStrategy>,
}

impl UnleashAdmin {
    /// A client for the server at `url` (base URL; a trailing `/api` is accepted).
    pub fn new(
        url: &str,
        admin_token: &str,
        project: Option<&str>,
        environment: Option<&str>,
    ) -> Result<UnleashAdmin> {
        if admin_token.trim().is_empty() {
            return Err(Error::Config("the Unleash admin token is empty".to_owned()));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(admin_token.trim()).map_err(|_| {
                Error::Config("the admin token is not a valid HTTP header value".to_owned())
            })?,
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(std::time::Duration::from_secs(10))
            .connect_timeout(std::time::Duration::from_secs(5))
            .user_agent(concat!("fig/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Error::Config(format!("cannot build the HTTP client: {err}")))?;
        Ok(UnleashAdmin {
            http,
            base: base_url(url),
            project: project.unwrap_or("default").to_owned(),
            environment: environment.unwrap_or("development").to_owned(),
        })
    }

    /// The flag as a client in this environment sees it.
    pub async fn feature(&self, name: &str) -> Result<ClientFeature> {
        edit::validate_name(name)?;
        let url = self.feature_url(name);
        let (status, body) = self.send(Method::GET, &url, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(Error::UnknownFlag(name.to_owned()));
        }
        let admin: AdminFeature = self.ok_json(&url, status, &body)?;
        let env = admin
            .environments
            .iter()
            .find(|env| env.name == self.environment);
        Ok(ClientFeature {
            name: admin.name,
            feature_type: admin.feature_type,
            description: admin.description,
            enabled: env.is_some_and(|env| env.enabled),
            project: admin.project,
            strategies: Some(
                env.map(|env| {
                    env.strategies
                        .iter()
                        .filter(|s| s.disabled != Some(true))
                        .map(AdminStrategy::to_strategy)
                        .collect()
                })
                .unwrap_or_default(),
            ),
            variants: Some(Vec::new()),
            ..ClientFeature::default()
        })
    }

    /// Creates a flag (off in every environment).
    pub async fn create(&self, name: &str, description: Option<&str>) -> Result<Change> {
        edit::validate_name(name)?;
        let url = format!("{}/features", self.project_url());
        let body =
            json!({ "name": name, "description": description.unwrap_or(""), "type": "release" });
        let (status, text) = self.send(Method::POST, &url, Some(body)).await?;
        if status == StatusCode::CONFLICT || text.contains("NameExistsError") {
            return Err(Error::FlagExists(name.to_owned()));
        }
        self.ok(&url, status, &text)?;
        let new = self.feature(name).await?;
        Ok(change(name, "create", None, Some(new)))
    }

    /// Switches the flag on in this environment (Unleash adds a 100% rollout if it has none).
    pub async fn enable(&self, name: &str) -> Result<Change> {
        self.switch(name, true).await
    }

    /// Switches the flag off in this environment.
    pub async fn disable(&self, name: &str) -> Result<Change> {
        self.switch(name, false).await
    }

    /// Sets the flag's gradual rollout (its unconstrained `flexibleRollout`, added if missing).
    /// Without `stickiness`, the rollout keeps the stickiness it has (`default` for a new one).
    pub async fn rollout(
        &self,
        name: &str,
        percent: u32,
        stickiness: Option<Stickiness>,
    ) -> Result<Change> {
        edit::validate_name(name)?;
        edit::validate_percent(percent)?;
        let current = self
            .strategies(name)
            .await?
            .iter()
            .map(AdminStrategy::to_strategy)
            .find(|s| edit::is_plain(s, "flexibleRollout"));
        let stickiness = edit::rollout_stickiness(stickiness, current.as_ref());
        let wanted = edit::flexible_rollout(name, percent, &stickiness);
        self.put_strategy(name, "rollout", wanted, |s| {
            edit::is_plain(&s.to_strategy(), "flexibleRollout")
        })
        .await
    }

    /// Sets or edits the user ids the flag is on for while it is on (a 100% rollout
    /// constrained to `userId IN`).
    pub async fn users(&self, name: &str, edit: &ListEdit) -> Result<Change> {
        edit::validate_name(name)?;
        edit::validate_user_edit(edit)?;
        let current = self.feature(name).await?;
        let ids = edit::edit_list(&edit::user_list(&current), &edit::trimmed(edit), "user")?;
        let wanted = edit::users_strategy(name, &ids);
        self.put_strategy(name, "users", wanted, |s| {
            edit::is_users_strategy(&s.to_strategy())
        })
        .await
    }

    /// Sets or edits the IP addresses or CIDR blocks the flag is on for while it is on
    /// (`remoteAddress`).
    pub async fn ips(&self, name: &str, edit: &ListEdit) -> Result<Change> {
        edit::validate_name(name)?;
        edit::validate_ips(edit)?;
        let current = self.feature(name).await?;
        let cidrs = edit::edit_list(&edit::ip_list(&current), &edit::trimmed(edit), "address")?;
        let params = std::collections::HashMap::from([("IPs".to_owned(), cidrs.join(","))]);
        let wanted = edit::strategy("remoteAddress", params);
        self.put_strategy(name, "ips", wanted, |s| {
            edit::is_plain(&s.to_strategy(), "remoteAddress")
        })
        .await
    }

    /// Archives the flag, as "delete" in Unleash's UI does: clients stop getting it, and it can
    /// be revived or deleted for good from the archive in the UI.
    ///
    /// It is not deleted for good here: Unleash 8 records an archived flag's lifecycle after the
    /// request returns, and deleting the flag before that record is written makes the server
    /// fail on a foreign key (seen with 8.2, where it took the server down).
    pub async fn delete(&self, name: &str) -> Result<Change> {
        let old = self.feature(name).await?;
        let url = self.feature_url(name);
        let (status, text) = self.send(Method::DELETE, &url, None).await?;
        self.ok(&url, status, &text)?;
        Ok(change(name, "delete", Some(old), None))
    }

    /// Creates or updates every flag of `features` in this environment: on/off, description and
    /// strategies (with their constraints and strategy variants). Flags that use segments,
    /// feature-level variants or dependencies are refused before anything is written: segment
    /// ids differ from server to server, and the other two are not carried over yet.
    pub async fn import(&self, features: &ClientFeatures) -> Result<Vec<Change>> {
        for feature in &features.features {
            edit::validate_name(&feature.name)?;
            let uses_segments = feature
                .strategies
                .iter()
                .flatten()
                .any(|s| s.segments.as_ref().is_some_and(|ids| !ids.is_empty()));
            let has_variants = feature.variants.as_ref().is_some_and(|v| !v.is_empty());
            if uses_segments
                || has_variants
                || feature.dependencies.as_ref().is_some_and(|d| !d.is_empty())
            {
                return Err(Error::Invalid {
                    path: "import".into(),
                    flag: feature.name.clone(),
                    reason: "uses segments, feature variants or dependencies, which import cannot carry over yet; create it in Unleash".to_owned(),
                });
            }
        }
        let mut res = Vec::new();
        for feature in &features.features {
            let old = match self.feature(&feature.name).await {
                Ok(old) => Some(old),
                Err(Error::UnknownFlag(_)) => None,
                Err(err) => return Err(err),
            };
            if old.is_none() {
                let url = format!("{}/features", self.project_url());
                let body = json!({
                    "name": feature.name,
                    "description": feature.description.clone().unwrap_or_default(),
                    "type": feature.feature_type.clone().unwrap_or_else(|| "release".to_owned()),
                });
                let (status, text) = self.send(Method::POST, &url, Some(body)).await?;
                self.ok(&url, status, &text)?;
            }
            for existing in self.strategies(&feature.name).await? {
                let url = format!("{}/{}", self.strategies_url(&feature.name), existing.id);
                let (status, text) = self.send(Method::DELETE, &url, None).await?;
                self.ok(&url, status, &text)?;
            }
            for strategy in feature.strategies.iter().flatten() {
                let url = self.strategies_url(&feature.name);
                let body = serde_json::to_value(strategy).unwrap_or_default();
                let (status, text) = self.send(Method::POST, &url, Some(body)).await?;
                self.ok(&url, status, &text)?;
            }
            let url = format!(
                "{}/environments/{}/{}",
                self.feature_url(&feature.name),
                url_encode(&self.environment),
                if feature.enabled { "on" } else { "off" }
            );
            let (status, text) = self.send(Method::POST, &url, None).await?;
            self.ok(&url, status, &text)?;
            let new = self.feature(&feature.name).await?;
            res.push(change(&feature.name, "import", old, Some(new)));
        }
        Ok(res)
    }

    async fn switch(&self, name: &str, on: bool) -> Result<Change> {
        let old = self.feature(name).await?;
        let url = format!(
            "{}/environments/{}/{}",
            self.feature_url(name),
            url_encode(&self.environment),
            if on { "on" } else { "off" }
        );
        let (status, text) = self.send(Method::POST, &url, None).await?;
        self.ok(&url, status, &text)?;
        let new = self.feature(name).await?;
        Ok(change(
            name,
            if on { "enable" } else { "disable" },
            Some(old),
            Some(new),
        ))
    }

    /// Updates the first strategy `matches` accepts to `wanted`, or adds `wanted`.
    async fn put_strategy(
        &self,
        name: &str,
        action: &str,
        wanted: unleash_types::client_features::Strategy,
        matches: impl Fn(&AdminStrategy) -> bool,
    ) -> Result<Change> {
        let old = self.feature(name).await?;
        let existing = self
            .strategies(name)
            .await?
            .into_iter()
            .find(|s| matches(s));
        let body = json!({
            "name": wanted.name,
            "constraints": wanted.constraints.clone().unwrap_or_default(),
            "parameters": wanted.parameters.clone().unwrap_or_default(),
            "variants": existing.as_ref().map(|s| s.variants.clone()).unwrap_or_default(),
            "segments": existing.as_ref().map(|s| s.segments.clone()).unwrap_or_default(),
        });
        let (method, url) = match &existing {
            Some(strategy) => (
                Method::PUT,
                format!("{}/{}", self.strategies_url(name), strategy.id),
            ),
            None => (Method::POST, self.strategies_url(name)),
        };
        let (status, text) = self.send(method, &url, Some(body)).await?;
        self.ok(&url, status, &text)?;
        let new = self.feature(name).await?;
        Ok(change(name, action, Some(old), Some(new)))
    }

    async fn strategies(&self, name: &str) -> Result<Vec<AdminStrategy>> {
        let url = self.strategies_url(name);
        let (status, body) = self.send(Method::GET, &url, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(Error::UnknownFlag(name.to_owned()));
        }
        self.ok_json(&url, status, &body)
    }

    fn project_url(&self) -> String {
        format!(
            "{}/api/admin/projects/{}",
            self.base,
            url_encode(&self.project)
        )
    }

    fn feature_url(&self, name: &str) -> String {
        format!("{}/features/{}", self.project_url(), url_encode(name))
    }

    fn strategies_url(&self, name: &str) -> String {
        format!(
            "{}/environments/{}/strategies",
            self.feature_url(name),
            url_encode(&self.environment)
        )
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, String)> {
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let res = req.send().await.map_err(|source| Error::Unreachable {
            url: url.to_owned(),
            source,
        })?;
        let status = res.status();
        check_status(url, status, "admin")?;
        let text = res.text().await.map_err(|source| Error::Unreachable {
            url: url.to_owned(),
            source,
        })?;
        Ok((status, text))
    }

    fn ok(&self, url: &str, status: StatusCode, body: &str) -> Result<()> {
        if status.is_success() {
            return Ok(());
        }
        // Unleash explains itself in `message`; show that rather than the raw JSON.
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(200).collect());
        Err(Error::Server {
            url: url.to_owned(),
            status: status.as_u16(),
            body: message,
        })
    }

    fn ok_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        status: StatusCode,
        body: &str,
    ) -> Result<T> {
        self.ok(url, status, body)?;
        serde_json::from_str(body).map_err(|err| Error::Parse {
            path: url.into(),
            line: err.line(),
            column: err.column(),
            reason: err.to_string(),
        })
    }
}

fn change(
    name: &str,
    action: &str,
    old: Option<ClientFeature>,
    new: Option<ClientFeature>,
) -> Change {
    Change {
        flag: name.to_owned(),
        action: action.to_owned(),
        old,
        new,
    }
}
