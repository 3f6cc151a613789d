//! What becomes of an inbound message ([`Outcome`], the verdict the inbox records) and what the
//! inbox keeps of how it was delivered ([`Envelope`]).

use crate::inbound_message::{body_text, Kind};
use pgrx::spi::SpiError;

/// What `apply_inbound` returns for one message (and `inbox.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reply applied to its task row.
    Reply,
    /// A push applied to its task row (or kept because a later one is applied).
    Push,
    /// A copy of a message already applied; nothing changed.
    Duplicate,
    /// A push whose task row is not known yet; applied when its reply lands.
    Orphan,
    /// Kept in the inbox with the reason; no task row changed.
    Rejected,
}

impl Outcome {
    /// The name `apply_inbound` returns and the inbox stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reply => "reply",
            Outcome::Push => "push",
            Outcome::Duplicate => "duplicate",
            Outcome::Orphan => "orphan",
            Outcome::Rejected => "rejected",
        }
    }
}

/// What became of one message.
#[derive(Debug)]
pub(super) struct Verdict {
    pub(super) kind: Kind,
    pub(super) outcome: Outcome,
    pub(super) reason: Option<String>,
    pub(super) task_row_id: Option<String>,
    pub(super) applied: bool,
}

impl Verdict {
    pub(super) fn new(kind: Kind, outcome: Outcome) -> Verdict {
        Verdict {
            kind,
            outcome,
            reason: None,
            task_row_id: None,
            applied: false,
        }
    }

    pub(super) fn rejected(kind: Kind, reason: String) -> Verdict {
        Verdict {
            reason: Some(reason),
            ..Verdict::new(kind, Outcome::Rejected)
        }
    }
}

/// A task row, locked for this transaction.
pub(super) struct TaskRow {
    pub(super) id: String,
    pub(super) status_code: Option<String>,
    pub(super) infor_response_id: Option<String>,
    pub(super) task_id: Option<String>,
}

pub(super) type SpiResult<T> = Result<T, SpiError>;

/// The most of an oversized body the inbox keeps (docs/contract.md, "Oversized messages").
pub const OVERSIZED_HEAD_BYTES: usize = 64 * 1024;

/// What the inbox keeps of how a message was delivered, beside its body.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Envelope<'a> {
    /// The broker's message id, when it is text PostgreSQL can store.
    pub(super) message_id: Option<&'a str>,
    /// The broker's message id as it came, when it is not (a NUL byte, or not UTF-8).
    pub(super) message_id_bytes: Option<&'a [u8]>,
    /// An oversized body's full size and SHA-256 (the inbox keeps only its head).
    pub(super) oversized: Option<(i64, &'a [u8])>,
}

impl<'a> Envelope<'a> {
    /// An envelope whose id came as text (from SQL, so it holds no NUL).
    pub(super) fn text_id(message_id: Option<&'a str>) -> Envelope<'a> {
        Envelope {
            message_id,
            ..Envelope::default()
        }
    }

    /// An envelope whose id came as the broker's bytes: kept as text when it is clean UTF-8,
    /// else as bytes, so that it round-trips either way and never makes the apply fail.
    pub(super) fn raw_id(message_id: Option<&'a [u8]>) -> Envelope<'a> {
        match message_id.map(|bytes| (bytes, body_text(bytes))) {
            None => Envelope::default(),
            Some((_, Ok(text))) => Envelope::text_id(Some(text)),
            Some((bytes, Err(_))) => Envelope {
                message_id_bytes: Some(bytes),
                ..Envelope::default()
            },
        }
    }
}
