//! How schema names become Rust names, matching what `capnpc` does where the
//! generated code has to name `capnpc`'s items.

/// Words Rust reserves, strict and reserved for the future, in every edition
/// the workspace may use.
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// `writeLine` -> `write_line`, exactly as `capnpc` spells accessor suffixes
/// (`get_write_line`).
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A snake-case identifier, with `_` appended when it would be a keyword
/// (`type` -> `type_`), as `capnpc` names modules.
pub fn ident(name: &str) -> String {
    let mut out = snake_case(name);
    if RUST_KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// `writeLine` -> `WRITE_LINE`.
pub fn screaming_case(name: &str) -> String {
    snake_case(name).to_ascii_uppercase()
}

/// `writeLine` -> `WriteLine`.
pub fn camel_case(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `base`, or `base` with `_` appended until it is not in `taken`.
pub fn fresh(base: &str, taken: &[String]) -> String {
    let mut name = base.to_string();
    while taken.contains(&name) {
        name.push('_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(snake_case("writeLine"), "write_line");
        assert_eq!(snake_case("SystemInfo"), "system_info");
        assert_eq!(snake_case("totalMemoryBytes"), "total_memory_bytes");
        assert_eq!(ident("type"), "type_");
        assert_eq!(ident("async"), "async_");
        assert_eq!(ident("info"), "info");
        assert_eq!(screaming_case("writeLine"), "WRITE_LINE");
        assert_eq!(camel_case("writeLine"), "WriteLine");
        assert_eq!(camel_case(""), "");
    }

    #[test]
    fn fresh_avoids_taken_names() {
        let taken = vec!["params".to_string(), "params_".to_string()];
        assert_eq!(fresh("params", &taken), "params__");
        assert_eq!(fresh("reply", &taken), "reply");
    }
}
