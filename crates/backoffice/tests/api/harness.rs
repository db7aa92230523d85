//! The shared end-to-end harness (`crates/testkit`).

pub use regsync_testkit::*;
