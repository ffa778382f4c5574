//! `docs/deploy/` cannot rot: the Kubernetes manifests, the Prometheus files and the proxy config
//! they carry are parsed and checked against the code that will read them.
//!
//! - Every YAML file parses; the objects are the ones the deploy page describes.
//! - The ConfigMap's `fig-proxy.toml` is loaded by the proxy's own parser, with the Secret's tokens
//!   written at the Deployment's mount paths (the mount path prefixes are moved under a temporary
//!   directory, the only change), and then served for real by `fig proxy`.
//! - The Deployment's probes, ports, mounts and arguments agree with that config, the Service
//!   with the Deployment, and the Dockerfile's default command with the Deployment.
//! - Every metric the alert rules use, and every `fig_proxy_*` metric the docs mention, is in
//!   the running proxy's `/metrics`; every runbook link of an alert points at a real heading.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize as _;
use serde_yaml_ng::Value;
use strangler_proxy::{Config, Overrides};

use crate::support::procs::Proc;
use crate::support::upstreams::Upstreams;
use crate::support::{fig, workspace_root};

fn deploy_dir() -> PathBuf {
    workspace_root().join("docs/deploy")
}

/// Every YAML document of a file.
#[track_caller]
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|err| panic!("{}: not valid YAML: {err}", path.display()))
        })
        .collect()
}

/// The Kubernetes objects of docs/deploy/k8s, by kind.
fn manifests() -> BTreeMap<String, Value> {
    let mut res = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("k8s"))
        .expect("read docs/deploy/k8s")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    for file in files {
        for document in yaml_documents(&file) {
            let kind = str_at(&document, &["kind"]).to_owned();
            assert!(
                document.get("apiVersion").is_some() && document.get("metadata").is_some(),
                "{}: a {kind} needs apiVersion and metadata",
                file.display()
            );
            assert!(
                res.insert(kind.clone(), document).is_none(),
                "two objects of kind {kind}"
            );
        }
    }
    res
}

/// The string at a path of keys (and list indexes), failing the test with the path if absent.
#[track_caller]
fn str_at<'v>(value: &'v Value, path: &[&str]) -> &'v str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

#[track_caller]
fn at<'v>(value: &'v Value, path: &[&str]) -> &'v Value {
    let mut current = value;
    for key in path {
        current = match key.parse::<usize>() {
            Ok(idx) => current.get(idx),
            Err(_) => current.get(*key),
        }
        .unwrap_or_else(|| panic!("no {key:?} on the way to {path:?}"));
    }
    current
}

/// The pieces of the Deployment's pod the checks need.
struct Pod {
    args: Vec<String>,
    /// Container port name → number.
    ports: BTreeMap<String, u64>,
    /// Volume name → mount path.
    mounts: BTreeMap<String, String>,
}

fn pod(deployment: &Value) -> Pod {
    let containers = at(deployment, &["spec", "template", "spec", "containers"])
        .as_sequence()
        .expect("a list of containers");
    assert_eq!(containers.len(), 1, "one container, fig");
    let container = &containers[0];
    let args = at(container, &["args"])
        .as_sequence()
        .expect("args")
        .iter()
        .map(|arg| arg.as_str().expect("string args").to_owned())
        .collect();
    let ports = at(container, &["ports"])
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|port| {
            (
                str_at(port, &["name"]).to_owned(),
                at(port, &["containerPort"])
                    .as_u64()
                    .expect("a port number"),
            )
        })
        .collect();
    let mounts = at(container, &["volumeMounts"])
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .map(|mount| {
            (
                str_at(mount, &["name"]).to_owned(),
                str_at(mount, &["mountPath"]).to_owned(),
            )
        })
        .collect();
    Pod {
        args,
        ports,
        mounts,
    }
}

/// The ConfigMap and the Secret written where the Deployment mounts them, under `root`; returns
/// the path of the config file and its text with the mount paths moved under `root`.
fn materialize(manifests: &BTreeMap<String, Value>, root: &Path) -> (PathBuf, String) {
    let pod = pod(&manifests["Deployment"]);
    let volumes = at(
        &manifests["Deployment"],
        &["spec", "template", "spec", "volumes"],
    )
    .as_sequence()
    .expect("volumes");
    let volume_of = |kind: &str| {
        volumes
            .iter()
            .find(|volume| volume.get(kind).is_some())
            .map(|volume| str_at(volume, &["name"]).to_owned())
            .unwrap_or_else(|| panic!("no {kind} volume"))
    };
    let config_mount = &pod.mounts[&volume_of("configMap")];
    let secret_mount = &pod.mounts[&volume_of("secret")];
    let under_root = |mount: &str| root.join(mount.trim_start_matches('/'));

    let config_data = at(&manifests["ConfigMap"], &["data"])
        .as_mapping()
        .expect("ConfigMap data");
    assert_eq!(
        config_data.len(),
        1,
        "the ConfigMap holds the config file only"
    );
    let (key, text) = config_data.iter().next().expect("one entry");
    let key = key.as_str().expect("a file name");
    let mut text = text.as_str().expect("the file's text").to_owned();
    // Absolute paths in the config point into the pod's mounts: move every mount under `root`.
    // Two passes, as a mount such as `/tmp` may be a prefix of `root` itself.
    for (idx, mount) in pod.mounts.values().enumerate() {
        text = text.replace(&format!("\"{mount}/"), &format!("\"\u{0}{idx}\u{0}/"));
    }
    for (idx, mount) in pod.mounts.values().enumerate() {
        text = text.replace(
            &format!("\u{0}{idx}\u{0}"),
            &under_root(mount).display().to_string(),
        );
    }
    let config_dir = under_root(config_mount);
    std::fs::create_dir_all(&config_dir).expect("create the config mount");
    let config_path = config_dir.join(key);
    std::fs::write(&config_path, &text).expect("write the config");

    let secret_dir = under_root(secret_mount);
    std::fs::create_dir_all(&secret_dir).expect("create the secret mount");
    for (name, value) in at(&manifests["Secret"], &["stringData"])
        .as_mapping()
        .expect("Secret stringData")
    {
        let name = name.as_str().expect("a key");
        std::fs::write(secret_dir.join(name), value.as_str().expect("a value"))
            .expect("write a secret");
    }
    for (volume, mount) in &pod.mounts {
        if mount != config_mount && mount != secret_mount {
            std::fs::create_dir_all(under_root(mount))
                .unwrap_or_else(|err| panic!("create the {volume} mount: {err}"));
        }
    }
    assert_eq!(
        pod.args,
        ["proxy", "--config", &format!("{config_mount}/{key}")],
        "the container runs the proxy on the mounted config"
    );
    (config_path, text)
}

#[test]
fn kubernetes_manifests_agree_with_the_proxy_config() {
    let manifests = manifests();
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(manifests.contains_key(kind), "docs/deploy/k8s has a {kind}");
    }
    let deployment = &manifests["Deployment"];
    assert!(
        at(deployment, &["spec", "replicas"]).as_u64().unwrap_or(0) >= 2,
        "several replicas"
    );
    let labels = at(deployment, &["spec", "selector", "matchLabels"]);
    assert_eq!(
        at(deployment, &["spec", "template", "metadata", "labels"]),
        labels,
        "the pods carry the selector's labels"
    );
    assert_eq!(at(&manifests["Service"], &["spec", "selector"]), labels);

    let temp = tempfile::tempdir().expect("tempdir");
    let (config_path, _) = materialize(&manifests, temp.path());
    let config = Config::load(&config_path, &Overrides::default())
        .unwrap_or_else(|err| panic!("the ConfigMap's fig-proxy.toml is refused: {err}"));
    // And as an operator checks it before applying it.
    let checked = fig()
        .args(["proxy", "--check", "--config"])
        .arg(&config_path)
        .output()
        .expect("fig proxy --check runs");
    assert!(
        checked.status.success()
            && String::from_utf8_lossy(&checked.stdout).starts_with("config is valid: 1 route(s)"),
        "fig proxy --check on the ConfigMap's config: {checked:?}"
    );

    // Probes and ports against the config.
    let pod = pod(deployment);
    let container = at(deployment, &["spec", "template", "spec", "containers", "0"]);
    assert_eq!(
        str_at(container, &["readinessProbe", "httpGet", "path"]),
        "/readyz"
    );
    assert_eq!(
        str_at(container, &["livenessProbe", "httpGet", "path"]),
        "/healthz"
    );
    let admin = config.admin.listen.expect("the admin API is on");
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = str_at(container, &[probe, "httpGet", "port"]);
        assert_eq!(
            pod.ports.get(port).copied(),
            Some(u64::from(admin.port())),
            "the {probe} asks the admin API"
        );
    }
    assert!(
        !admin.ip().is_loopback(),
        "the kubelet and Prometheus reach the admin API from outside the pod"
    );
    let listen = config.listen.first().expect("a listen address");
    assert_eq!(
        pod.ports.get("http").copied(),
        Some(u64::from(listen.port()))
    );
    let target = str_at(&manifests["Service"], &["spec", "ports", "0", "targetPort"]);
    assert!(
        pod.ports.contains_key(target),
        "the Service targets a container port"
    );

    // The drain fits in the grace period.
    let grace = at(
        deployment,
        &["spec", "template", "spec", "terminationGracePeriodSeconds"],
    )
    .as_u64()
    .expect("terminationGracePeriodSeconds");
    assert!(
        config.drain_timeout < Duration::from_secs(grace),
        "drain_timeout {:?} fits in {grace}s",
        config.drain_timeout
    );

    // The state file is on a writable volume of its own.
    let state = config.state_file.expect("a state file");
    let state_text = state.display().to_string();
    let root_text = temp.path().display().to_string();
    let in_pod = state_text.trim_start_matches(&root_text);
    assert!(
        pod.mounts
            .values()
            .any(|mount| in_pod.starts_with(&format!("{mount}/"))),
        "the state file {in_pod} is on a mounted volume"
    );

    // The image's default command is what the Deployment runs.
    let dockerfile =
        std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("read the Dockerfile");
    let cmd = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("a CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    assert_eq!(
        cmd, pod.args,
        "the Dockerfile's CMD and the Deployment's args"
    );
}

/// The metric names an alert expression uses.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("fig_proxy_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // `fig_proxy_(a|b)` in a grep pattern names no metric by itself.
        if !tail[..end].ends_with('_') {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// GitHub's (and mdBook's) anchor of a heading.
pub(crate) fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn alert_rules_use_metrics_a_running_proxy_exports() {
    // The alert rules and the scrape config parse, and have what Prometheus needs.
    let rules = yaml_documents(&deploy_dir().join("prometheus/alerts.yml"));
    let mut used = BTreeSet::new();
    let mut alerts = Vec::new();
    for group in at(&rules[0], &["groups"]).as_sequence().expect("groups") {
        for rule in at(group, &["rules"]).as_sequence().expect("rules") {
            let name = str_at(rule, &["alert"]).to_owned();
            let expr = str_at(rule, &["expr"]);
            str_at(rule, &["labels", "severity"]);
            str_at(rule, &["annotations", "summary"]);
            let runbook = str_at(rule, &["annotations", "runbook"]);
            let (file, fragment) = runbook.split_once('#').unwrap_or((runbook, ""));
            let page = std::fs::read_to_string(workspace_root().join(file))
                .unwrap_or_else(|err| panic!("{name}: runbook {file}: {err}"));
            assert!(
                fragment.is_empty()
                    || page
                        .lines()
                        .filter_map(|line| line.strip_prefix('#'))
                        .any(|heading| anchor(heading.trim_start_matches('#')) == fragment),
                "{name}: {file} has no heading #{fragment}"
            );
            used.extend(metric_names(expr));
            alerts.push(name);
        }
    }
    for wanted in [
        "FigProxyUpstreamErrorRate",
        "FigProxyFlagsNotReady",
        "FigProxyRollback",
    ] {
        assert!(
            alerts.iter().any(|alert| alert == wanted),
            "an alert {wanted}"
        );
    }
    let scrape = yaml_documents(&deploy_dir().join("prometheus/prometheus.yml"));
    let jobs = at(&scrape[0], &["scrape_configs"])
        .as_sequence()
        .expect("scrape_configs");
    assert!(
        jobs.iter()
            .all(|job| str_at(job, &["metrics_path"]) == "/metrics"
                && job.get("authorization").is_some()),
        "every job scrapes /metrics with the admin token"
    );

    // Every fig_proxy_* metric the docs mention, too.
    let mut mentioned = BTreeSet::new();
    for page in [
        "docs/proxy-config.md",
        "docs/guide/ops.md",
        "docs/runbook.md",
    ] {
        let text = std::fs::read_to_string(workspace_root().join(page)).expect("read a page");
        mentioned.extend(metric_names(&text));
    }

    // A real proxy on the ConfigMap's config, with the examples as its upstreams and a file
    // store instead of Unleash.
    let manifests = manifests();
    let temp = tempfile::tempdir().expect("tempdir");
    let (config_path, text) = materialize(&manifests, temp.path());
    let upstreams = Upstreams::start();
    let mut text = text;
    let config = Config::load(&config_path, &Overrides::default()).expect("the config loads");
    for upstream in &config.upstreams {
        let local = if upstream.name == "monolith" {
            upstreams.monolith
        } else {
            upstreams.service
        };
        for address in &upstream.addresses {
            let authority = address
                .authority()
                .expect("an address with a host")
                .as_str();
            text = text.replace(&format!("http://{authority}"), &format!("http://{local}"));
        }
    }
    std::fs::write(&config_path, &text).expect("write the local config");
    let flags = temp.path().join("flags.json");
    let created = fig()
        .args(["flags", "--store"])
        .arg(&flags)
        .args(["create", "payments-service"])
        .output()
        .expect("fig flags runs");
    assert!(created.status.success(), "{created:?}");
    let mut command = fig();
    command
        .args(["proxy", "--config"])
        .arg(&config_path)
        .args(["--workers", "1", "--listen", "127.0.0.1:0"])
        .args(["--admin", "127.0.0.1:0", "--flags"])
        .arg(&flags);
    let mut proxy = Proc::spawn("fig proxy (ConfigMap)", command);
    let listen = proxy.address("listening on http://");
    let admin = proxy.address("admin on http://");
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    for path in ["/payments/7", "/orders/7"] {
        let response = client
            .get(format!("http://{listen}{path}"))
            .header("x-user-id", "42")
            .send()
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        assert_eq!(response.status(), 200, "GET {path} through the proxy");
    }
    let get = |path: &str, token: Option<&str>| {
        let mut request = client.get(format!("http://{admin}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        (
            response.status().as_u16(),
            response.text().unwrap_or_default(),
        )
    };
    assert_eq!(get("/healthz", None).0, 200, "liveness probe");
    let ready = (0..100).any(|_| {
        let ok = get("/readyz", None).0 == 200;
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(ready, "readiness probe: the flags load");
    let token = str_at(&manifests["Secret"], &["stringData", "admin-token"]);
    assert_eq!(get("/metrics", None).0, 401, "/metrics needs the token");
    let (status, metrics) = get("/metrics", Some(token));
    assert_eq!(status, 200);
    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let exists = |name: &str| {
        exported.contains(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| exported.contains(base))
            })
    };
    let missing_in_alerts: Vec<&String> = used.iter().filter(|name| !exists(name)).collect();
    assert!(
        missing_in_alerts.is_empty(),
        "alerts.yml uses metrics the proxy does not export: {missing_in_alerts:?}; it exports {exported:?}"
    );
    let missing_in_docs: Vec<&String> = mentioned.iter().filter(|name| !exists(name)).collect();
    assert!(
        missing_in_docs.is_empty(),
        "the docs mention metrics the proxy does not export: {missing_in_docs:?}; it exports {exported:?}"
    );
    // And the other way: every metric the proxy exports has its row in the reference.
    let reference = std::fs::read_to_string(workspace_root().join("docs/proxy-config.md"))
        .expect("read docs/proxy-config.md");
    let undocumented: Vec<&&str> = exported
        .iter()
        .filter(|name| !reference.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "metrics with no row in the Metrics table of docs/proxy-config.md: {undocumented:?}"
    );
    proxy.signal("TERM");
    let status = proxy.wait(Duration::from_secs(40));
    assert!(
        status.success(),
        "the proxy drains and exits 0: {}",
        proxy.stderr()
    );
}

/// The first step of every deployment (docs/guide/ops.md): no config file, every request to the
/// monolith, marked as such.
#[test]
fn without_a_config_everything_goes_to_the_monolith() {
    let upstreams = Upstreams::start();
    let mut command = fig();
    command.args([
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--monolith",
        &format!("http://{}", upstreams.monolith),
    ]);
    let mut proxy = Proc::spawn("fig proxy --monolith", command);
    let listen = proxy.address("listening on http://");
    let admin = proxy.address("admin on http://");
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    for path in ["/payments/7", "/orders/7"] {
        let response = client
            .get(format!("http://{listen}{path}"))
            .send()
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        assert_eq!(response.status(), 200, "GET {path}");
        assert_eq!(
            response
                .headers()
                .get("x-fig-upstream")
                .and_then(|value| value.to_str().ok()),
            Some("monolith"),
            "GET {path}"
        );
    }
    // On loopback and without a config, the admin API asks for no token.
    let routes = client
        .get(format!("http://{admin}/routes"))
        .send()
        .expect("GET /routes");
    assert_eq!(routes.status(), 200);
    proxy.signal("TERM");
    assert!(proxy.wait(Duration::from_secs(40)).success());
}
