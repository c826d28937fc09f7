//! Input-required results (MRTR) for the stateless era: the sealed request
//! state that carries a call's answers from one round to the next.
//!
//! The state holds every answer received so far and the keys (with their
//! kinds) still outstanding. It is sealed with HMAC-SHA256 (rmcp's
//! `RequestStateCodec`), bound to the method, target and arguments of the
//! call, and expires after ten minutes. A tampered, expired or misbound state
//! is refused with one error that says no more than that.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use plexus_core::ToolError;
use plexus_core::context::{ClientResponse, InputRequest};
use rmcp::model as m;
use serde_json::Value;

use crate::convert::{AnswerKind, decode_answer, input_request};

const STATE_TTL: Duration = Duration::from_secs(600);

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct State {
    answers: BTreeMap<String, (AnswerKind, Value)>,
    pending: BTreeMap<String, AnswerKind>,
}

/// Answers gathered for one execution, and what to seal next time.
pub(crate) struct Round {
    pub(crate) inputs: HashMap<String, ClientResponse>,
    answers: BTreeMap<String, (AnswerKind, Value)>,
    binding: Vec<u8>,
}

#[derive(Clone)]
pub(crate) struct StateCodec {
    codec: m::RequestStateCodec,
}

impl StateCodec {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { codec: m::RequestStateCodec::new_unchecked(key.to_vec()) }
    }

    /// Open the state of a retried call and merge the new answers.
    ///
    /// With a state, answers to the outstanding keys are decoded strictly (a
    /// malformed answer is an error) and other keys are ignored. Without one
    /// (a first round, or a client answering from scratch), each answer is
    /// decoded by its shape and one that fits no kind is ignored, so the tool
    /// simply asks again.
    pub(crate) fn open(
        &self,
        binding: Vec<u8>,
        request_state: Option<&str>,
        responses: Option<&m::InputResponses>,
    ) -> Result<Round, ToolError> {
        let state = match request_state {
            Some(sealed) => self
                .codec
                .open_json_with::<State>(sealed, &binding)
                .map_err(|_| ToolError::InvalidRequest("requestState is invalid, expired or was altered".into()))?,
            None => State::default(),
        };
        let strict = request_state.is_some();
        let mut answers = state.answers;
        for (key, value) in responses.into_iter().flatten() {
            let kind = match state.pending.get(key) {
                Some(k) => *k,
                None if strict => continue,
                None => match AnswerKind::guess(value) {
                    Some(k) => k,
                    None => continue,
                },
            };
            match decode_answer(kind, value.clone()) {
                Ok(_) => {
                    answers.insert(key.clone(), (kind, value.clone()));
                }
                Err(e) if strict => return Err(ToolError::InvalidRequest(format!("inputResponses.{key}: {e}"))),
                Err(_) => {}
            }
        }
        let inputs = answers
            .iter()
            .filter_map(|(k, (kind, v))| decode_answer(*kind, v.clone()).ok().map(|r| (k.clone(), r)))
            .collect();
        Ok(Round { inputs, answers, binding })
    }

    /// The input-required result for the requests a tool could not get
    /// answered, with the sealed state for the next round.
    pub(crate) fn input_required(
        &self,
        round: Round,
        requests: Vec<InputRequest>,
    ) -> Result<m::InputRequiredResult, ToolError> {
        let mut input_requests = m::InputRequests::new();
        let mut pending = BTreeMap::new();
        for r in requests {
            pending.insert(r.key.clone(), AnswerKind::of(&r.request));
            input_requests.insert(r.key, input_request(&r.request)?);
        }
        let state = State { answers: round.answers, pending };
        let opts = m::SealOptions::new().associated_data(&round.binding).ttl(STATE_TTL);
        let sealed = self.codec.seal_json_with(&state, &opts).map_err(ToolError::internal)?;
        Ok(m::InputRequiredResult::new(Some(input_requests), Some(sealed)))
    }
}

/// What a request state is bound to: the method, the target and a digest of
/// the arguments, so a state cannot be replayed against another call.
pub(crate) fn binding(method: &str, target: &str, args: &Value) -> Vec<u8> {
    let mut b = Vec::with_capacity(method.len() + target.len() + 66);
    b.extend_from_slice(method.as_bytes());
    b.push(0);
    b.extend_from_slice(target.as_bytes());
    b.push(0);
    b.extend_from_slice(plexus_core::audit::digest_json(args).as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use plexus_core::context::{ClientRequest, ElicitRequest};
    use serde_json::json;

    use super::*;

    fn codec() -> StateCodec {
        StateCodec::new([7u8; 32])
    }

    fn ask(key: &str) -> Vec<InputRequest> {
        vec![InputRequest {
            key: key.into(),
            request: ClientRequest::Elicitation(ElicitRequest {
                message: "name?".into(),
                requested_schema: json!({"type":"object","properties":{"name":{"type":"string"}}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            }),
        }]
    }

    fn responses(v: Value) -> m::InputResponses {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn state_round_trips_and_accumulates() {
        let c = codec();
        let b = binding("tools/call", "t", &json!({}));
        let r1 = c.open(b.clone(), None, None).unwrap();
        assert!(r1.inputs.is_empty());
        let irr = c.input_required(r1, ask("step1")).unwrap();
        let s1 = irr.request_state.clone().unwrap();
        let r2 = c
            .open(b.clone(), Some(&s1), Some(&responses(json!({"step1":{"action":"accept","content":{"name":"A"}}}))))
            .unwrap();
        assert_eq!(r2.inputs.len(), 1);
        let s2 = c.input_required(r2, ask("step2")).unwrap().request_state.unwrap();
        assert_ne!(s1, s2);
        let r3 = c
            .open(b, Some(&s2), Some(&responses(json!({"step2":{"action":"accept","content":{"color":"blue"}}}))))
            .unwrap();
        assert_eq!(r3.inputs.len(), 2);
    }

    #[test]
    fn tampered_or_misbound_state_is_refused() {
        let c = codec();
        let b = binding("tools/call", "t", &json!({}));
        let s = c.input_required(c.open(b.clone(), None, None).unwrap(), ask("k")).unwrap().request_state.unwrap();
        assert!(c.open(b.clone(), Some(&format!("{s}-TAMPERED")), None).is_err());
        let other = binding("tools/call", "other", &json!({}));
        assert!(c.open(other, Some(&s), None).is_err());
        // with a state, a malformed answer to an outstanding key is an error
        let err = c.open(b, Some(&s), Some(&responses(json!({"k": 12345})))).err().unwrap();
        assert!(err.to_string().contains("inputResponses.k"), "{err}");
    }

    #[test]
    fn stateless_answers_are_decoded_by_shape_and_garbage_ignored() {
        let c = codec();
        let b = binding("tools/call", "t", &json!({}));
        let r = c
            .open(
                b,
                None,
                Some(&responses(
                    json!({"user_name":{"action":"accept","content":{"name":"Alice"}},"junk":{"x":1},"n":5}),
                )),
            )
            .unwrap();
        assert_eq!(r.inputs.len(), 1);
        assert!(r.inputs.contains_key("user_name"));
    }
}
