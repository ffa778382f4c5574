//! The admin API: auth, routes, rollback/restore (persisted), reload, metrics, health.

use std::sync::Arc;

use http::StatusCode;

use crate::config::{Config, Overrides};
use crate::decision::flags::StaticFlags;

use super::support::{admin_post, config, config_file, get, start, upstream};

fn flags_on() -> Arc<StaticFlags> {
    Arc::new(StaticFlags {
        enabled: vec!["payments-service".to_owned()],
    })
}

fn text(monolith: &str, service: &str) -> String {
    format!(
        "[admin]\ntoken = \"t0k\"\n[upstreams.monolith]\naddresses = [\"{monolith}\"]\n[upstreams.payment-service]\naddresses = [\"{service}\"]\n\
         [[routes]]\nname = \"payments\"\nmatch = {{ pattern = \"/payments/**\" }}\nservice = \"payment-service\"\nflag = \"payments-service\"\n"
    )
}

#[tokio::test]
async fn token_is_required_except_for_health() {
    let dir = tempfile::tempdir().unwrap();
    let monolith = upstream("monolith").await;
    let proxy = start(
        config_file(dir.path(), &text(&monolith.url(), &monolith.url())),
        flags_on(),
    )
    .await;
    assert_eq!(
        get(&proxy.admin_url("/healthz"), &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&proxy.admin_url("/readyz"), &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&proxy.admin_url("/routes"), &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(
            &proxy.admin_url("/routes"),
            &[("authorization", "Bearer nope")]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin_post(&proxy.admin_url("/routes/payments/rollback"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(
            &proxy.admin_url("/routes"),
            &[("authorization", "Bearer t0k")]
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rollback_is_immediate_persisted_and_restorable() {
    let dir = tempfile::tempdir().unwrap();
    let monolith = upstream("monolith").await;
    let service = upstream("payment-service").await;
    let config = config_file(dir.path(), &text(&monolith.url(), &service.url()));
    let proxy = start(config.clone(), flags_on()).await;
    assert_eq!(
        get(&proxy.url("/payments/1"), &[]).await.upstream(),
        "payment-service"
    );

    let reply = admin_post(&proxy.admin_url("/routes/payments/rollback"), Some("t0k")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["state"], "pinned-to-monolith");
    assert_eq!(
        get(&proxy.url("/payments/1"), &[]).await.upstream(),
        "monolith",
        "the very next request"
    );

    let state = std::fs::read_to_string(dir.path().join("fig-proxy.state.json")).unwrap();
    assert!(state.contains("\"payments\""), "{state}");

    let routes = get(
        &proxy.admin_url("/routes"),
        &[("authorization", "Bearer t0k")],
    )
    .await;
    let routes: serde_json::Value = serde_json::from_str(&routes.body).unwrap();
    let route = &routes["routes"][0];
    assert_eq!(route["name"], "payments");
    assert_eq!(route["state"], "pinned-to-monolith");
    assert_eq!(route["flag"], "payments-service");
    assert_eq!(route["last_decision"], "pinned");
    assert_eq!(route["requests"]["payment-service"], 1);
    assert_eq!(route["requests"]["monolith"], 1);

    // A restart keeps the rollback.
    drop(proxy);
    let restarted = start(config.clone(), flags_on()).await;
    assert_eq!(
        get(&restarted.url("/payments/1"), &[]).await.upstream(),
        "monolith"
    );
    let reply = admin_post(
        &restarted.admin_url("/routes/payments/restore"),
        Some("t0k"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        get(&restarted.url("/payments/1"), &[]).await.upstream(),
        "payment-service"
    );

    let unknown = admin_post(&restarted.admin_url("/routes/nope/rollback"), Some("t0k")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("no route named `nope`"));
}

#[tokio::test]
async fn reload_refuses_a_bad_config_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let monolith = upstream("monolith").await;
    let service = upstream("payment-service").await;
    let good = text(&monolith.url(), &service.url());
    let config = config_file(dir.path(), &good);
    let path = config.path.clone().unwrap();
    let proxy = start(config, flags_on()).await;
    assert_eq!(
        get(&proxy.url("/payments/1"), &[]).await.upstream(),
        "payment-service"
    );

    std::fs::write(
        &path,
        good.replace("service = \"payment-service\"", "service = \"nowhere\""),
    )
    .unwrap();
    let reply = admin_post(&proxy.admin_url("/reload"), Some("t0k")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let expected = format!("{}:10:11: no upstream named `nowhere`", path.display());
    assert_eq!(body["error"], expected.as_str());
    assert_eq!(
        get(&proxy.url("/payments/1"), &[]).await.upstream(),
        "payment-service",
        "old config serves"
    );

    // A good change applies: route payments by prefix to the monolith without a flag.
    std::fs::write(
        &path,
        good.replace("service = \"payment-service\"", "service = \"monolith\""),
    )
    .unwrap();
    assert_eq!(
        admin_post(&proxy.admin_url("/reload"), Some("t0k"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&proxy.url("/payments/1"), &[]).await.upstream(),
        "monolith"
    );
    let metrics = get(
        &proxy.admin_url("/metrics"),
        &[("authorization", "Bearer t0k")],
    )
    .await;
    assert!(
        metrics
            .body
            .contains("fig_proxy_config_reloads_total{result=\"ok\"} 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("fig_proxy_config_reloads_total{result=\"error\"} 1"),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn a_changed_file_is_reloaded_by_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let monolith = upstream("monolith").await;
    let service = upstream("payment-service").await;
    let good = format!(
        "[reload]\npoll_interval = \"50ms\"\n{}",
        text(&monolith.url(), &service.url())
    );
    let config = config_file(dir.path(), &good);
    let path = config.path.clone().unwrap();
    let proxy = start(config, flags_on()).await;
    assert_eq!(
        get(&proxy.url("/payments/1"), &[]).await.upstream(),
        "payment-service"
    );
    // Same length, different content, so only the modification time tells; wait past its granularity.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    std::fs::write(
        &path,
        good.replace("flag = \"payments-service\"", "flag = \"payments-other\""),
    )
    .unwrap();
    let mut upstream_seen = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        upstream_seen = get(&proxy.url("/payments/1"), &[])
            .await
            .upstream()
            .to_owned();
        if upstream_seen == "monolith" {
            break;
        }
    }
    assert_eq!(
        upstream_seen, "monolith",
        "the new flag is off, so the watcher's reload sends it to the monolith"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_upstream_and_class() {
    let dir = tempfile::tempdir().unwrap();
    let monolith = upstream("monolith").await;
    let service = upstream("payment-service").await;
    let proxy = start(
        config_file(dir.path(), &text(&monolith.url(), &service.url())),
        flags_on(),
    )
    .await;
    get(&proxy.url("/payments/1"), &[]).await;
    get(&proxy.url("/payments/2"), &[]).await;
    get(&proxy.url("/other"), &[]).await;
    admin_post(&proxy.admin_url("/routes/payments/rollback"), Some("t0k")).await;
    let metrics = get(
        &proxy.admin_url("/metrics"),
        &[("authorization", "Bearer t0k")],
    )
    .await;
    let body = metrics.body;
    for line in [
        "fig_proxy_requests_total{route=\"payments\",upstream=\"payment-service\",class=\"2xx\"} 2",
        "fig_proxy_requests_total{route=\"_unmatched\",upstream=\"monolith\",class=\"2xx\"} 1",
        "fig_proxy_request_duration_seconds_count{route=\"payments\",upstream=\"payment-service\"} 2",
        "fig_proxy_rollbacks_total{route=\"payments\"} 1",
        "fig_proxy_route_pinned{route=\"payments\"} 1",
        "fig_proxy_flags_ready 1",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing `{line}` in:\n{body}"
        );
    }
}

#[tokio::test]
async fn the_library_handle_rolls_back_too() {
    let monolith = upstream("monolith").await;
    let service = upstream("payment-service").await;
    let proxy = start(config(&text(&monolith.url(), &service.url())), flags_on()).await;
    assert!(proxy.proxy.rollback("payments").unwrap());
    assert!(
        !proxy.proxy.rollback("payments").unwrap(),
        "already rolled back"
    );
    assert_eq!(
        get(&proxy.url("/payments/1"), &[]).await.upstream(),
        "monolith"
    );
    assert!(matches!(
        proxy.proxy.rollback("nope"),
        Err(crate::Error::UnknownRoute(_))
    ));
    let err = proxy.proxy.reload().unwrap_err().to_string();
    assert!(err.contains("there is no file to reload"), "{err}");
}

#[test]
fn state_file_defaults_next_to_the_config() {
    let path = std::path::Path::new("/srv/fig/fig-proxy.toml");
    assert_eq!(
        Config::default_state_file(path),
        std::path::Path::new("/srv/fig/fig-proxy.state.json")
    );
    let _ = Overrides::default();
}

#[tokio::test]
async fn reloads_under_load_drop_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let monolith = upstream("monolith").await;
    let service = upstream("payment-service").await;
    let proxy = start(
        config_file(dir.path(), &text(&monolith.url(), &service.url())),
        flags_on(),
    )
    .await;
    let url = proxy.url("/payments/1");
    let load = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..200 {
            statuses.push(get(&url, &[]).await.status);
        }
        statuses
    });
    for _ in 0..20 {
        proxy.proxy.reload().unwrap();
        tokio::task::yield_now().await;
    }
    let statuses = load.await.unwrap();
    assert_eq!(statuses.len(), 200);
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_reloaded_header_limit_applies_to_new_connections() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let monolith = upstream("monolith").await;
    let base = text(&monolith.url(), &monolith.url());
    let config = config_file(dir.path(), &base);
    let path = config.path.clone().unwrap();
    let proxy = start(config, flags_on()).await;
    let status_of_big_request = || async {
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: {}\r\n\r\n",
            "v".repeat(20_000)
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut answer),
        )
        .await;
        String::from_utf8_lossy(&answer)
            .chars()
            .take(12)
            .collect::<String>()
    };
    assert_eq!(status_of_big_request().await, "HTTP/1.1 200");
    std::fs::write(
        &path,
        format!("[limits]\nmax_header_size = \"8KiB\"\n{base}"),
    )
    .unwrap();
    proxy.proxy.reload().unwrap();
    assert_eq!(status_of_big_request().await, "HTTP/1.1 431");
}

/// Issue 15: the state file was written through the fixed name `<file>.tmp`, following a symlink
/// planted there (and without fsync). Now a rollback leaves such a symlink's target alone.
#[cfg(unix)]
#[test]
fn a_rollback_writes_no_file_through_a_planted_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("fig-proxy.state.json");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("fig-proxy.state.json.tmp")).unwrap();
    let pins = crate::decision::state::Pins::open(Some(state.clone())).unwrap();
    assert!(pins.set("payments", true).unwrap());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(written["pinned"], serde_json::json!(["payments"]));
    let reopened = crate::decision::state::Pins::open(Some(state)).unwrap();
    assert!(reopened.is_pinned("payments"));
}

/// What the admin API says to a request with these headers on a listener at `local`:
/// `ok`, or the reason of its 403.
#[track_caller]
fn site(local: &str, allowed: &[&str], headers: &[(&str, &str)]) -> String {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    let allowed: Vec<String> = allowed.iter().map(|host| (*host).to_owned()).collect();
    match crate::ops::admin::check_site(
        &map,
        &http::Uri::from_static("/routes"),
        local.parse().unwrap(),
        &allowed,
    ) {
        Ok(()) => "ok".to_owned(),
        Err(reason) => reason,
    }
}

/// Issue 15, item 8: a page on another site, or a name rebound to 127.0.0.1, cannot call the
/// admin API; the listener's own address and the loopback names on its port can.
#[test]
fn only_own_hosts_and_origins_reach_the_admin_api() {
    let local = "127.0.0.1:9901";
    for host in [
        "127.0.0.1:9901",
        "localhost:9901",
        "LocalHost:9901",
        "[::1]:9901",
        "127.0.0.2:9901",
    ] {
        assert_eq!(site(local, &[], &[("host", host)]), "ok", "{host}");
    }
    assert_eq!(
        site(local, &[], &[("host", "evil.example:9901")]),
        "Host `evil.example:9901` is neither this admin API's address (127.0.0.1:9901) nor a loopback name on its port; list it in `admin.allowed_hosts` to allow it"
    );
    for host in [
        "evil.example",
        "localhost:8080",
        "127.0.0.1",
        "10.0.0.1:9901",
    ] {
        assert_ne!(site(local, &[], &[("host", host)]), "ok", "{host}");
    }
    assert_eq!(site(local, &[], &[]), "the request has no Host field");
    assert_eq!(
        site(
            local,
            &[],
            &[("host", "127.0.0.1:9901"), ("host", "evil.example")]
        ),
        "the request has more than one Host field"
    );
    // Origin: the admin API's own page (none exists, but a person's browser may send one), else
    // refused.
    let host = ("host", "127.0.0.1:9901");
    assert_eq!(
        site(local, &[], &[host, ("origin", "http://localhost:9901")]),
        "ok"
    );
    assert_eq!(
        site(local, &[], &[host, ("origin", "http://evil.example")]),
        "a page on `http://evil.example` may not call the admin API (Origin); list its host in `admin.allowed_hosts` to allow it"
    );
    for origin in [
        "null",
        "http://localhost:3000",
        "https://127.0.0.1:9901x",
        "file://",
    ] {
        assert_ne!(
            site(local, &[], &[host, ("origin", origin)]),
            "ok",
            "{origin}"
        );
    }
    assert_eq!(
        site(local, &[], &[host, ("sec-fetch-site", "cross-site")]),
        "a browser sent this request for another site (Sec-Fetch-Site: cross-site)"
    );
    for fetch_site in ["same-origin", "none"] {
        assert_eq!(
            site(local, &[], &[host, ("sec-fetch-site", fetch_site)]),
            "ok"
        );
    }
}

/// An unspecified listener answers any address on its port (an address cannot be rebound), and
/// `admin.allowed_hosts` lets names in, with or without a port.
#[test]
fn allowed_hosts_and_unspecified_listeners() {
    assert_eq!(
        site("0.0.0.0:9901", &[], &[("host", "10.0.0.7:9901")]),
        "ok"
    );
    assert_ne!(
        site("0.0.0.0:9901", &[], &[("host", "fig-admin.internal:9901")]),
        "ok"
    );
    assert_ne!(
        site("10.0.0.7:9901", &[], &[("host", "10.0.0.8:9901")]),
        "ok"
    );
    let allowed = ["fig-admin.internal", "tunnel.local:19901"];
    for host in [
        "fig-admin.internal",
        "FIG-admin.internal:443",
        "tunnel.local:19901",
    ] {
        assert_eq!(
            site("127.0.0.1:9901", &allowed, &[("host", host)]),
            "ok",
            "{host}"
        );
    }
    assert_ne!(
        site("127.0.0.1:9901", &allowed, &[("host", "tunnel.local:9")]),
        "ok"
    );
    assert_eq!(
        site(
            "127.0.0.1:9901",
            &allowed,
            &[
                ("host", "fig-admin.internal"),
                ("origin", "https://fig-admin.internal")
            ]
        ),
        "ok"
    );
    assert_eq!(
        site("127.0.0.1:9901", &["*"], &[("host", "anything:1")]),
        "ok"
    );
}

/// `admin.allowed_hosts` is checked with the file's place, and the generated token sits next to
/// the state file unless configured elsewhere or turned off.
#[test]
fn admin_hosts_and_generated_token_in_the_config() {
    let monolith = "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:1\"]\n";
    let parse = |admin: &str| {
        Config::parse(
            &format!("{monolith}[admin]\n{admin}"),
            Some(std::path::Path::new("/srv/fig/fig-proxy.toml")),
            &Overrides::default(),
        )
    };
    assert_eq!(
        parse("allowed_hosts = [\"ok.example\", \"bad host\"]\n")
            .unwrap_err()
            .to_string(),
        "/srv/fig/fig-proxy.toml:4:32: invalid host `bad host` in `allowed_hosts`; write a name or address, with or without :PORT, or \"*\""
    );
    let config = parse("allowed_hosts = [\"Fig.Example:8443\", \"*\"]\n").unwrap();
    assert_eq!(config.admin.allowed_hosts, ["fig.example:8443", "*"]);
    assert_eq!(
        config.admin.generated_token_file.as_deref(),
        Some(std::path::Path::new("/srv/fig/fig-proxy.admin-token"))
    );
    let config = parse("generated_token_file = \"secrets/admin-token\"\n").unwrap();
    assert_eq!(
        config.admin.generated_token_file.as_deref(),
        Some(std::path::Path::new("/srv/fig/secrets/admin-token"))
    );
    assert_eq!(
        parse("generate_token = false\n")
            .unwrap()
            .admin
            .generated_token_file,
        None
    );
    // The token `fig proxy` generated is the token, unless the file names one.
    let overrides = Overrides {
        generated_admin_token: Some("generated".to_owned()),
        ..Overrides::default()
    };
    let text = format!("{monolith}[admin]\n");
    let config = Config::parse(&text, None, &overrides).unwrap();
    assert_eq!(config.admin.token.as_deref(), Some("generated"));
    let config = Config::parse(&format!("{text}token = \"mine\"\n"), None, &overrides).unwrap();
    assert_eq!(config.admin.token.as_deref(), Some("mine"));
}
