//! Grounded answers and summaries with numbered citations.
//!
//! The passages come from the index, trimmed to what the caller may read,
//! so citations can only point at readable documents. When the client
//! supports sampling, its own model writes the answer from the numbered
//! passages (both protocol eras, through `cx.client().sample`); otherwise
//! the answer is extractive: the sentences that cover most of the question,
//! each followed by its citation. Either way the citations and confidence
//! come from the passages, not from the model.

use plexus_core::context::SamplingRequest;
use plexus_core::{CallContext, ToolError};
use serde::Serialize;

use crate::index::Passage;

/// One cited source.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Citation {
    /// The number the answer cites it by (`[1]`).
    pub n: usize,
    pub id: String,
    pub title: String,
    pub url: String,
    pub passage: String,
}

/// A grounded answer.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Answer {
    pub answer: String,
    pub citations: Vec<Citation>,
    /// 0 to 1: how much of the question the cited passages cover.
    pub confidence: f64,
    /// `sampling` (the client's model wrote it) or `extractive`.
    pub method: String,
    /// The client's model, when it wrote the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "in", "is", "it",
    "me", "my", "of", "on", "or", "our", "should", "that", "the", "this", "to", "was", "we", "what", "when", "where",
    "which", "who", "why", "will", "with", "you",
];

/// The content words of a question: Latin words (lowercased, stopwords
/// dropped) and CJK bigrams.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    fn flush_cjk(cjk: &mut Vec<char>, out: &mut Vec<String>) {
        match cjk.len() {
            0 => {}
            1 => out.push(cjk[0].to_string()),
            _ => out.extend(cjk.windows(2).map(|w| w.iter().collect::<String>())),
        }
        cjk.clear();
    }
    for c in text.chars().chain(std::iter::once(' ')) {
        if crate::tokenize::is_cjk(c) {
            cjk.push(c);
        } else {
            flush_cjk(&mut cjk, &mut out);
        }
        if c.is_alphanumeric() && !crate::tokenize::is_cjk(c) {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            if word.chars().count() > 1 && !STOPWORDS.contains(&word.as_str()) {
                out.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Share of `terms` found in `passages` (0 when there are none).
pub fn coverage(terms: &[String], passages: &[Passage]) -> f64 {
    if terms.is_empty() || passages.is_empty() {
        return 0.0;
    }
    let text: String = passages.iter().map(|p| format!("{} {} ", p.title, p.text)).collect::<String>().to_lowercase();
    let found = terms.iter().filter(|t| text.contains(t.as_str())).count();
    (found as f64 / terms.len() as f64 * 100.0).round() / 100.0
}

fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '\n') {
            let s = cur.trim().to_owned();
            if s.chars().count() > 3 {
                out.push(s);
            }
            cur.clear();
        }
    }
    let s = cur.trim().to_owned();
    if s.chars().count() > 3 {
        out.push(s);
    }
    out
}

/// The extractive answer: up to three sentences covering most of the
/// question, best first, each with its citation.
pub fn extractive(question: &str, passages: &[Passage]) -> String {
    let terms = terms(question);
    let mut scored: Vec<(usize, usize, String)> = Vec::new(); // (hits, passage rank, sentence)
    for (rank, p) in passages.iter().enumerate() {
        for s in sentences(&p.text) {
            let lower = s.to_lowercase();
            let hits = terms.iter().filter(|t| lower.contains(t.as_str())).count();
            if hits > 0 {
                scored.push((hits, rank, s));
            }
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let picked: Vec<String> = scored.into_iter().take(3).map(|(_, rank, s)| format!("{s} [{}]", rank + 1)).collect();
    picked.join(" ")
}

fn citations(passages: &[Passage]) -> Vec<Citation> {
    passages
        .iter()
        .enumerate()
        .map(|(i, p)| Citation {
            n: i + 1,
            id: p.id.clone(),
            title: p.title.clone(),
            url: p.url.clone(),
            passage: p.text.clone(),
        })
        .collect()
}

fn numbered(passages: &[Passage]) -> String {
    passages
        .iter()
        .enumerate()
        .map(|(i, p)| format!("[{}] {}\n{}\n", i + 1, p.title, p.text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What to say when nothing readable matches.
const NOTHING: &str = "No document you can read answers this.";

fn nothing() -> Answer {
    Answer { answer: NOTHING.into(), citations: Vec::new(), confidence: 0.0, method: "extractive".into(), model: None }
}

/// Ask the client's model: `prompt` with `system`, deterministic; the text
/// it wrote and its model name.
async fn sample(cx: &CallContext, prompt: String, system: &str) -> Result<(String, String), ToolError> {
    let mut request = SamplingRequest::prompt(prompt, 800);
    request.system_prompt = Some(system.into());
    request.temperature = Some(0.0);
    let result = cx.client().sample(request).await?;
    Ok((result.content.as_text().unwrap_or_default().trim().to_owned(), result.model))
}

/// Answer `question` from `passages`: by the client's model when it can
/// sample, else extractively.
pub async fn answer(
    cx: &CallContext,
    question: &str,
    context: Option<&str>,
    passages: Vec<Passage>,
) -> Result<Answer, ToolError> {
    if passages.is_empty() {
        return Ok(nothing());
    }
    let confidence = coverage(&terms(question), &passages);
    let (answer, model) = if cx.client().capabilities().sampling {
        let mut prompt = format!("Sources:\n{}\nQuestion: {question}", numbered(&passages));
        if let Some(c) = context.filter(|c| !c.trim().is_empty()) {
            prompt.push_str(&format!("\nContext from the user: {c}"));
        }
        let system = "Answer the question using only the numbered sources. Cite every statement with its source \
                      number in square brackets, like [1]. If the sources do not contain the answer, say so. Answer \
                      in the language of the question.";
        let (text, model) = sample(cx, prompt, system).await?;
        (text, Some(model))
    } else {
        (extractive(question, &passages), None)
    };
    Ok(cited(answer, &passages, confidence, model))
}

/// Summarize `passages` (whole documents' leading text): by the client's
/// model when it can sample, else the first sentences of each, cited.
pub async fn summarize(cx: &CallContext, topic: &str, passages: Vec<Passage>) -> Result<Answer, ToolError> {
    if passages.is_empty() {
        return Ok(nothing());
    }
    let (answer, model) = if cx.client().capabilities().sampling {
        let prompt = format!("Sources:\n{}\nSummarize them{topic}.", numbered(&passages));
        let system = "Write a short summary using only the numbered sources; cite each statement like [1].";
        let (text, model) = sample(cx, prompt, system).await?;
        (text, Some(model))
    } else {
        let text = passages
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let first: Vec<String> = sentences(&p.text).into_iter().take(2).collect();
                (!first.is_empty()).then(|| format!("{} [{}]", first.join(" "), i + 1))
            })
            .collect::<Vec<_>>()
            .join(" ");
        (text, None)
    };
    Ok(cited(answer, &passages, 1.0, model))
}

/// An answer with its citations; `method` follows from whether a model wrote it.
fn cited(answer: String, passages: &[Passage], confidence: f64, model: Option<String>) -> Answer {
    let method = if model.is_some() { "sampling" } else { "extractive" };
    Answer { answer, citations: citations(passages), confidence, method: method.into(), model }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(id: &str, text: &str) -> Passage {
        Passage { id: id.into(), title: id.into(), url: String::new(), text: text.into(), score: 1.0 }
    }

    #[test]
    fn terms_drop_stopwords_and_split_cjk() {
        assert_eq!(terms("What is the deploy policy on Friday?"), ["deploy", "friday", "policy"]);
        assert_eq!(terms("金曜日のデプロイ"), ["のデ", "デプ", "プロ", "ロイ", "日の", "曜日", "金曜"]);
    }

    #[test]
    fn extractive_answers_cite_the_best_sentences() {
        let ps = [
            passage("a", "Deploys are frozen on Friday. Lunch is at noon."),
            passage("b", "The deploy policy requires two approvals. Coffee is free."),
        ];
        let a = extractive("What is the deploy policy on Friday?", &ps);
        assert_eq!(a, "Deploys are frozen on Friday. [1] The deploy policy requires two approvals. [2]");
        assert!((coverage(&terms("deploy policy friday"), &ps) - 1.0).abs() < 1e-9);
        assert!((coverage(&terms("deploy rollback"), &ps) - 0.5).abs() < 1e-9);
        assert_eq!(coverage(&terms("anything"), &[]), 0.0);
    }
}
