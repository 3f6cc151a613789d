//! `infor-relay`: moves infor_comm outbox rows to the broker and inbound messages back.

fn main() {}
