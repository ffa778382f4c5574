//! The flag context: user id from header, cookie or JWT (signature checked), client IP.

use std::net::IpAddr;

use http::{HeaderMap, Request};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::config::{Config, Overrides};
use crate::decision::context::{ContextBuilder, client_ip};

fn builder(context_toml: &str) -> ContextBuilder {
    let dir = env!("CARGO_MANIFEST_DIR");
    let text =
        format!("[upstreams.monolith]\naddresses = [\"http://127.0.0.1:1\"]\n{context_toml}");
    let path = std::path::Path::new(dir).join("fig-proxy.toml");
    let config = Config::parse(&text, Some(&path), &Overrides::default()).unwrap();
    ContextBuilder::new(config.context)
}

/// The user id the context gets for a request with these headers.
fn user_id(builder: &ContextBuilder, headers: &[(&str, &str)]) -> Option<String> {
    let mut request = Request::get("/");
    for (key, value) in headers {
        request = request.header(*key, *value);
    }
    let (parts, ()) = request.body(()).unwrap().into_parts();
    builder
        .build(&parts, [127, 0, 0, 1].into())
        .to_owned()
        .user_id
}

fn hs256(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[test]
fn user_id_sources_in_order() {
    let b = builder("[context]\nuser_id = [\"header:x-user\", \"cookie:uid\"]\n");
    assert_eq!(
        user_id(&b, &[("x-user", "alice"), ("cookie", "uid=bob")]).as_deref(),
        Some("alice")
    );
    assert_eq!(
        user_id(&b, &[("cookie", "a=1; uid=bob; c=3")]).as_deref(),
        Some("bob")
    );
    assert_eq!(user_id(&b, &[("x-user", "")]), None);
    assert_eq!(user_id(&b, &[]), None);
}

#[test]
fn jwt_hs256_is_checked() {
    let b = builder(
        "[context]\nuser_id = [\"jwt:sub\"]\n[context.jwt]\nalgorithm = \"HS256\"\nsecret = \"right\"\n",
    );
    let good = format!("Bearer {}", hs256(json!({"sub": "carol"}), "right"));
    let forged = format!("Bearer {}", hs256(json!({"sub": "mallory"}), "wrong"));
    let expired = format!(
        "Bearer {}",
        hs256(json!({"sub": "carol", "exp": 1_000_000}), "right")
    );
    assert_eq!(
        user_id(&b, &[("authorization", &good)]).as_deref(),
        Some("carol")
    );
    assert_eq!(user_id(&b, &[("authorization", &forged)]), None);
    assert_eq!(user_id(&b, &[("authorization", &expired)]), None);
    assert_eq!(user_id(&b, &[("authorization", "Bearer not.a.jwt")]), None);
}

/// Issue 15: a token that is not valid yet (`nbf` in the future, past the leeway of 60 s) is not
/// trusted, as `[context.jwt]` documents; one inside the leeway is.
#[test]
fn jwt_not_before_is_checked_with_a_minute_of_leeway() {
    let b = builder(
        "[context]\nuser_id = [\"jwt:sub\", \"header:x-user-id\"]\n[context.jwt]\nalgorithm = \"HS256\"\nsecret = \"right\"\n",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bearer = |nbf: u64| {
        format!(
            "Bearer {}",
            hs256(json!({"sub": "carol", "nbf": nbf}), "right")
        )
    };
    let future = bearer(now + 3600);
    assert_eq!(
        user_id(
            &b,
            &[("authorization", &future), ("x-user-id", "header-user")]
        )
        .as_deref(),
        Some("header-user"),
        "a token valid only in an hour is absent: the next source decides"
    );
    for nbf in [now - 3600, now, now + 30] {
        assert_eq!(
            user_id(&b, &[("authorization", &bearer(nbf))]).as_deref(),
            Some("carol"),
            "nbf {nbf} is within the leeway of now {now}"
        );
    }
}

#[test]
fn jwt_rs256_from_cookie() {
    let b = builder(
        "[context]\nuser_id = [\"jwt:uid\"]\n[context.jwt]\nfrom = \"cookie:session\"\nalgorithm = \"RS256\"\npublic_key_file = \"test_data/rs256-public.pem\"\n",
    );
    let private = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/test_data/rs256-private.pem"
    ))
    .unwrap();
    let key = EncodingKey::from_rsa_pem(&private).unwrap();
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &json!({"uid": 42}), &key).unwrap();
    assert_eq!(
        user_id(&b, &[("cookie", &format!("session={token}"))]).as_deref(),
        Some("42")
    );
    let hs = hs256(json!({"uid": 7}), "whatever");
    assert_eq!(
        user_id(&b, &[("cookie", &format!("session={hs}"))]),
        None,
        "HS256 token against an RS256 key"
    );
}

#[test]
fn jwt_without_key_reads_claims() {
    let b = builder("[context]\nuser_id = [\"jwt:sub\"]\n[context.jwt]\n");
    let token = format!("Bearer {}", hs256(json!({"sub": "dave"}), "anything"));
    assert_eq!(
        user_id(&b, &[("authorization", &token)]).as_deref(),
        Some("dave")
    );
}

#[track_caller]
fn check_ip(peer: &str, xff: &[&str], trusted: &[&str], expected: &str) {
    let mut headers = HeaderMap::new();
    for value in xff {
        headers.append("x-forwarded-for", value.parse().unwrap());
    }
    let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
    let peer: IpAddr = peer.parse().unwrap();
    assert_eq!(client_ip(peer, &headers, &trusted).to_string(), expected);
}

#[test]
fn client_ip_with_trusted_proxies() {
    // Untrusted peers cannot claim another address.
    check_ip("203.0.113.9", &["1.2.3.4"], &[], "203.0.113.9");
    check_ip("203.0.113.9", &["1.2.3.4"], &["10.0.0.0/8"], "203.0.113.9");
    // A trusted peer: the right-most untrusted hop is the client.
    check_ip(
        "10.0.0.1",
        &["1.2.3.4, 10.0.0.7"],
        &["10.0.0.0/8"],
        "1.2.3.4",
    );
    check_ip(
        "10.0.0.1",
        &["6.6.6.6", "1.2.3.4"],
        &["10.0.0.0/8"],
        "1.2.3.4",
    );
    check_ip("10.0.0.1", &[], &["10.0.0.0/8"], "10.0.0.1");
    check_ip("10.0.0.1", &["10.0.0.5"], &["10.0.0.0/8"], "10.0.0.5");
    check_ip("::ffff:10.0.0.1", &["1.2.3.4"], &["10.0.0.0/8"], "1.2.3.4");
}

#[test]
fn ip_text_matches_display() {
    for ip in [
        "0.0.0.0",
        "127.0.0.1",
        "10.20.199.255",
        "1.100.10.9",
        "255.255.255.255",
        "::1",
        "2001:db8::8a2e:370:7334",
        "::ffff:192.0.2.128",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(
            crate::decision::context::IpText::new(ip).as_str(),
            ip.to_string()
        );
    }
}

/// Issue 15: a `trusted-header:` user id is read only from a peer in `trusted_proxies`, and
/// needs them.
#[test]
fn trusted_header_only_from_trusted_proxies() {
    let b = builder(
        "[context]\nuser_id = [\"trusted-header:x-user-id\"]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    let from = |peer: [u8; 4]| {
        let (parts, ()) = Request::get("/")
            .header("x-user-id", "alice")
            .body(())
            .unwrap()
            .into_parts();
        b.build(&parts, peer.into()).to_owned().user_id
    };
    assert_eq!(from([10, 1, 2, 3]).as_deref(), Some("alice"));
    assert_eq!(
        from([127, 0, 0, 1]),
        None,
        "a client that is no trusted proxy"
    );
    let text = "[upstreams.monolith]\naddresses = [\"http://127.0.0.1:1\"]\n[context]\nuser_id = [\"trusted-header:x-user-id\"]\n";
    let err = Config::parse(
        text,
        Some(std::path::Path::new("fig-proxy.toml")),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "fig-proxy.toml:4:12: a `trusted-header:` source needs `trusted_proxies`: the peers whose header is believed"
    );
}
