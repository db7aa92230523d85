//! Wire types shared by every part of Register Sync.
//!
//! Back Office speaks these types over its HTTP API and its register channel; registers, the
//! client library, the `regsync` CLI and the desktop app read them back. Keeping them in one
//! crate, free of I/O, means a field cannot be renamed on one side only. The OpenAPI schemas Back
//! Office serves are derived from these same types (feature `openapi`), so the document cannot
//! drift from what is actually sent.

pub mod api;
pub mod catalog;
pub mod error;
pub mod register;
pub mod schedule;
pub mod sync;
mod whole;

pub use catalog::{Catalog, CatalogEdit, Category, Product};
pub use error::{ErrorCode, ExitCode};
