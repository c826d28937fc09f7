//! xAPI: statement validation (every refusal with its JSON path and
//! status), the GET parameters, the version header, and the statement
//! store on SQLite and PostgreSQL (round trips, idempotent posts, voiding,
//! every filter, paging, tenant isolation).

use plexus_testkit::postgres::PgSchema;
use std::collections::BTreeSet;
use std::future::Future;

use plexus_core::TenantId;
use plexus_learning::xapi::{
    self, GetResult, ListQuery, SimpleStatement, Statement, StatementFilter, StatementQuery, StatementResult,
    XapiError, XapiStore, check_version, parse_statements,
};
use plexus_store::{NewTenant, Store};
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const ANSWERED: &str = "http://adlnet.gov/expapi/verbs/answered";
const ID1: &str = "6690e6c9-3ef0-4ed3-8b37-7f3964730bee";

/// A minimal valid statement.
fn base() -> Value {
    json!({
        "actor": {"mbox": "mailto:hanako@example.jp"},
        "verb": {"id": COMPLETED},
        "object": {"id": "https://example.jp/activities/1"}
    })
}

/// `v` with the value at JSON pointer `at` replaced (or added); `None`
/// removes it.
fn with(mut v: Value, edits: &[(&str, Option<Value>)]) -> Value {
    for (at, value) in edits {
        let (parent, key) = at.rsplit_once('/').expect("a pointer");
        let target = if parent.is_empty() { &mut v } else { v.pointer_mut(parent).expect("the parent exists") };
        let map = target.as_object_mut().expect("an object parent");
        match value {
            Some(x) => map.insert(key.to_owned(), x.clone()),
            None => map.remove(key),
        };
    }
    v
}

fn set(at: &str, value: Value) -> (&str, Option<Value>) {
    (at, Some(value))
}

fn del(at: &str) -> (&str, Option<Value>) {
    (at, None)
}

fn outcome(r: Result<impl Sized, XapiError>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{} {e}", e.status()),
    }
}

/// Validate `input` as a POST body; compare the outcome (`ok` or
/// `<status> <message>`) with `expect`.
fn check(input: &Value, expect: &str) {
    let body = serde_json::to_vec(input).expect("serialize");
    let got = outcome(parse_statements(&body));
    assert_eq!(got, expect, "input: {input}");
}

// ------------------------------------------------------- invalid statements

#[test]
fn invalid_statements_name_the_path_and_status() {
    let agent_mbox = json!({"mbox": "mailto:taro@example.jp"});
    let cases: Vec<(Value, &str)> = vec![
        // The statement itself.
        (with(base(), &[set("/foo", json!(1))]), "400 statement.foo: unknown property"),
        (with(base(), &[set("/Actor", base()["actor"].clone())]), "400 statement.Actor: unknown property"),
        (with(base(), &[del("/actor")]), "400 statement.actor: is required"),
        (with(base(), &[del("/verb")]), "400 statement.verb: is required"),
        (with(base(), &[del("/object")]), "400 statement.object: is required"),
        (with(base(), &[set("/id", json!("abc"))]), "400 statement.id: must be a UUID in standard string form"),
        (
            with(base(), &[set("/id", json!("6690e6c93ef04ed38b377f3964730bee"))]),
            "400 statement.id: must be a UUID in standard string form",
        ),
        (
            with(base(), &[set("/id", json!("{6690e6c9-3ef0-4ed3-8b37-7f3964730bee}"))]),
            "400 statement.id: must be a UUID in standard string form",
        ),
        (with(base(), &[set("/id", Value::Null)]), "400 statement.id: must not be null"),
        (with(base(), &[set("/id", json!(7))]), "400 statement.id: must be a string, not a number"),
        (json!(42), "400 body: must be a statement or an array of statements, not a number"),
        (json!("statement"), "400 body: must be a statement or an array of statements, not a string"),
        (json!([base(), 3]), "400 statement[1]: must be an object, not a number"),
        // Actor.
        (
            with(base(), &[set("/actor/mbox", json!("hanako@example.jp"))]),
            "400 statement.actor.mbox: must be a mailto IRI (mailto:name@example.com)",
        ),
        (
            with(base(), &[set("/actor/mbox", json!("mailto:"))]),
            "400 statement.actor.mbox: must be a mailto IRI (mailto:name@example.com)",
        ),
        (
            with(base(), &[set("/actor/mbox", json!("mailto:hanako at example.jp"))]),
            "400 statement.actor.mbox: must be a mailto IRI (mailto:name@example.com)",
        ),
        (
            with(base(), &[set("/actor", json!({"mbox_sha1sum": "xyz"}))]),
            "400 statement.actor.mbox_sha1sum: must be 40 hexadecimal digits (a sha1 sum)",
        ),
        (
            with(base(), &[set("/actor/openid", json!("http://openid.example.org/hanako"))]),
            "400 statement.actor: must have exactly one inverse functional identifier, found mbox and openid",
        ),
        (
            with(base(), &[set("/actor", json!({"name": "花子"}))]),
            "400 statement.actor: must have exactly one inverse functional identifier (mbox, mbox_sha1sum, openid or account)",
        ),
        (
            with(base(), &[set("/actor", json!({"openid": "/hanako"}))]),
            "400 statement.actor.openid: must be an absolute IRI",
        ),
        (
            with(base(), &[set("/actor", json!({"account": {"name": "hanako"}}))]),
            "400 statement.actor.account.homePage: is required",
        ),
        (
            with(base(), &[set("/actor", json!({"account": {"homePage": "https://lms.example.jp"}}))]),
            "400 statement.actor.account.name: is required",
        ),
        (
            with(base(), &[set("/actor", json!({"account": {"homePage": "lms.example.jp", "name": "h"}}))]),
            "400 statement.actor.account.homePage: must be an absolute IRL",
        ),
        (
            with(base(), &[set("/actor", json!({"account": {"homePage": "https://lms.example.jp", "name": 7}}))]),
            "400 statement.actor.account.name: must be a string, not a number",
        ),
        (
            with(base(), &[set("/actor", json!({"account": {"homePage": "https://lms.example.jp", "name": ""}}))]),
            "400 statement.actor.account.name: must not be empty",
        ),
        (
            with(base(), &[set("/actor", json!({"account": {"homePage": "https://x.jp", "name": "h", "id": 1}}))]),
            "400 statement.actor.account.id: unknown property",
        ),
        (
            with(base(), &[set("/actor/objectType", json!("agent"))]),
            "400 statement.actor.objectType: must be Agent or Group",
        ),
        (
            with(base(), &[set("/actor/member", json!([agent_mbox]))]),
            "400 statement.actor.member: is only allowed in a group (objectType Group)",
        ),
        (
            with(base(), &[set("/actor", json!({"objectType": "Group", "name": "一組"}))]),
            "400 statement.actor.member: is required in an anonymous group (a group without an identifier)",
        ),
        (
            with(base(), &[set("/actor", json!({"objectType": "Group", "member": []}))]),
            "400 statement.actor.member: must list at least one agent in an anonymous group",
        ),
        (
            with(
                base(),
                &[set(
                    "/actor",
                    json!({"objectType": "Group", "member": [{"objectType": "Group", "mbox": "mailto:g@x.jp"}]}),
                )],
            ),
            "400 statement.actor.member[0].objectType: a group member must be an agent, not a group",
        ),
        (
            with(base(), &[set("/actor", json!({"objectType": "Group", "member": [agent_mbox, {"name": "x"}]}))]),
            "400 statement.actor.member[1]: must have exactly one inverse functional identifier (mbox, mbox_sha1sum, openid or account)",
        ),
        (
            with(base(), &[set("/actor", json!({"objectType": "Group", "member": {"mbox": "mailto:a@x.jp"}}))]),
            "400 statement.actor.member: must be an array, not an object",
        ),
        (
            with(
                base(),
                &[set("/actor", json!({"objectType": "Group", "mbox": "mailto:g@x.jp", "openid": "http://x.jp/g"}))],
            ),
            "400 statement.actor: must have exactly one inverse functional identifier, found mbox and openid",
        ),
        (with(base(), &[set("/actor/name", json!(3))]), "400 statement.actor.name: must be a string, not a number"),
        (with(base(), &[set("/actor", json!("hanako"))]), "400 statement.actor: must be an object, not a string"),
        (with(base(), &[set("/actor", Value::Null)]), "400 statement.actor: must not be null"),
        // Verb.
        (with(base(), &[set("/verb", json!({"display": {"en": "did"}}))]), "400 statement.verb.id: is required"),
        (with(base(), &[set("/verb/id", json!("completed"))]), "400 statement.verb.id: must be an absolute IRI"),
        (with(base(), &[set("/verb/id", json!(""))]), "400 statement.verb.id: must be an absolute IRI"),
        (with(base(), &[set("/verb/id", json!("http://x.jp/a b"))]), "400 statement.verb.id: must be an absolute IRI"),
        (with(base(), &[set("/verb/id", json!("http://"))]), "400 statement.verb.id: must be an absolute IRI"),
        (with(base(), &[set("/verb/id", json!("http://x.jp/%zz"))]), "400 statement.verb.id: must be an absolute IRI"),
        (
            with(base(), &[set("/verb/display", json!({"en_US": "completed"}))]),
            "400 statement.verb.display.en_US: is not an RFC 5646 language tag",
        ),
        (
            with(base(), &[set("/verb/display", json!({"en-US-x": "completed"}))]),
            "400 statement.verb.display.en-US-x: is not an RFC 5646 language tag",
        ),
        (
            with(base(), &[set("/verb/display", json!({"toolonglanguage": "完了"}))]),
            "400 statement.verb.display.toolonglanguage: is not an RFC 5646 language tag",
        ),
        (
            with(base(), &[set("/verb/display", json!({"": "x"}))]),
            "400 statement.verb.display[\"\"]: is not an RFC 5646 language tag",
        ),
        (
            with(base(), &[set("/verb/display", json!({"en-US": 1}))]),
            "400 statement.verb.display.en-US: must be a string, not a number",
        ),
        (with(base(), &[set("/verb/display", json!({"ja": null}))]), "400 statement.verb.display.ja: must not be null"),
        (
            with(base(), &[set("/verb/display", json!(["completed"]))]),
            "400 statement.verb.display: must be an object, not an array",
        ),
        (with(base(), &[set("/verb/name", json!("x"))]), "400 statement.verb.name: unknown property"),
        // Object.
        (
            with(base(), &[set("/object/objectType", json!("activity"))]),
            "400 statement.object.objectType: must be one of Activity, Agent, Group, StatementRef or SubStatement",
        ),
        (with(base(), &[set("/object", json!({"definition": {}}))]), "400 statement.object.id: is required"),
        (with(base(), &[set("/object/id", json!("activities/1"))]), "400 statement.object.id: must be an absolute IRI"),
        (
            with(base(), &[set("/object", json!({"mbox": "mailto:taro@example.jp"}))]),
            "400 statement.object.objectType: is required when the object is an agent or group",
        ),
        (with(base(), &[set("/object/name", json!("x"))]), "400 statement.object.name: unknown property"),
        (
            with(base(), &[set("/object/definition", json!({"type": "quiz"}))]),
            "400 statement.object.definition.type: must be an absolute IRI",
        ),
        (
            with(base(), &[set("/object/definition", json!({"moreInfo": "www.example.jp"}))]),
            "400 statement.object.definition.moreInfo: must be an absolute IRL",
        ),
        (
            with(base(), &[set("/object/definition", json!({"name": {"ja-JP": 1}}))]),
            "400 statement.object.definition.name.ja-JP: must be a string, not a number",
        ),
        (
            with(base(), &[set("/object/definition", json!({"interactionType": "multiple-choice"}))]),
            "400 statement.object.definition.interactionType: must be one of true-false, choice, fill-in, long-fill-in, matching, performance, sequencing, likert, numeric, other",
        ),
        (
            with(base(), &[set("/object/definition", json!({"choices": [{"id": "a"}]}))]),
            "400 statement.object.definition.interactionType: is required when choices is given",
        ),
        (
            with(base(), &[set("/object/definition", json!({"correctResponsesPattern": ["a"]}))]),
            "400 statement.object.definition.interactionType: is required when correctResponsesPattern is given",
        ),
        (
            with(base(), &[set("/object/definition", json!({"interactionType": "likert", "choices": [{"id": "a"}]}))]),
            "400 statement.object.definition.choices: is not allowed for interactionType likert",
        ),
        (
            with(
                base(),
                &[set(
                    "/object/definition",
                    json!({"interactionType": "choice", "choices": [{"id": "a"}, {"id": "a"}]}),
                )],
            ),
            "400 statement.object.definition.choices[1].id: duplicates choices[0].id",
        ),
        (
            with(base(), &[set("/object/definition", json!({"interactionType": "choice", "choices": [{"id": ""}]}))]),
            "400 statement.object.definition.choices[0].id: must not be empty",
        ),
        (
            with(
                base(),
                &[set(
                    "/object/definition",
                    json!({"interactionType": "choice", "choices": [{"id": "a", "text": "x"}]}),
                )],
            ),
            "400 statement.object.definition.choices[0].text: unknown property",
        ),
        (
            with(
                base(),
                &[set("/object/definition", json!({"interactionType": "choice", "correctResponsesPattern": [1]}))],
            ),
            "400 statement.object.definition.correctResponsesPattern[0]: must be a string, not a number",
        ),
        (
            with(base(), &[set("/object/definition", json!({"extensions": {"color": "red"}}))]),
            "400 statement.object.definition.extensions.color: an extension key must be an absolute IRI",
        ),
        (
            with(base(), &[set("/object", json!({"objectType": "StatementRef", "id": "not-a-uuid"}))]),
            "400 statement.object.id: must be a UUID in standard string form",
        ),
        (
            with(base(), &[set("/object", json!({"objectType": "StatementRef", "id": ID1, "definition": {}}))]),
            "400 statement.object.definition: unknown property",
        ),
        (
            with(base(), &[set("/object", json!({"objectType": "StatementRef"}))]),
            "400 statement.object.id: is required",
        ),
        (
            with(
                base(),
                &[set("/object", with(base(), &[set("/objectType", json!("SubStatement")), set("/id", json!(ID1))]))],
            ),
            "400 statement.object.id: must not be in a substatement",
        ),
        (
            with(
                base(),
                &[set(
                    "/object",
                    with(
                        base(),
                        &[set("/objectType", json!("SubStatement")), set("/stored", json!("2024-01-01T00:00:00Z"))],
                    ),
                )],
            ),
            "400 statement.object.stored: must not be in a substatement",
        ),
        (
            with(
                base(),
                &[set(
                    "/object",
                    with(base(), &[set("/objectType", json!("SubStatement")), set("/version", json!("1.0.0"))]),
                )],
            ),
            "400 statement.object.version: must not be in a substatement",
        ),
        (
            with(
                base(),
                &[set(
                    "/object",
                    with(
                        base(),
                        &[
                            set("/objectType", json!("SubStatement")),
                            set("/authority", json!({"mbox": "mailto:a@x.jp"})),
                        ],
                    ),
                )],
            ),
            "400 statement.object.authority: must not be in a substatement",
        ),
        (
            with(
                base(),
                &[set(
                    "/object",
                    with(
                        base(),
                        &[
                            set("/objectType", json!("SubStatement")),
                            set("/object", with(base(), &[set("/objectType", json!("SubStatement"))])),
                        ],
                    ),
                )],
            ),
            "400 statement.object.object.objectType: a substatement must not contain a substatement",
        ),
        (
            with(base(), &[set("/object", with(base(), &[set("/objectType", json!("SubStatement")), del("/verb")]))]),
            "400 statement.object.verb: is required",
        ),
        (
            with(
                base(),
                &[set(
                    "/object",
                    with(base(), &[set("/objectType", json!("SubStatement")), set("/actor/mbox", json!("x"))]),
                )],
            ),
            "400 statement.object.actor.mbox: must be a mailto IRI (mailto:name@example.com)",
        ),
        (
            with(base(), &[set("/verb/id", json!(xapi::VOIDED_VERB))]),
            "400 statement.object: the object of a voiding statement must be a StatementRef",
        ),
        // Result.
        (
            with(base(), &[set("/result", json!({"score": {"scaled": 1.5}}))]),
            "400 statement.result.score.scaled: must be between -1 and 1",
        ),
        (
            with(base(), &[set("/result", json!({"score": {"scaled": -1.01}}))]),
            "400 statement.result.score.scaled: must be between -1 and 1",
        ),
        (
            with(base(), &[set("/result", json!({"score": {"scaled": "0.5"}}))]),
            "400 statement.result.score.scaled: must be a number, not a string",
        ),
        (
            with(base(), &[set("/result", json!({"score": {"raw": 11, "min": 0, "max": 10}}))]),
            "400 statement.result.score.raw: must not be greater than max",
        ),
        (
            with(base(), &[set("/result", json!({"score": {"raw": -1, "min": 0}}))]),
            "400 statement.result.score.raw: must not be less than min",
        ),
        (
            with(base(), &[set("/result", json!({"score": {"min": 10, "max": 10}}))]),
            "400 statement.result.score.min: must be less than max",
        ),
        (
            with(base(), &[set("/result", json!({"score": {"scaled": 0.5, "percent": 50}}))]),
            "400 statement.result.score.percent: unknown property",
        ),
        (
            with(base(), &[set("/result", json!({"success": "true"}))]),
            "400 statement.result.success: must be a boolean, not a string",
        ),
        (
            with(base(), &[set("/result", json!({"completion": null}))]),
            "400 statement.result.completion: must not be null",
        ),
        (
            with(base(), &[set("/result", json!({"response": 42}))]),
            "400 statement.result.response: must be a string, not a number",
        ),
        (
            with(base(), &[set("/result", json!({"duration": "1 hour"}))]),
            "400 statement.result.duration: must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
        ),
        (
            with(base(), &[set("/result", json!({"duration": "P4W1D"}))]),
            "400 statement.result.duration: must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
        ),
        (
            with(base(), &[set("/result", json!({"duration": "PT"}))]),
            "400 statement.result.duration: must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
        ),
        (
            with(base(), &[set("/result", json!({"duration": "P"}))]),
            "400 statement.result.duration: must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
        ),
        (
            with(base(), &[set("/result", json!({"duration": "PT5S4M"}))]),
            "400 statement.result.duration: must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
        ),
        (
            with(base(), &[set("/result", json!({"duration": "PT1.5H30M"}))]),
            "400 statement.result.duration: must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
        ),
        (
            with(base(), &[set("/result", json!({"duration": "P0003-01-29T04:35:59"}))]),
            "400 statement.result.duration: must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
        ),
        (
            with(base(), &[set("/result", json!({"duration": "-PT5S"}))]),
            "400 statement.result.duration: must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)",
        ),
        (
            with(base(), &[set("/result", json!({"extensions": {"score": 1}}))]),
            "400 statement.result.extensions.score: an extension key must be an absolute IRI",
        ),
        (with(base(), &[set("/result", json!([]))]), "400 statement.result: must be an object, not an array"),
        // Context.
        (
            with(base(), &[set("/context", json!({"registration": "r-1"}))]),
            "400 statement.context.registration: must be a UUID in standard string form",
        ),
        (
            with(base(), &[set("/context", json!({"team": {"mbox": "mailto:team@example.jp"}}))]),
            "400 statement.context.team: must be a group (objectType Group)",
        ),
        (
            with(base(), &[set("/context", json!({"instructor": {"name": "先生"}}))]),
            "400 statement.context.instructor: must have exactly one inverse functional identifier (mbox, mbox_sha1sum, openid or account)",
        ),
        (
            with(base(), &[set("/context", json!({"contextActivities": {"parents": []}}))]),
            "400 statement.context.contextActivities.parents: unknown property (must be parent, grouping, category or other)",
        ),
        (
            with(base(), &[set("/context", json!({"contextActivities": {"parent": "https://example.jp/c"}}))]),
            "400 statement.context.contextActivities.parent: must be an activity or an array of activities, not a string",
        ),
        (
            with(
                base(),
                &[set(
                    "/context",
                    json!({"contextActivities": {"parent": [{"objectType": "Agent", "id": "https://x.jp"}]}}),
                )],
            ),
            "400 statement.context.contextActivities.parent[0].objectType: must be Activity",
        ),
        (
            with(base(), &[set("/context", json!({"contextActivities": {"grouping": {"id": "course"}}}))]),
            "400 statement.context.contextActivities.grouping.id: must be an absolute IRI",
        ),
        (
            with(
                base(),
                &[
                    set("/object", json!({"objectType": "Agent", "mbox": "mailto:taro@example.jp"})),
                    set("/context", json!({"revision": "2"})),
                ],
            ),
            "400 statement.context.revision: is only allowed when the object is an activity",
        ),
        (
            with(
                base(),
                &[
                    set("/object", json!({"objectType": "StatementRef", "id": ID1})),
                    set("/context", json!({"platform": "iPad"})),
                ],
            ),
            "400 statement.context.platform: is only allowed when the object is an activity",
        ),
        (
            with(base(), &[set("/context", json!({"language": "english_uk"}))]),
            "400 statement.context.language: must be an RFC 5646 language tag",
        ),
        (
            with(base(), &[set("/context", json!({"statement": {"objectType": "Activity", "id": ID1}}))]),
            "400 statement.context.statement.objectType: must be StatementRef",
        ),
        (
            with(base(), &[set("/context", json!({"extensions": {"http://x.jp/e": null}, "mood": "good"}))]),
            "400 statement.context.mood: unknown property",
        ),
        // Timestamps, stored, version, authority.
        (
            with(base(), &[set("/timestamp", json!("2024-02-30T10:00:00Z"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("2023-02-29T10:00:00Z"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("2024-05-01"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("2024-05-01T10:00:00"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("2024-05-01T24:00:00Z"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("2024-05-01T10:60:00Z"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("2024-05-01T10:00:00-00:00"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("2024-05-01T10:00:00.Z"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("2024-05-01T10:00:00+24:00"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!("9999-12-31T23:00:00-05:00"))]),
            "400 statement.timestamp: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (
            with(base(), &[set("/timestamp", json!(1714557600))]),
            "400 statement.timestamp: must be a string, not a number",
        ),
        (
            with(base(), &[set("/stored", json!("yesterday"))]),
            "400 statement.stored: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (with(base(), &[set("/version", json!("2.0.0"))]), "400 statement.version: must be a 1.0.x version (1.0.0)"),
        (with(base(), &[set("/version", json!("1.0"))]), "400 statement.version: must be a 1.0.x version (1.0.0)"),
        (
            with(base(), &[set("/authority", json!({"name": "lms"}))]),
            "400 statement.authority: must have exactly one inverse functional identifier (mbox, mbox_sha1sum, openid or account)",
        ),
        // Attachments (metadata only: data must be at a fileUrl).
        (
            with(base(), &[set("/attachments", json!([attachment(&[del("/fileUrl")])]))]),
            "400 statement.attachments[0].fileUrl: is required: attachment data in multipart/mixed requests is not supported",
        ),
        (
            with(base(), &[set("/attachments", json!([attachment(&[set("/length", json!(-1))])]))]),
            "400 statement.attachments[0].length: must be a non-negative integer",
        ),
        (
            with(base(), &[set("/attachments", json!([attachment(&[set("/length", json!("10"))])]))]),
            "400 statement.attachments[0].length: must be a non-negative integer, not a string",
        ),
        (
            with(base(), &[set("/attachments", json!([attachment(&[set("/sha2", json!("abc"))])]))]),
            "400 statement.attachments[0].sha2: must be a hexadecimal sha-2 digest",
        ),
        (
            with(base(), &[set("/attachments", json!([attachment(&[del("/display")])]))]),
            "400 statement.attachments[0].display: is required",
        ),
        (
            with(base(), &[set("/attachments", json!([attachment(&[set("/contentType", json!("pdf"))])]))]),
            "400 statement.attachments[0].contentType: must be an internet media type (type/subtype)",
        ),
        // Batches: the index names the statement; ids must be unique.
        (
            json!([base(), with(base(), &[set("/actor/mbox", json!("taro"))])]),
            "400 statement[1].actor.mbox: must be a mailto IRI (mailto:name@example.com)",
        ),
        (
            json!([
                with(base(), &[set("/id", json!(ID1))]),
                base(),
                with(base(), &[set("/id", json!(ID1.to_uppercase()))])
            ]),
            "400 statement[2].id: duplicates statement[0].id",
        ),
    ];
    for (input, expect) in &cases {
        check(input, expect);
    }
    assert!(cases.len() > 120, "{} cases", cases.len());
}

fn attachment(edits: &[(&str, Option<Value>)]) -> Value {
    with(
        json!({
            "usageType": "http://adlnet.gov/expapi/attachments/certificate",
            "display": {"ja": "修了証"},
            "contentType": "application/pdf",
            "length": 12345,
            "sha2": "495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a",
            "fileUrl": "https://example.jp/certificates/1.pdf"
        }),
        edits,
    )
}

#[test]
fn malformed_json_is_refused_with_the_body_path() {
    for (body, prefix) in [
        (&b"{"[..], "400 body: invalid json: EOF while parsing an object"),
        (b"", "400 body: invalid json: EOF while parsing a value"),
        (b"{\"actor\": 1,}", "400 body: invalid json: trailing comma"),
        (b"[1] [2]", "400 body: invalid json: trailing characters"),
        (b"\xff\xfe", "400 body: invalid json:"),
        (b"{\"a\": 1e999}", "400 body: invalid json: number out of range"),
    ] {
        let got = outcome(parse_statements(body));
        assert!(got.starts_with(prefix), "{:?}: {got}", String::from_utf8_lossy(body));
    }
    // A property given twice, anywhere, is refused (serde_json alone would
    // keep the last one).
    let body = br#"{"actor": {"mbox": "mailto:a@x.jp", "mbox": "mailto:b@x.jp"}, "verb": {"id": "http://x.jp/v"}, "object": {"id": "http://x.jp/a"}}"#;
    let got = outcome(parse_statements(body));
    assert!(got.starts_with("400 body: invalid json: duplicate property \"mbox\" at line 1"), "{got}");
    // Deep nesting hits serde_json's recursion limit, not the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let got = outcome(parse_statements(deep.as_bytes()));
    assert!(got.starts_with("400 body: invalid json: recursion limit exceeded"), "{got}");
}

// --------------------------------------------------------- valid statements

#[test]
fn valid_statements_are_accepted_and_normalized() {
    // The specification's long example, with a contextActivities value given
    // as a single activity.
    let long = json!({
        "id": "6690E6C9-3EF0-4ED3-8B37-7F3964730BEE",
        "actor": {
            "name": "Team PB",
            "mbox": "mailto:teampb@example.com",
            "member": [
                {"name": "Andrew Downes", "account": {"homePage": "http://www.example.com", "name": "13936749"}, "objectType": "Agent"},
                {"name": "Toby Nichols", "openid": "http://toby.openid.example.org/", "objectType": "Agent"},
                {"name": "Ena Hills", "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9", "objectType": "Agent"}
            ],
            "objectType": "Group"
        },
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attended", "display": {"en-GB": "attended", "en-US": "attended"}},
        "result": {
            "extensions": {"http://example.com/profiles/meetings/resultextensions/minuteslocation": "X:\\meetings\\minutes\\examplemeeting.one"},
            "success": true, "completion": true, "response": "We agreed on some example actions.", "duration": "PT1H0M0S"
        },
        "context": {
            "registration": "EC531277-B57B-4C15-8D91-D292C5B2B8F7",
            "contextActivities": {
                "parent": {"id": "http://www.example.com/meetings/series/267", "objectType": "Activity"},
                "category": [{"id": "http://www.example.com/meetings/categories/teammeeting", "objectType": "Activity",
                              "definition": {"name": {"en": "team meeting"}, "type": "http://example.com/expapi/activities/meetingcategory"}}],
                "other": [{"id": "http://www.example.com/meetings/occurances/34257"}, {"id": "http://www.example.com/meetings/occurances/3425567"}]
            },
            "instructor": {"name": "Andrew Downes", "account": {"homePage": "http://www.example.com", "name": "13936749"}, "objectType": "Agent"},
            "team": {"name": "Team PB", "mbox": "mailto:teampb@example.com", "objectType": "Group"},
            "platform": "Example virtual meeting software",
            "language": "tlh",
            "statement": {"objectType": "StatementRef", "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"},
            "extensions": {"http://example.com/ext": null}
        },
        "timestamp": "2013-05-18T14:32:34.804+09:00",
        "stored": "2013-05-18T05:32:34.804+00:00",
        "authority": {"account": {"homePage": "http://cloud.scorm.com/", "name": "anonymous"}, "objectType": "Agent"},
        "version": "1.0.0",
        "object": {
            "id": "http://www.example.com/meetings/occurances/34534",
            "definition": {
                "extensions": {"http://example.com/profiles/meetings/activitydefinitionextensions/room": {"name": "Kilby", "id": "http://example.com/rooms/342"}},
                "name": {"en-GB": "example meeting", "en-US": "example meeting"},
                "description": {"en-GB": "An example meeting.", "en-US": "An example meeting."},
                "type": "http://adlnet.gov/expapi/activities/meeting",
                "moreInfo": "http://virtualmeeting.example.com/345256"
            },
            "objectType": "Activity"
        },
        "attachments": [attachment(&[])]
    });
    let s = &parse_statements(&serde_json::to_vec(&long).expect("serialize")).expect("valid")[0];
    assert_eq!(s.id(), ID1, "ids are lowercased");
    let j = s.json();
    assert_eq!(j["context"]["registration"], "ec531277-b57b-4c15-8d91-d292c5b2b8f7");
    assert_eq!(
        j["context"]["contextActivities"]["parent"],
        json!([{"id": "http://www.example.com/meetings/series/267", "objectType": "Activity"}]),
        "a single context activity becomes an array"
    );
    assert_eq!(j["timestamp"], "2013-05-18T05:32:34.804Z", "timestamps are returned in UTC");
    assert!(j.get("stored").is_none(), "a client's stored is replaced by the LRS");
    assert_eq!(j["object"], long["object"], "the rest is kept exactly");
    assert_eq!(j["result"], long["result"]);
    assert_eq!(j["actor"], long["actor"]);
    assert_eq!(s.actor_key(), Some("mbox:mailto:teampb@example.com"));
    assert_eq!(s.verb_id(), "http://adlnet.gov/expapi/verbs/attended");
    assert_eq!(s.activity_id(), Some("http://www.example.com/meetings/occurances/34534"));
    assert_eq!(s.registration(), Some("ec531277-b57b-4c15-8d91-d292c5b2b8f7"));
    assert_eq!((s.success(), s.completion(), s.duration_seconds()), (Some(true), Some(true), Some(3600.0)));
    assert_eq!(s.timestamp().map(|t| t.unix_timestamp()), Some(1_368_855_154));

    // Each of these is valid on its own.
    let valid: Vec<Value> = vec![
        base(),
        json!([]),
        json!([base(), base()]),
        with(base(), &[set("/actor", json!({"mbox_sha1sum": "EBD31E95054C018B10727CCFFD2EF2EC3A016EE9"}))]),
        with(base(), &[set("/actor", json!({"openid": "http://openid.example.jp/花子"}))]),
        with(
            base(),
            &[set(
                "/actor",
                json!({"objectType": "Agent", "account": {"homePage": "https://lms.example.jp", "name": "山田 花子"}}),
            )],
        ),
        with(
            base(),
            &[set(
                "/actor",
                json!({"objectType": "Group", "member": [{"mbox": "mailto:a@x.jp"}, {"objectType": "Agent", "mbox": "mailto:b@x.jp"}]}),
            )],
        ),
        with(base(), &[set("/actor", json!({"objectType": "Group", "openid": "http://x.jp/g", "member": []}))]),
        with(base(), &[set("/verb/id", json!("https://例え.jp/動詞/完了"))]),
        with(base(), &[set("/verb/id", json!("urn:example:verb:1"))]),
        with(
            base(),
            &[set(
                "/verb/display",
                json!({
                    "ja": "完了した", "ja-JP": "完了", "zh-Hant-TW": "完成", "de-CH-1901": "x", "sgn-BE-FR": "x", "i-klingon": "x",
                    "en-US-x-twain": "x", "x-private": "x", "es-419": "x", "sl-rozaj-biske": "x", "en-a-bbb-x-a-ccc": "x", "EN-us": "x", "und": "x"
                }),
            )],
        ),
        with(base(), &[set("/object", json!({"objectType": "Agent", "mbox": "mailto:taro@example.jp"}))]),
        with(base(), &[set("/object", json!({"objectType": "Group", "member": [{"mbox": "mailto:taro@example.jp"}]}))]),
        with(base(), &[set("/object", json!({"objectType": "StatementRef", "id": ID1}))]),
        with(
            base(),
            &[set(
                "/object",
                with(
                    base(),
                    &[set("/objectType", json!("SubStatement")), set("/timestamp", json!("2999-01-01T00:00:00Z"))],
                ),
            )],
        ),
        with(
            base(),
            &[set(
                "/object",
                with(
                    base(),
                    &[
                        set("/objectType", json!("SubStatement")),
                        set("/object", json!({"objectType": "StatementRef", "id": ID1})),
                    ],
                ),
            )],
        ),
        with(
            base(),
            &[
                set("/verb/id", json!(xapi::VOIDED_VERB)),
                set("/object", json!({"objectType": "StatementRef", "id": ID1})),
            ],
        ),
        with(
            base(),
            &[set(
                "/object/definition",
                json!({
                    "interactionType": "choice", "correctResponsesPattern": ["golf[,]tetris"],
                    "choices": [{"id": "golf", "description": {"ja": "ゴルフ"}}, {"id": "tetris"}]
                }),
            )],
        ),
        with(
            base(),
            &[set(
                "/object/definition",
                json!({"interactionType": "matching", "source": [{"id": "a"}], "target": [{"id": "a"}]}),
            )],
        ),
        with(
            base(),
            &[set("/object/definition", json!({"interactionType": "true-false", "correctResponsesPattern": []}))],
        ),
        with(base(), &[set("/result", json!({"score": {"scaled": -1, "raw": 0, "min": 0, "max": 100}}))]),
        with(base(), &[set("/result", json!({"score": {"scaled": 1, "raw": 100, "min": 0, "max": 100}}))]),
        with(base(), &[set("/result", json!({"extensions": {"http://x.jp/e": {"deep": [null, 1, "二"]}}}))]),
        with(
            base(),
            &[set("/context", json!({"contextActivities": {"parent": [], "other": {"id": "http://x.jp/o"}}}))],
        ),
        with(
            base(),
            &[set(
                "/context",
                json!({"team": {"objectType": "Group", "member": [{"mbox": "mailto:a@x.jp"}]}, "instructor": {"objectType": "Group", "mbox": "mailto:t@x.jp"}}),
            )],
        ),
        with(base(), &[set("/timestamp", json!("2024-02-29T23:59:59.123456789Z"))]),
        with(base(), &[set("/timestamp", json!("2024-05-01T09:30:00+0900"))]),
        with(base(), &[set("/timestamp", json!("2024-05-01T09:30:00,5+09"))]),
        with(base(), &[set("/timestamp", json!("0000-01-01T00:00:00Z"))]),
        with(base(), &[set("/version", json!("1.0.3"))]),
        with(
            base(),
            &[set(
                "/authority",
                json!({"objectType": "Group", "member": [
                    {"account": {"homePage": "http://example.com/xAPI/OAuth/Token", "name": "oauth_consumer_x75db"}},
                    {"mbox": "mailto:bob@example.com"}
                ]}),
            )],
        ),
    ];
    for v in &valid {
        check(v, "ok");
    }
}

#[test]
fn timestamps_and_durations_are_read_exactly() {
    for (ts, normalized) in [
        ("2013-05-18T05:32:34.804Z", "2013-05-18T05:32:34.804Z"),
        ("2013-05-18T05:32:34.804+00:00", "2013-05-18T05:32:34.804Z"),
        ("2013-05-18T14:32:34+09:00", "2013-05-18T05:32:34.000Z"),
        ("2013-05-18T14:32:34+0900", "2013-05-18T05:32:34.000Z"),
        ("2013-05-18t05:32:34,5z", "2013-05-18T05:32:34.500Z"),
        ("2013-05-18T05:32:34.000001Z", "2013-05-18T05:32:34.000001Z"),
        ("2013-05-18T05:32:34.1234567891Z", "2013-05-18T05:32:34.123456789Z"),
        ("2013-05-17T23:32:34-06:00", "2013-05-18T05:32:34.000Z"),
        ("2024-01-01T00:30:00+01:00", "2023-12-31T23:30:00.000Z"),
    ] {
        let s = statement(with(base(), &[set("/timestamp", json!(ts))]));
        assert_eq!(s.json()["timestamp"], normalized, "{ts}");
    }
    for (duration, seconds) in [
        ("PT1234S", 1234.0),
        ("PT4H35M59.14S", 16_559.14),
        ("P1D", 86_400.0),
        ("P4W", 2_419_200.0),
        ("PT0.5S", 0.5),
        ("PT0,25S", 0.25),
        ("P1DT1H", 90_000.0),
        ("PT1.5H", 5_400.0),
        ("P1Y", 31_556_952.0),
        ("P1M", 2_629_746.0),
        ("PT1M", 60.0),
    ] {
        let s = statement(with(base(), &[set("/result", json!({"duration": duration}))]));
        let got = s.duration_seconds().expect("a duration");
        assert!((got - seconds).abs() < 1e-6, "{duration}: {got}");
        assert_eq!(s.json()["result"]["duration"], duration, "durations are kept as sent");
    }
}

fn statement(v: Value) -> Statement {
    Statement::from_value(&v).expect("a valid statement")
}

#[test]
fn japanese_text_survives_validation() {
    let v = json!({
        "actor": {"name": "山田花子", "account": {"homePage": "https://学校.example.jp", "name": "はなこ"}},
        "verb": {"id": ANSWERED, "display": {"ja": "回答した"}},
        "object": {"id": "https://example.jp/問題/一", "definition": {"name": {"ja": "分数のたし算 🍰"}, "description": {"ja-JP": "「½ + ⅓」を計算する"}}},
        "result": {"response": "五分の六", "success": true}
    });
    let s = statement(v.clone());
    assert_eq!(s.json()["actor"], v["actor"]);
    assert_eq!(s.json()["object"], v["object"]);
    assert_eq!(s.json()["result"], v["result"]);
    assert_eq!(s.actor_key(), Some("account:https://学校.example.jp はなこ"));
    let text = serde_json::to_string(s.json()).expect("serialize");
    assert!(text.contains("分数のたし算 🍰") && text.contains("「½ + ⅓」を計算する"), "{text}");
}

#[test]
fn simple_statements_are_built_valid() {
    let s = SimpleStatement {
        home_page: "https://lms.example.jp".into(),
        account_name: "hanako".into(),
        actor_name: Some("山田花子".into()),
        verb_id: COMPLETED.into(),
        verb_display: Some("完了した".into()),
        activity_id: "https://example.jp/units/分数".into(),
        activity_name: Some("分数".into()),
        language: Some("ja".into()),
        success: Some(true),
        completion: Some(true),
        score_scaled: Some(0.85),
        duration_seconds: Some(754.256),
        registration: Some("EC531277-B57B-4C15-8D91-D292C5B2B8F7".into()),
        timestamp: Some(time::macros::datetime!(2024-05-01 09:30 +09:00)),
    }
    .build()
    .expect("valid");
    assert_eq!(s.actor_key(), Some("account:https://lms.example.jp hanako"));
    assert_eq!(s.verb_id(), COMPLETED);
    assert_eq!(s.activity_id(), Some("https://example.jp/units/分数"));
    assert_eq!((s.success(), s.completion(), s.scaled_score()), (Some(true), Some(true), Some(0.85)));
    assert_eq!(s.json()["result"]["duration"], "PT754.26S");
    assert_eq!(s.duration_seconds(), Some(754.26));
    assert_eq!(s.json()["verb"]["display"], json!({"ja": "完了した"}));
    assert_eq!(s.json()["object"]["definition"]["name"], json!({"ja": "分数"}));
    assert_eq!(s.json()["timestamp"], "2024-05-01T00:30:00.000Z");
    assert_eq!(s.registration(), Some("ec531277-b57b-4c15-8d91-d292c5b2b8f7"));

    let minimal = SimpleStatement {
        home_page: "https://lms.example.jp".into(),
        account_name: "taro".into(),
        verb_id: ANSWERED.into(),
        activity_id: "https://example.jp/q/1".into(),
        duration_seconds: Some(60.0),
        ..SimpleStatement::default()
    }
    .build()
    .expect("valid");
    assert_eq!(minimal.json()["result"], json!({"duration": "PT60S"}));
    assert!(minimal.json()["verb"].get("display").is_none());

    // Bad parts are refused with the path they would have in the statement.
    let bad = |edit: fn(&mut SimpleStatement), expect: &str| {
        let mut s = SimpleStatement {
            home_page: "https://lms.example.jp".into(),
            account_name: "taro".into(),
            verb_id: ANSWERED.into(),
            activity_id: "https://example.jp/q/1".into(),
            ..SimpleStatement::default()
        };
        edit(&mut s);
        assert_eq!(outcome(s.build()), expect);
    };
    bad(|s| s.home_page = "lms".into(), "400 statement.actor.account.homePage: must be an absolute IRL");
    bad(|s| s.account_name = String::new(), "400 statement.actor.account.name: must not be empty");
    bad(|s| s.verb_id = "answered".into(), "400 statement.verb.id: must be an absolute IRI");
    bad(|s| s.activity_id = "q1".into(), "400 statement.object.id: must be an absolute IRI");
    bad(|s| s.score_scaled = Some(2.0), "400 statement.result.score.scaled: must be between -1 and 1");
    bad(|s| s.score_scaled = Some(f64::NAN), "400 statement.result.score.scaled: must be a finite number");
    bad(
        |s| s.duration_seconds = Some(-1.0),
        "400 statement.result.duration: must be a finite, non-negative number of seconds",
    );
    bad(
        |s| (s.language, s.verb_display) = (Some("日本語".into()), Some("完了".into())),
        "400 statement.verb.display[\"日本語\"]: is not an RFC 5646 language tag",
    );
    bad(
        |s| s.registration = Some("r".into()),
        "400 statement.context.registration: must be a UUID in standard string form",
    );
}

// ------------------------------------------------------------ query params

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn check_query(list: &[(&str, &str)], expect: &str) {
    let got = outcome(StatementQuery::parse(&params(list)));
    assert_eq!(got, expect, "{list:?}");
}

#[test]
fn query_parameters_are_checked() {
    let agent = r#"{"mbox": "mailto:hanako@example.jp"}"#;
    for (list, expect) in [
        (vec![], "ok"),
        (vec![("statementId", ID1)], "ok"),
        (vec![("statementId", ID1), ("format", "ids"), ("attachments", "false")], "ok"),
        (vec![("voidedStatementId", ID1)], "ok"),
        (
            vec![
                ("agent", agent),
                ("verb", COMPLETED),
                ("activity", "https://example.jp/a"),
                ("registration", ID1),
                ("related_activities", "true"),
                ("related_agents", "false"),
                ("since", "2024-01-01T00:00:00Z"),
                ("until", "2024-12-31T00:00:00+09:00"),
                ("limit", "10"),
                ("format", "canonical"),
                ("ascending", "true"),
                ("attachments", "false"),
            ],
            "ok",
        ),
        (vec![("foo", "1")], "400 foo: unknown parameter"),
        (vec![("foo", "1"), ("verb", COMPLETED), ("bar", "2")], "400 query: unknown parameters: foo, bar"),
        (vec![("Verb", COMPLETED)], "400 Verb: unknown parameter"),
        (vec![("verb", COMPLETED), ("verb", ANSWERED)], "400 verb: given more than once"),
        (
            vec![("statementId", ID1), ("voidedStatementId", ID1)],
            "400 voidedStatementId: cannot be combined with statementId",
        ),
        (vec![("statementId", ID1), ("verb", COMPLETED)], "400 verb: cannot be combined with statementId"),
        (vec![("voidedStatementId", ID1), ("limit", "1")], "400 limit: cannot be combined with voidedStatementId"),
        (vec![("statementId", "1")], "400 statementId: must be a UUID in standard string form"),
        (vec![("voidedStatementId", "")], "400 voidedStatementId: must be a UUID in standard string form"),
        (
            vec![("agent", r#"{"mbox": "hanako@example.jp"}"#)],
            "400 agent.mbox: must be a mailto IRI (mailto:name@example.com)",
        ),
        (
            vec![("agent", r#"{"objectType": "Group", "member": [{"mbox": "mailto:a@x.jp"}]}"#)],
            "400 agent: must be an agent or an identified group",
        ),
        (vec![("agent", "mailto:hanako@example.jp")], "400 agent: invalid json: expected value at line 1 column 1"),
        (vec![("verb", "completed")], "400 verb: must be an absolute IRI"),
        (vec![("activity", "")], "400 activity: must be an absolute IRI"),
        (vec![("registration", "abc")], "400 registration: must be a UUID in standard string form"),
        (vec![("related_agents", "yes")], "400 related_agents: must be true or false"),
        (vec![("related_activities", "True")], "400 related_activities: must be true or false"),
        (vec![("ascending", "1")], "400 ascending: must be true or false"),
        (vec![("attachments", "")], "400 attachments: must be true or false"),
        (vec![("since", "2024-01-01")], "400 since: must be an ISO 8601 timestamp with a time zone (RFC 3339)"),
        (
            vec![("until", "2024-13-01T00:00:00Z")],
            "400 until: must be an ISO 8601 timestamp with a time zone (RFC 3339)",
        ),
        (vec![("limit", "-1")], "400 limit: must be a non-negative integer"),
        (vec![("limit", "ten")], "400 limit: must be a non-negative integer"),
        (vec![("limit", "")], "400 limit: must be a non-negative integer"),
        (vec![("format", "full")], "400 format: must be ids, exact or canonical"),
        (vec![("more", "!!!")], "400 more: invalid continuation token"),
        (vec![("more", "")], "400 more: invalid continuation token"),
        (vec![("more", "eyJ4IjoxfQ")], "400 more: invalid continuation token"),
        (vec![("more", "abc"), ("verb", COMPLETED)], "400 verb: cannot be combined with more"),
    ] {
        check_query(&list, expect);
    }

    // What a parse yields.
    let q = StatementQuery::parse(&params(&[
        ("agent", r#"{"mbox": "mailto:Hanako@Example.JP"}"#),
        ("registration", "EC531277-B57B-4C15-8D91-D292C5B2B8F7"),
        ("limit", "100000"),
    ]))
    .expect("valid");
    let StatementQuery::List(list) = q else { panic!("a list query") };
    assert_eq!(
        list.filter.agent.as_deref(),
        Some("mbox:mailto:Hanako@example.jp"),
        "the email domain is case insensitive"
    );
    assert_eq!(list.filter.registration.as_deref(), Some("ec531277-b57b-4c15-8d91-d292c5b2b8f7"));
    assert_eq!(list.page_size(), xapi::MAX_LIMIT);
    assert!(!list.is_continuation());
    let StatementQuery::List(zero) = StatementQuery::parse(&params(&[("limit", "0")])).expect("valid") else {
        panic!("a list query")
    };
    assert_eq!(zero.page_size(), xapi::MAX_LIMIT, "limit 0 is the server's maximum");
    assert_eq!(
        StatementQuery::parse(&params(&[("voidedStatementId", &ID1.to_uppercase()), ("format", "ids")]))
            .expect("valid"),
        StatementQuery::Single { id: ID1.into(), voided: true, format: xapi::Format::Ids, attachments: false }
    );
}

#[test]
fn the_version_header_is_checked() {
    for (header, expect) in [
        (Some("1.0.3"), "ok"),
        (Some("1.0.0"), "ok"),
        (Some("1.0.1"), "ok"),
        (Some("1.0.2"), "ok"),
        (Some("1.0"), "ok"),
        (Some(" 1.0.3 "), "ok"),
        (None, "400 X-Experience-API-Version: is required (1.0.3)"),
        (Some(""), "400 X-Experience-API-Version: version \"\" is not supported (use 1.0.x; this lrs speaks 1.0.3)"),
        (
            Some("0.95"),
            "400 X-Experience-API-Version: version \"0.95\" is not supported (use 1.0.x; this lrs speaks 1.0.3)",
        ),
        (
            Some("1.1.0"),
            "400 X-Experience-API-Version: version \"1.1.0\" is not supported (use 1.0.x; this lrs speaks 1.0.3)",
        ),
        (
            Some("2.0.0"),
            "400 X-Experience-API-Version: version \"2.0.0\" is not supported (use 1.0.x; this lrs speaks 1.0.3)",
        ),
        (
            Some("1.0.x"),
            "400 X-Experience-API-Version: version \"1.0.x\" is not supported (use 1.0.x; this lrs speaks 1.0.3)",
        ),
    ] {
        assert_eq!(outcome(check_version(header)), expect, "{header:?}");
    }
    let through = xapi::consistent_through();
    assert!(through.ends_with('Z') && through.len() >= 24, "{through}");
}

// ------------------------------------------------------------ the store

const A: &str = "学校-a";
const B: &str = "school-b";

fn authority() -> Value {
    json!({"objectType": "Agent", "account": {"homePage": "https://plexus.example", "name": "key-1"}})
}

async fn prepared(store: Store) -> XapiStore {
    store.migrate(&plexus_learning::store::MIGRATIONS).await.expect("migrate");
    for t in [A, B] {
        store
            .create_tenant(&NewTenant { id: TenantId::new(t), name: t.into(), tier: "standard".into() })
            .await
            .expect("create tenant");
    }
    XapiStore::new(store)
}

async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(XapiStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir =
        std::env::temp_dir().join(format!("plexus-xapi-it-{}-{}", std::process::id(), plexus_testkit::unique_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = Store::open(&format!("sqlite://{}", dir.join("plexus.db").display())).await.expect("open");
    test(prepared(store).await).await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(XapiStore, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(pg) = PgSchema::start("plexus_xapi", "the xapi store").await else { return };
    let store = Store::open(&pg.url).await.expect("open");
    assert_eq!(store.backend(), plexus_store::Backend::Postgres);
    let xapi = prepared(store).await;
    // Run the test as its own task so the role is dropped even if it fails.
    let outcome = tokio::spawn(test(xapi, pg.url.clone())).await;
    pg.stop().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the test task failed: {e}"),
        }
    }
}

/// Each storage test, once on SQLite and once on PostgreSQL.
macro_rules! storage_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_sqlite(super::$name).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_postgres(|x, _| super::$name(x)).await;
                }
            )*
        }
    };
}

storage_tests!(
    statements_round_trip,
    japanese_text_round_trips,
    posts_are_idempotent_and_conflicts_refused,
    put_checks_the_id,
    batches_are_all_or_nothing,
    voiding,
    every_filter,
    paging_returns_each_statement_once,
    tenants_are_isolated,
    concurrent_posts_of_one_id,
);

fn tid(t: &str) -> TenantId {
    TenantId::new(t)
}

async fn post(x: &XapiStore, tenant: &str, v: &Value) -> Result<Vec<String>, XapiError> {
    x.post(&tid(tenant), &serde_json::to_vec(v).expect("serialize"), &authority()).await
}

async fn post_ok(x: &XapiStore, tenant: &str, v: &Value) -> Vec<String> {
    post(x, tenant, v).await.expect("post")
}

async fn get_one(x: &XapiStore, tenant: &str, id: &str) -> Result<Value, XapiError> {
    match x.get(&tid(tenant), &query(&[("statementId", id)])).await? {
        GetResult::Statement(s) => Ok(s),
        GetResult::Statements(_) => panic!("one statement expected"),
    }
}

async fn get_voided(x: &XapiStore, tenant: &str, id: &str) -> Result<Value, XapiError> {
    match x.get(&tid(tenant), &query(&[("voidedStatementId", id)])).await? {
        GetResult::Statement(s) => Ok(s),
        GetResult::Statements(_) => panic!("one statement expected"),
    }
}

fn query(list: &[(&str, &str)]) -> StatementQuery {
    StatementQuery::parse(&params(list)).expect("a valid query")
}

async fn list(x: &XapiStore, tenant: &str, q: &[(&str, &str)]) -> StatementResult {
    match x.get(&tid(tenant), &query(q)).await.expect("get") {
        GetResult::Statements(r) => r,
        GetResult::Statement(_) => panic!("a list expected"),
    }
}

/// The ids of a page, in order.
fn ids(r: &StatementResult) -> Vec<String> {
    r.statements.iter().map(|s| s["id"].as_str().expect("an id").to_owned()).collect()
}

/// The `more` token of a result.
fn more_token(r: &StatementResult) -> Option<String> {
    r.more.as_ref().map(|m| {
        m.strip_prefix(&format!("{}?more=", xapi::STATEMENTS_PATH)).expect("a statements more link").to_owned()
    })
}

async fn statements_round_trip(x: XapiStore) {
    let input = json!({
        "id": ID1,
        "actor": {"objectType": "Agent", "name": "Hanako", "mbox": "mailto:hanako@example.jp"},
        "verb": {"id": COMPLETED, "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": "https://example.jp/a/1", "definition": {"name": {"en": "Unit 1"}}},
        "result": {"score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10}, "success": true, "duration": "PT4M"},
        "context": {"contextActivities": {"parent": {"id": "https://example.jp/course"}}, "platform": "web"},
        "timestamp": "2024-05-01T09:30:00+09:00",
        "authority": {"mbox": "mailto:forged@example.jp"},
        "stored": "2000-01-01T00:00:00Z"
    });
    let before = time::OffsetDateTime::now_utc();
    assert_eq!(post_ok(&x, A, &input).await, vec![ID1.to_owned()]);
    let got = get_one(&x, A, ID1).await.expect("stored");
    for k in ["actor", "verb", "object", "result"] {
        assert_eq!(got[k], input[k], "{k} is returned exactly");
    }
    assert_eq!(got["context"]["contextActivities"]["parent"], json!([{"id": "https://example.jp/course"}]));
    assert_eq!(got["timestamp"], "2024-05-01T00:30:00.000Z");
    assert_eq!(got["authority"], authority(), "the LRS sets the authority");
    assert_eq!(got["version"], "1.0.0", "and the version");
    let stored = time::OffsetDateTime::parse(
        got["stored"].as_str().expect("stored"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("an RFC 3339 stored");
    assert!(
        stored >= before - time::Duration::seconds(1) && stored <= time::OffsetDateTime::now_utc(),
        "stored is now"
    );
    assert_eq!(got["id"], ID1);
    // It reads back as a valid statement, with the same facts.
    let again = Statement::from_value(&got).expect("valid");
    assert_eq!(
        (again.actor_key(), again.scaled_score(), again.duration_seconds()),
        (Some("mbox:mailto:hanako@example.jp"), Some(0.5), Some(240.0))
    );

    // Without a timestamp the LRS uses stored; without an id it makes one.
    let ids = post_ok(&x, A, &base()).await;
    assert_eq!(ids.len(), 1);
    let made = get_one(&x, A, &ids[0]).await.expect("stored");
    assert_eq!(made["timestamp"], made["stored"]);
    assert!(uuid::Uuid::parse_str(&ids[0]).is_ok());

    // The `ids` format: identifiers only.
    let GetResult::Statement(reduced) =
        x.get(&tid(A), &query(&[("statementId", ID1), ("format", "ids")])).await.expect("get")
    else {
        panic!("one statement")
    };
    assert_eq!(reduced["actor"], json!({"objectType": "Agent", "mbox": "mailto:hanako@example.jp"}));
    assert_eq!(reduced["verb"], json!({"id": COMPLETED}));
    assert_eq!(reduced["object"], json!({"objectType": "Activity", "id": "https://example.jp/a/1"}));
    assert_eq!(
        reduced["context"]["contextActivities"]["parent"],
        json!([{"objectType": "Activity", "id": "https://example.jp/course"}])
    );
    assert_eq!(reduced["result"], input["result"]);
    // Canonical is exact here.
    let GetResult::Statement(canonical) =
        x.get(&tid(A), &query(&[("statementId", ID1), ("format", "canonical")])).await.expect("get")
    else {
        panic!("one statement")
    };
    assert_eq!(canonical, got);

    assert_eq!(
        outcome(get_one(&x, A, "00000000-0000-4000-8000-000000000000").await),
        "404 no statement 00000000-0000-4000-8000-000000000000"
    );
    assert_eq!(x.count(&tid(A)).await.expect("count"), 2);
}

async fn japanese_text_round_trips(x: XapiStore) {
    let input = json!({
        "actor": {"name": "山田花子", "account": {"homePage": "https://学校.example.jp", "name": "はなこ"}},
        "verb": {"id": "https://例え.jp/動詞/回答した", "display": {"ja": "回答した", "ja-Hira": "かいとうした"}},
        "object": {"id": "https://example.jp/問題/一", "definition": {
            "name": {"ja": "分数のたし算 🍰"}, "description": {"ja-JP": "「½ + ⅓」を計算する"},
            "interactionType": "choice", "choices": [{"id": "五分の六", "description": {"ja": "五分の六"}}]
        }},
        "result": {"response": "六分の五\n（改行あり）", "extensions": {"https://example.jp/拡張/メモ": "よくできました"}},
        "context": {"language": "ja-JP", "platform": "タブレット"}
    });
    let id = post_ok(&x, A, &input).await.remove(0);
    let got = get_one(&x, A, &id).await.expect("stored");
    for k in ["actor", "verb", "object", "result", "context"] {
        assert_eq!(got[k], input[k], "{k}");
    }
    // Queried by the Japanese IRIs and account.
    let agent = json!({"account": {"homePage": "https://学校.example.jp", "name": "はなこ"}}).to_string();
    let r = list(
        &x,
        A,
        &[("agent", &agent), ("verb", "https://例え.jp/動詞/回答した"), ("activity", "https://example.jp/問題/一")],
    )
    .await;
    assert_eq!(ids(&r), vec![id]);
    assert_eq!(r.statements[0]["object"]["definition"]["name"]["ja"], "分数のたし算 🍰");
    let text = r.to_json().to_string();
    assert!(text.contains("よくできました") && text.contains("かいとうした"), "{text}");
}

async fn posts_are_idempotent_and_conflicts_refused(x: XapiStore) {
    let first = with(
        base(),
        &[
            set("/id", json!(ID1)),
            set("/result", json!({"success": true})),
            set("/verb/display", json!({"en": "completed"})),
        ],
    );
    post_ok(&x, A, &first).await;
    let stored = get_one(&x, A, ID1).await.expect("stored");
    // The same statement again: accepted, nothing changes.
    assert_eq!(post_ok(&x, A, &first).await, vec![ID1.to_owned()]);
    assert_eq!(get_one(&x, A, ID1).await.expect("stored"), stored, "the stored statement is not modified");
    assert_eq!(x.count(&tid(A)).await.expect("count"), 1);
    // Differences the specification exempts from comparison: the same statement.
    let same = [
        with(first.clone(), &[set("/verb/display", json!({"ja": "完了した"}))]),
        with(first.clone(), &[set("/object/definition", json!({"name": {"en": "renamed"}}))]),
        with(
            first.clone(),
            &[set("/id", json!(ID1.to_uppercase())), set("/actor/mbox", json!("mailto:hanako@EXAMPLE.JP"))],
        ),
        with(first.clone(), &[set("/version", json!("1.0.3")), set("/stored", json!("2020-01-01T00:00:00Z"))]),
        with(first.clone(), &[set("/authority", json!({"mbox": "mailto:other@example.jp"}))]),
    ];
    for s in &same {
        assert_eq!(outcome(post(&x, A, s).await), "ok", "{s}");
    }
    assert_eq!(get_one(&x, A, ID1).await.expect("stored"), stored);
    // Different content under the same id: 409, nothing changes.
    let different = [
        with(first.clone(), &[set("/result", json!({"success": false}))]),
        with(first.clone(), &[del("/result")]),
        with(first.clone(), &[set("/actor/mbox", json!("mailto:Hanako@example.jp"))]),
        with(first.clone(), &[set("/verb/id", json!(ANSWERED))]),
        with(first.clone(), &[set("/context", json!({"platform": "web"}))]),
    ];
    for s in &different {
        assert_eq!(
            outcome(post(&x, A, s).await),
            format!("409 statement: statement {ID1} exists with different content"),
            "{s}"
        );
    }
    assert_eq!(get_one(&x, A, ID1).await.expect("stored"), stored);
    // Timestamps: equal instants are the same; a different one is not; an
    // LRS-assigned one (the first had none) does not count.
    let timed = with(
        base(),
        &[
            set("/id", json!("11111111-1111-4111-8111-111111111111")),
            set("/timestamp", json!("2024-05-01T09:00:00+09:00")),
        ],
    );
    post_ok(&x, A, &timed).await;
    assert_eq!(
        outcome(post(&x, A, &with(timed.clone(), &[set("/timestamp", json!("2024-05-01T00:00:00.000Z"))])).await),
        "ok"
    );
    assert_eq!(
        outcome(post(&x, A, &with(timed.clone(), &[set("/timestamp", json!("2024-05-01T00:00:01Z"))])).await),
        "409 statement: statement 11111111-1111-4111-8111-111111111111 exists with different content"
    );
    assert_eq!(
        outcome(post(&x, A, &with(first.clone(), &[set("/timestamp", json!("2024-05-01T00:00:00Z"))])).await),
        "ok"
    );
    // In a batch, the index names the conflicting statement.
    assert_eq!(
        outcome(post(&x, A, &json!([base(), with(first.clone(), &[set("/result", json!({"success": false}))])])).await),
        format!("409 statement[1]: statement {ID1} exists with different content")
    );
}

async fn put_checks_the_id(x: XapiStore) {
    let put = |id: &str, v: &Value| {
        let body = serde_json::to_vec(v).expect("serialize");
        let id = id.to_owned();
        let x = x.clone();
        async move { x.put(&tid(A), &id, &body, &authority()).await }
    };
    assert_eq!(outcome(put(ID1, &base()).await), "ok", "the id comes from the parameter");
    assert_eq!(get_one(&x, A, ID1).await.expect("stored")["id"], ID1);
    assert_eq!(outcome(put(ID1, &base()).await), "ok", "idempotent");
    assert_eq!(
        outcome(put(ID1, &with(base(), &[set("/result", json!({"success": true}))])).await),
        format!("409 statement: statement {ID1} exists with different content")
    );
    let other = "22222222-2222-4222-8222-222222222222";
    assert_eq!(
        outcome(put(other, &with(base(), &[set("/id", json!(ID1))])).await),
        "400 statement.id: does not match the statementId parameter"
    );
    assert_eq!(outcome(put(other, &with(base(), &[set("/id", json!(other.to_uppercase()))])).await), "ok");
    assert_eq!(outcome(put("not-a-uuid", &base()).await), "400 statementId: must be a UUID in standard string form");
    assert_eq!(outcome(put(ID1, &json!([base()])).await), "400 body: must be a statement object, not an array");
    assert_eq!(
        outcome(put("33333333-3333-4333-8333-333333333333", &with(base(), &[set("/id", json!(5))])).await),
        "400 statement.id: must be a string, not a number"
    );
    assert_eq!(x.count(&tid(A)).await.expect("count"), 2);
}

async fn batches_are_all_or_nothing(x: XapiStore) {
    let fresh = "44444444-4444-4444-8444-444444444444";
    post_ok(&x, A, &with(base(), &[set("/id", json!(ID1))])).await;
    let batch = json!([
        with(base(), &[set("/id", json!(fresh))]),
        with(base(), &[set("/id", json!(ID1)), set("/verb/id", json!(ANSWERED))]),
    ]);
    assert_eq!(
        outcome(post(&x, A, &batch).await),
        format!("409 statement[1]: statement {ID1} exists with different content")
    );
    assert_eq!(
        outcome(get_one(&x, A, fresh).await),
        format!("404 no statement {fresh}"),
        "nothing of the batch is stored"
    );
    let invalid = json!([with(base(), &[set("/id", json!(fresh))]), with(base(), &[set("/verb", json!({}))])]);
    assert_eq!(outcome(post(&x, A, &invalid).await), "400 statement[1].verb.id: is required");
    assert_eq!(x.count(&tid(A)).await.expect("count"), 1);
    // A good batch: ids in order; a repeat of a stored statement inside it
    // is accepted.
    let good = json!([with(base(), &[set("/id", json!(fresh))]), with(base(), &[set("/id", json!(ID1))]), base()]);
    let ids = post_ok(&x, A, &good).await;
    assert_eq!(ids.len(), 3);
    assert_eq!((ids[0].as_str(), ids[1].as_str()), (fresh, ID1));
    assert_eq!(x.count(&tid(A)).await.expect("count"), 3);
    // An empty batch stores nothing.
    assert_eq!(post_ok(&x, A, &json!([])).await, Vec::<String>::new());
    // The authority must be an agent or group.
    assert_eq!(outcome(x.post(&tid(A), b"{}", &json!({"name": "nobody"})).await), "400 statement.actor: is required");
    assert_eq!(
        outcome(x.post(&tid(A), &serde_json::to_vec(&base()).expect("serialize"), &json!({"name": "nobody"})).await),
        "400 authority: must have exactly one inverse functional identifier (mbox, mbox_sha1sum, openid or account)"
    );
}

fn voiding_statement(target: &str) -> Value {
    json!({
        "actor": {"mbox": "mailto:admin@example.jp"},
        "verb": {"id": xapi::VOIDED_VERB, "display": {"ja": "取り消した"}},
        "object": {"objectType": "StatementRef", "id": target}
    })
}

async fn voiding(x: XapiStore) {
    let target = post_ok(&x, A, &with(base(), &[set("/verb/id", json!(ANSWERED))])).await.remove(0);
    let other = post_ok(&x, A, &base()).await.remove(0);
    let voider = post_ok(&x, A, &voiding_statement(&target)).await.remove(0);
    // The voided statement: only by voidedStatementId.
    assert_eq!(outcome(get_one(&x, A, &target).await), format!("404 no statement {target}"));
    assert_eq!(get_voided(&x, A, &target).await.expect("voided")["id"], target.as_str());
    // The voiding statement is an ordinary statement.
    assert_eq!(get_one(&x, A, &voider).await.expect("stored")["object"]["id"], target.as_str());
    assert_eq!(outcome(get_voided(&x, A, &voider).await), format!("404 no voided statement {voider}"));
    assert_eq!(outcome(get_voided(&x, A, &other).await), format!("404 no voided statement {other}"));
    // Lists leave the voided one out and keep the voiding one.
    assert_eq!(ids(&list(&x, A, &[]).await), vec![voider.clone(), other.clone()]);
    // A filter that matches the voided statement returns the statements
    // targeting it (the voiding statement), not the voided one.
    assert_eq!(ids(&list(&x, A, &[("verb", ANSWERED)]).await), vec![voider.clone()]);
    // A voiding statement cannot be voided.
    assert_eq!(
        outcome(post(&x, A, &voiding_statement(&voider)).await),
        "400 statement.object.id: a voiding statement cannot be voided"
    );
    assert_eq!(
        outcome(post(&x, A, &json!([base(), voiding_statement(&voider)])).await),
        "400 statement[1].object.id: a voiding statement cannot be voided"
    );
    let v1 = "55555555-5555-4555-8555-555555555555";
    let v2 = "66666666-6666-4666-8666-666666666666";
    assert_eq!(
        outcome(
            post(
                &x,
                A,
                &json!([
                    with(voiding_statement(v2), &[set("/id", json!(v1))]),
                    with(voiding_statement(&other), &[set("/id", json!(v2))])
                ])
            )
            .await
        ),
        "400 statement[0].object.id: a voiding statement cannot be voided"
    );
    // Voiding twice is harmless; voiding a statement not stored yet is
    // accepted, and the statement is voided when it arrives.
    post_ok(&x, A, &voiding_statement(&target)).await;
    let later = "77777777-7777-4777-8777-777777777777";
    post_ok(&x, A, &voiding_statement(later)).await;
    post_ok(&x, A, &with(base(), &[set("/id", json!(later))])).await;
    assert_eq!(outcome(get_one(&x, A, later).await), format!("404 no statement {later}"));
    assert_eq!(get_voided(&x, A, later).await.expect("voided")["id"], later);
    // A statement and its voiding in one batch.
    let pair = "88888888-8888-4888-8888-888888888888";
    post_ok(&x, A, &json!([with(base(), &[set("/id", json!(pair))]), voiding_statement(pair)])).await;
    assert_eq!(outcome(get_one(&x, A, pair).await), format!("404 no statement {pair}"));
    assert!(get_voided(&x, A, pair).await.is_ok());
    // Voided statements never show in lists.
    let all: BTreeSet<String> = ids(&list(&x, A, &[("limit", "0")]).await).into_iter().collect();
    for voided in [&target, &later.to_owned(), &pair.to_owned()] {
        assert!(!all.contains(voided.as_str()), "{voided} is listed");
    }
    assert!(all.contains(&other) && all.contains(&voider));
}

/// One statement per filter dimension, then each filter's exact result.
async fn every_filter(x: XapiStore) {
    let hanako = json!({"mbox": "mailto:hanako@example.jp"});
    let taro = json!({"objectType": "Agent", "mbox": "mailto:taro@example.jp"});
    let teacher = json!({"account": {"homePage": "https://lms.example.jp", "name": "sensei"}});
    let reg = "ec531277-b57b-4c15-8d91-d292c5b2b8f7";
    let course = "https://example.jp/course/1";
    let quiz = "https://example.jp/quiz/1";
    let mut stored_ids: Vec<String> = Vec::new();
    let statements = [
        // 0: hanako completed the quiz, in the course, registration reg.
        with(
            base(),
            &[
                set("/object/id", json!(quiz)),
                set("/context", json!({"registration": reg, "contextActivities": {"parent": [{"id": course}]}})),
            ],
        ),
        // 1: taro answered the quiz, instructor sensei.
        with(
            base(),
            &[
                set("/actor", taro.clone()),
                set("/verb/id", json!(ANSWERED)),
                set("/object/id", json!(quiz)),
                set("/context", json!({"instructor": teacher})),
            ],
        ),
        // 2: sensei completed taro (an agent object).
        with(base(), &[set("/actor", teacher.clone()), set("/object", taro.clone())]),
        // 3: a group with hanako as member completed the course.
        with(
            base(),
            &[
                set("/actor", json!({"objectType": "Group", "member": [hanako, {"mbox": "mailto:jiro@example.jp"}]})),
                set("/object/id", json!(course)),
            ],
        ),
        // 4: sensei planned (taro answered the quiz): a substatement.
        with(
            base(),
            &[
                set("/actor", teacher.clone()),
                set("/verb/id", json!("http://example.jp/verbs/planned")),
                set(
                    "/object",
                    json!({
                        "objectType": "SubStatement", "actor": taro, "verb": {"id": ANSWERED}, "object": {"id": quiz}
                    }),
                ),
            ],
        ),
        // 5: taro commented on statement 1 (a StatementRef).
        json!({"actor": taro, "verb": {"id": "http://example.jp/verbs/commented"}, "object": {"objectType": "StatementRef", "id": "PLACEHOLDER"}}),
    ];
    for (i, s) in statements.iter().enumerate() {
        let s = if i == 5 { with(s.clone(), &[set("/object/id", json!(stored_ids[1]))]) } else { s.clone() };
        stored_ids.push(post_ok(&x, A, &s).await.remove(0));
    }
    let want = |list: &[usize]| -> Vec<String> {
        // Newest first.
        let mut v: Vec<usize> = list.to_vec();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().map(|i| stored_ids[i].clone()).collect()
    };
    let agent = |v: &Value| v.to_string();
    let hanako_q = agent(&json!({"mbox": "mailto:hanako@example.jp"}));
    let taro_q = agent(&json!({"mbox": "mailto:taro@EXAMPLE.jp"}));
    let teacher_q = agent(&teacher);
    let authority_q = agent(&authority());
    for (q, expect) in [
        (vec![], want(&[0, 1, 2, 3, 4, 5])),
        (vec![("agent", hanako_q.as_str())], want(&[0, 3])),
        // taro: actor of 1 and 5, object of 2; in the substatement only with related_agents.
        (vec![("agent", taro_q.as_str())], want(&[1, 2, 5])),
        (vec![("agent", taro_q.as_str()), ("related_agents", "true")], want(&[1, 2, 4, 5])),
        (vec![("agent", teacher_q.as_str())], want(&[2, 4])),
        (vec![("agent", teacher_q.as_str()), ("related_agents", "true")], want(&[1, 2, 4, 5])),
        (vec![("agent", authority_q.as_str())], want(&[])),
        (vec![("agent", authority_q.as_str()), ("related_agents", "true")], want(&[0, 1, 2, 3, 4, 5])),
        (vec![("verb", COMPLETED)], want(&[0, 2, 3])),
        // 5 targets 1, which matches: statements targeting a match match.
        (vec![("verb", ANSWERED)], want(&[1, 5])),
        (vec![("activity", quiz)], want(&[0, 1, 5])),
        (vec![("activity", quiz), ("related_activities", "true")], want(&[0, 1, 4, 5])),
        (vec![("activity", course)], want(&[3])),
        (vec![("activity", course), ("related_activities", "true")], want(&[0, 3])),
        (vec![("registration", reg)], want(&[0])),
        (vec![("agent", hanako_q.as_str()), ("verb", COMPLETED), ("activity", quiz)], want(&[0])),
        (vec![("verb", "http://example.jp/verbs/none")], want(&[])),
    ] {
        assert_eq!(ids(&list(&x, A, &q).await), expect, "{q:?}");
    }
    // Ascending and limit.
    let asc = list(&x, A, &[("ascending", "true"), ("limit", "3")]).await;
    assert_eq!(ids(&asc), stored_ids[..3].to_vec());
    assert!(asc.more.is_some());
    // since (exclusive) and until (inclusive), against stored.
    let stored_of = |r: &StatementResult, id: &str| -> String {
        r.statements
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["stored"].as_str().expect("stored").to_owned())
            .expect("listed")
    };
    let all = list(&x, A, &[]).await;
    let t2 = stored_of(&all, &stored_ids[2]);
    assert_eq!(ids(&list(&x, A, &[("since", &t2)]).await), want(&[3, 4, 5]));
    assert_eq!(ids(&list(&x, A, &[("until", &t2)]).await), want(&[0, 1, 2]));
    let t4 = stored_of(&all, &stored_ids[4]);
    assert_eq!(ids(&list(&x, A, &[("since", &t2), ("until", &t4)]).await), want(&[3, 4]));
    assert_eq!(ids(&list(&x, A, &[("since", &t4), ("until", &t2)]).await), want(&[]));
    // The same instant in another zone is the same bound.
    let t2_tokyo = time::OffsetDateTime::parse(&t2, &time::format_description::well_known::Rfc3339)
        .expect("rfc 3339")
        .to_offset(time::macros::offset!(+9))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    assert_eq!(ids(&list(&x, A, &[("since", &t2_tokyo)]).await), want(&[3, 4, 5]));
    // ids format in lists: anonymous groups keep their members' ids.
    let reduced = list(&x, A, &[("format", "ids"), ("agent", &hanako_q), ("activity", course)]).await;
    assert_eq!(
        reduced.statements[0]["actor"],
        json!({"objectType": "Group", "member": [
            {"objectType": "Agent", "mbox": "mailto:hanako@example.jp"},
            {"objectType": "Agent", "mbox": "mailto:jiro@example.jp"}
        ]})
    );
    // A filter built in code, not parsed.
    let q = StatementQuery::List(ListQuery::new(StatementFilter {
        verb: Some(COMPLETED.into()),
        ascending: true,
        ..StatementFilter::default()
    }));
    let GetResult::Statements(r) = x.get(&tid(A), &q).await.expect("get") else { panic!("a list") };
    assert_eq!(ids(&r), vec![stored_ids[0].clone(), stored_ids[2].clone(), stored_ids[3].clone()]);
}

async fn paging_returns_each_statement_once(x: XapiStore) {
    let batch: Vec<Value> =
        (0..17).map(|i| with(base(), &[set("/result", json!({"response": format!("{i}")}))])).collect();
    let mut posted = post_ok(&x, A, &Value::Array(batch)).await;
    for i in 0..6 {
        posted.extend(
            post_ok(&x, A, &with(base(), &[set("/verb/id", json!(if i % 2 == 0 { ANSWERED } else { COMPLETED }))]))
                .await,
        );
    }
    assert_eq!(posted.len(), 23);
    for ascending in ["false", "true"] {
        let mut seen: Vec<String> = Vec::new();
        let mut page = list(&x, A, &[("limit", "5"), ("ascending", ascending)]).await;
        let mut pages = 1;
        loop {
            assert!(page.statements.len() <= 5);
            seen.extend(ids(&page));
            let Some(token) = more_token(&page) else { break };
            // A statement posted while paging does not disturb the pages.
            if pages == 2 && ascending == "false" {
                post_ok(&x, A, &base()).await;
            }
            page = list(&x, A, &[("more", &token)]).await;
            pages += 1;
            assert!(pages < 20, "paging does not end");
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "each statement once");
        if ascending == "true" {
            assert_eq!(seen.len(), 24);
            assert_eq!(
                seen[..23].to_vec(),
                posted,
                "ascending is posting order (a batch shares one stored time, then seq)"
            );
        } else {
            assert_eq!(seen.len(), 23, "{pages} pages");
            let mut expect = posted.clone();
            expect.reverse();
            assert_eq!(seen, expect, "newest first");
        }
    }
    // The filter, format and limit carry over to the next pages.
    let first = list(&x, A, &[("verb", ANSWERED), ("limit", "2"), ("format", "ids")]).await;
    let second = list(&x, A, &[("more", &more_token(&first).expect("more"))]).await;
    assert_eq!(second.statements.len(), 1);
    assert!(second.more.is_none());
    assert_eq!(second.statements[0]["verb"], json!({"id": ANSWERED}), "ids format");
    assert_eq!(second.to_json()["more"], "", "the last page's more is empty");
    // A tampered token is refused.
    let token = more_token(&first).expect("more");
    let mut bytes = token.into_bytes();
    bytes[3] ^= 1;
    let tampered = String::from_utf8(bytes).expect("ascii");
    assert_eq!(outcome(StatementQuery::parse(&params(&[("more", &tampered)]))), "400 more: invalid continuation token");
}

async fn tenants_are_isolated(x: XapiStore) {
    let batch: Vec<Value> = (0..4).map(|_| base()).collect();
    let a_ids = post_ok(&x, A, &Value::Array(batch)).await;
    post_ok(&x, A, &with(base(), &[set("/id", json!(ID1))])).await;
    // By id.
    assert_eq!(outcome(get_one(&x, B, ID1).await), format!("404 no statement {ID1}"));
    assert_eq!(outcome(get_one(&x, B, &a_ids[0]).await), format!("404 no statement {}", a_ids[0]));
    // Voiding across tenants voids nothing.
    post_ok(&x, B, &voiding_statement(&a_ids[0])).await;
    assert!(get_one(&x, A, &a_ids[0]).await.is_ok(), "B cannot void A's statement");
    assert_eq!(outcome(get_voided(&x, B, &a_ids[0]).await), format!("404 no voided statement {}", a_ids[0]));
    // By query.
    let b_all = list(&x, B, &[]).await;
    assert_eq!(b_all.statements.len(), 1, "B sees only its voiding statement");
    assert!(list(&x, B, &[("agent", r#"{"mbox": "mailto:hanako@example.jp"}"#)]).await.statements.is_empty());
    // With A's more token.
    let a_page = list(&x, A, &[("limit", "2")]).await;
    let token = more_token(&a_page).expect("more");
    assert_eq!(outcome(x.get(&tid(B), &query(&[("more", &token)])).await), "400 more: invalid continuation token");
    assert_eq!(list(&x, A, &[("more", &token)]).await.statements.len(), 2, "A can use it");
    // The same id in another tenant is another statement, not a conflict.
    post_ok(&x, B, &with(base(), &[set("/id", json!(ID1)), set("/verb/id", json!(ANSWERED))])).await;
    assert_eq!(get_one(&x, A, ID1).await.expect("A's")["verb"]["id"], COMPLETED);
    assert_eq!(get_one(&x, B, ID1).await.expect("B's")["verb"]["id"], ANSWERED);
    assert_eq!((x.count(&tid(A)).await.expect("count"), x.count(&tid(B)).await.expect("count")), (5, 2));
    // A tenant not in the directory cannot store anything.
    assert_eq!(outcome(post(&x, "nobody", &base()).await), "500 storage error");
}

/// Writers racing on one id: the same statement is stored once and every
/// writer is told it is stored; different statements under one id: exactly
/// one wins, the others get 409. Also a statement and its voiding racing.
async fn concurrent_posts_of_one_id(x: XapiStore) {
    let same = with(base(), &[set("/id", json!(ID1))]);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (x, same) = (x.clone(), same.clone());
            tokio::spawn(async move { outcome(post(&x, A, &same).await) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("join"), "ok");
    }
    assert_eq!(x.count(&tid(A)).await.expect("count"), 1);

    let id = "99999999-9999-4999-8999-999999999999";
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let x = x.clone();
            let s = with(base(), &[set("/id", json!(id)), set("/result", json!({"response": format!("{i}")}))]);
            tokio::spawn(async move { outcome(post(&x, A, &s).await) })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("join"));
    }
    let ok = outcomes.iter().filter(|o| *o == "ok").count();
    let conflicts = outcomes
        .iter()
        .filter(|o| **o == format!("409 statement: statement {id} exists with different content"))
        .count();
    assert_eq!((ok, conflicts), (1, 7), "{outcomes:?}");

    for round in 0..5 {
        let target = format!("aaaaaaaa-aaaa-4aaa-8aaa-00000000000{round}");
        let (x1, x2) = (x.clone(), x.clone());
        let s = with(base(), &[set("/id", json!(target))]);
        let v = voiding_statement(&target);
        let a = tokio::spawn(async move { outcome(post(&x1, A, &s).await) });
        let b = tokio::spawn(async move { outcome(post(&x2, A, &v).await) });
        assert_eq!((a.await.expect("join"), b.await.expect("join")), ("ok".to_owned(), "ok".to_owned()));
        assert_eq!(
            outcome(get_one(&x, A, &target).await),
            format!("404 no statement {target}"),
            "voided, whichever came first"
        );
    }
}

/// On PostgreSQL, row-level security itself keeps tenants apart: a session
/// of the store's role that sets no tenant sees no rows, one that sets B
/// sees only B's, and it cannot write rows of A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_row_level_security_isolates_tenants() {
    on_postgres(|x, url| async move {
        post_ok(&x, A, &json!([base(), base()])).await;
        post_ok(&x, B, &base()).await;
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&url).await.expect("connect");
        let count = |tenant: Option<&'static str>| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.expect("begin");
                if let Some(t) = tenant {
                    sqlx::query("SELECT set_config('plexus.tenant', $1, true)").bind(t).execute(&mut *tx).await.expect("set");
                }
                let n: (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM learning_xapi_statements), (SELECT count(*) FROM learning_xapi_related)",
                )
                .fetch_one(&mut *tx)
                .await
                .expect("count");
                tx.rollback().await.expect("rollback");
                n
            }
        };
        assert_eq!(count(None).await, (0, 0), "no tenant, no rows");
        let (a, a_related) = count(Some(A)).await;
        let (b, b_related) = count(Some(B)).await;
        assert_eq!((a, b), (2, 1));
        assert!(a_related > 0 && b_related > 0);
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SELECT set_config('plexus.tenant', $1, true)").bind(B).execute(&mut *tx).await.expect("set");
        let write = sqlx::query(
            "INSERT INTO learning_xapi_statements (tenant_id, statement_id, verb_id, is_voiding, voided, stored, occurred, \
             ts_given, digest, body) VALUES ($1, 'x', 'v', false, false, 's', 'o', false, 'd', '{}')",
        )
        .bind(A)
        .execute(&mut *tx)
        .await;
        let e = write.expect_err("a write into another tenant is refused");
        assert!(e.to_string().contains("row-level security"), "{e}");
        drop(tx);
        pool.close().await;
    })
    .await;
}

// ------------------------------------------------------------ no panics

mod no_panics {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::{params, rich};
    use plexus_learning::xapi::{StatementQuery, parse_statements};

    /// Keys a statement could have, and some it should not.
    const KEYS: &[&str] = &[
        "id",
        "actor",
        "verb",
        "object",
        "result",
        "context",
        "timestamp",
        "stored",
        "authority",
        "version",
        "attachments",
        "objectType",
        "mbox",
        "mbox_sha1sum",
        "openid",
        "account",
        "homePage",
        "name",
        "member",
        "display",
        "definition",
        "score",
        "scaled",
        "raw",
        "min",
        "max",
        "success",
        "duration",
        "registration",
        "contextActivities",
        "parent",
        "team",
        "instructor",
        "extensions",
        "interactionType",
        "choices",
        "length",
        "ja",
        "en-US",
        "",
    ];

    /// Strings near the formats xAPI checks.
    const STRINGS: &[&str] = &[
        "mailto:a@b.jp",
        "mailto:",
        "http://x.jp/a",
        "urn:x",
        "http://",
        "%",
        "Agent",
        "Group",
        "Activity",
        "SubStatement",
        "StatementRef",
        "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        "2024-02-29T23:59:60Z",
        "9999-12-31T23:59:59-23:59",
        "0000-01-01T00:00:00+23:59",
        "PT1.5S",
        "P1Y2M3DT4H5M6.7S",
        "P9999999999999999999999Y",
        "1.0.0",
        "choice",
        "likert",
        "花子",
        "\u{0}",
        "ja-JP",
        "x-",
        "",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-2.0f64..2.0).prop_map(Value::from),
            proptest::sample::select(STRINGS).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>()
                )),
            ]
        })
    }

    /// Every JSON pointer into `v`.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    pointers(x, p, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let p = format!("{at}/{i}");
                    out.push(p.clone());
                    pointers(x, p, out);
                }
            }
            _ => {}
        }
    }

    fn refused_or_accepted(body: &[u8]) {
        if let Err(e) = parse_statements(body) {
            assert_eq!(e.status(), 400, "{e}");
            assert!(e.path().is_some(), "{e}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            refused_or_accepted(&body);
        }

        #[test]
        fn random_json(v in value()) {
            refused_or_accepted(&serde_json::to_vec(&v).expect("serialize"));
        }

        /// A rich valid statement with one part replaced by anything.
        #[test]
        fn mutated_statements(choice in any::<prop::sample::Index>(), replacement in value()) {
            let mut s = rich();
            let mut all = Vec::new();
            pointers(&s, String::new(), &mut all);
            let at = choice.get(&all).clone();
            if let Some(slot) = s.pointer_mut(&at) {
                *slot = replacement;
            }
            refused_or_accepted(&serde_json::to_vec(&s).expect("serialize"));
            refused_or_accepted(&serde_json::to_vec(&json!([s, rich()])).expect("serialize"));
        }

        #[test]
        fn random_query_parameters(
            list in proptest::collection::vec(
                (
                    proptest::sample::select(&[
                        "statementId", "voidedStatementId", "agent", "verb", "activity", "registration",
                        "related_activities", "related_agents", "since", "until", "limit", "format", "attachments",
                        "ascending", "more", "other",
                    ][..]),
                    prop_oneof![proptest::sample::select(STRINGS).prop_map(str::to_owned), ".{0,40}", value().prop_map(|v| v.to_string())],
                ),
                0..5,
            )
        ) {
            let list: Vec<(&str, &str)> = list.iter().map(|(k, v)| (*k, v.as_str())).collect();
            if let Err(e) = StatementQuery::parse(&params(&list)) {
                assert_eq!(e.status(), 400, "{e}");
            }
        }
    }
}

/// A valid statement using most of the data model.
fn rich() -> Value {
    json!({
        "id": ID1,
        "actor": {"objectType": "Group", "name": "一組", "mbox": "mailto:class1@example.jp", "member": [
            {"mbox": "mailto:a@example.jp"}, {"account": {"homePage": "https://lms.example.jp", "name": "b"}}
        ]},
        "verb": {"id": ANSWERED, "display": {"ja": "回答した", "en-US": "answered"}},
        "object": {"objectType": "SubStatement",
            "actor": {"openid": "http://openid.example.jp/c"},
            "verb": {"id": COMPLETED},
            "object": {"id": "https://example.jp/q/1", "definition": {
                "name": {"ja": "問題"}, "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                "interactionType": "choice", "correctResponsesPattern": ["a"], "choices": [{"id": "a"}, {"id": "b"}],
                "extensions": {"http://x.jp/e": 1}
            }},
            "result": {"score": {"scaled": 0.5, "raw": 1, "min": 0, "max": 2}, "duration": "PT1M"},
            "context": {"registration": ID1, "contextActivities": {"parent": {"id": "https://example.jp/quiz"}}},
            "timestamp": "2024-05-01T09:00:00+09:00"
        },
        "result": {"success": true, "completion": false, "response": "a", "duration": "P1DT2H", "extensions": {"http://x.jp/r": null}},
        "context": {
            "instructor": {"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"},
            "team": {"objectType": "Group", "member": [{"mbox": "mailto:a@example.jp"}]},
            "contextActivities": {"grouping": [{"id": "https://example.jp/course"}], "category": [{"id": "https://example.jp/profile"}]},
            "language": "ja-JP",
            "statement": {"objectType": "StatementRef", "id": ID1}
        },
        "timestamp": "2024-05-01T09:00:00.123+09:00",
        "version": "1.0.0",
        "attachments": [attachment(&[])]
    })
}

#[test]
fn the_rich_statement_is_valid() {
    check(&rich(), "ok");
}
