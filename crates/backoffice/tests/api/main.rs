//! Back Office end to end: the real binary on loopback, a real SQLite file, real HTTP.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod access;
mod all_sites;
mod auth;
mod catalog;
mod channel;
mod contract;
mod events;
mod harness;
mod headers;
mod history;
mod input;
mod lifecycle;
mod monitoring;
mod queue;
mod randomized;
mod recovery;
mod schedules;
mod sync;
mod tls;
