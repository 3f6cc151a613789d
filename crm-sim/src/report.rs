//! How the simulator words what went wrong in its log: an error with everything that caused
//! it, on one line, and a connection string without its password.

use std::error::Error;

/// `error`, then each error that caused it, on one line: `outer: cause: root cause`. The
/// database and AMQP libraries keep the useful part (the server's message, the OS error) in a
/// cause; a cause whose text is already shown is left out, and a text of several lines is
/// joined with `; `.
pub fn with_causes(error: &(dyn Error + 'static)) -> String {
    let mut shown = on_one_line(error);
    let mut cause = error.source();
    while let Some(next) = cause {
        let text = on_one_line(next);
        if !shown.contains(&text) {
            shown = format!("{shown}: {text}");
        }
        cause = next.source();
    }
    shown
}

fn on_one_line(error: &dyn Error) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines.join("; ")
}

/// `connection` with its password replaced by `***`, for the log: the password of a URL's
/// user (`amqp://crm:secret@mq/%2f`), and the value of every `password` setting, in a URL's
/// query (`?password=secret`) or in PostgreSQL's `key=value` form (`password='my secret'`).
/// Where it cannot tell where a password ends, it hides more, never less.
pub fn redact(connection: &str) -> String {
    hide_password_settings(&hide_user_password(connection))
}

/// `scheme://user:secret@host…` becomes `scheme://user:***@host…`. The password is taken to
/// run from the first `:` after `://` to the last `@`: an `@` further on (in a path or a
/// query) hides more than the password, an unencoded `@` or `/` in it hides no less.
fn hide_user_password(connection: &str) -> String {
    let Some((scheme, rest)) = connection.split_once("://") else {
        return connection.to_string();
    };
    match (rest.find(':'), rest.rfind('@')) {
        (Some(colon), Some(at)) if colon < at => {
            format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..])
        }
        _ => connection.to_string(),
    }
}

/// Replaces the value of each `password` key (any case, spaces allowed around the `=`) with
/// `***`. A key counts only at the start or after `?`, `&` or white space, so that a key such
/// as `sslpassword` or a user named `password` is left alone.
fn hide_password_settings(text: &str) -> String {
    const KEY: &str = "password";
    // ASCII lower case keeps every byte where it was, so positions in `lower` are positions in
    // `text`.
    let lower = text.to_ascii_lowercase();
    let mut shown = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(KEY) {
        let key_start = search + found;
        let key_end = key_start + KEY.len();
        search = key_end;
        let starts_a_key = text[..key_start]
            .chars()
            .next_back()
            .is_none_or(|c| c == '?' || c == '&' || c.is_whitespace());
        let after_key = text[key_end..].trim_start();
        let Some(after_equals) = after_key.strip_prefix('=') else {
            continue;
        };
        if !starts_a_key {
            continue;
        }
        let value = after_equals.trim_start();
        let value_start = text.len() - value.len();
        let value_end = value_start + value_length(value);
        shown.push_str(&text[copied..value_start]);
        shown.push_str("***");
        copied = value_end;
        search = value_end;
    }
    shown.push_str(&text[copied..]);
    shown
}

/// The length in bytes of the value at the start of `text`: a quoted one (`'my \' secret'`)
/// up to its closing quote, or to the end if it has none; a bare one up to the next `&` or
/// white space.
fn value_length(text: &str) -> usize {
    let Some(quoted) = text.strip_prefix('\'') else {
        return text
            .find(|c: char| c == '&' || c.is_whitespace())
            .unwrap_or(text.len());
    };
    let mut escaped = false;
    for (at, c) in quoted.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '\'' if !escaped => return 1 + at + 1,
            _ => escaped = false,
        }
    }
    text.len()
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn the_password_of_a_urls_user_is_hidden() {
        assert_eq!(
            redact("amqp://crm:s3cret@127.0.0.1:5672/%2f"),
            "amqp://crm:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact("postgresql://postgres:s3cret@localhost:5432/bank?sslmode=disable"),
            "postgresql://postgres:***@localhost:5432/bank?sslmode=disable"
        );
        // Unencoded '@' and '/' in the password: all of it is hidden still.
        assert_eq!(redact("amqp://crm:p@s/s@mq/%2f"), "amqp://crm:***@mq/%2f");
    }

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        for url in [
            "amqp://127.0.0.1:5672/%2f",
            "amqp://crm@mq:5672/%2f",
            "postgresql://localhost/bank?sslmode=require",
            "host=db user=crm dbname=bank sslpassword_file=x",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[test]
    fn password_settings_are_hidden() {
        assert_eq!(
            redact("postgresql://db/bank?user=crm&password=s3cret&sslmode=disable"),
            "postgresql://db/bank?user=crm&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=db PASSWORD=s3cret dbname=bank"),
            "host=db PASSWORD=*** dbname=bank"
        );
        assert_eq!(
            redact("host=db password = 'my \\' s3cret' user=crm"),
            "host=db password = *** user=crm"
        );
        assert_eq!(redact("password='never closed s3cret"), "password=***");
        assert_eq!(
            redact("host=db sslpassword=kept password=s3cret"),
            "host=db sslpassword=kept password=***"
        );
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Failure {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|cause| cause as &(dyn Error + 'static))
        }
    }

    #[test]
    fn causes_follow_the_error_on_one_line_without_repeats() {
        let root = Failure("ERROR: no such table\nDETAIL: it was dropped", None);
        let middle = Failure("db error", Some(Box::new(root)));
        let error = Failure("db error", Some(Box::new(middle)));
        assert_eq!(
            with_causes(&error),
            "db error: ERROR: no such table; DETAIL: it was dropped"
        );
    }
}
