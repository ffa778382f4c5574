//! The admin API: auth, routes, rollback/restore (persisted), reload, metrics, health.

use std::sync::Arc;

use http::StatusCode;

use crate::config::{Config, Overrides};
use crate::flags::StaticFlags;

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
