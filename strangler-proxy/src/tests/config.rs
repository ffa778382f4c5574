//! Config validation: good files load, and each mistake names its line, column and reason.

use std::time::Duration;

use crate::config::{
    Balance, Config, FlagStoreConfig, Http1Server, Overrides, PathMatch, ValueSource,
};

#[track_caller]
fn check_error(text: &str, expected: &str) {
    let path = std::path::Path::new("fig-proxy.toml");
    match Config::parse(text, Some(path), &Overrides::default()) {
        Ok(_) => panic!("config was accepted, expected: {expected}"),
        Err(err) => assert_eq!(err.to_string(), expected),
    }
}

const MONOLITH: &str = "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:8080\"]\n";

#[test]
fn full_config_loads() {
    let text = r#"
[server]
listen = ["127.0.0.1:8000", "127.0.0.1:8001"]
workers = 2
upstream_header = "x-served-by"
drain_timeout = "5s"
access_log = "stdout"

[timeouts]
connect = "250ms"
header_read = "10s"
request = "30s"

[limits]
max_header_size = "32KiB"
max_body_size = "10MiB"

[upstreams.monolith]
addresses = ["http://127.0.0.1:8080"]

[upstreams.payment-service]
addresses = ["http://127.0.0.1:9000", "http://127.0.0.1:9001/"]
balance = "least-connections"
health_check = { path = "/healthz", interval = "2s", timeout = "1s" }

[[routes]]
name = "payments"
match = { pattern = "/payments/**", methods = ["get", "POST"], host = "*.example.com", headers = { "x-beta" = "1" } }
service = "payment-service"
flag = "payments-service"

[context]
user_id = ["header:x-user-id", "cookie:uid", "jwt:sub"]
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
environment = "production"

[context.jwt]
algorithm = "HS256"
secret = "s3cret"

[flags]
file = "flags.json"

[admin]
listen = "127.0.0.1:9999"
token = "t0ken"
"#;
    let config = Config::parse(
        text,
        Some(std::path::Path::new("/etc/fig/proxy.toml")),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.listen.len(), 2);
    assert_eq!(config.workers, Some(2));
    assert_eq!(
        config.upstream_header.as_ref().map(|h| h.as_str()),
        Some("x-served-by")
    );
    assert_eq!(config.timeouts.connect, Duration::from_millis(250));
    assert_eq!(config.limits.max_header_size, 32 << 10);
    assert_eq!(config.limits.max_body_size, Some(10 << 20));
    let payment = config.upstream("payment-service").unwrap();
    assert_eq!(payment.addresses.len(), 2);
    assert_eq!(payment.balance, Balance::LeastConnections);
    assert_eq!(
        payment.health_check.as_ref().unwrap().interval,
        Duration::from_secs(2)
    );
    let route = &config.routes[0];
    assert_eq!(
        route.matcher.path,
        PathMatch::Pattern("/payments/**".to_owned())
    );
    assert_eq!(
        route.matcher.methods,
        [http::Method::GET, http::Method::POST]
    );
    assert_eq!(
        route.fallback, "monolith",
        "the fallback defaults to the default upstream"
    );
    assert_eq!(
        config.context.user_id[1],
        ValueSource::Cookie("uid".to_owned())
    );
    assert_eq!(
        config.flags,
        Some(FlagStoreConfig::File("/etc/fig/flags.json".into())),
        "relative to the config file"
    );
    assert_eq!(config.state_file, Some("/etc/fig/proxy.state.json".into()));
    assert_eq!(config.admin.token.as_deref(), Some("t0ken"));
}

#[test]
fn defaults() {
    let config = Config::parse(MONOLITH, None, &Overrides::default()).unwrap();
    assert_eq!(config.listen, ["127.0.0.1:8000".parse().unwrap()]);
    assert_eq!(
        config.upstream_header.as_ref().map(|h| h.as_str()),
        Some("x-fig-upstream")
    );
    assert_eq!(config.admin.listen, Some("127.0.0.1:9901".parse().unwrap()));
    assert_eq!(config.drain_timeout, Duration::from_secs(30));
    assert_eq!(config.http1, Http1Server::Fig);
    assert_eq!(config.timeouts.connect, Duration::from_secs(5));
    assert_eq!(config.timeouts.body_idle, Duration::from_secs(60));
    assert_eq!(config.limits.max_header_size, 64 << 10);
    assert_eq!(config.limits.max_body_size, None);
    assert!(config.reload.watch);
    assert_eq!(
        config.context.user_id,
        [ValueSource::Header(http::HeaderName::from_static(
            "x-user-id"
        ))]
    );
}

#[test]
fn upstream_header_can_be_turned_off() {
    let config = Config::parse(
        &format!("[server]\nupstream_header = false\n{MONOLITH}"),
        None,
        &Overrides::default(),
    )
    .unwrap();
    assert!(config.upstream_header.is_none());
}

#[test]
fn http1_server_can_be_hyper_and_nothing_else() {
    let config = Config::parse(
        &format!("[server]\nhttp1 = \"hyper\"\n{MONOLITH}"),
        None,
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.http1, Http1Server::Hyper);
    check_error(
        &format!("[server]\nhttp1 = \"nginx\"\n{MONOLITH}"),
        "fig-proxy.toml:2:9: unknown variant `nginx`, expected `fig` or `hyper`",
    );
}

#[test]
fn command_line_overrides_the_file() {
    let overrides = Overrides {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        monolith: Some("http://127.0.0.1:7000".to_owned()),
        workers: Some(1),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        flags_file: Some("/tmp/flags.json".into()),
        ..Overrides::default()
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:8000\"\nworkers = 4\n[flags]\nfile = \"other.json\"\n{MONOLITH}"
    );
    let config = Config::parse(&text, None, &overrides).unwrap();
    assert_eq!(config.listen, ["127.0.0.1:0".parse().unwrap()]);
    assert_eq!(config.workers, Some(1));
    assert_eq!(
        config.upstream("monolith").unwrap().addresses[0].to_string(),
        "http://127.0.0.1:7000/"
    );
    assert_eq!(
        config.flags,
        Some(FlagStoreConfig::File("/tmp/flags.json".into()))
    );
}

#[test]
fn no_file_needs_a_monolith() {
    let err = Config::from_overrides(&Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<command line>: without --config, --monolith URL is required"
    );
    let config = Config::from_overrides(&Overrides {
        monolith: Some("http://127.0.0.1:8080".to_owned()),
        ..Overrides::default()
    })
    .unwrap();
    assert!(config.routes.is_empty());
    assert_eq!(config.default_upstream, "monolith");
    assert_eq!(config.state_file, None);
}

#[test]
fn unknown_key() {
    check_error(
        &format!(
            "{MONOLITH}[[routes]]\nname = \"a\"\nmatch = {{ prefix = \"/a\" }}\nservice = \"monolith\"\nflagg = \"x\"\n"
        ),
        "fig-proxy.toml:7:1: unknown field `flagg`, expected one of `name`, `match`, `service`, `flag`, `fallback`, `slo`, `shadow`, `retry`, `rate_limit`, `upgrades`; did you mean `flag`?",
    );
}

#[test]
fn route_to_unknown_upstream() {
    check_error(
        &format!(
            "{MONOLITH}\n[[routes]]\nname = \"payments\"\nmatch = {{ prefix = \"/payments\" }}\nservice = \"payment-service\"\n"
        ),
        "fig-proxy.toml:7:11: no upstream named `payment-service`",
    );
}

#[test]
fn missing_monolith() {
    check_error(
        "[upstreams.shop]\naddresses = [\"http://127.0.0.1:1\"]\n",
        "fig-proxy.toml: no upstream named `monolith`: add [upstreams.monolith] with its addresses, pass --monolith URL, or set server.default_upstream",
    );
}

#[test]
fn bad_pattern() {
    check_error(
        &format!(
            "{MONOLITH}[[routes]]\nname = \"a\"\nmatch = {{ pattern = \"/a/b*\" }}\nservice = \"monolith\"\n"
        ),
        "fig-proxy.toml:5:21: pattern `/a/b*`: `*` and `**` must be a whole segment, found `b*`",
    );
}

#[test]
fn two_path_conditions() {
    check_error(
        &format!(
            "{MONOLITH}[[routes]]\nname = \"a\"\nmatch = {{ prefix = \"/a\", exact = \"/a\" }}\nservice = \"monolith\"\n"
        ),
        "fig-proxy.toml:5:9: `match` needs exactly one of `prefix`, `exact` or `pattern`",
    );
}

#[test]
fn duplicate_route() {
    let route = "[[routes]]\nname = \"a\"\nmatch = { prefix = \"/a\" }\nservice = \"monolith\"\n";
    check_error(
        &format!("{MONOLITH}{route}{route}"),
        "fig-proxy.toml:8:8: a route named `a` is already defined",
    );
}

#[test]
fn bad_duration() {
    check_error(
        &format!("[timeouts]\nconnect = \"5 parsecs\"\n{MONOLITH}"),
        "fig-proxy.toml:2:11: invalid duration `5 parsecs` (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write e.g. \"500ms\", \"5s\", \"2m\"",
    );
}

#[test]
fn body_idle_must_be_positive() {
    check_error(
        &format!("[timeouts]\nbody_idle = \"0s\"\n{MONOLITH}"),
        "fig-proxy.toml:2:13: `body_idle` must be longer than 0",
    );
}

#[test]
fn bad_address() {
    check_error(
        "[upstreams.monolith]\naddresses = [\"127.0.0.1:8080\"]\n",
        "fig-proxy.toml:2:14: upstream address `127.0.0.1:8080` needs a scheme, e.g. http://127.0.0.1:8080",
    );
    check_error(
        "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:8080/api\"]\n",
        "fig-proxy.toml:2:14: upstream address `http://127.0.0.1:8080/api` has a path; give only scheme, host and port",
    );
}

#[test]
fn jwt_source_needs_jwt_table() {
    check_error(
        &format!("[context]\nuser_id = [\"jwt:sub\"]\n{MONOLITH}"),
        "fig-proxy.toml:2:12: a `jwt:` source needs a [context.jwt] table",
    );
}

#[test]
fn admin_off_loopback_needs_token() {
    check_error(
        &format!("[admin]\nlisten = \"0.0.0.0:9901\"\n{MONOLITH}"),
        "fig-proxy.toml:2:10: the admin API on non-loopback address 0.0.0.0:9901 needs `admin.token` or `admin.token_file`",
    );
}

#[test]
fn toml_syntax_error() {
    check_error(
        "[upstreams.monolith\n",
        "fig-proxy.toml:1:20: unclosed table, expected `]`",
    );
}

#[test]
fn unleash_store_with_token_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("unleash.token"),
        "default:development.abc\n",
    )
    .unwrap();
    let text = format!(
        "[flags]\nunleash = {{ url = \"http://127.0.0.1:4242/api\", token_file = \"unleash.token\", refresh = \"2s\" }}\n{MONOLITH}"
    );
    let config = Config::parse(
        &text,
        Some(&dir.path().join("fig-proxy.toml")),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        config.flags,
        Some(FlagStoreConfig::Unleash {
            url: "http://127.0.0.1:4242/api".to_owned(),
            token: "default:development.abc".to_owned(),
            refresh: Duration::from_secs(2),
            backup: None,
        })
    );
    // A relative backup file is anchored at the config's directory, as every path is.
    let with_backup = text.replace(
        "refresh = \"2s\"",
        "refresh = \"2s\", backup_file = \"replica/backup.json\"",
    );
    let config = Config::parse(
        &with_backup,
        Some(&dir.path().join("fig-proxy.toml")),
        &Overrides::default(),
    )
    .unwrap();
    assert!(
        matches!(&config.flags, Some(FlagStoreConfig::Unleash { backup: Some(path), .. })
            if *path == dir.path().join("replica/backup.json")),
        "{:?}",
        config.flags
    );
    check_error(
        &format!(
            "[flags]\nfile = \"f.json\"\nunleash = {{ url = \"http://x\", token = \"t\" }}\n{MONOLITH}"
        ),
        "fig-proxy.toml:3:11: give either `flags.file` or `flags.unleash`, not both",
    );
}

#[test]
fn context_properties() {
    let config = Config::parse(
        &format!("[context]\nproperties = {{ tenant = \"header:x-tenant\", plan = \"cookie:plan\" }}\n{MONOLITH}"),
        None,
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        config.context.properties,
        [
            ("plan".to_owned(), ValueSource::Cookie("plan".to_owned())),
            (
                "tenant".to_owned(),
                ValueSource::Header(http::HeaderName::from_static("x-tenant"))
            ),
        ]
    );
    check_error(
        &format!("[context]\nproperties = {{ tenant = \"query:t\" }}\n{MONOLITH}"),
        "fig-proxy.toml:2:25: unknown source kind `query`; use `header`, `trusted-header`, `cookie`, `jwt` or `client-cert`",
    );
}

const SHADOWED: &str = "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:8080\"]\n[upstreams.svc]\naddresses = [\"http://127.0.0.1:9000\"]\n[[routes]]\nname = \"items\"\nmatch = { prefix = \"/items\" }\nservice = \"svc\"\nflag = \"f\"\n";

#[test]
fn shadow_defaults_and_full_table_load() {
    let path = std::path::Path::new("/srv/fig/fig-proxy.toml");
    let text = format!("{SHADOWED}shadow = {{}}\n");
    let config = Config::parse(&text, Some(path), &Overrides::default()).unwrap();
    let shadow = config.routes[0].shadow.as_ref().unwrap();
    assert_eq!(shadow.percent, 100);
    assert_eq!(shadow.target, crate::config::ShadowTarget::Other);
    assert_eq!(shadow.methods, crate::config::SHADOW_SAFE_METHODS.to_vec());
    assert_eq!(shadow.compare_headers, vec![http::header::CONTENT_TYPE]);
    assert_eq!(shadow.max_request_body, 64 << 10);
    assert_eq!(shadow.max_response_body, 1 << 20);
    assert_eq!(shadow.timeout, Duration::from_secs(5));
    assert_eq!(shadow.samples, 20);
    assert_eq!(config.shadow.max_concurrent, 64);
    assert_eq!(
        config.shadow.dir.as_deref(),
        Some(std::path::Path::new("/srv/fig/fig-proxy.shadow"))
    );

    let text = format!(
        "{SHADOWED}shadow = {{ percent = 25, target = \"monolith\", methods = [\"get\", \"POST\"], compare_headers = [\"etag\"], ignore = [\"/items/*/id\"], max_request_body = \"1KiB\", max_response_body = 2048, timeout = \"750ms\", samples = 5 }}\n[shadow]\nmax_concurrent = 8\ndir = \"diffs\"\n"
    );
    let config = Config::parse(&text, Some(path), &Overrides::default()).unwrap();
    let shadow = config.routes[0].shadow.as_ref().unwrap();
    assert_eq!(shadow.percent, 25);
    assert_eq!(
        shadow.target,
        crate::config::ShadowTarget::Upstream("monolith".to_owned())
    );
    assert_eq!(shadow.methods, vec![http::Method::GET, http::Method::POST]);
    assert_eq!(shadow.max_request_body, 1024);
    assert_eq!(shadow.max_response_body, 2048);
    assert_eq!(shadow.timeout, Duration::from_millis(750));
    assert_eq!(config.shadow.max_concurrent, 8);
    assert_eq!(
        config.shadow.dir.as_deref(),
        Some(std::path::Path::new("/srv/fig/diffs"))
    );
}

#[test]
fn shadow_percent_out_of_range() {
    check_error(
        &format!("{SHADOWED}shadow = {{ percent = 150 }}\n"),
        "fig-proxy.toml:10:22: `percent` must be between 0 and 100",
    );
}

#[test]
fn shadow_target_unknown() {
    check_error(
        &format!("{SHADOWED}shadow = {{ target = \"nope\" }}\n"),
        "fig-proxy.toml:10:21: no upstream named `nope`; `target` is an upstream name or \"other\"",
    );
}

#[test]
fn shadow_ignore_path_without_slash() {
    check_error(
        &format!("{SHADOWED}shadow = {{ ignore = [\"items/*/id\"] }}\n"),
        "fig-proxy.toml:10:22: ignore path `items/*/id` must start with `/`, e.g. \"/items/*/id\"",
    );
}

#[test]
fn shadow_unknown_key() {
    let text = format!("{SHADOWED}shadow = {{ percnt = 5 }}\n");
    let err = Config::parse(
        &text,
        Some(std::path::Path::new("fig-proxy.toml")),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("fig-proxy.toml:10:"), "{err}");
    assert!(err.contains("unknown field `percnt`"), "{err}");
}

/// The mistakes of the issue's example, in four tables and three kinds of table, written in
/// another order than the tables are validated in.
const SEVERAL_MISTAKES: &str = r#"[[routes]]
name = "payments"
match = { prefix = "/payments" }
service = "payment"

[[routes]]
name = "orders"
match = { pattern = "/orders/id*" }
service = "monolith"

[upstreams.monolith]
addresses = ["http://127.0.0.1:8080"]

[upstreams.payment-service]
addresses = ["127.0.0.1:9000"]

[timeouts]
connect = "5 parsecs"
"#;

#[test]
fn every_mistake_of_a_file_is_reported_at_once_in_file_order() {
    let path = std::path::Path::new("fig-proxy.toml");
    let err = Config::parse(SEVERAL_MISTAKES, Some(path), &Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        [
            "fig-proxy.toml:4:11: no upstream named `payment`",
            "fig-proxy.toml:8:21: pattern `/orders/id*`: `*` and `**` must be a whole segment, found `id*`",
            "fig-proxy.toml:15:14: upstream address `127.0.0.1:9000` needs a scheme, e.g. http://127.0.0.1:9000",
            "fig-proxy.toml:18:11: invalid duration `5 parsecs` (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write e.g. \"500ms\", \"5s\", \"2m\"",
        ]
        .join("\n")
    );
    assert_eq!(err.errors().len(), 4);
    assert_eq!(
        err.errors()
            .iter()
            .map(|err| (err.line, err.column))
            .collect::<Vec<_>>(),
        [(4, 11), (8, 21), (15, 14), (18, 11)]
    );
}

#[test]
fn a_wrong_value_is_reported_once_not_again_through_its_placeholder() {
    // A token file that cannot be read is not also a missing token for a public admin API.
    check_error(
        &format!(
            "{MONOLITH}[admin]\nlisten = \"0.0.0.0:9901\"\ntoken_file = \"/nonexistent/token\"\n"
        ),
        "fig-proxy.toml:5:14: cannot read /nonexistent/token: No such file or directory (os error 2)",
    );
    // A wrong JWT table is not also a missing one for a `jwt:` source.
    check_error(
        &format!(
            "{MONOLITH}[context]\nuser_id = [\"jwt:sub\"]\n[context.jwt]\nalgorithm = \"ES256\"\n"
        ),
        "fig-proxy.toml:6:13: unsupported algorithm `ES256`; use HS256 or RS256",
    );
    // A wrong SLO value is not also a missing objective.
    check_error(
        &format!(
            "{MONOLITH}[[routes]]\nname = \"a\"\nmatch = {{ prefix = \"/a\" }}\nservice = \"monolith\"\nslo = {{ max_error_rate = 2 }}\n"
        ),
        "fig-proxy.toml:7:26: invalid `max_error_rate`; write a fraction below 1 like 0.05, or a percentage like \"5%\"",
    );
    // A wrong `--monolith` still names the upstream routes and the default use.
    let err = Config::from_overrides(&Overrides {
        monolith: Some("ftp://127.0.0.1:21".to_owned()),
        ..Overrides::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "<command line>: --monolith: upstream address `ftp://127.0.0.1:21` has scheme `ftp`; use http:// or https://"
    );
}

#[test]
fn a_syntax_error_stops_at_the_first_mistake() {
    let text = format!("{SEVERAL_MISTAKES}[server\n");
    let err = Config::parse(&text, None, &Overrides::default()).unwrap_err();
    assert_eq!(err.errors().len(), 1, "{err}");
    assert!(err.to_string().starts_with("<config>:19:"), "{err}");
}

#[test]
fn mistakes_with_no_place_in_the_file_come_last() {
    check_error(
        "[timeouts]\nconnect = \"soon\"\n",
        "fig-proxy.toml:2:11: invalid duration `soon` (expected number at 0); write e.g. \"500ms\", \"5s\", \"2m\"\nfig-proxy.toml: no upstream named `monolith`: add [upstreams.monolith] with its addresses, pass --monolith URL, or set server.default_upstream",
    );
}

/// An `https://` upstream gets its TLS settings built at load (the CA file read then), and
/// `protocol = "h2"` is kept; `--upstream-ca` is the CA of an https upstream that names none, and
/// a CA file that cannot be read is a mistake of the command line.
#[test]
fn https_upstreams_are_built_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).expect("cert");
    std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).expect("write");
    let path = dir.path().join("fig-proxy.toml");
    let text = "[upstreams.monolith]\naddresses = [\"https://127.0.0.1:8443\"]\nprotocol = \"h2\"\n\
                tls = { ca = \"ca.pem\", server_name = \"monolith.test\" }\n";
    let config = Config::parse(text, Some(&path), &Overrides::default()).expect("valid");
    let monolith = config.upstream("monolith").expect("monolith");
    assert_eq!(monolith.protocol, crate::config::Protocol::H2);
    let tls = monolith.tls.as_ref().expect("tls");
    assert!(!tls.insecure);
    assert_eq!(tls.config.alpn_protocols, [b"h2".to_vec()]);
    assert_eq!(
        tls.server_name
            .as_ref()
            .map(|name| name.to_str().into_owned()),
        Some("monolith.test".to_owned())
    );

    let overrides = Overrides {
        monolith: Some("https://127.0.0.1:8443".to_owned()),
        upstream_ca: Some(dir.path().join("ca.pem")),
        ..Overrides::default()
    };
    let config = Config::from_overrides(&overrides).expect("valid");
    let tls = config.upstreams[0].tls.as_ref().expect("tls");
    assert_eq!(tls.config.alpn_protocols, [b"http/1.1".to_vec()]);
    let err = Config::from_overrides(&Overrides {
        upstream_ca: Some(dir.path().join("missing.pem")),
        ..overrides
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("<command line>: --upstream-ca: cannot read certificates from"),
        "{err}"
    );
}
