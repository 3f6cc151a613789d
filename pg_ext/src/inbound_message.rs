//! Parsing and validating the inbound messages of InforCRM (docs/contract.md, "Inbound messages").
//!
//! Pure Rust, no database: a body either becomes a [`Reply`] or a [`Push`], or is refused with
//! the reason that goes into the inbox. Every value that lands in a `varchar(200)` column is
//! checked against that length here, so nothing is ever truncated.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// The length of every column of `infor_communication_task`.
pub const COLUMN_LENGTH: usize = 200;

/// InforCRM's answer to one of our requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The CRM's own id of the reply (`requestID`), stored as `infor_response_id`.
    pub request_id: String,
    /// Our request's id (`replyUID`), matched against `vtbc_request_id`.
    pub reply_uid: String,
    /// `0` task created, `1` client not found, `2` other error.
    pub status_code: String,
    /// The CRM's task id (`taskID`), present when `status_code` is `0`.
    pub task_id: Option<String>,
}

/// The outcome of a call, pushed by InforCRM after the task was worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The CRM's id of the reply this push belongs to (`requestID`).
    pub request_id: Option<String>,
    /// The CRM's task id (`taskID`).
    pub task_id: Option<String>,
    /// `dt` of the push in UTC, normalised by [`push_dt`]; the later one wins.
    pub dt: String,
    /// `3` processed, `5` not processed.
    pub task_status: String,
    /// `taskCloseDate`.
    pub task_close_date: Option<String>,
    /// `taskExecType`.
    pub task_exec_type: Option<String>,
    /// `taskExecDescr`.
    pub task_exec_descr: Option<String>,
    /// `firstLevelClientReaction`.
    pub first_level: Option<String>,
    /// `secondLevelClientReaction`.
    pub second_level: Option<String>,
    /// `thirdLevelClientReaction`.
    pub third_level: Option<String>,
}

/// A message that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A reply to one of our requests.
    Reply(Reply),
    /// A push with the outcome of a call.
    Push(Push),
}

/// What kind of message a body is (`inbox.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A reply to one of our requests (it has `replyUID`).
    Reply,
    /// A push with the outcome of a call (it has `taskStatus`).
    Push,
    /// Neither, or not JSON at all.
    Unknown,
}

impl Kind {
    /// The name the inbox stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reply => "reply",
            Kind::Push => "push",
            Kind::Unknown => "unknown",
        }
    }
}

/// A message refused by validation: its kind, when it could be told, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of message it is, when that could be told.
    pub kind: Kind,
    /// Why the message was refused, naming the offending field and value.
    pub reason: String,
}

/// The status codes of a reply.
pub const STATUS_CODES: [&str; 3] = ["0", "1", "2"];
/// The task statuses of a push.
pub const TASK_STATUSES: [&str; 2] = ["3", "5"];

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Shortens a value for an error message (the whole message stays in the inbox).
fn shown(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head}… ({} characters)", value.chars().count())
    }
}

/// Reads the fields of one message object.
struct Fields<'a> {
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// A string field; JSON `null` counts as absent, any other type is an error.
    fn text(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!("{key} must be a string, not {}", json_type(other))),
        }
    }

    /// A string field stored in a `varchar(200)` column.
    fn column(&self, key: &str) -> Result<Option<String>, String> {
        match self.text(key)? {
            Some(value) if value.chars().count() > COLUMN_LENGTH => Err(format!(
                "{key} is {} characters long, longer than its column ({COLUMN_LENGTH})",
                value.chars().count()
            )),
            other => Ok(other.map(str::to_string)),
        }
    }

    /// A mandatory, non-empty string field stored in a column.
    fn required(&self, key: &str) -> Result<String, String> {
        match self.column(key)? {
            Some(value) if !value.trim().is_empty() => Ok(value),
            Some(_) => Err(format!("{key} is empty")),
            None => Err(format!("{key} is missing")),
        }
    }

    /// A code field that must be one of `allowed`.
    fn code(&self, key: &str, allowed: &[&str], required: bool) -> Result<Option<String>, String> {
        let value = if required {
            Some(self.required(key)?)
        } else {
            self.column(key)?
        };
        match value {
            Some(code) if !allowed.contains(&code.as_str()) => Err(format!(
                "{key} \"{}\" is not one of {}",
                shown(&code),
                allowed.join(", ")
            )),
            other => Ok(other),
        }
    }
}

/// The path of the first key or string that holds U+0000, if any (JSON escapes it as `\u0000`).
fn find_nul(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul(item, &format!("{path}[{i}]"))),
        Value::Object(object) => object.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(format!("a key of {path}"))
            } else {
                find_nul(item, &format!("{path}.{}", shown(key)))
            }
        }),
        _ => None,
    }
}

/// The largest UTC offset a push's `dt` may have (real time zones stop at ±14:00).
pub const MAX_OFFSET_SECONDS: i32 = 14 * 3600;

/// Parses a push's `dt` into the UTC time that PostgreSQL stores, in a form its parser reads
/// the same way (`2023-07-27T06:27:04.953000Z`); refuses what PostgreSQL would refuse.
pub fn push_dt(dt: &str) -> Result<String, String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(dt).map_err(|_| {
        format!(
            "dt \"{}\" is not a date and time with offset such as 2023-07-27T09:27:04.953+03:00",
            shown(dt)
        )
    })?;
    let offset = parsed.offset().local_minus_utc();
    if offset.abs() > MAX_OFFSET_SECONDS {
        return Err(format!(
            "dt \"{}\" has the UTC offset {}{:02}:{:02}, outside -14:00 to +14:00",
            shown(dt),
            if offset < 0 { '-' } else { '+' },
            offset.abs() / 3600,
            offset.abs() % 3600 / 60
        ));
    }
    let utc = parsed.with_timezone(&chrono::Utc);
    match chrono::Datelike::year(&utc) {
        ..=0 => return Err(format!("dt \"{}\" is before the year 1 (UTC)", shown(dt))),
        10000.. => return Err(format!("dt \"{}\" is after the year 9999 (UTC)", shown(dt))),
        _ => {}
    }
    Ok(utc.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// A JSON value in which no object, at any depth, has a key twice. serde_json's [`Value`] keeps
/// the last of two equal keys, so `{"statusCode":"1", …, "statusCode":"0"}` would be applied as
/// `'0'`: a body that says two things is refused instead.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

/// Builds a [`Value`] as serde_json's own visitor does, refusing a repeated key.
struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(deserializer).map(|value| value.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(StrictValue(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key {} appears twice",
                    Value::String(key)
                )));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The code of a reason the inbox keeps (`inbox.reason`): what kind of thing was wrong, without
/// the values, line numbers and paths that make each reason unique, so that reasons can be
/// counted by kind (`health`'s `rejected_last_24h_by_reason`). `other` for a reason of none of
/// these kinds; the extension writes none such (a property test checks it on thousands of
/// mutated bodies).
pub fn reason_code(reason: &str) -> &'static str {
    const BY_PREFIX: [(&str, &str); 12] = [
        ("malformed JSON: the key ", "duplicate_key"),
        ("malformed JSON: ", "malformed_json"),
        ("unknown shape: the message is ", "not_an_object"),
        ("unknown shape: ", "unknown_shape"),
        ("the body is not valid UTF-8", "body_not_utf8"),
        ("the body contains a NUL character", "body_not_text"),
        ("the body is NULL", "body_null"),
        ("taskID is missing, and statusCode", "task_id_missing"),
        ("both taskID and requestID are missing", "push_without_ids"),
        ("set aside by the relay", "set_aside"),
        (
            "conflicts with the reply already applied",
            "conflicting_reply",
        ),
        ("rejected when its reply landed", "rejected_with_its_reply"),
    ];
    const BY_PART: [(&str, &str); 13] = [
        ("over the relay's limit of", "oversized"),
        ("is more than", "dt_too_far_ahead"),
        ("contains the character U+0000", "nul_character"),
        ("matches no request of ours", "unknown_request"),
        ("disagrees with requestID", "ids_disagree"),
        (
            "belongs to the replies of more than one task row",
            "ambiguous_request_id",
        ),
        ("belongs to more than one task row", "ambiguous_task_id"),
        ("said statusCode", "no_task_created"),
        ("must be a string, not", "not_a_string"),
        ("longer than its column", "too_long"),
        ("is not one of", "not_allowed"),
        ("is empty", "empty"),
        ("is missing", "missing"),
    ];
    if reason.starts_with("set aside by the relay")
        && reason.contains("headers are over the relay's limits")
    {
        return "headers_over_limit";
    }
    if let Some((_, code)) = BY_PREFIX
        .iter()
        .find(|(prefix, _)| reason.starts_with(prefix))
    {
        return code;
    }
    if reason.starts_with("dt \"") {
        return if reason.contains("is more than") {
            "dt_too_far_ahead"
        } else {
            "bad_dt"
        };
    }
    BY_PART
        .iter()
        .find(|(part, _)| reason.contains(part))
        .map_or("other", |(_, code)| code)
}

/// The SHA-256 of a body's JSON written canonically (keys sorted, no whitespace, each value as
/// serde_json writes it), or `None` when the body is not JSON without a repeated key. Two
/// bodies have the same digest exactly when they are the same JSON value: a copy of a push, in
/// any spacing or key order, is found by one index probe on it.
pub fn push_digest(body: &str) -> Option<Vec<u8>> {
    use sha2::Digest;
    let StrictValue(value) = serde_json::from_str::<StrictValue>(body).ok()?;
    Some(sha2::Sha256::digest(value.to_string().as_bytes()).to_vec())
}

/// How much of a body [`message_ids`] reads, in bytes.
pub const MESSAGE_IDS_SCANNED: usize = 16 * 1024;
/// How many ids [`message_ids`] keeps.
pub const MESSAGE_IDS_KEPT: usize = 64;
/// The longest id [`message_ids`] keeps, in characters (longer ones are cut there).
pub const MESSAGE_ID_LENGTH: usize = COLUMN_LENGTH;

/// The values written after `"replyUID"`, `"requestID"` and `"taskID"` in a body's text, as
/// `client_history` finds the messages that matched no task row by: each is what follows the
/// key, a colon and an optional quote, up to a quote, a backslash, a comma, a `}` or whitespace
/// (at most [`MESSAGE_ID_LENGTH`] characters). Whatever the body, only its first
/// [`MESSAGE_IDS_SCANNED`] bytes are read and [`MESSAGE_IDS_KEPT`] ids kept: a body made of ids
/// costs what a short one does. Sorted, each once.
pub fn message_ids(body: &str) -> Vec<String> {
    let mut end = body.len().min(MESSAGE_IDS_SCANNED);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let text = &body[..end];
    let mut ids = Vec::new();
    let mut rest = text;
    while ids.len() < MESSAGE_IDS_KEPT {
        let Some((at, key)) = ["\"replyUID\"", "\"requestID\"", "\"taskID\""]
            .iter()
            .filter_map(|key| rest.find(key).map(|at| (at, key.len())))
            .min()
        else {
            break;
        };
        let after_key = &rest[at + key..];
        rest = after_key;
        let value = after_key.trim_start();
        let Some(value) = value.strip_prefix(':') else {
            continue;
        };
        let value = value.trim_start();
        let value = value.strip_prefix('"').unwrap_or(value);
        let id: String = value
            .chars()
            .take_while(|c| !matches!(c, '"' | '\\' | ',' | '}') && !c.is_whitespace())
            .take(MESSAGE_ID_LENGTH)
            .collect();
        if !id.is_empty() {
            rest = &value[id.len()..];
            ids.push(id);
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Parses and validates one inbound body.
pub fn parse(body: &str) -> Result<Message, Refusal> {
    let value: Value = serde_json::from_str::<StrictValue>(body)
        .map(|strict| strict.0)
        .map_err(|e| Refusal {
            kind: Kind::Unknown,
            reason: format!("malformed JSON: {e}"),
        })?;
    if let Some(path) = find_nul(&value, "$") {
        return Err(Refusal {
            kind: Kind::Unknown,
            reason: format!(
                "{path} contains the character U+0000, which PostgreSQL text cannot hold"
            ),
        });
    }
    let Value::Object(object) = &value else {
        return Err(Refusal {
            kind: Kind::Unknown,
            reason: format!(
                "unknown shape: the message is {}, not a JSON object",
                json_type(&value)
            ),
        });
    };
    let fields = Fields { object };
    match (
        object.contains_key("replyUID"),
        object.contains_key("taskStatus"),
    ) {
        (true, false) => parse_reply(&fields)
            .map(Message::Reply)
            .map_err(|reason| Refusal {
                kind: Kind::Reply,
                reason,
            }),
        (false, true) => parse_push(&fields)
            .map(Message::Push)
            .map_err(|reason| Refusal {
                kind: Kind::Push,
                reason,
            }),
        (true, true) => Err(Refusal {
            kind: Kind::Unknown,
            reason: "unknown shape: both replyUID (a reply) and taskStatus (a push)".into(),
        }),
        (false, false) => Err(Refusal {
            kind: Kind::Unknown,
            reason: "unknown shape: neither replyUID (a reply) nor taskStatus (a push)".into(),
        }),
    }
}

fn parse_reply(fields: &Fields<'_>) -> Result<Reply, String> {
    let reply_uid = fields.required("replyUID")?;
    let request_id = fields.required("requestID")?;
    let status_code = fields
        .code("statusCode", &STATUS_CODES, true)?
        .unwrap_or_default();
    let task_id = fields.column("taskID")?.filter(|id| !id.trim().is_empty());
    if status_code == "0" && task_id.is_none() {
        return Err("taskID is missing, and statusCode \"0\" says a task was created".into());
    }
    fields.text("dt")?;
    fields.text("statusMsg")?;
    // The task id belongs to a created task only; a failed reply's taskID stays in the inbox.
    let task_id = if status_code == "0" { task_id } else { None };
    Ok(Reply {
        request_id,
        reply_uid,
        status_code,
        task_id,
    })
}

fn parse_push(fields: &Fields<'_>) -> Result<Push, String> {
    let task_status = fields
        .code("taskStatus", &TASK_STATUSES, true)?
        .unwrap_or_default();
    let task_id = fields.column("taskID")?.filter(|id| !id.trim().is_empty());
    let request_id = fields
        .column("requestID")?
        .filter(|id| !id.trim().is_empty());
    if task_id.is_none() && request_id.is_none() {
        return Err("both taskID and requestID are missing: the push matches no task".into());
    }
    let dt = push_dt(fields.text("dt")?.ok_or("dt is missing")?)?;
    fields.code("statusCode", &STATUS_CODES, false)?;
    fields.text("applicationID")?;
    Ok(Push {
        request_id,
        task_id,
        dt,
        task_status,
        task_close_date: fields.column("taskCloseDate")?,
        task_exec_type: fields.column("taskExecType")?,
        task_exec_descr: fields.column("taskExecDescr")?,
        first_level: fields.column("firstLevelClientReaction")?,
        second_level: fields.column("secondLevelClientReaction")?,
        third_level: fields.column("thirdLevelClientReaction")?,
    })
}

/// Interprets raw bytes as a body: valid UTF-8 without NUL characters (which PostgreSQL text
/// cannot hold), or the reason why not.
pub fn body_text(bytes: &[u8]) -> Result<&str, String> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains('\0') => Err("the body contains a NUL character".into()),
        Ok(text) => Ok(text),
        Err(e) => Err(format!("the body is not valid UTF-8: {e}")),
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn refusal(body: &str) -> String {
        parse(body).expect_err(body).reason
    }

    #[test]
    fn a_reply_and_a_push_of_the_specification_parse() {
        let reply = parse(
            r#"{"requestID": "R", "replyUID": "U", "dt": "2023-07-27T09:27:04.953+03:00", "statusCode": "0", "taskID": "T"}"#,
        );
        assert_eq!(
            reply,
            Ok(Message::Reply(Reply {
                request_id: "R".into(),
                reply_uid: "U".into(),
                status_code: "0".into(),
                task_id: Some("T".into()),
            }))
        );
        let Ok(Message::Push(push)) = parse(
            r#"{"requestID": "R", "taskID": "T", "dt": "2023-07-27T09:27:04.953+03:00", "taskStatus": "3", "firstLevelClientReaction": "Недозвон"}"#,
        ) else {
            panic!("a push")
        };
        assert_eq!(push.dt, "2023-07-27T06:27:04.953000Z");
        assert_eq!(push.first_level.as_deref(), Some("Недозвон"));
    }

    #[test]
    fn a_key_given_twice_at_any_depth_is_refused_and_values_are_kept_as_serde_json_keeps_them() {
        assert_eq!(
            refusal(
                r#"{"requestID": "R", "replyUID": "U", "statusCode": "1", "taskID": "T", "statusCode": "0"}"#
            ),
            "malformed JSON: the key \"statusCode\" appears twice at line 1 column 82"
        );
        assert!(refusal(r#"{"replyUID": "U", "x": {"a": 1, "a": 2}}"#)
            .contains("the key \"a\" appears twice"));
        assert!(refusal(r#"{"replyUID": "U", "x": [{"b": [], "b": null}]}"#)
            .contains("the key \"b\" appears twice"));
        // Keys that differ only by an escape are the same key.
        assert!(refusal(r#"{"taskStatus": "3", "task\u0053tatus": "5"}"#).contains("appears twice"));
        // Without a repeated key, the value is the one serde_json's own Value gives.
        for body in [
            r#"{"a": [1, -2, 3.5, 1e400, null, true, "\u00e9"], "b": {"c": {}}, "d": 18446744073709551615}"#,
            "[]",
            "\"x\"",
            "-0.0",
        ] {
            let strict = serde_json::from_str::<StrictValue>(body)
                .map(|v| v.0)
                .map_err(|e| e.to_string());
            let plain = serde_json::from_str::<Value>(body).map_err(|e| e.to_string());
            assert_eq!(strict, plain, "{body}");
        }
    }

    #[test]
    fn message_ids_are_the_ids_written_in_the_body_and_bounded() {
        assert_eq!(
            message_ids(r#"{"requestID": "R-1", "replyUID":"U 2", "taskID": 345, "x": "taskID"}"#),
            vec!["345", "R-1", "U"]
        );
        assert_eq!(
            message_ids(r#"{"taskID" : "", "replyUID"}"#),
            Vec::<String>::new()
        );
        assert_eq!(message_ids(r#"not json "taskID":"T"}"#), vec!["T"]);
        assert_eq!(
            message_ids(&format!(r#""taskID":"{}""#, "9".repeat(500)))[0].len(),
            200
        );
        let many = (0..100_000)
            .map(|n| format!(r#""taskID":"{n}","#))
            .collect::<String>();
        let ids = message_ids(&many);
        assert_eq!(ids.len(), MESSAGE_IDS_KEPT);
        assert!(ids.contains(&"0".to_string()) && ids.contains(&"63".to_string()));
        // The first 16 KiB only, cut at a character's boundary.
        let late = format!("{}\"taskID\":\"LATE\"", "я".repeat(MESSAGE_IDS_SCANNED));
        assert!(message_ids(&late).is_empty());
    }

    #[test]
    fn two_bodies_have_one_push_digest_exactly_when_they_are_the_same_json() {
        let push = r#"{"requestID": "R", "taskID": "T", "dt": "2026-11-21T10:00:00Z", "taskStatus": "3", "n": 1.5}"#;
        let same = "{\"n\":1.5,\n \"taskStatus\":\"3\",\"dt\":\"2026-11-21T10:00:00Z\",\"taskID\":\"T\",\"requestID\":\"\\u0052\"}";
        assert_eq!(push_digest(push), push_digest(same));
        assert_eq!(push_digest(push).map(|d| d.len()), Some(32));
        assert_ne!(
            push_digest(push),
            push_digest(&push.replace("\"3\"", "\"5\""))
        );
        assert_ne!(
            push_digest(push),
            push_digest(&push.replace("1.5", "\"1.5\""))
        );
        assert_eq!(push_digest("{"), None);
        assert_eq!(push_digest(r#"{"a": 1, "a": 1}"#), None);
    }

    #[test]
    fn every_reason_has_a_code_without_its_values() {
        for (body, code) in [
            ("{", "malformed_json"),
            ("[1]", "not_an_object"),
            (r#"{"replyUID": "U", "replyUID": "V"}"#, "duplicate_key"),
            (r#"{"x": 1}"#, "unknown_shape"),
            (r#"{"replyUID": "U", "requestID": "R"}"#, "missing"),
            (
                r#"{"replyUID": "", "requestID": "R", "statusCode": "1"}"#,
                "empty",
            ),
            (
                r#"{"replyUID": 7, "requestID": "R", "statusCode": "1"}"#,
                "not_a_string",
            ),
            (
                r#"{"replyUID": "U", "requestID": "R", "statusCode": "9"}"#,
                "not_allowed",
            ),
            (
                r#"{"replyUID": "U", "requestID": "R", "statusCode": "0"}"#,
                "task_id_missing",
            ),
            (
                r#"{"taskStatus": "3", "dt": "2026-11-21T10:00:00Z"}"#,
                "push_without_ids",
            ),
            (
                r#"{"taskID": "T", "taskStatus": "3", "dt": "yesterday"}"#,
                "bad_dt",
            ),
            ("{\"replyUID\": \"U\\u0000\"}", "nul_character"),
        ] {
            assert_eq!(
                reason_code(&refusal(body)),
                code,
                "{body}: {}",
                refusal(body)
            );
        }
        let long = format!(
            r#"{{"replyUID": "{}", "requestID": "R", "statusCode": "1"}}"#,
            "u".repeat(201)
        );
        assert_eq!(reason_code(&refusal(&long)), "too_long");
        assert_eq!(reason_code("something new"), "other");
    }

    #[test]
    fn kinds_and_reasons_of_refused_messages() {
        assert_eq!(parse("[1]").expect_err("array").kind, Kind::Unknown);
        assert_eq!(
            parse(r#"{"replyUID": "U", "statusCode": "7", "requestID": "R"}"#)
                .expect_err("code")
                .kind,
            Kind::Reply
        );
        assert_eq!(
            refusal(r#"{"replyUID": "U", "statusCode": "7", "requestID": "R"}"#),
            r#"statusCode "7" is not one of 0, 1, 2"#
        );
        assert_eq!(
            refusal(r#"{"taskStatus": "3", "dt": "2023-07-27T09:27:04Z"}"#),
            "both taskID and requestID are missing: the push matches no task"
        );
        assert!(refusal("{").starts_with("malformed JSON"));
        assert_eq!(
            refusal(&format!(
                r#"{{"replyUID": "U", "requestID": "{}", "statusCode": "1"}}"#,
                "x".repeat(201)
            )),
            "requestID is 201 characters long, longer than its column (200)"
        );
    }

    #[test]
    fn a_nul_character_in_any_key_or_string_is_refused() {
        assert_eq!(
            refusal(r#"{"a": [1, {"b": "x\u0000"}]}"#),
            "$.a[1].b contains the character U+0000, which PostgreSQL text cannot hold"
        );
        assert_eq!(
            refusal(r#"{"k\u0000": 1}"#),
            "a key of $ contains the character U+0000, which PostgreSQL text cannot hold"
        );
    }

    #[test]
    fn push_dt_is_normalised_to_utc_and_checked_against_what_postgresql_stores() {
        assert_eq!(
            push_dt("2023-07-27T09:27:04.953+03:00"),
            Ok("2023-07-27T06:27:04.953000Z".into())
        );
        assert_eq!(
            push_dt("0001-01-01T14:00:00+14:00"),
            Ok("0001-01-01T00:00:00.000000Z".into())
        );
        assert!(
            push_dt("0001-01-01T00:00:00+14:00").is_err_and(|e| e.contains("before the year 1"))
        );
        assert!(push_dt("2026-11-21T10:00:00+14:01")
            .is_err_and(|e| e.contains("+14:01, outside -14:00 to +14:00")));
        assert!(push_dt("0000-06-01T00:00:00Z").is_err_and(|e| e.contains("before the year 1")));
        assert!(
            push_dt("9999-12-31T23:00:00-14:00").is_err_and(|e| e.contains("after the year 9999"))
        );
        assert!(push_dt("yesterday").is_err_and(|e| e.contains("is not a date and time")));
    }

    #[test]
    fn a_body_with_a_nul_byte_or_invalid_utf8_is_not_text() {
        assert_eq!(body_text(b"{}"), Ok("{}"));
        assert!(body_text(b"{\0}").is_err());
        assert!(body_text(b"\xff").is_err_and(|e| e.starts_with("the body is not valid UTF-8")));
    }
}
