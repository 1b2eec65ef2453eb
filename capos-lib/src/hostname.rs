//! Host names (RFC 1123): the one check the manifest tools, the kernel and
//! init share.

/// Whether `name` is a valid RFC 1123 host name: dot-separated labels of 1 to
/// 63 characters from `a-z`, `0-9` and `-`, not starting or ending with `-`,
/// 253 characters at most in all.
pub fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn accepts_host_names() {
        for n in ["capos", "a", "web-1", "x.example.org", "0abc", &"a".repeat(63)] {
            assert!(valid(n), "{n}");
        }
    }

    #[test]
    fn rejects_the_rest() {
        let long_label = "a".repeat(64);
        let long_name =
            ["a".repeat(60), "b".repeat(60), "c".repeat(60), "d".repeat(60), "e".repeat(20)]
                .join(".");
        for n in [
            "",
            "-a",
            "a-",
            "Capos",
            "ca pos",
            "a..b",
            ".a",
            "a.",
            "ca_pos",
            "é",
            &long_label,
            &long_name,
        ] {
            assert!(!valid(n), "{n}");
        }
    }
}
