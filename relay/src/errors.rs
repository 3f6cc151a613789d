//! Error messages with their causes. tokio-postgres prints only the outer error ("db error",
//! "error connecting to server") and keeps the server's message or the OS error in its source;
//! an operator needs both.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its causes: `outer: cause: root cause`. A cause whose
/// text the outer message already contains is not repeated.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = self.0.to_string();
        f.write_str(&written)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
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
}
