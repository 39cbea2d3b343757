//! Command builders and response parsers, one function pair per TPM 1.2 command.
//! Builders return a [`Command`](super::frame::Command); parsers take the response
//! parameters ([`Response::params`](super::frame::Response::params)) and never panic.

pub mod capability;
pub mod keys;
pub mod owner;
pub mod pcr_nv;
pub mod session;
