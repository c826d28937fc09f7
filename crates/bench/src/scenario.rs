//! Scenarios: sequences of calls that follow the server's answers.
//!
//! `assessment`: start an adaptive assessment (`generate_assessment`), answer every item it
//! presents (`submit_assessment_response`, a random option) until it ends, start the next. The
//! answers are the measured calls; the starts are recorded apart.
//!
//! Closed loop by default (each worker sends its next call as soon as the last is answered);
//! with `--rate` every call, start or answer, waits for the shared schedule's next slot, like
//! learners who think between answers, and its latency counts from the slot's due time.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use crate::rpc::{CallTemplate, ErrorKind, Message, check_call_result};
use crate::run::{CONNECT_BACKOFF, Plan, Prepared, Slot, Worker, exchange, next_slot};
use crate::stats::Stats;

/// The call that starts an assessment.
pub(crate) const START: &str = "generate_assessment";
/// The call that answers an item: the one measured.
pub(crate) const ANSWER: &str = "submit_assessment_response";

/// The assessment scenario's calls: per `--calls-file` line, the start and the headers of the
/// answers (the same principal).
pub(crate) struct AssessmentPlan {
    starts: Vec<Prepared>,
    answer_headers: Vec<HeaderMap>,
    next: AtomicU64,
}

impl AssessmentPlan {
    pub(crate) fn new(starts: Vec<Prepared>, answer_headers: Vec<HeaderMap>) -> Self {
        AssessmentPlan { starts, answer_headers, next: AtomicU64::new(0) }
    }
}

/// An item as presented (the parts a learner needs to answer it).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    #[serde(default)]
    options: Vec<Choice>,
    #[serde(default)]
    response_format: String,
}

#[derive(Debug, Deserialize)]
struct Choice {
    label: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    assessment_id: String,
    item: Item,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answered {
    finished: bool,
    next_item: Option<Item>,
}

/// The structured content of a judged-good response, as `T`.
fn structured<T: for<'de> Deserialize<'de>>(message: &Message) -> Result<T, ErrorKind> {
    check_call_result(message, None)?;
    let raw = message.result.as_ref().and_then(|r| r.structured_content.as_ref()).ok_or(ErrorKind::BadResponse)?;
    serde_json::from_str(raw.get()).map_err(|_| ErrorKind::BadResponse)
}

/// xorshift64*: a random answer per item, without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

fn answer(item: &Item, rng: &mut Rng) -> Value {
    match item.response_format.as_str() {
        "choice" if !item.options.is_empty() => {
            Value::String(item.options[rng.below(item.options.len())].label.clone())
        }
        "text" => Value::String("?".into()),
        _ => Value::Bool(rng.below(2) == 0),
    }
}

/// When the worker's next call goes out: now in the closed loop, the schedule's next slot in
/// the open one (a dropped or late slot is counted in `stats`, the call's own). `None` at the
/// end of the run or of `--max-requests`.
async fn when(plan: &Plan, stats: &mut Stats) -> Option<Slot> {
    if plan.schedule.is_some() {
        return next_slot(plan, stats).await;
    }
    let now = Instant::now();
    if now >= plan.end || !plan.budget.take() {
        return None;
    }
    Some(Slot { start: now, measured: now >= plan.measure_start })
}

/// One worker's loop: assessments back to back until the end of the run. Returns the answers'
/// statistics and the starts'.
pub(crate) async fn assessments(mut worker: Worker, plan: &Plan, seed: u64) -> (Worker, Stats, Option<Stats>) {
    let mut answers = Stats::new();
    let mut starts = Stats::new();
    let Some(scenario) = &plan.assessment else {
        return (worker, answers, Some(starts));
    };
    let mut rng = Rng::new(seed + 1);
    let mut id = 0;
    'assessments: loop {
        let Some(Slot { start: begin, measured }) = when(plan, &mut starts).await else {
            break;
        };
        let line = (scenario.next.fetch_add(1, Ordering::Relaxed) % scenario.starts.len() as u64) as usize;
        let start = &scenario.starts[line];
        id += 1;
        let (reply, done) = exchange(&mut worker, start.headers.as_ref(), start.template.body(id), id, plan).await;
        let started = reply.and_then(|m| structured::<Started>(&m));
        if measured {
            starts.record(started.as_ref().map(|_| ()).map_err(|e| *e), begin, done);
        }
        let Started { assessment_id, item } = match started {
            Ok(s) => s,
            Err(kind) => {
                if kind == ErrorKind::Connect {
                    sleep(CONNECT_BACKOFF).await;
                }
                continue;
            }
        };
        let mut item = item;
        loop {
            let Some(Slot { start: begin, measured }) = when(plan, &mut answers).await else {
                break 'assessments;
            };
            let arguments =
                json!({ "assessmentId": assessment_id, "itemId": item.id, "response": answer(&item, &mut rng) });
            id += 1;
            let body = CallTemplate::new(plan.era, ANSWER, &arguments).body(id);
            let (reply, done) = exchange(&mut worker, Some(&scenario.answer_headers[line]), body, id, plan).await;
            let answered = reply.and_then(|m| structured::<Answered>(&m));
            if measured {
                answers.record(answered.as_ref().map(|_| ()).map_err(|e| *e), begin, done);
            }
            match answered {
                Ok(Answered { finished: false, next_item: Some(next) }) => item = next,
                // Ended, or refused: start the next assessment.
                _ => break,
            }
        }
    }
    (worker, answers, Some(starts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(v: Value) -> Message {
        serde_json::from_str(&v.to_string()).expect("a message")
    }

    #[test]
    fn follows_the_presented_item() {
        let m = message(json!({"id": 1, "result": {"content": [], "structuredContent": {
            "assessmentId": "a-1", "userId": "u",
            "item": {"id": "q7", "position": 1, "options": [{"label": "A", "text": "1"}, {"label": "B", "text": "2"}],
                     "responseFormat": "choice"}}}}));
        let s: Started = structured(&m).expect("a start");
        assert_eq!((s.assessment_id.as_str(), s.item.id.as_str()), ("a-1", "q7"));
        let mut rng = Rng::new(3);
        let picked: std::collections::BTreeSet<String> =
            (0..64).map(|_| answer(&s.item, &mut rng).as_str().unwrap_or_default().to_owned()).collect();
        assert_eq!(picked.into_iter().collect::<Vec<_>>(), ["A", "B"]);

        let next =
            message(json!({"id": 2, "result": {"structuredContent": {"finished": false, "nextItem": {"id": "q9"}}}}));
        let a: Answered = structured(&next).expect("an answer");
        assert!(!a.finished);
        let item = a.next_item.expect("a next item");
        assert_eq!(item.id, "q9");
        assert!(answer(&item, &mut rng).is_boolean(), "an item without a format is answered true or false");
        let done = message(json!({"id": 3, "result": {"structuredContent": {"finished": true, "nextItem": null}}}));
        assert!(structured::<Answered>(&done).expect("an answer").finished);
    }

    #[test]
    fn refusals_and_missing_content_are_errors() {
        let refused = message(json!({"id": 1, "result": {"isError": true, "content": []}}));
        assert_eq!(structured::<Answered>(&refused).err(), Some(ErrorKind::ToolError));
        let bare = message(json!({"id": 1, "result": {"content": []}}));
        assert_eq!(structured::<Answered>(&bare).err(), Some(ErrorKind::BadResponse));
        let wrong = message(json!({"id": 1, "result": {"structuredContent": {"finished": "no"}}}));
        assert_eq!(structured::<Answered>(&wrong).err(), Some(ErrorKind::BadResponse));
    }
}
