//! Who is a thinking client: the set-based selection behind the view `thinking_clients`
//! and the daily enqueue.
//!
//! The rules (docs/contract.md, "Who is a thinking client"), all at `as_of`:
//! 1. `status = 'in_wizard'` and `wizard_status` in ('OK', 'IN_PROGRESS', 'TO_SIGN');
//! 2. no task row of the client has `status_code = '0'`, and none failed ('1', '2') on the
//!    calendar day of `as_of` (in `infor_comm.timezone`);
//! 3. no open request: unpublished, or published and unanswered for less than
//!    `infor_comm.response_timeout`;
//! 4. the latest `change_date` of the client is at least `infor_comm.thinking_days` full
//!    24-hour days before `as_of` (no log row: not selected);
//! 5. clients whose request cannot be built are listed with `skip_reason`.
//!
//! The selection is one SQL statement, inlined into its caller, so every lookup is an index
//! probe (see docs/selection-plan.md). The settings are read once per statement, through
//! scalar sub-queries.

use pgrx::prelude::*;

extension_sql_file!(
    "../sql/selection.sql",
    name = "selection",
    requires = [
        "task_table",
        "outbox_table",
        gucs::setting_thinking_days,
        gucs::setting_timezone,
        gucs::setting_response_timeout
    ],
);
