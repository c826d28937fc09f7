//! Matching URIs against RFC 6570 templates of levels 1 and 2's reserved
//! expansion: `test://template/{id}/data`, `shared://{+path}`.

use std::collections::BTreeMap;

/// A parsed URI template: literal text and `{name}` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A variable; `reserved` (`{+name}`) values may contain `/`.
    Var {
        name: String,
        reserved: bool,
    },
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
            } else if matches!(parts.last(), Some(Part::Var { .. })) {
                return None;
            }
            let close = rest[open..].find('}')? + open;
            let name = &rest[open + 1..close];
            let (name, reserved) = match name.strip_prefix('+') {
                Some(n) => (n, true),
                None => (name, false),
            };
            if name.is_empty() || name.contains('{') || name.contains('+') {
                return None;
            }
            parts.push(Part::Var { name: name.to_owned(), reserved });
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
    /// characters other than `/`; a reserved one (`{+path}`) any characters.
    pub fn matches(&self, uri: &str) -> Option<BTreeMap<String, String>> {
        let mut vars = BTreeMap::new();
        let mut rest = uri;
        let mut iter = self.parts.iter().peekable();
        while let Some(part) = iter.next() {
            match part {
                Part::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                Part::Var { name, reserved } => {
                    let end = match iter.peek() {
                        Some(Part::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || (!reserved && value.contains('/')) {
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
    fn reserved_variables_span_slashes() {
        let t = UriTemplate::parse("shared://{+path}").unwrap();
        assert_eq!(t.matches("shared://config/a.json").unwrap()["path"], "config/a.json");
        assert!(t.matches("shared://").is_none());
        assert!(t.matches("other://x").is_none());
        let plain = UriTemplate::parse("shared://{path}").unwrap();
        assert!(plain.matches("shared://config/a.json").is_none());
        assert!(UriTemplate::parse("x://{+}").is_none());
    }

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
