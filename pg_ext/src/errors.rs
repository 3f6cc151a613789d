//! User-facing errors: every error the extension raises on purpose has a SQLSTATE, a
//! message that names the offending value, a detail and a hint.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgLogLevel;

/// Raises an `ERROR` with the given SQLSTATE, message, detail and hint; never returns.
pub fn raise(
    code: PgSqlErrorCode,
    message: impl Into<String>,
    detail: impl Into<String>,
    hint: impl Into<String>,
) -> ! {
    ErrorReport::new(code, message.into(), "infor_comm")
        .set_detail(detail)
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// Raises an error for a failed SPI call: a fault of the database, not of the input.
pub fn spi_fault(what: &str, error: pgrx::spi::SpiError) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("infor_comm: {what} failed: {error}"),
        "An internal query of the extension failed.",
        "Check the server log; this is a bug or a damaged installation.",
    )
}
