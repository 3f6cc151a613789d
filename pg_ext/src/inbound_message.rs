//! Parsing and validating the inbound messages of InforCRM (docs/contract.md, "Inbound messages").
//!
//! Pure Rust, no database: a body either becomes a [`Reply`] or a [`Push`], or is refused with
//! the reason that goes into the inbox. Every value that lands in a `varchar(200)` column is
//! checked against that length here, so nothing is ever truncated.

use serde_json::{Map, Value};

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
    /// `dt` of the push, as sent (RFC 3339); the later one wins.
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

/// Parses and validates one inbound body.
pub fn parse(body: &str) -> Result<Message, Refusal> {
    let value: Value = serde_json::from_str(body).map_err(|e| Refusal {
        kind: Kind::Unknown,
        reason: format!("malformed JSON: {e}"),
    })?;
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
    let dt = fields.text("dt")?.ok_or("dt is missing")?.to_string();
    if chrono::DateTime::parse_from_rfc3339(&dt).is_err() {
        return Err(format!(
            "dt \"{}\" is not a date and time with offset such as 2023-07-27T09:27:04.953+03:00",
            shown(&dt)
        ));
    }
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
