//! Matching URIs against RFC 6570 level-1 templates (`test://template/{id}/data`).

use std::collections::BTreeMap;

/// A parsed URI template: literal text and `{name}` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

impl UriTemplate {
    /// Parse a template; `None` if braces are unbalanced, a variable is
    /// empty, or two variables touch (which would make matching ambiguous).
    pub fn parse(template: &str) -> Option<Self> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            } else if matches!(parts.last(), Some(Part::Var(_))) {
                return None;
            }
            let close = rest[open..].find('}')? + open;
            let name = &rest[open + 1..close];
            if name.is_empty() || name.contains('{') {
                return None;
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return None;
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Some(Self { parts })
    }

    /// The variables of `uri` if it matches. A variable matches one or more
    /// characters other than `/`.
    pub fn matches(&self, uri: &str) -> Option<BTreeMap<String, String>> {
        let mut vars = BTreeMap::new();
        let mut rest = uri;
        let mut iter = self.parts.iter().peekable();
        while let Some(part) = iter.next() {
            match part {
                Part::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                Part::Var(name) => {
                    let end = match iter.peek() {
                        Some(Part::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || value.contains('/') {
                        return None;
                    }
                    vars.insert(name.clone(), value.to_owned());
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_and_extracts() {
        let t = UriTemplate::parse("test://template/{id}/data").unwrap();
        let v = t.matches("test://template/123/data").unwrap();
        assert_eq!(v["id"], "123");
        assert!(t.matches("test://template//data").is_none());
        assert!(t.matches("test://template/1/2/data").is_none());
        assert!(t.matches("test://template/1/datax").is_none());
        let t = UriTemplate::parse("market://{symbol}/quote").unwrap();
        assert_eq!(t.matches("market://7203.T/quote").unwrap()["symbol"], "7203.T");
        let t = UriTemplate::parse("file:///{name}").unwrap();
        assert_eq!(t.matches("file:///日本語").unwrap()["name"], "日本語");
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in ["a{", "a}", "{}", "{a}{b}", "x{a{b}}"] {
            assert!(UriTemplate::parse(bad).is_none(), "{bad}");
        }
    }
}
