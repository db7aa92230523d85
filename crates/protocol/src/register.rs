//! The register channel: versioned JSON messages over one WebSocket per register.
//!
//! A register connects to `/v1/registers/connect` with its device credential as a bearer token,
//! says [`RegisterMessage::Hello`], and Back Office answers [`ServerMessage::Welcome`]. From then on
//! the register beats every `heartbeat_secs`, reports its sales, and answers every
//! [`ServerMessage::Sync`] with exactly one [`RegisterMessage::SyncResult`] keyed by the target id.
//! Delivery is at least once; the register applies a target id once and by revision, so a
//! repeated or older command never applies twice nor moves the menu back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Catalog;

/// Bumped on any change a peer of the previous version would misread.
pub const PROTOCOL_VERSION: u32 = 1;

/// The path registers connect to.
pub const CONNECT_PATH: &str = "/v1/registers/connect";

/// Largest message a register may send; its messages are small, and a bigger one is an error.
pub const MAX_REGISTER_MESSAGE_BYTES: usize = 64 * 1024;

/// What a register tells Back Office.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RegisterMessage {
    /// First message on every connection: where the register stands, including the syncs it
    /// applied recently, so results lost with a connection or a restart can be settled.
    Hello {
        protocol_version: u32,
        applied_revision: i64,
        in_sale: bool,
        #[serde(default)]
        recent: Vec<AppliedTarget>,
    },
    /// "Still here." `in_sale` repeats the sale state, so a lost sale message heals itself.
    Heartbeat {
        in_sale: bool,
    },
    SaleStarted,
    /// The register is free: Back Office re-delivers any sync that waited for it.
    SaleEnded,
    /// The answer to one [`ServerMessage::Sync`].
    SyncResult {
        target_id: Uuid,
        outcome: SyncOutcome,
    },
    /// Staff pressed "Sync" on the register itself.
    SyncRequested,
}

/// How a register answered a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum SyncOutcome {
    /// The register now has `revision` (which may be newer than the one sent: then it was a no-op).
    Applied {
        revision: i64,
        applied_at: DateTime<Utc>,
    },
    /// A sale is open; nothing was applied.
    Busy,
    /// It could not apply the menu (for example, its disk is full).
    Failed { reason: String },
}

/// A sync a register applied, remembered for a while so it can be reported after a reconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedTarget {
    pub target_id: Uuid,
    pub revision: i64,
    pub applied_at: DateTime<Utc>,
}

/// What Back Office tells a register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        protocol_version: u32,
        register_id: Uuid,
        register_name: String,
        site_id: Uuid,
        /// How often to send a heartbeat.
        heartbeat_secs: u64,
    },
    /// Apply this menu unless a sale is open, then answer with a `SyncResult` for `target_id`.
    Sync {
        target_id: Uuid,
        revision: i64,
        /// Who asked, for the banner staff see; absent when staff asked on the register.
        requested_by: Option<String>,
        /// A schedule of the site started it (the banner says so instead of a name).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        scheduled: bool,
        catalog: Catalog,
    },
}

/// The banner staff see after a sync a manager started.
pub fn banner_text(requested_by: &str) -> String {
    format!("Updated from Back Office by {requested_by}")
}

/// The banner staff see after a scheduled sync.
pub const SCHEDULED_BANNER: &str = "Updated from Back Office (scheduled)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_type_tag_and_round_trip() {
        let result = RegisterMessage::SyncResult {
            target_id: Uuid::nil(),
            outcome: SyncOutcome::Busy,
        };
        let text = serde_json::to_string(&result).unwrap();
        assert_eq!(
            text,
            r#"{"type":"sync_result","target_id":"00000000-0000-0000-0000-000000000000","outcome":{"status":"busy"}}"#
        );
        assert_eq!(
            serde_json::from_str::<RegisterMessage>(&text).unwrap(),
            result
        );
        let hello = r#"{"type":"hello","protocol_version":1,"applied_revision":3,"in_sale":false}"#;
        assert!(matches!(
            serde_json::from_str::<RegisterMessage>(hello).unwrap(),
            RegisterMessage::Hello { recent, .. } if recent.is_empty()
        ));
    }

    #[test]
    fn unknown_messages_are_errors() {
        assert!(serde_json::from_str::<RegisterMessage>(r#"{"type":"format_disk"}"#).is_err());
        assert!(serde_json::from_str::<RegisterMessage>(r#"{"type":"heartbeat"}"#).is_err());
    }
}
