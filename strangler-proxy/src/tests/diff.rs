//! The response comparison of shadow traffic (`crate::shadow::diff`) and the sticky buckets.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::shadow::bucket;
use crate::shadow::diff::{Captured, CompareConfig, IgnorePattern, compare};

/// Compares two 200 responses with these bodies, ignoring `ignore`, and renders each
/// difference as `path: primary -> shadow (detail)`, one per line; "equal" when there is none.
#[track_caller]
fn check(primary: &str, shadow: &str, ignore: &[&str], expect: &str) {
    check_full((200, &[], primary), (200, &[], shadow), ignore, expect);
}

#[track_caller]
fn check_full(
    primary: (u16, &[(&str, &str)], &str),
    shadow: (u16, &[(&str, &str)], &str),
    ignore: &[&str],
    expect: &str,
) {
    let headers = |list: &[(&str, &str)]| {
        let mut map = HeaderMap::new();
        for (name, value) in list {
            map.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::try_from(*value).unwrap(),
            );
        }
        map
    };
    let (primary_headers, shadow_headers) = (headers(primary.1), headers(shadow.1));
    let config = CompareConfig {
        headers: vec![http::header::CONTENT_TYPE],
        ignore: ignore
            .iter()
            .map(|p| IgnorePattern::parse(p).unwrap())
            .collect(),
    };
    let comparison = compare(
        &Captured {
            status: primary.0,
            headers: &primary_headers,
            body: primary.2.as_bytes(),
        },
        &Captured {
            status: shadow.0,
            headers: &shadow_headers,
            body: shadow.2.as_bytes(),
        },
        &config,
    );
    let got = if comparison.is_equal() {
        "equal".to_owned()
    } else {
        comparison
            .differences
            .iter()
            .map(|d| {
                let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
                let detail = d
                    .detail
                    .as_ref()
                    .map_or_else(String::new, |d| format!(" ({d})"));
                format!(
                    "{}: {} -> {}{detail}",
                    d.path,
                    side(&d.primary),
                    side(&d.shadow)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(got, expect);
    assert_eq!(comparison.is_equal(), comparison.total == 0);
}

#[test]
fn same_json_in_another_key_order_is_equal() {
    check(
        r#"{"id": 1, "name": "a", "tags": ["x", "y"], "nested": {"b": 2, "a": 1}}"#,
        r#"{"nested": {"a": 1, "b": 2}, "tags": ["x", "y"], "name": "a", "id": 1}"#,
        &[],
        "equal",
    );
}

#[test]
fn whitespace_does_not_matter_in_json() {
    check("{\"a\":1}", "{\n  \"a\" : 1\n}\n", &[], "equal");
}

#[test]
fn changed_value_is_reported_with_both_sides() {
    check(
        r#"{"id": 1, "total": 10}"#,
        r#"{"total": 12, "id": 1}"#,
        &[],
        "/total: 10 -> 12",
    );
}

#[test]
fn missing_and_extra_keys_are_reported() {
    check(
        r#"{"a": 1, "b": 2}"#,
        r#"{"a": 1, "c": 3}"#,
        &[],
        "/b: 2 -> (absent)\n/c: (absent) -> 3",
    );
}

/// JSON has one number type (RFC 8259, section 6): `1` and `1.0` are the same value.
#[test]
fn integer_and_float_of_the_same_value_are_equal() {
    check(
        r#"{"n": 1, "m": 2.50}"#,
        r#"{"n": 1.0, "m": 2.5}"#,
        &[],
        "equal",
    );
}

#[test]
fn large_integers_are_compared_exactly() {
    check(
        r#"{"n": 9007199254740993}"#,
        r#"{"n": 9007199254740992}"#,
        &[],
        "/n: 9007199254740993 -> 9007199254740992",
    );
}

#[test]
fn number_and_string_differ() {
    check(r#"{"n": 1}"#, r#"{"n": "1"}"#, &[], r#"/n: 1 -> "1""#);
}

#[test]
fn nested_arrays_are_compared_by_index() {
    check(
        r#"{"items": [{"id": 1, "q": [1, 2]}, {"id": 2, "q": [3]}]}"#,
        r#"{"items": [{"id": 1, "q": [1, 2, 9]}, {"id": 2, "q": [4]}, {"id": 3}]}"#,
        &[],
        "/items/0/q/2: (absent) -> 9\n/items/1/q/0: 3 -> 4\n/items/2: (absent) -> {\"id\":3}",
    );
}

#[test]
fn ignored_fields_with_wildcards_are_left_out() {
    check(
        r#"{"generated_at": "2026-01-01T00:00:00Z", "items": [{"id": "a1", "sku": 7}, {"id": "b2", "sku": 8}]}"#,
        r#"{"generated_at": "2026-11-22T07:00:00Z", "items": [{"id": "zz", "sku": 7}, {"id": "yy", "sku": 9}]}"#,
        &["/generated_at", "/items/*/id"],
        "/items/1/sku: 8 -> 9",
    );
}

#[test]
fn an_ignored_path_covers_its_subtree_and_absence() {
    check(
        r#"{"meta": {"trace": "x", "host": "a"}, "v": 1}"#,
        r#"{"v": 1}"#,
        &["/meta"],
        "equal",
    );
}

#[test]
fn pointer_segments_are_escaped() {
    check(
        r#"{"a/b": 1, "c~d": 2}"#,
        r#"{"a/b": 2, "c~d": 3}"#,
        &[],
        "/a~1b: 1 -> 2\n/c~0d: 2 -> 3",
    );
}

#[test]
fn non_json_bodies_are_compared_by_bytes() {
    check(
        "hello world\n",
        "hello there world\n",
        &[],
        "body: 12 bytes -> 18 bytes (first difference at byte 6)",
    );
    check("same bytes", "same bytes", &[], "equal");
}

#[test]
fn a_body_that_is_a_prefix_differs_at_its_end() {
    check(
        "abc",
        "abcdef",
        &[],
        "body: 3 bytes -> 6 bytes (first difference at byte 3)",
    );
}

#[test]
fn json_against_non_json_is_compared_by_bytes() {
    check(
        r#"{"a": 1}"#,
        "<html>",
        &[],
        "body: 8 bytes -> 6 bytes (first difference at byte 0)",
    );
}

#[test]
fn status_and_chosen_headers_are_compared() {
    check_full(
        (
            200,
            &[("content-type", "application/json"), ("date", "x")],
            "{}",
        ),
        (404, &[("content-type", "text/plain"), ("date", "y")], "{}"),
        &[],
        "status: 200 -> 404\nheader:content-type: application/json -> text/plain",
    );
}

#[test]
fn ignore_patterns_must_start_with_a_slash() {
    assert!(IgnorePattern::parse("items/*/id").is_err());
    assert!(IgnorePattern::parse("/items/*/id").is_ok());
}

/// The bucket is Unleash's normalized stickiness, so it is stable across processes and the
/// same user id always lands in the same bucket.
#[test]
fn buckets_are_sticky_and_spread() {
    assert_eq!(bucket("payments", "user-1"), bucket("payments", "user-1"));
    let buckets: Vec<u8> = (0..1000)
        .map(|n| bucket("payments", &format!("user-{n}")))
        .collect();
    assert!(buckets.iter().all(|b| (1..=100).contains(b)));
    let low = buckets.iter().filter(|b| **b <= 50).count();
    assert!(
        (400..=600).contains(&low),
        "{low} of 1000 users in the lower half"
    );
}
