//! Names Rust code sees without an import, and the standard library's path roots: what the
//! suggestions (`suggest.rs`) and the generated code (`templates::codegen`) leave as written.

/// Path roots of the standard library: a path starting with one works in any crate.
pub const STD_ROOTS: &[&str] = &["std", "core", "alloc"];

/// Types every crate sees without an import: the prelude's and the primitive ones.
pub const TYPES: &[&str] = &[
    "Self", "Option", "Result", "Vec", "String", "Box", "bool", "char", "str", "u8", "u16", "u32",
    "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64",
];

/// Traits every crate sees without an import (the prelude's).
pub const TRAITS: &[&str] = &[
    "Fn",
    "FnMut",
    "FnOnce",
    "Iterator",
    "IntoIterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "Extend",
    "Clone",
    "Copy",
    "Send",
    "Sync",
    "Sized",
    "Unpin",
    "Drop",
    "Default",
    "Eq",
    "PartialEq",
    "Ord",
    "PartialOrd",
    "AsRef",
    "AsMut",
    "Into",
    "From",
    "TryFrom",
    "TryInto",
    "ToOwned",
    "ToString",
];

/// Values every crate sees without an import (the prelude's enum variants).
pub const VALUES: &[&str] = &["Some", "None", "Ok", "Err"];

/// Whether `name` is in scope everywhere without an import: a prelude type, trait or value.
pub fn contains(name: &str) -> bool {
    TYPES.contains(&name) || TRAITS.contains(&name) || VALUES.contains(&name)
}
