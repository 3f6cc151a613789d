//! `--journal`: a line for each request the simulator received and for each reply and push the
//! broker confirmed, appended to a file as it happens, so that a test can count what InforCRM's
//! side saw and sent against what the database applied.
//!
//! The lines, fields separated by a tab:
//! - `request <requestID> <redelivered>`: a request taken from the queue; `redelivered` is 1 when
//!   the broker handed it out again (a session of the simulator ended before its ack), 0 when it
//!   came as published, so that a request the relay published twice shows twice with 0;
//! - `reply <message id> <requestID>`: a reply confirmed by the broker (a reply sent again after a
//!   lost confirm keeps its message id);
//! - `push <message id>`: a push confirmed by the broker.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// The journal file, or nothing when `--journal` is not given.
#[derive(Debug, Default)]
pub struct Journal {
    file: Option<File>,
}

impl Journal {
    /// Opens `path` for appending (created when missing); no journal when `path` is `None`.
    pub fn open(path: Option<&Path>) -> Result<Journal, String> {
        let file = path
            .map(|path| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|error| format!("--journal {}: {error}", path.display()))
            })
            .transpose()?;
        Ok(Journal { file })
    }

    /// A request taken from the queue.
    pub fn request(&mut self, request_id: &str, redelivered: bool) {
        self.line(&format!(
            "request\t{request_id}\t{}\n",
            u8::from(redelivered)
        ));
    }

    /// A reply the broker confirmed.
    pub fn reply(&mut self, message_id: &str, request_id: &str) {
        self.line(&format!("reply\t{message_id}\t{request_id}\n"));
    }

    /// A push the broker confirmed.
    pub fn push(&mut self, message_id: &str) {
        self.line(&format!("push\t{message_id}\n"));
    }

    /// Appends one line in one write (the file is opened for appending, so a line is never
    /// split); a failed write is logged and the journal closed, the simulator goes on.
    fn line(&mut self, line: &str) {
        if let Some(file) = &mut self.file {
            if let Err(error) = file.write_all(line.as_bytes()) {
                tracing::error!(%error, "cannot write to the journal; it is closed");
                self.file = None;
            }
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn each_event_is_one_tab_separated_line_appended() {
        let path = std::env::temp_dir().join(format!("crm-sim-journal-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let mut journal = Journal::open(Some(&path)).expect("open");
            journal.request("R1", false);
            journal.request("R1", true);
            journal.reply("crm-1", "R1");
        }
        let mut journal = Journal::open(Some(&path)).expect("open again");
        journal.push("push-1");
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            text,
            "request\tR1\t0\nrequest\tR1\t1\nreply\tcrm-1\tR1\npush\tpush-1\n"
        );
    }

    #[test]
    fn no_path_no_journal_and_an_unwritable_path_is_an_error_naming_it() {
        let mut journal = Journal::open(None).expect("no journal");
        journal.request("R1", false);
        let error = Journal::open(Some(Path::new("/nonexistent-dir/journal"))).expect_err("error");
        assert!(error.contains("/nonexistent-dir/journal"), "{error}");
    }
}
