//! "Did you mean ...?": the nearest valid name for a mistyped key, table or variant.
//!
//! It lives in this crate because it is the lowest one the CLI (`fig.toml`), the proxy (its TOML
//! config) and the flag files all read through; `strsim` is clap's own edit distance. The `fig`
//! crate compiles this same file as its own module (`#[path]`) for `fig.toml`, so that its
//! analyzer-only build needs no flag store: keep it to `std` and `strsim`.

/// The name in `candidates` closest to `unknown`, if one is close enough to be a typo of it
/// (Jaro similarity above 0.7, the threshold clap uses for its suggestions).
pub fn nearest_name<'a>(
    unknown: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro(unknown, candidate), candidate))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// serde's message for an unknown key or variant (`unknown field `maxcycles`, expected one of
/// `max_cycles`, ...` or `... expected `file` or `unleash``) with the nearest expected name
/// added: `...; did you mean `max_cycles`?`. Other messages are returned as they are.
pub fn did_you_mean(message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| !name.is_empty())
        .collect();
    match nearest_name(unknown, candidates) {
        Some(name) => format!("{message}; did you mean `{name}`?"),
        None => message.to_owned(),
    }
}
