//! `infor-crm-sim`: a simulator of InforCRM for the demo and the tests. It consumes the
//! outbound queue, checks each request against the contract, replies on the inbound queue
//! (statusCode 0 mostly, 1 and 2 at the given rates), and after `--push-delay` pushes the
//! outcome of each created task with a reaction drawn from `infor_comm.client_reaction`.
//!
//! It deliberately shares no code with the relay: it is the other side of the contract, the
//! stand-in for InforCRM, so it speaks to the broker through its own AMQP client (on lapin)
//! and keeps its own reading of the contract, of the queue names and of its flags. Were both
//! sides of an end-to-end test to go through the relay's broker code, a mistake in that code
//! (a property left unset, a confirm taken for granted) would be made on both sides at once
//! and the tests could not see it.
//!
//! - [`args`]: the command-line flags, the two queues' names (from `--zone`, as in the
//!   contract) and the durations of the flags;
//! - [`broker`]: the simulator's AMQP client: a session with the broker that consumes the
//!   requests with manual acks and publishes with publisher confirms;
//! - [`contract`]: the InforCRM side of the contract: checking a request, building replies
//!   and pushes;
//! - [`answers`]: the answer given to each request, so that a repeated request gets the same;
//! - [`deliveries`]: the requests of a session not yet acked, acked in runs;
//! - [`ids`]: the ids the simulator makes up, none ever given twice;
//! - [`in_flight`]: the replies and pushes published and not yet confirmed, up to
//!   `--in-flight` of them;
//! - [`journal`]: `--journal`, the file a test counts the requests received and the replies and
//!   pushes sent from;
//! - [`reactions`]: reading the client reactions the pushes draw from;
//! - [`report`]: errors with their causes, and connection strings without their passwords,
//!   for the log;
//! - [`simulator`]: the loop that answers the requests and sends the pushes, opens a new
//!   session when the broker fails, and stops on SIGTERM or SIGINT.

#![warn(missing_docs)]

pub mod answers;
pub mod args;
pub mod broker;
pub mod contract;
pub mod deliveries;
pub mod ids;
pub mod in_flight;
pub mod journal;
pub mod reactions;
pub mod report;
pub mod simulator;
