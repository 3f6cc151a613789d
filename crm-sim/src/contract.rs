//! The InforCRM side of the contract: checking a request, and building replies and pushes as
//! the specification shows them.

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Value};
use std::fmt;

/// The systems a `clientIdList` entry may name.
pub const SYSTEM_CODES: [&str; 4] = ["vtb_mdm_id", "ehd_id", "IBSO", "INFOR"];

/// A request that passed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRequest {
    /// Its `requestID`.
    pub request_id: String,
    /// The client's `ehd_id`.
    pub ehd_id: String,
}

/// The top-level keys of a JSON object, in document order.
struct KeyOrder(Vec<String>);

impl<'de> serde::Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(KeyOrder(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// Now, as InforCRM writes it: Moscow time with milliseconds.
pub fn now_dt() -> String {
    (chrono::Utc::now() + chrono::TimeDelta::hours(3))
        .format("%Y-%m-%dT%H:%M:%S%.3f+03:00")
        .to_string()
}

fn is_lower_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok() && text.len() == 36 && text == text.to_lowercase()
}

/// `2023-07-27T09:27:04.953+03:00`: milliseconds and a `±hh:mm` offset.
fn is_request_dt(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:dd.ddd+dd:dd";
    bytes.len() == shape.len()
        && shape.bytes().zip(bytes).all(|(want, got)| match want {
            b'd' => got.is_ascii_digit(),
            b'+' => *got == b'+' || *got == b'-',
            other => other == *got,
        })
        && chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

fn non_empty<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match object.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err(format!("{key} is empty")),
        Some(_) => Err(format!("{key} is not a string")),
        None => Err(format!("{key} is missing")),
    }
}

/// Checks a request against the contract: keys and their order, `requestID`, `dt`,
/// `clientIdList`, `inn`, `ogrn`, `kpp`, optional `okpo`.
pub fn check_request(body: &[u8]) -> Result<CheckedRequest, String> {
    let KeyOrder(keys) =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON object: {e}"))?;
    let expected = [
        "requestID",
        "dt",
        "clientIdList",
        "inn",
        "ogrn",
        "kpp",
        "okpo",
    ];
    let optional_okpo = keys.len() == 6 && keys[..] == expected[..6];
    if !(optional_okpo || keys[..] == expected[..]) {
        return Err(format!(
            "keys {keys:?} are not {expected:?} in this order (okpo optional)"
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let request_id = non_empty(object, "requestID")?;
    if !is_lower_uuid(request_id) {
        return Err(format!(
            "requestID \"{request_id}\" is not a lower-case UUID"
        ));
    }
    let dt = non_empty(object, "dt")?;
    if !is_request_dt(dt) {
        return Err(format!(
            "dt \"{dt}\" is not like 2023-07-27T09:27:04.953+03:00"
        ));
    }
    for key in ["inn", "ogrn", "kpp"] {
        non_empty(object, key)?;
    }
    if object.contains_key("okpo") {
        non_empty(object, "okpo")?;
    }
    let list = object
        .get("clientIdList")
        .and_then(Value::as_array)
        .ok_or("clientIdList is not an array")?;
    let mut ehd_id = None;
    for entry in list {
        let entry = entry
            .as_object()
            .ok_or("a clientIdList entry is not an object")?;
        if entry.len() != 2 {
            return Err(format!(
                "a clientIdList entry has keys {:?}",
                entry.keys().collect::<Vec<_>>()
            ));
        }
        let code = non_empty(entry, "systemCode")?;
        let id = non_empty(entry, "id")?;
        if !SYSTEM_CODES.contains(&code) {
            return Err(format!(
                "systemCode \"{code}\" is not one of {SYSTEM_CODES:?}"
            ));
        }
        if code == "ehd_id" {
            ehd_id = Some(id.to_string());
        }
    }
    let ehd_id = ehd_id.ok_or("clientIdList has no ehd_id")?;
    Ok(CheckedRequest {
        request_id: request_id.to_string(),
        ehd_id,
    })
}

/// The `requestID` of a body, if it has one (to answer even a bad request).
pub fn request_id_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("requestID")?.as_str().map(str::to_string)
}

/// A reply: `statusCode` 0 with `taskID`, or 1/2 with `statusMsg`.
pub fn reply(crm_request_id: &str, reply_uid: &str, dt: &str, outcome: &ReplyOutcome) -> Value {
    match outcome {
        ReplyOutcome::Created { task_id } => json!({
            "requestID": crm_request_id, "replyUID": reply_uid, "dt": dt,
            "statusCode": "0", "taskID": task_id,
        }),
        ReplyOutcome::Failed {
            status_code,
            message,
        } => json!({
            "requestID": crm_request_id, "replyUID": reply_uid, "dt": dt,
            "statusCode": status_code, "statusMsg": message,
        }),
    }
}

/// What InforCRM answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Task created (statusCode 0).
    Created {
        /// The new task's id.
        task_id: String,
    },
    /// No task (statusCode 1: client not found, 2: other error).
    Failed {
        /// "1" or "2".
        status_code: &'static str,
        /// statusMsg.
        message: String,
    },
}

/// One row of `infor_comm.client_reaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// "3" processed or "5" not processed.
    pub task_status: String,
    /// First level, `None` for "-".
    pub first_level: Option<String>,
    /// Second level, `None` for "-".
    pub second_level: Option<String>,
    /// True when the second level is free text (the client's migration status).
    pub second_level_free_text: bool,
}

/// A push for a task, in the manual form (with the reactions), or in the automatic form of
/// the specification (with `applicationID` and no reactions) for a technical outcome without
/// reaction.
pub fn push(
    crm_request_id: &str,
    task_id: &str,
    dt: &str,
    close_date: &str,
    reaction: &Reaction,
    application_id: &str,
) -> Value {
    let processed = reaction.task_status == "3";
    let (exec_type, exec_descr) = if processed {
        ("Ручной", "Обработано")
    } else {
        ("Технический", "Не обработано")
    };
    if !processed && reaction.first_level.is_none() && reaction.second_level.is_none() {
        return json!({
            "requestID": crm_request_id, "dt": dt, "statusCode": "0",
            "applicationID": application_id, "taskID": task_id, "taskStatus": reaction.task_status,
            "taskCloseDate": close_date, "taskExecType": exec_type, "taskExecDescr": exec_descr,
        });
    }
    let second = if reaction.second_level_free_text {
        "Укажем статус миграции клиента «migrated»".to_string()
    } else {
        reaction.second_level.clone().unwrap_or_else(|| "-".into())
    };
    json!({
        "requestID": crm_request_id, "dt": dt, "statusCode": "0", "taskID": task_id,
        "taskStatus": reaction.task_status, "taskCloseDate": close_date,
        "taskExecType": exec_type, "taskExecDescr": exec_descr,
        "firstLevelClientReaction": reaction.first_level.clone().unwrap_or_else(|| "-".into()),
        "secondLevelClientReaction": second,
        "thirdLevelClientReaction": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"requestID":"e1f73276-7fb6-4e80-85de-fd8a939998f0","dt":"2023-07-27T09:27:04.953+03:00","clientIdList":[{"systemCode":"vtb_mdm_id","id":"123456"},{"systemCode":"ehd_id","id":"354815252"}],"inn":"1200009193","ogrn":"1231200000844","kpp":"120001001","okpo":"02847208"}"#;

    #[test]
    fn a_contract_request_passes() {
        assert_eq!(
            check_request(GOOD.as_bytes()),
            Ok(CheckedRequest {
                request_id: "e1f73276-7fb6-4e80-85de-fd8a939998f0".into(),
                ehd_id: "354815252".into()
            })
        );
        let without_okpo = GOOD.replace(r#","okpo":"02847208""#, "");
        assert!(check_request(without_okpo.as_bytes()).is_ok());
    }

    #[test]
    fn deviations_are_named() {
        let cases = [
            (
                GOOD.replace("e1f73276", "E1F73276"),
                "is not a lower-case UUID",
            ),
            (GOOD.replace(".953+03:00", "+03:00"), "dt "),
            (
                GOOD.replace(
                    r#""inn":"1200009193","ogrn":"1231200000844""#,
                    r#""ogrn":"1231200000844","inn":"1200009193""#,
                ),
                "in this order",
            ),
            (
                GOOD.replace("\"kpp\":\"120001001\"", "\"kpp\":\"\""),
                "kpp is empty",
            ),
            (GOOD.replace("vtb_mdm_id", "crm"), "systemCode \"crm\""),
            (GOOD.replace("ehd_id", "IBSO"), "no ehd_id"),
            ("[]".to_string(), "not a JSON object"),
        ];
        for (body, expected) in cases {
            let error = check_request(body.as_bytes()).expect_err(&body);
            assert!(error.contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn pushes_take_both_forms_of_the_specification() {
        let technical = Reaction {
            task_status: "5".into(),
            first_level: None,
            second_level: None,
            second_level_free_text: false,
        };
        let automatic = push(
            "crm",
            "42",
            "2026-11-24T10:00:00.000+03:00",
            "2026-11-24",
            &technical,
            "app",
        );
        assert_eq!(automatic["applicationID"], "app");
        assert!(automatic.get("firstLevelClientReaction").is_none());
        let manual = Reaction {
            task_status: "3".into(),
            first_level: Some("Недозвон".into()),
            second_level: Some("Автоответчик".into()),
            second_level_free_text: false,
        };
        let manual = push(
            "crm",
            "42",
            "2026-11-24T10:00:00.000+03:00",
            "2026-11-24",
            &manual,
            "app",
        );
        assert_eq!(manual["taskExecType"], "Ручной");
        assert_eq!(manual["secondLevelClientReaction"], "Автоответчик");
        assert!(manual.get("applicationID").is_none());
    }
}
