//! What a request names (target.rs): Host and authority checks, path normalisation (a table
//! and properties), upgrades, and the config keys that go with them (issue 15, items 6, 7, 9).

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue, Request, Version};
use proptest::prelude::*;

use crate::config::{Config, Overrides};
use crate::decision::flags::NoFlags;
use crate::decision::route::{RouteTable, route};
use crate::decision::state::Pins;
use crate::http::target::{
    BadTarget, PathError, allowed_upgrade, canonicalize, normalize_path, upgrade_accepted,
};
use crate::ops::metrics::Metrics;

use super::support::config;

// ---------------------------------------------------------------------------------------------
// Path normalisation.

#[track_caller]
fn check_path(path: &str, expected: Result<&str, PathError>) {
    let got = normalize_path(path);
    assert_eq!(got.as_deref().map_err(|err| *err), expected, "{path}");
}

#[test]
fn paths_in_normal_form_are_left_alone_without_a_copy() {
    for path in [
        "/",
        "/payments",
        "/payments/1",
        "/payments/",
        "/a/.b/..c/...",
        "/a;b=c",
        "/caf%C3%A9/%20",
    ] {
        assert!(
            matches!(normalize_path(path), Ok(Cow::Borrowed(same)) if same == path),
            "{path}"
        );
    }
}

#[test]
fn dot_segments_are_resolved() {
    check_path("/./payments/1", Ok("/payments/1"));
    check_path("/payments/./1", Ok("/payments/1"));
    check_path("/x/../payments/1", Ok("/payments/1"));
    check_path("/a/b/../../payments", Ok("/payments"));
    check_path("/a/b/..", Ok("/a/"));
    check_path("/a/b/.", Ok("/a/b/"));
    check_path("/a/..", Ok("/"));
    check_path("/.", Ok("/"));
    // Not dot-segments: dots inside a name.
    check_path("/a/.../b", Ok("/a/.../b"));
    check_path("/.well-known/x", Ok("/.well-known/x"));
}

#[test]
fn encoded_dot_segments_are_resolved_too() {
    check_path("/%2e/payments/1", Ok("/payments/1"));
    check_path("/%2E/payments/1", Ok("/payments/1"));
    check_path("/x/%2e%2e/payments/1", Ok("/payments/1"));
    check_path("/x/.%2E/payments/1", Ok("/payments/1"));
    check_path("/x/%2e./payments/1", Ok("/payments/1"));
}

#[test]
fn repeated_slashes_are_merged() {
    check_path("//payments/1", Ok("/payments/1"));
    check_path("/payments//1", Ok("/payments/1"));
    check_path("/payments///", Ok("/payments/"));
    check_path("//", Ok("/"));
    check_path("/a//..", Ok("/"));
}

#[test]
fn unreserved_characters_are_decoded_and_other_escapes_upper_cased() {
    check_path("/%70ayments/1", Ok("/payments/1"));
    check_path("/%50AY%2d%5F%7e%31", Ok("/PAY-_~1"));
    check_path("/caf%c3%a9", Ok("/caf%C3%A9"));
    check_path("/a%20b", Ok("/a%20b"));
    // `%25` is `%` itself: never decoded, so never decoded twice.
    check_path("/%2570ayments", Ok("/%2570ayments"));
    check_path("/a%3fb%23c", Ok("/a%3Fb%23c"));
}

#[test]
fn what_cannot_be_normalised_is_refused() {
    check_path("/../payments", Err(PathError::AboveRoot));
    check_path("/a/../../payments", Err(PathError::AboveRoot));
    check_path("/%2e%2e/payments", Err(PathError::AboveRoot));
    check_path("/..", Err(PathError::AboveRoot));
    check_path("/payments%2F1", Err(PathError::EncodedSlash));
    check_path("/payments%2f1", Err(PathError::EncodedSlash));
    check_path("/a%00b", Err(PathError::EncodedNul));
    check_path("/a%zz", Err(PathError::BadEscape));
    check_path("/a%2", Err(PathError::BadEscape));
    check_path("/a%", Err(PathError::BadEscape));
}

/// Pieces paths are made of in the properties: names, dot-segments, slashes and escapes of
/// every kind.
fn raw_path() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/", "//", ".", "..", "a", "B", "pay", "%2e", "%2E", "%70", "%7e", "%c3", "%25", "%41",
        "~", "-", "_", ";", "%20", "%zz", "%2F", "%00",
    ]);
    prop::collection::vec(piece, 0..12).prop_map(|pieces| format!("/{}", pieces.concat()))
}

/// A path of plain segments (unreserved characters, some of them dot-segments), and the same
/// path with some of its characters percent-encoded, in upper or lower case hex.
fn plain_and_encoded() -> impl Strategy<Value = (String, String)> {
    let segment = prop::sample::select(vec![
        "payments", "1", "a", ".", "..", "x.y", "~u", "A-Z_", "",
    ]);
    prop::collection::vec((segment, any::<u32>()), 1..8).prop_map(|segments| {
        let mut plain = String::new();
        let mut encoded = String::new();
        for (segment, bits) in segments {
            plain.push('/');
            encoded.push('/');
            plain.push_str(segment);
            for (idx, byte) in segment.bytes().enumerate() {
                match (bits >> (2 * (idx % 16))) & 3 {
                    0 => encoded.push(char::from(byte)),
                    1 => encoded.push_str(&format!("%{byte:02X}")),
                    _ => encoded.push_str(&format!("%{byte:02x}")),
                }
            }
        }
        (plain, encoded)
    })
}

/// A table of routes of every kind, for the matching property.
fn table() -> RouteTable {
    let text = r#"
[upstreams.monolith]
addresses = ["http://127.0.0.1:1"]
[upstreams.svc]
addresses = ["http://127.0.0.1:2"]
[[routes]]
name = "exact"
match = { exact = "/payments/1" }
service = "svc"
[[routes]]
name = "pattern"
match = { pattern = "/a/*/~u/**" }
service = "svc"
[[routes]]
name = "prefix"
match = { prefix = "/payments" }
service = "svc"
"#;
    RouteTable::compile(
        &config(text),
        &Pins::open(None).unwrap(),
        &Metrics::default(),
    )
}

/// The route a request for `path` takes, after the proxy's first step.
fn routed(table: &RouteTable, path: &str) -> Result<Option<usize>, BadTarget> {
    let (mut parts, ()) = Request::get(path)
        .header("host", "t")
        .body(())
        .unwrap()
        .into_parts();
    canonicalize(&mut parts)?;
    Ok(route(&parts, table, &NoFlags, || unreachable!("no flag")).route)
}

proptest! {
    #[test]
    fn normalising_twice_changes_nothing(path in raw_path()) {
        if let Ok(normal) = normalize_path(&path) {
            let again = normalize_path(&normal);
            prop_assert!(matches!(again, Ok(Cow::Borrowed(_))), "{path} → {normal} → {again:?}");
        }
    }

    #[test]
    fn a_normal_path_has_no_empty_or_dot_segment(path in raw_path()) {
        if let Ok(normal) = normalize_path(&path) {
            prop_assert!(normal.starts_with('/'), "{normal}");
            for bad in ["//", "/./", "/../"] {
                prop_assert!(!normal.contains(bad), "{path} → {normal}");
            }
            prop_assert!(!normal.ends_with("/.") && !normal.ends_with("/.."), "{path} → {normal}");
        }
    }

    #[test]
    fn encoding_unreserved_characters_changes_nothing(
        (plain, encoded) in plain_and_encoded()
    ) {
        prop_assert_eq!(normalize_path(&plain), normalize_path(&encoded), "{} vs {}", plain, encoded);
    }

    #[test]
    fn routing_an_encoded_path_is_routing_the_decoded_one(
        (plain, encoded) in plain_and_encoded()
    ) {
        let table = table();
        prop_assert_eq!(routed(&table, &plain), routed(&table, &encoded), "{} vs {}", plain, encoded);
    }
}

#[test]
fn the_bypasses_of_the_issue_take_the_route() {
    let table = table();
    let prefix = Ok(Some(2));
    for path in [
        "/payments/2",
        "/./payments/2",
        "//payments/2",
        "/%70ayments/2",
        "/x/../payments/2",
        "/%2e/payments/2",
    ] {
        assert_eq!(routed(&table, path), prefix, "{path}");
    }
    assert_eq!(routed(&table, "/payments/./1"), Ok(Some(0)));
    assert_eq!(routed(&table, "/a/b/%7Eu"), Ok(Some(1)));
}

// ---------------------------------------------------------------------------------------------
// The request's authority.

/// Canonicalises a request built of `version`, `uri` and `headers`; returns the outcome, the
/// `Host` values after it, and the URI.
fn target(
    version: Version,
    uri: &str,
    headers: &[(&str, &str)],
) -> (Result<(), BadTarget>, Vec<String>, String) {
    let mut builder = Request::get(uri).version(version);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (mut parts, ()) = builder.body(()).unwrap().into_parts();
    let result = canonicalize(&mut parts);
    let hosts = parts
        .headers
        .get_all("host")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    (result, hosts, parts.uri.to_string())
}

#[test]
fn http11_needs_exactly_one_valid_host() {
    let v11 = Version::HTTP_11;
    assert_eq!(target(v11, "/a", &[]).0, Err(BadTarget::MissingHost));
    assert_eq!(
        target(v11, "/a", &[("host", "a.example"), ("host", "b.example")]).0,
        Err(BadTarget::RepeatedHost)
    );
    // The same value twice is refused too, as NGINX does (HAProxy merges it).
    assert_eq!(
        target(v11, "/a", &[("host", "t"), ("host", "t")]).0,
        Err(BadTarget::RepeatedHost)
    );
    for bad in [
        "", "user@t", "t/x", "t:80:80", "t:port", "t:123456", "[::1", "[]", "a b",
    ] {
        assert_eq!(
            target(v11, "/a", &[("host", bad)]).0,
            Err(BadTarget::InvalidHost),
            "{bad:?}"
        );
    }
    for good in [
        "t",
        "t:8080",
        "127.0.0.1:1",
        "[::1]:8080",
        "[::1]",
        "xn--bcher-kva.example",
    ] {
        assert_eq!(target(v11, "/a", &[("host", good)]).0, Ok(()), "{good}");
    }
    // HTTP/1.0 did not require Host.
    assert_eq!(target(Version::HTTP_10, "/a", &[]).0, Ok(()));
}

#[test]
fn an_absolute_form_target_names_the_host() {
    let (result, hosts, uri) = target(
        Version::HTTP_11,
        "http://other.example/echo?x=1",
        &[("host", "good.example")],
    );
    assert_eq!(result, Ok(()));
    assert_eq!(hosts, ["other.example"]);
    assert_eq!(uri, "http://other.example/echo?x=1");
    let (result, hosts, _) = target(Version::HTTP_10, "http://other.example:8080/", &[]);
    assert_eq!(
        (result, hosts),
        (Ok(()), vec!["other.example:8080".to_owned()])
    );
    assert_eq!(
        target(Version::HTTP_11, "ftp://other.example/x", &[("host", "t")]).0,
        Err(BadTarget::Scheme)
    );
    assert_eq!(
        target(
            Version::HTTP_11,
            "http://user@other.example/x",
            &[("host", "t")]
        )
        .0,
        Err(BadTarget::InvalidAuthority)
    );
    // Authority form is for CONNECT, asterisk form for OPTIONS.
    assert_eq!(
        target(Version::HTTP_11, "other.example:80", &[("host", "t")]).0,
        Err(BadTarget::NotAPath)
    );
    assert_eq!(
        target(Version::HTTP_11, "*", &[("host", "t")]).0,
        Err(BadTarget::NotAPath)
    );
}

#[test]
fn http2_authority_and_host_must_agree() {
    let v2 = Version::HTTP_2;
    let (result, hosts, _) = target(v2, "http://t.example/a", &[]);
    assert_eq!((result, hosts), (Ok(()), vec!["t.example".to_owned()]));
    let (result, hosts, _) = target(v2, "http://t.example/a", &[("host", "T.example")]);
    assert_eq!((result, hosts), (Ok(()), vec!["t.example".to_owned()]));
    assert_eq!(
        target(v2, "http://evil.example/a", &[("host", "good.example")]).0,
        Err(BadTarget::HostMismatch)
    );
    // No `:authority`: `Host` names it, and one of them is needed.
    assert_eq!(target(v2, "/a", &[("host", "good.example")]).0, Ok(()));
    assert_eq!(target(v2, "/a", &[]).0, Err(BadTarget::MissingHost));
}

#[test]
fn the_path_is_normalised_and_the_query_kept() {
    let (result, _, uri) = target(
        Version::HTTP_11,
        "//x/../%70ayments/%7e1?q=%2e%2e/..//",
        &[("host", "t")],
    );
    assert_eq!(
        (result, uri.as_str()),
        (Ok(()), "/payments/~1?q=%2e%2e/..//")
    );
    let (result, _, uri) = target(Version::HTTP_2, "http://t/./a", &[]);
    assert_eq!((result, uri.as_str()), (Ok(()), "http://t/a"));
    assert_eq!(
        target(Version::HTTP_11, "/../a", &[("host", "t")]).0,
        Err(BadTarget::Path(PathError::AboveRoot))
    );
}

// ---------------------------------------------------------------------------------------------
// Upgrades.

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn only_allowed_upgrades_are_forwarded_and_never_http_ones() {
    let websocket = ["websocket"];
    let allowed = |upgrade: &str, list: &[&str]| {
        allowed_upgrade(&headers(&[("upgrade", upgrade)]), list)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    assert_eq!(
        allowed("websocket", &websocket).as_deref(),
        Some("websocket")
    );
    assert_eq!(
        allowed("WebSocket", &websocket).as_deref(),
        Some("WebSocket")
    );
    assert_eq!(allowed("h2c", &websocket), None);
    assert_eq!(
        allowed("h2c, websocket", &websocket).as_deref(),
        Some("websocket")
    );
    assert_eq!(allowed("websocket", &[]), None);
    // Never HTTP/2 or another HTTP version, whatever the list says.
    assert_eq!(allowed("h2c", &["h2c"]), None);
    assert_eq!(allowed("HTTP/2.0", &["http"]), None);
    assert_eq!(allowed("foo/2", &["foo"]).as_deref(), Some("foo/2"));
}

#[test]
fn a_101_must_switch_to_what_was_asked() {
    let asked = HeaderValue::from_static("websocket");
    assert!(upgrade_accepted(
        &asked,
        &headers(&[("upgrade", "WebSocket")])
    ));
    assert!(!upgrade_accepted(&asked, &headers(&[("upgrade", "h2c")])));
    assert!(!upgrade_accepted(&asked, &headers(&[])));
    assert!(!upgrade_accepted(
        &asked,
        &headers(&[("upgrade", "websocket, h2c")])
    ));
}

// ---------------------------------------------------------------------------------------------
// Config.

const UPSTREAMS: &str = "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:1\"]\n[upstreams.svc]\naddresses = [\"http://127.0.0.1:2\"]\n";

fn route_config(route: &str) -> Result<Config, String> {
    let text = format!(
        "{UPSTREAMS}[[routes]]\nname = \"r\"\nmatch = {{ prefix = \"/r\" }}\nservice = \"svc\"\n{route}\n"
    );
    Config::parse(
        &text,
        Some(std::path::Path::new("fig-proxy.toml")),
        &Overrides::default(),
    )
    .map_err(|err| err.to_string())
}

#[test]
fn upgrades_default_to_websocket_and_are_lowercased() {
    let config = route_config("").unwrap();
    assert_eq!(config.routes[0].upgrades, ["websocket"]);
    let config = route_config("upgrades = [\"WebSocket\", \"foo\", \"websocket\"]").unwrap();
    assert_eq!(config.routes[0].upgrades, ["websocket", "foo"]);
    let config = route_config("upgrades = []").unwrap();
    assert!(config.routes[0].upgrades.is_empty());
}

#[test]
fn h2c_and_bad_upgrade_names_are_refused_where_they_are() {
    assert_eq!(
        route_config("upgrades = [\"websocket\", \"h2c\"]").unwrap_err(),
        "fig-proxy.toml:9:26: upgrades to `h2c` are never forwarded: past a 101 the proxy copies bytes, so a tunnel to an HTTP connection would carry requests its routes never see"
    );
    assert_eq!(
        route_config("upgrades = [\"HTTP\"]").unwrap_err(),
        "fig-proxy.toml:9:13: upgrades to `HTTP` are never forwarded: past a 101 the proxy copies bytes, so a tunnel to an HTTP connection would carry requests its routes never see"
    );
    assert_eq!(
        route_config("upgrades = [\"web socket\"]").unwrap_err(),
        "fig-proxy.toml:9:13: invalid upgrade protocol `web socket`; write a protocol name such as \"websocket\", without version"
    );
}

#[test]
fn a_route_path_that_could_never_match_is_refused() {
    let parse = |matcher: &str| {
        let text =
            format!("{UPSTREAMS}[[routes]]\nname = \"r\"\nmatch = {matcher}\nservice = \"svc\"\n");
        Config::parse(
            &text,
            Some(std::path::Path::new("fig-proxy.toml")),
            &Overrides::default(),
        )
        .map(|_| ())
        .map_err(|err| err.to_string())
    };
    assert_eq!(
        parse("{ prefix = \"/a//b\" }"),
        Err("fig-proxy.toml:7:20: `/a//b` never matches: request paths are matched in normal form; write `/a/b`".to_owned())
    );
    assert_eq!(
        parse("{ exact = \"/%70ay\" }"),
        Err("fig-proxy.toml:7:19: `/%70ay` never matches: request paths are matched in normal form; write `/pay`".to_owned())
    );
    assert_eq!(
        parse("{ pattern = \"/a/../b\" }"),
        Err("fig-proxy.toml:7:21: `/a/../b` never matches: request paths are matched in normal form; write `/b`".to_owned())
    );
    assert_eq!(parse("{ prefix = \"/payments/\" }"), Ok(()));
    assert_eq!(parse("{ pattern = \"/a/*/b/**\" }"), Ok(()));
}
