//! Line patterns: exact text, substrings and `re:` regular expressions.

use std::fmt;

use regex::Regex;

/// The prefix that turns a pattern argument into a regular expression.
pub const REGEX_PREFIX: &str = "re:";

/// A test applied to one serial line (already stripped of trailing `\r` and whitespace).
#[derive(Clone, Debug)]
pub enum Pattern {
    /// The line equals the text.
    Exact(String),
    /// The line contains the text.
    Contains(String),
    /// The regex matches the whole line; `source` is the text after `re:`.
    Regex { source: String, regex: Regex },
}

impl Pattern {
    /// Pattern of `--expect`/`--expect-log`: whole-line equality, or `re:REGEX` matched
    /// against the whole line.
    pub fn line(text: &str) -> Result<Pattern, String> {
        match text.strip_prefix(REGEX_PREFIX) {
            Some(source) => Self::regex(source),
            None => Ok(Pattern::Exact(text.to_string())),
        }
    }

    /// Pattern of `--fail-on`/`--allow-fail-line`: substring, or `re:REGEX` matched against
    /// the whole line.
    pub fn substring(text: &str) -> Result<Pattern, String> {
        match text.strip_prefix(REGEX_PREFIX) {
            Some(source) => Self::regex(source),
            None => Ok(Pattern::Contains(text.to_string())),
        }
    }

    fn regex(source: &str) -> Result<Pattern, String> {
        let regex = Regex::new(&format!("^(?:{source})$"))
            .map_err(|e| format!("invalid regex {source:?}: {e}"))?;
        Ok(Pattern::Regex { source: source.to_string(), regex })
    }

    /// Whether `line` satisfies the pattern.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Exact(text) => line == text,
            Pattern::Contains(text) => line.contains(text.as_str()),
            Pattern::Regex { regex, .. } => regex.is_match(line),
        }
    }
}

/// The pattern as it was written on the command line.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(text) | Pattern::Contains(text) => f.write_str(text),
            Pattern::Regex { source, .. } => write!(f, "{REGEX_PREFIX}{source}"),
        }
    }
}

/// `text` between double quotes, with quotes, backslashes and control characters escaped.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::{quote, Pattern};

    #[test]
    fn exact_matches_the_whole_line_only() {
        let p = Pattern::line("capOS kernel ready").unwrap();
        assert!(p.matches("capOS kernel ready"));
        assert!(!p.matches("capOS kernel ready!"));
        assert!(!p.matches("> capOS kernel ready"));
        assert!(!p.matches("capos kernel ready"));
    }

    #[test]
    fn exact_does_not_interpret_regex_syntax() {
        let p = Pattern::line("a.b*").unwrap();
        assert!(p.matches("a.b*"));
        assert!(!p.matches("axbbb"));
    }

    #[test]
    fn regex_is_anchored_to_the_whole_line() {
        let p = Pattern::line(r"re:cpu \d+ online").unwrap();
        assert!(p.matches("cpu 1 online"));
        assert!(p.matches("cpu 12 online"));
        assert!(!p.matches("cpu 1 online now"));
        assert!(!p.matches("boot: cpu 1 online"));
        // Alternation stays inside the anchors.
        let p = Pattern::line("re:a|b").unwrap();
        assert!(p.matches("a"));
        assert!(!p.matches("ab"));
        assert!(!p.matches("xb"));
    }

    #[test]
    fn substring_patterns() {
        let p = Pattern::substring("KERNEL PANIC").unwrap();
        assert!(p.matches("[0.1] KERNEL PANIC: oops"));
        assert!(!p.matches("kernel panic"));
        let p = Pattern::substring("re:.*panic.*").unwrap();
        assert!(p.matches("a panic here"));
    }

    #[test]
    fn invalid_regex_is_an_error() {
        let err = Pattern::line("re:(").unwrap_err();
        assert!(err.starts_with("invalid regex \"(\""), "{err}");
    }

    #[test]
    fn display_gives_back_the_argument() {
        assert_eq!(Pattern::line("re:x+").unwrap().to_string(), "re:x+");
        assert_eq!(Pattern::line("hello").unwrap().to_string(), "hello");
        assert_eq!(Pattern::substring("EXCEPTION:").unwrap().to_string(), "EXCEPTION:");
    }

    #[test]
    fn quoting_escapes_control_characters() {
        assert_eq!(quote("ok"), "\"ok\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote("\x1b[0m"), "\"\\u{1b}[0m\"");
    }
}
