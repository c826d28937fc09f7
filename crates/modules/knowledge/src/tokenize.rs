//! Analyzers: the default one for space-separated languages, and a CJK
//! bigram one for Japanese, Chinese and Korean.
//!
//! Text is indexed twice, into a field with the `en` analyzer and into a
//! `*_cjk` field with [`CjkBigrams`]: runs of CJK characters become
//! overlapping bigrams (`東京都` → `東京`, `京都`) with consecutive positions,
//! so a multi-character query is a phrase query over bigrams, which matches
//! exactly the documents containing that substring. A lone CJK character
//! becomes a unigram so one-character queries work. Everything that is not
//! CJK is left to the `en` field. tantivy's own `NgramTokenizer` does not fit:
//! it puts every gram at position 0, which rules out phrases.
//!
//! Both analyzers fold text with NFKC-like width folding for ASCII
//! (full-width `ＡＢＣ１２３` is searchable as `abc123`) and lowercase it.

use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenStream, Tokenizer, TokenizerManager,
};

/// The analyzer names registered on the index.
pub const EN: &str = "plexus_en";
pub const CJK: &str = "plexus_cjk";
/// Identifiers and paths (`std::fs::read_to_string`): split on whitespace,
/// `::`, `/` and `.`, keep `_`, lowercase.
pub const IDENT: &str = "plexus_ident";

/// Register the analyzers. tantivy does not store them with the index, so
/// this runs on every open.
pub fn register(manager: &TokenizerManager) {
    manager.register(
        EN,
        TextAnalyzer::builder(Folding(SimpleTokenizer::default()))
            .filter(RemoveLongFilter::limit(64))
            .filter(LowerCaser)
            .build(),
    );
    manager.register(CJK, TextAnalyzer::builder(CjkBigrams).filter(LowerCaser).build());
    manager.register(IDENT, TextAnalyzer::builder(Idents).filter(LowerCaser).build());
}

/// Whether `c` is written without spaces between words (kana, CJK
/// ideographs, hangul syllables).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // hiragana, katakana
        | 0x31F0..=0x31FF      // katakana phonetic extensions
        | 0x3400..=0x4DBF      // CJK extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xF900..=0xFAFF      // CJK compatibility ideographs
        | 0xFF66..=0xFF9F      // half-width katakana
        | 0xAC00..=0xD7AF      // hangul syllables
        | 0x20000..=0x2FA1F) // CJK extensions B.. and compatibility supplement
        || c == '\u{3005}' // 々
        || c == '\u{30FC}' // ー
}

/// Full-width ASCII (U+FF01..U+FF5E) to ASCII; everything else unchanged.
fn fold_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// A tokenizer over text with full-width ASCII folded first (offsets still
/// point into the original text, which `fold_width` keeps char-aligned).
#[derive(Clone)]
pub struct Folding<T>(pub T);

/// Tokens of the inner tokenizer over the folded text, with offsets mapped
/// back to the original.
pub struct FoldedStream {
    tokens: Vec<Token>,
    i: usize,
}

impl<T: Tokenizer> Tokenizer for Folding<T> {
    type TokenStream<'a> = FoldedStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> FoldedStream {
        let needs = text.chars().any(|c| fold_width(c) != c);
        let mut tokens = Vec::new();
        if !needs {
            let mut s = self.0.token_stream(text);
            while s.advance() {
                tokens.push(s.token().clone());
            }
            return FoldedStream { tokens, i: usize::MAX };
        }
        // Folded text, and for each of its byte offsets the original's.
        let mut folded = String::with_capacity(text.len());
        let mut map = Vec::with_capacity(text.len() + 1);
        for (at, c) in text.char_indices() {
            let f = fold_width(c);
            for _ in 0..f.len_utf8() {
                map.push(at);
            }
            folded.push(f);
        }
        map.push(text.len());
        let mut s = self.0.token_stream(&folded);
        while s.advance() {
            let mut t = s.token().clone();
            t.offset_from = map.get(t.offset_from).copied().unwrap_or(text.len());
            t.offset_to = map.get(t.offset_to).copied().unwrap_or(text.len());
            tokens.push(t);
        }
        FoldedStream { tokens, i: usize::MAX }
    }
}

impl TokenStream for FoldedStream {
    fn advance(&mut self) -> bool {
        self.i = self.i.wrapping_add(1);
        self.i < self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.i]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.i]
    }
}

/// CJK runs as overlapping bigrams; non-CJK text is skipped.
#[derive(Clone, Default)]
pub struct CjkBigrams;

impl Tokenizer for CjkBigrams {
    type TokenStream<'a> = FoldedStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> FoldedStream {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let end_of = |k: usize| chars.get(k).map_or(text.len(), |c| c.0);
        let mut tokens = Vec::new();
        let mut position = 0usize;
        let mut i = 0;
        while i < chars.len() {
            if !is_cjk(chars[i].1) {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && is_cjk(chars[i].1) {
                i += 1;
            }
            let mut push = |from: usize, to: usize, position: usize| {
                tokens.push(Token {
                    offset_from: from,
                    offset_to: to,
                    position,
                    text: text[from..to].to_owned(),
                    position_length: 1,
                });
            };
            if i - start == 1 {
                push(chars[start].0, end_of(start + 1), position);
                position += 1;
            } else {
                for (k, &(from, _)) in chars.iter().enumerate().take(i - 1).skip(start) {
                    push(from, end_of(k + 2), position);
                    position += 1;
                }
            }
            // A gap between runs, so a phrase never spans two of them.
            position += 1;
        }
        FoldedStream { tokens, i: usize::MAX }
    }
}

/// Identifier tokens: split on anything but letters, digits and `_`.
#[derive(Clone, Default)]
pub struct Idents;

impl Tokenizer for Idents {
    type TokenStream<'a> = FoldedStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> FoldedStream {
        let mut tokens = Vec::new();
        let mut start = None;
        let mut position = 0;
        let bytes = text.char_indices().chain(std::iter::once((text.len(), ' ')));
        for (at, c) in bytes {
            let word = c.is_alphanumeric() || c == '_';
            match (start, word) {
                (None, true) => start = Some(at),
                (Some(s), false) => {
                    tokens.push(Token {
                        offset_from: s,
                        offset_to: at,
                        position,
                        text: text[s..at].to_owned(),
                        position_length: 1,
                    });
                    position += 1;
                    start = None;
                }
                _ => {}
            }
        }
        FoldedStream { tokens, i: usize::MAX }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(name: &str, text: &str) -> Vec<(String, usize)> {
        let m = TokenizerManager::default();
        register(&m);
        let mut a = m.get(name).expect("registered");
        let mut s = a.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            out.push((s.token().text.clone(), s.token().position));
        }
        out
    }

    #[test]
    fn cjk_runs_become_bigrams_with_gaps_between_runs() {
        let t = tokens(CJK, "東京都の天気 and 晴れ。雨");
        let words: Vec<&str> = t.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["東京", "京都", "都の", "の天", "天気", "晴れ", "雨"]);
        let positions: Vec<usize> = t.iter().map(|(_, p)| *p).collect();
        assert_eq!(positions, [0, 1, 2, 3, 4, 6, 8]);
    }

    #[test]
    fn the_en_analyzer_folds_width_and_case_and_keeps_offsets() {
        let m = TokenizerManager::default();
        register(&m);
        let mut a = m.get(EN).expect("registered");
        let text = "ＲＵＳＴ１２３ rocks";
        let mut s = a.token_stream(text);
        let mut got = Vec::new();
        while s.advance() {
            let t = s.token();
            got.push((t.text.clone(), &text[t.offset_from..t.offset_to]));
        }
        assert_eq!(got, [("rust123".to_owned(), "ＲＵＳＴ１２３"), ("rocks".to_owned(), "rocks")]);
    }

    #[test]
    fn identifiers_keep_underscores_and_split_paths() {
        let words: Vec<String> = tokens(IDENT, "std::fs::read_to_string").into_iter().map(|(w, _)| w).collect();
        assert_eq!(words, ["std", "fs", "read_to_string"]);
    }
}
