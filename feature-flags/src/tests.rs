//! Unit tests of evaluation, editing and the file format.

use std::path::Path;

use crate::{Context, Flags, ListEdit, Reason, file};

#[track_caller]
fn flags(json: &str) -> Flags {
    let features = file::parse_features(Path::new("test.json"), json).expect("valid flags");
    Flags::from_features(features)
}

#[test]
fn unknown_flag_is_off() {
    let flags = flags(r#"{"version":2,"features":[]}"#);
    let eval = flags.evaluate("nope", &Context::default());
    assert!(!eval.enabled);
    assert_eq!(eval.reason, Reason::NotFound);
    assert_eq!(eval.variant.name, "disabled");
}

#[test]
fn reason_names_the_deciding_strategy() {
    let flags = flags(
        r#"{"version":2,"features":[{"name":"f","enabled":true,"strategies":[
            {"name":"flexibleRollout","parameters":{"rollout":"0","stickiness":"default","groupId":"f"}},
            {"name":"remoteAddress","parameters":{"IPs":"10.0.0.0/8"}}]}]}"#,
    );
    let inside = Context {
        remote_address: Some("10.1.2.3".into()),
        ..Context::default()
    };
    assert_eq!(
        flags.evaluate("f", &inside).reason,
        Reason::Strategy {
            index: 1,
            name: "remoteAddress".into()
        }
    );
    let outside = Context {
        remote_address: Some("192.168.1.1".into()),
        ..Context::default()
    };
    assert_eq!(
        flags.evaluate("f", &outside).reason,
        Reason::NoStrategyMatched
    );
}

#[test]
fn parse_error_has_line_and_column() {
    let err = file::parse_features(
        Path::new("flags.json"),
        "{\n  \"version\": 2,\n  \"features\": [,]\n}",
    )
    .expect_err("bad json");
    let msg = err.to_string();
    assert!(msg.starts_with("flags.json:3:16: expected value"), "{msg}");
}

#[test]
fn uncompilable_constraint_is_refused() {
    let err = file::parse_features(
        Path::new("flags.json"),
        r#"{"version":2,"features":[{"name":"f","enabled":true,"strategies":[{"name":"default",
           "constraints":[{"contextName":"userId","operator":"NUM_GT","value":"abc"}]}]}]}"#,
    )
    .expect_err("bad number");
    assert!(err.to_string().contains("flag `f`"), "{err}");
}

/// The names in `dir`, sorted.
fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the directory")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Issue 15: a write that fails half-way leaves the old file as it was, and no temporary file.
#[test]
fn a_failed_atomic_write_leaves_the_old_file_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.json");
    std::fs::write(&path, "old\n").expect("write the old file");
    let res = crate::write_atomically_with(&path, crate::FileMode::Keep, |file| {
        use std::io::Write as _;
        file.write_all(b"half of the new")?;
        Err(std::io::Error::other("disk full"))
    });
    assert_eq!(res.expect_err("the write fails").to_string(), "disk full");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "old\n");
    assert_eq!(
        dir_names(dir.path()),
        ["state.json"],
        "no temporary file is left"
    );

    crate::write_atomically(&path, b"new\n", crate::FileMode::Keep).expect("write");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
    assert_eq!(dir_names(dir.path()), ["state.json"]);
}

/// A symlink at the target is replaced by the new file, never written through; the old fixed
/// temporary names (`NAME.tmp`, `.NAME.tmp-PID`) are not used at all.
#[cfg(unix)]
#[test]
fn an_atomic_write_follows_no_symlink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").expect("write the victim");
    let path = dir.path().join("flags.json");
    for planted in [
        "flags.json".to_owned(),
        "flags.json.tmp".to_owned(),
        format!(".flags.json.tmp-{}", std::process::id()),
    ] {
        std::os::unix::fs::symlink(&victim, dir.path().join(&planted)).expect("plant a symlink");
    }
    crate::write_atomically(&path, b"{}\n", crate::FileMode::Keep).expect("write");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "precious\n"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}\n");
    assert!(!std::fs::symlink_metadata(&path).expect("stat").is_symlink());
}

/// `OwnerOnly` makes a secret 0600 (also over a file others could read); `Keep` keeps the old
/// file's mode exactly.
#[cfg(unix)]
#[test]
fn an_atomic_write_sets_or_keeps_the_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let mode = |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    let secret = dir.path().join("admin.token");
    std::fs::write(&secret, "old").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    crate::write_atomically(&secret, b"t0k\n", crate::FileMode::OwnerOnly).expect("write");
    assert_eq!(mode(&secret), 0o600);

    let shared = dir.path().join("flags.json");
    std::fs::write(&shared, "{}").expect("write");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    crate::write_atomically(&shared, b"{}\n", crate::FileMode::Keep).expect("write");
    assert_eq!(mode(&shared), 0o640);
}

/// `create_atomically` makes a file once: over an existing one it fails with `AlreadyExists` and
/// leaves it as it was (two proxies generating a token for one config keep the first).
#[test]
fn create_atomically_never_replaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("admin-token");
    crate::create_atomically(&path, b"first\n", crate::FileMode::OwnerOnly).expect("create");
    let err = crate::create_atomically(&path, b"second\n", crate::FileMode::OwnerOnly)
        .expect_err("the file exists");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "first\n");
    assert_eq!(
        dir_names(dir.path()),
        ["admin-token"],
        "no temporary file is left"
    );
}

#[test]
fn did_you_mean_names_the_nearest_expected_key() {
    use crate::did_you_mean;
    assert_eq!(
        did_you_mean("unknown field `max_cycle`, expected one of `max_cycles`, `baseline`"),
        "unknown field `max_cycle`, expected one of `max_cycles`, `baseline`; did you mean `max_cycles`?"
    );
    assert_eq!(
        did_you_mean("unknown field `fille`, expected `file` or `unleash`"),
        "unknown field `fille`, expected `file` or `unleash`; did you mean `file`?"
    );
    // Nothing close: no guess.
    assert_eq!(
        did_you_mean("unknown field `zzz`, expected `file` or `unleash`"),
        "unknown field `zzz`, expected `file` or `unleash`"
    );
    assert_eq!(did_you_mean("expected a string"), "expected a string");
}

#[track_caller]
fn check_list_edit(current: &[&str], edit: ListEdit, expect: Result<&[&str], &str>) {
    let current: Vec<String> = current.iter().map(|s| (*s).to_owned()).collect();
    let res = crate::edit::edit_list(&current, &edit, "user");
    match expect {
        Ok(want) => assert_eq!(res.expect("an edit that works"), want),
        Err(want) => assert!(
            res.as_ref()
                .is_err_and(|err| err.to_string().contains(want)),
            "{res:?}"
        ),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// Issue 17, item 5: `users` replaced the list; --add and --remove edit it.
#[test]
fn a_list_edit_adds_removes_or_replaces() {
    let change = |add: &[&str], remove: &[&str]| ListEdit::Change {
        add: strings(add),
        remove: strings(remove),
    };
    check_list_edit(&["a", "b"], change(&["c"], &[]), Ok(&["a", "b", "c"]));
    check_list_edit(&["a", "b"], change(&["b", "c"], &["a"]), Ok(&["b", "c"]));
    check_list_edit(
        &["a"],
        ListEdit::Set(strings(&["x", "x", "y"])),
        Ok(&["x", "y"]),
    );
    check_list_edit(&[], change(&["a"], &[]), Ok(&["a"]));
    check_list_edit(
        &["a"],
        change(&[], &["z"]),
        Err("`z` is not in the flag's user list (a)"),
    );
    check_list_edit(
        &["a"],
        change(&[], &["a"]),
        Err("leaves the user list empty"),
    );
}

#[test]
fn users_on_a_flag_that_is_off_says_when_it_takes_effect() {
    let mut features =
        file::parse_features(Path::new("t.json"), r#"{"version":2,"features":[]}"#).expect("valid");
    crate::edit::create(&mut features, "f", None).expect("create");
    let change =
        crate::edit::users(&mut features, "f", &ListEdit::Set(strings(&["alice"]))).expect("users");
    assert!(
        change.note().is_some_and(|note| note.contains("is off")),
        "{:?}",
        change.note()
    );
    // `enable` keeps the list: on for alice only, not for everyone.
    crate::edit::set_enabled(&mut features, "f", true).expect("enable");
    let flags = Flags::from_features(features.clone());
    let user = |id: &str| Context {
        user_id: Some(id.to_owned()),
        ..Context::default()
    };
    assert!(flags.is_enabled("f", &user("alice")));
    assert!(!flags.is_enabled("f", &user("bob")));
    // Beside a 100% rollout the list changes nobody's answer, and the note says so.
    crate::edit::rollout(&mut features, "f", 100, None).expect("rollout");
    let change = crate::edit::users(
        &mut features,
        "f",
        &ListEdit::Change {
            add: strings(&["carol"]),
            remove: Vec::new(),
        },
    )
    .expect("users --add");
    assert!(
        change
            .note()
            .is_some_and(|note| note.contains("on for everyone"))
    );
    assert_eq!(
        change.list_change(),
        Some((
            strings(&["carol"]),
            Vec::new(),
            strings(&["alice", "carol"])
        ))
    );
}

// Issue 17, item 8: the engine's `StrategyParseError("Failed to parse rule ...")` dump becomes
// the strategy and constraint at fault and what the operator needs.
#[test]
fn engine_errors_name_the_constraint_at_fault() {
    let check = |constraint: &str, want: &str| {
        let json = format!(
            r#"{{"version":2,"features":[{{"name":"f","enabled":true,"strategies":[
                {{"name":"default"}},
                {{"name":"flexibleRollout","parameters":{{"rollout":"50","groupId":"f"}},
                  "constraints":[{{"contextName":"userId","operator":"IN","values":["a"]}},{constraint}]}}]}}]}}"#
        );
        let err = file::parse_features(Path::new("flags.json"), &json)
            .expect_err("refused")
            .to_string();
        assert_eq!(err, format!("flags.json: flag `f`: {want}"));
        assert!(!err.contains("StrategyParseError"));
    };
    check(
        r#"{"contextName":"n","operator":"NUM_EQ","value":"abc"}"#,
        "strategy 1 (flexibleRollout): constraint `n NUM_EQ abc` cannot be compiled: the operator needs a number as `value`",
    );
    check(
        r#"{"contextName":"appVersion","operator":"SEMVER_EQ","value":"1.x"}"#,
        "strategy 1 (flexibleRollout): constraint `appVersion SEMVER_EQ 1.x` cannot be compiled: the operator needs a version as `value`, such as 1.2.3",
    );
    check(
        r#"{"contextName":"userId","operator":"STR_EQUALS","values":["a"]}"#,
        "strategy 1 (flexibleRollout): constraint `userId STR_EQUALS [a]` cannot be compiled: the operator is not one Unleash knows (IN, NOT_IN, STR_CONTAINS, STR_STARTS_WITH, STR_ENDS_WITH, NUM_EQ, NUM_GT, NUM_GTE, NUM_LT, NUM_LTE, DATE_AFTER, DATE_BEFORE, SEMVER_EQ, SEMVER_GT, SEMVER_LT)",
    );
}

// Issue 17, item 1 ("same rule for every file Fig reads"): serde skipped unknown keys, so
// `"enable": true` left the flag off without a word.
#[test]
fn an_unknown_key_in_a_flags_file_is_refused_with_the_nearest_one() {
    let check = |json: &str, want: &str| {
        let err = file::parse_features(Path::new("flags.json"), json)
            .expect_err("refused")
            .to_string();
        assert_eq!(err, want);
    };
    check(
        r#"{"version":2,"features":[{"name":"f","enable":true}]}"#,
        "flags.json: unknown key `enable` in flag `f`; did you mean `enabled`?",
    );
    check(
        r#"{"version":2,"feature":[]}"#,
        "flags.json: unknown key `feature` in the file; did you mean `features`?",
    );
    check(
        r#"{"version":2,"features":[{"name":"f","enabled":true,"strategies":[{"name":"default","constraints":[{"contextName":"userId","operator":"IN","value":["a"],"invert":true}]}]}]}"#,
        "flags.json: unknown key `invert` in flag `f`, strategy 0, constraint 0; did you mean `inverted`?",
    );
    // What an Unleash server adds to its answer is not a typo.
    file::parse_features(
        Path::new("flags.json"),
        r#"{"version":2,"features":[{"name":"f","enabled":true,"stale":false,"impressionData":false,
            "strategies":[{"id":"6f1c","name":"default","title":"","disabled":false,"constraints":[]}]}],
            "query":{"project":["default"],"inlineSegmentConstraints":true},"meta":{"revisionId":3}}"#,
    )
    .expect("a server's answer is a valid flags file");
}
