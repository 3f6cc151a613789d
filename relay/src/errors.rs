//! Error messages with their causes. tokio-postgres prints only the outer error ("db error",
//! "error connecting to server") and keeps the server's message or the OS error in its source;
//! an operator needs both.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its causes: `outer: cause: root cause`. A cause whose
/// text the outer message already contains is not repeated. A PostgreSQL error shows its
/// severity, message and SQLSTATE, and the first line of its detail; every text is cut to its
/// first line and [`MAX_TEXT`] characters, so that a server's multi-line detail (a backtrace)
/// never floods a log line.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

/// The most characters of one error's text [`Chain`] shows.
pub const MAX_TEXT: usize = 300;

/// `text`'s first line, at most [`MAX_TEXT`] characters; " […]" says something was cut.
fn capped(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut shown: String = first.chars().take(MAX_TEXT).collect();
    if shown.len() < text.trim_end().len() {
        shown.push_str(" […]");
    }
    shown
}

/// What [`Chain`] shows of one error.
fn text_of(error: &(dyn Error + 'static)) -> String {
    if let Some(db) = error.downcast_ref::<tokio_postgres::error::DbError>() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            capped(db.message()),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            text.push_str("; detail: ");
            text.push_str(&capped(detail));
        }
        return text;
    }
    capped(&error.to_string())
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = text_of(self.0);
        f.write_str(&written)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = text_of(cause);
            if !written.contains(&text) {
                write!(f, ": {text}")?;
                written = text;
            }
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("error connecting to server")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn shows_the_cause() {
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(
            Chain(&error).to_string(),
            "error connecting to server: Connection refused"
        );
    }

    #[test]
    fn does_not_repeat_a_cause_already_in_the_message() {
        #[derive(Debug)]
        struct Verbose(std::io::Error);
        impl fmt::Display for Verbose {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "IO error: {}", self.0)
            }
        }
        impl Error for Verbose {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Verbose(std::io::Error::other("broken pipe"));
        assert_eq!(Chain(&error).to_string(), "IO error: broken pipe");
    }

    #[test]
    fn a_long_or_multi_line_cause_is_cut_to_its_first_line() {
        let backtrace = format!("boom\n{}", "   at frame\n".repeat(34));
        let error = Outer(std::io::Error::other(backtrace));
        assert_eq!(
            Chain(&error).to_string(),
            "error connecting to server: boom […]"
        );
        let long = "x".repeat(1000);
        let shown = Chain(&std::io::Error::other(long)).to_string();
        assert_eq!(shown.chars().count(), MAX_TEXT + " […]".chars().count());
    }
}
