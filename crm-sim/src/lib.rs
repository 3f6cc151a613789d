//! `infor-crm-sim`: a simulator of InforCRM for the demo and the tests. It consumes the
//! outbound queue, checks each request against the contract, replies on the inbound queue
//! (statusCode 0 mostly, 1 and 2 at the given rates), and after `--push-delay` pushes the
//! outcome of each created task with a reaction drawn from `infor_comm.client_reaction`.
//! It speaks to the broker through the relay's library (`infor_relay::broker`).
//!
//! - [`args`]: the command-line flags;
//! - [`contract`]: the InforCRM side of the contract: checking a request, building replies
//!   and pushes;
//! - [`answers`]: the answer given to each request, so that a repeated request gets the same;
//! - [`ids`]: the ids the simulator makes up, none ever given twice;
//! - [`reactions`]: reading the client reactions the pushes draw from;
//! - [`simulator`]: the loop that answers the requests and sends the pushes.

#![warn(missing_docs)]

pub mod answers;
pub mod args;
pub mod contract;
pub mod ids;
pub mod reactions;
pub mod simulator;
