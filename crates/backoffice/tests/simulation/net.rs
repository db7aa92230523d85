//! The simulated network: every message in flight with the time it arrives. Faults drop, delay
//! (and so reorder), duplicate; a cut connection loses what it had in flight.

use std::collections::BTreeMap;

use regsync_protocol::register::{AppliedTarget, SyncOutcome};
use uuid::Uuid;

/// What a register tells Back Office, on one connection.
#[derive(Debug, Clone)]
pub enum Up {
    Hello {
        applied_revision: i64,
        in_sale: bool,
        recent: Vec<AppliedTarget>,
    },
    Heartbeat {
        in_sale: bool,
    },
    Sale {
        in_sale: bool,
    },
    Result {
        target_id: Uuid,
        outcome: SyncOutcome,
    },
    SyncRequested,
    /// The connection closed (seen by Back Office).
    Closed,
}

/// What Back Office tells a register.
#[derive(Debug, Clone)]
pub enum Down {
    Sync { target_id: Uuid, revision: i64 },
    Close,
}

#[derive(Debug, Clone)]
pub enum Packet {
    Up {
        register: usize,
        generation: u64,
        message: Up,
    },
    Down {
        register: usize,
        generation: u64,
        message: Down,
    },
    /// Several nodes: another node's notice reaching `node` (its index).
    Notice {
        node: usize,
        claimed: Vec<(Uuid, i64)>,
        look: bool,
    },
}

impl Packet {
    pub fn generation(&self) -> u64 {
        match self {
            Packet::Up { generation, .. } | Packet::Down { generation, .. } => *generation,
            // Not on any register's connection.
            Packet::Notice { .. } => 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Net {
    /// (arrival ms, sequence) → packet: ordered, so delivery is deterministic.
    in_flight: BTreeMap<(i64, u64), Packet>,
    seq: u64,
}

impl Net {
    pub fn send(&mut self, at_ms: i64, packet: Packet) {
        self.seq += 1;
        self.in_flight.insert((at_ms, self.seq), packet);
    }

    /// Packets due by `now_ms`, in arrival order.
    pub fn due(&mut self, now_ms: i64) -> Vec<Packet> {
        let later = self.in_flight.split_off(&(now_ms + 1, 0));
        let due = std::mem::replace(&mut self.in_flight, later);
        due.into_values().collect()
    }

    /// A cut: nothing of `generation` arrives any more, but Back Office's news of the close.
    pub fn cut(&mut self, generation: u64) {
        self.in_flight.retain(|_, p| {
            p.generation() != generation
                || matches!(
                    p,
                    Packet::Up {
                        message: Up::Closed,
                        ..
                    }
                )
        });
    }

    /// Back Office stopped: every connection is gone, and so is what was in flight.
    pub fn clear(&mut self) {
        self.in_flight.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}
