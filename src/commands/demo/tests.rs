//! Unit tests of the demo's pure parts: the replicas' addresses and the configs it writes.

use std::net::SocketAddr;
use std::time::Duration;

use strangler_proxy::config::FlagStoreConfig;
use strangler_proxy::{Config, Overrides};

use super::{FlagsSection, ReplicaConfig, plan_addresses, proxy_config};

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

/// The planned `(proxy, admin)` ports, or the error.
fn plan(listen: &str, admin: Option<&str>, n_replicas: usize) -> Result<Vec<(u16, u16)>, String> {
    plan_addresses(addr(listen), admin.map(addr), n_replicas)
        .map(|planned| {
            planned
                .iter()
                .map(|(proxy, admin)| (proxy.port(), admin.port()))
                .collect()
        })
        .map_err(|err| err.to_string())
}

#[test]
fn one_replica_keeps_the_old_defaults() {
    assert_eq!(plan("127.0.0.1:8000", None, 1), Ok(vec![(8000, 8001)]));
}

#[test]
fn admin_ports_follow_the_proxies_by_default() {
    assert_eq!(
        plan("127.0.0.1:8000", None, 3),
        Ok(vec![(8000, 8003), (8001, 8004), (8002, 8005)])
    );
    // The admin API stays on loopback when the proxies listen everywhere.
    let planned = plan_addresses(addr("0.0.0.0:8000"), None, 2).expect("a plan");
    assert_eq!(planned[0].1, addr("127.0.0.1:8002"));
}

#[test]
fn given_admin_ports_are_consecutive_too() {
    assert_eq!(
        plan("127.0.0.1:8000", Some("127.0.0.1:9000"), 2),
        Ok(vec![(8000, 9000), (8001, 9001)])
    );
}

#[test]
fn port_zero_gives_every_replica_a_free_port() {
    assert_eq!(
        plan("127.0.0.1:0", None, 3),
        Ok(vec![(0, 0), (0, 0), (0, 0)])
    );
    assert_eq!(
        plan("127.0.0.1:0", Some("127.0.0.1:9000"), 2),
        Ok(vec![(0, 9000), (0, 9001)])
    );
}

#[test]
fn overlapping_or_overflowing_ports_are_refused() {
    assert_eq!(
        plan("127.0.0.1:8000", Some("127.0.0.1:8001"), 2),
        Err("port 8001 would be used twice: the proxies take ports 8000-8001 and the admin APIs 8001-8002; pick --admin outside the proxies' range".to_owned())
    );
    assert_eq!(
        plan("127.0.0.1:65535", None, 1),
        Err("--listen 127.0.0.1:65535 with --replicas 1 leaves no port after the proxies' for the admin API; give --admin".to_owned())
    );
    assert_eq!(
        plan("127.0.0.1:65534", Some("127.0.0.1:9000"), 3),
        Err("--listen 127.0.0.1:65534 with --replicas 3 needs ports up to 65536, past 65535; pick a lower port".to_owned())
    );
}

/// The configs the demo writes are valid proxy configs that say what the demo means.
#[test]
fn written_configs_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let replica_dir = dir.path().join("replica-2");
    std::fs::create_dir_all(&replica_dir).expect("mkdir");
    std::fs::write(dir.path().join("unleash.token"), "client-token\n").expect("token");
    std::fs::write(dir.path().join("admin.token"), "admin-token\n").expect("token");
    let config = |flags| ReplicaConfig {
        listen: addr("127.0.0.1:8001"),
        admin: addr("127.0.0.1:8003"),
        admin_token_file: "../admin.token".to_owned(),
        monolith: addr("127.0.0.1:7001"),
        service: addr("127.0.0.1:7002"),
        flag: "odd.flag~name_1",
        flags,
        tls: None,
    };
    let path = replica_dir.join("fig-proxy.toml");
    let parse = |text: &str| {
        Config::parse(text, Some(&path), &Overrides::default())
            .unwrap_or_else(|err| panic!("{err}\n{text}"))
    };

    let unleash = parse(&proxy_config(&config(FlagsSection::Unleash {
        url: "http://127.0.0.1:4242/api".to_owned(),
        token_file: "../unleash.token".to_owned(),
        refresh: Duration::from_secs(1),
        backup_file: "unleash-backup.json".to_owned(),
        admin_token_file: None,
    })));
    assert_eq!(unleash.listen, vec![addr("127.0.0.1:8001")]);
    assert_eq!(unleash.admin.listen, Some(addr("127.0.0.1:8003")));
    assert_eq!(unleash.admin.token.as_deref(), Some("admin-token"));
    assert_eq!(
        unleash.flags,
        Some(FlagStoreConfig::Unleash {
            url: "http://127.0.0.1:4242/api".to_owned(),
            token: "client-token".to_owned(),
            refresh: Duration::from_secs(1),
            backup: Some(replica_dir.join("unleash-backup.json")),
        })
    );
    let route = &unleash.routes[0];
    assert_eq!(
        (route.name.as_str(), route.flag.as_deref()),
        ("payments", Some("odd.flag~name_1"))
    );
    assert_eq!(
        (route.service.as_str(), route.fallback.as_str()),
        ("payment-service", "monolith")
    );
    // The demo's protections: fallback retry, an SLO (no admin token: it cannot turn the flag
    // off on Unleash) and shadow traffic to whichever side did not answer.
    let slo = route.slo.as_ref().expect("the route has an SLO");
    assert!(!slo.turn_off_flag);
    assert_eq!(slo.min_requests, 5);
    let shadow = route.shadow.as_ref().expect("the route shadows");
    assert_eq!(shadow.percent, 100);

    let file = parse(&proxy_config(&config(FlagsSection::File {
        file: "../flags.json".to_owned(),
    })));
    assert!(file.tls.is_none());

    // `--tls`: the generated certificate loads, for every listener.
    super::write_demo_certificate(&dir.path().join("tls"), &[addr("127.0.0.1:8001")])
        .expect("the demo's certificate");
    let mut with_tls = config(FlagsSection::File {
        file: "../flags.json".to_owned(),
    });
    with_tls.tls = Some("../tls/".to_owned());
    let tls = parse(&proxy_config(&with_tls)).tls.expect("[tls]");
    assert_eq!(tls.listen, vec![addr("127.0.0.1:8001")]);
    assert_eq!(tls.certificates[0].subject, "CN=localhost");
    // SNI names are DNS names; the IP addresses are in the certificate for clients naming none.
    assert_eq!(tls.certificates[0].names, ["localhost"]);
    assert_eq!(
        file.flags,
        Some(FlagStoreConfig::File(replica_dir.join("../flags.json")))
    );
    // With the file store the SLO turns the flag off for every replica.
    assert!(
        file.routes[0]
            .slo
            .as_ref()
            .is_some_and(|slo| slo.turn_off_flag)
    );
}
