//! Text from files: HTML (title, headings, main text), Markdown and plain
//! text.
//!
//! HTML goes through html5gum, a WHATWG tokenizer (entities decoded, no
//! DOM built). Only visible text counts: `<script>`, `<style>`, `<nav>`,
//! `<head>` and friends are skipped; when a page has a `<main>`, only its
//! text is kept (sidebars and navigation stay out of the index). Inline
//! tags (`<a>`, `<code>`, `<wbr>`, `<span>`) join text without a space, so
//! `read_<wbr>to_<wbr>string` stays one word; block tags separate.

use html5gum::{DefaultEmitter, Token, Tokenizer};

/// What a file yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    pub title: String,
    pub headings: Vec<String>,
    pub body: String,
    /// An item or module path named by the page (rustdoc pages).
    pub path: String,
    /// The page only redirects elsewhere (`<meta http-equiv="refresh">`).
    pub redirect: bool,
}

const SKIP: &[&[u8]] = &[b"script", b"style", b"nav", b"noscript", b"template", b"svg", b"button", b"head", b"iframe"];
const BLOCK: &[&[u8]] = &[
    b"p",
    b"div",
    b"li",
    b"ul",
    b"ol",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"pre",
    b"section",
    b"article",
    b"details",
    b"summary",
    b"tr",
    b"td",
    b"th",
    b"br",
    b"dt",
    b"dd",
    b"table",
    b"blockquote",
    b"hr",
    b"header",
    b"footer",
    b"main",
    b"aside",
    b"figure",
    b"figcaption",
];

fn heading_level(name: &[u8]) -> bool {
    matches!(name, b"h1" | b"h2" | b"h3" | b"h4" | b"h5" | b"h6")
}

/// Collapse runs of whitespace (and NBSP) to one space.
fn squash(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() || c == '\u{a0}' {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// Extract the text of an HTML page.
pub fn html(page: &str) -> Extracted {
    let mut end = page.len().min(1024);
    while !page.is_char_boundary(end) {
        end -= 1;
    }
    let head = page[..end].to_ascii_lowercase();
    if head.contains("http-equiv=\"refresh\"") || head.contains("http-equiv=refresh") {
        return Extracted { redirect: true, ..Extracted::default() };
    }
    let mut emitter = DefaultEmitter::default();
    emitter.naively_switch_states(true);
    let (mut title, mut all, mut main) = (String::new(), String::new(), String::new());
    let (mut all_headings, mut main_headings) = (Vec::new(), Vec::new());
    let (mut skip, mut in_title, mut in_main, mut saw_main) = (0usize, false, 0usize, false);
    let mut heading: Option<String> = None;
    for token in Tokenizer::new_with_emitter(page, emitter) {
        let Ok(token) = token;
        match token {
            Token::StartTag(t) => {
                let name = t.name.as_slice();
                if name == b"title" {
                    in_title = true;
                } else if SKIP.contains(&name) && !t.self_closing {
                    skip += 1;
                } else if name == b"main" {
                    in_main += 1;
                    saw_main = true;
                } else if heading_level(name) && skip == 0 {
                    heading = Some(String::new());
                }
                if BLOCK.contains(&name) {
                    all.push('\n');
                    if in_main > 0 {
                        main.push('\n');
                    }
                }
            }
            Token::EndTag(t) => {
                let name = t.name.as_slice();
                if name == b"title" {
                    in_title = false;
                } else if SKIP.contains(&name) {
                    skip = skip.saturating_sub(1);
                } else if name == b"main" {
                    in_main = in_main.saturating_sub(1);
                } else if heading_level(name)
                    && let Some(h) = heading.take()
                {
                    let h = squash(&h);
                    if !h.is_empty() {
                        if in_main > 0 {
                            main_headings.push(h.clone());
                        }
                        all_headings.push(h);
                    }
                }
                if BLOCK.contains(&name) {
                    all.push('\n');
                    if in_main > 0 {
                        main.push('\n');
                    }
                }
            }
            Token::String(s) => {
                let text = String::from_utf8_lossy(&s.value);
                if in_title {
                    title.push_str(&text);
                } else if skip == 0 {
                    all.push_str(&text);
                    if in_main > 0 {
                        main.push_str(&text);
                    }
                    if let Some(h) = heading.as_mut() {
                        h.push_str(&text);
                    }
                }
            }
            Token::Comment(_) | Token::Doctype(_) | Token::Error(_) => {}
        }
    }
    let (body, headings) = if saw_main { (main, main_headings) } else { (all, all_headings) };
    let title = squash(&title);
    let path = rustdoc_path(&title).unwrap_or_default();
    Extracted { title, headings, body: paragraphs(&body), path, redirect: false }
}

/// Lines squashed, empty ones dropped: one paragraph per line.
fn paragraphs(text: &str) -> String {
    text.lines().map(squash).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

/// The item path a rustdoc title names: `HashMap in std::collections - Rust`
/// → `std::collections::HashMap`; `std::collections - Rust` → `std::collections`.
pub fn rustdoc_path(title: &str) -> Option<String> {
    let t = title.strip_suffix(" - Rust")?;
    match t.split_once(" in ") {
        Some((name, module)) if !name.contains(' ') && !module.contains(' ') => Some(format!("{module}::{name}")),
        None if !t.contains(' ') => Some(t.to_owned()),
        _ => None,
    }
}

/// Markdown: the first `# ` heading is the title (else `fallback`), `#`
/// lines are headings, the text is kept as written.
pub fn markdown(text: &str, fallback: &str) -> Extracted {
    let mut headings = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        let l = line.trim_start();
        if l.starts_with("```") || l.starts_with("~~~") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let hashes = l.bytes().take_while(|&b| b == b'#').count();
        if (1..=6).contains(&hashes) && l.as_bytes().get(hashes) == Some(&b' ') {
            headings.push(l[hashes..].trim().trim_end_matches('#').trim().to_owned());
        }
    }
    let title = headings.first().cloned().unwrap_or_else(|| fallback.to_owned());
    Extracted { title, headings, body: text.to_owned(), path: String::new(), redirect: false }
}

/// Plain text: the first non-empty line (cut to 200 characters) is the title.
pub fn plain(text: &str, fallback: &str) -> Extracted {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(fallback);
    let title: String = first.chars().take(200).collect();
    Extracted { title, headings: Vec::new(), body: text.to_owned(), path: String::new(), redirect: false }
}

/// The text of a PDF (pdf-extract over lopdf), or `None` when it cannot be
/// read (encrypted, malformed, no text layer). The parser runs inside
/// `catch_unwind`: a hostile file must not take the sync down.
pub fn pdf(bytes: &[u8], fallback: &str) -> Option<Extracted> {
    if !bytes.starts_with(b"%PDF-") {
        return None;
    }
    let text = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes)).ok()?.ok()?;
    // Runs of blank lines are layout, not text: one is kept.
    let mut body = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            blank += 1;
            if blank == 1 && !body.is_empty() {
                body.push('\n');
            }
            continue;
        }
        blank = 0;
        body.push_str(line);
        body.push('\n');
    }
    let body = body.trim().to_owned();
    if body.is_empty() {
        return None;
    }
    let e = plain(&body, fallback);
    Some(Extracted { title: if e.title.chars().count() > 120 { fallback.to_owned() } else { e.title }, ..e })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustdoc_pages_keep_main_text_and_join_inline_tags() {
        let page = r#"<!DOCTYPE html><html><head><title>HashMap in std::collections - Rust</title>
            <script>var x = "<main>not this</main>";</script><style>p { color: red }</style></head>
            <body><nav class="sidebar"><a href="x">Sidebar link</a></nav>
            <main><h1>Struct <span>HashMap</span>&nbsp;<button>Copy item path</button></h1>
            <p>A hash map implemented with quadratic probing &amp; SIMD lookup.</p>
            <h4 class="code-header">pub fn read_<wbr>to_<wbr>string()</h4><div>東京&lt;都&gt;</div></main>
            <footer>Footer text</footer></body></html>"#;
        let e = html(page);
        assert_eq!(e.title, "HashMap in std::collections - Rust");
        assert_eq!(e.path, "std::collections::HashMap");
        assert_eq!(e.headings, ["Struct HashMap", "pub fn read_to_string()"]);
        assert!(e.body.contains("quadratic probing & SIMD lookup."), "{}", e.body);
        assert!(e.body.contains("read_to_string") && e.body.contains("東京<都>"), "{}", e.body);
        for absent in ["Sidebar", "not this", "color", "Copy item path", "Footer"] {
            assert!(!e.body.contains(absent), "{absent} in {}", e.body);
        }
    }

    #[test]
    fn pages_without_main_keep_body_text_and_redirects_are_flagged() {
        let e = html("<html><title>Plain</title><body><p>One</p><p>Two</p></body></html>");
        assert_eq!((e.title.as_str(), e.body.as_str()), ("Plain", "One\nTwo"));
        assert!(html(r#"<html><head><meta http-equiv="refresh" content="0;URL=../x.html"></head></html>"#).redirect);
        // garbage never panics
        for junk in ["", "<<<>>>", "<main><main></p></div>", "\u{0}\u{1}<title>", "<script>unterminated"] {
            let _ = html(junk);
        }
    }

    #[test]
    fn a_character_across_the_redirect_check_is_not_cut() {
        for pad in 1018..1024 {
            let page = format!("<p>{}経費精算</p>", "a".repeat(pad));
            assert!(html(&page).body.ends_with("経費精算"), "{pad}");
        }
    }

    #[test]
    fn markdown_titles_and_headings_skip_code_blocks() {
        let md = "Intro line\n# 決済サービス\n\n```sh\n# not a heading\n```\n## Steps ##\ntext";
        let e = markdown(md, "file.md");
        assert_eq!(e.title, "決済サービス");
        assert_eq!(e.headings, ["決済サービス", "Steps"]);
        assert_eq!(markdown("no headings", "file.md").title, "file.md");
        assert_eq!(plain("\n\n  First line  \nsecond", "f.txt").title, "First line");
    }

    #[test]
    fn rustdoc_titles() {
        assert_eq!(rustdoc_path("std::collections - Rust").as_deref(), Some("std::collections"));
        assert_eq!(rustdoc_path("Vec in std::vec - Rust").as_deref(), Some("std::vec::Vec"));
        assert_eq!(rustdoc_path("The Rust Programming Language"), None);
        assert_eq!(rustdoc_path("Storing Keys - The Rust Book - Rust"), None);
    }
}
