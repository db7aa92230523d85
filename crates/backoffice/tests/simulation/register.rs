//! A simulated register: the agent's rules (apply a target id once, by revision, never during a
//! sale; remember recent results for the next hello) on a simulated disk.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use regsync_protocol::register::SyncOutcome;
use regsync_register::state::Stored;
use uuid::Uuid;

#[derive(Debug)]
pub struct SimRegister {
    pub id: Uuid,
    /// What the register holds on its disk (the real agent's type).
    pub stored: Stored,
    pub in_sale: bool,
    /// The connection it has, as it sees it.
    pub connection: Option<u64>,
    /// Bumped by each reinstall; what it applied is per install.
    pub install: u32,
    /// Every target this install applied: its revision and when.
    pub applied: BTreeMap<Uuid, (i64, DateTime<Utc>)>,
    /// Every (install, target) ever applied, for crediting checks across reinstalls.
    pub ever_applied: BTreeMap<Uuid, DateTime<Utc>>,
    /// The highest revision it ever held, in any install.
    pub max_revision: i64,
    /// When it last applied anything, in any install.
    pub last_applied_at: Option<DateTime<Utc>>,
}

impl SimRegister {
    pub fn new(id: Uuid) -> SimRegister {
        SimRegister {
            id,
            stored: Stored::default(),
            in_sale: false,
            connection: None,
            install: 0,
            applied: BTreeMap::new(),
            ever_applied: BTreeMap::new(),
            max_revision: 0,
            last_applied_at: None,
        }
    }

    /// A sync command: answered as the agent answers, under its sale lock.
    pub fn on_command(
        &mut self,
        target_id: Uuid,
        revision: i64,
        now: DateTime<Utc>,
        fail: bool,
    ) -> Result<SyncOutcome, String> {
        if let Some(earlier) = self.stored.remembered(target_id) {
            // Sent again: answer as before, apply nothing.
            return Ok(SyncOutcome::Applied {
                revision: earlier.revision,
                applied_at: earlier.applied_at,
            });
        }
        if self.in_sale {
            return Ok(SyncOutcome::Busy);
        }
        if fail {
            return Ok(SyncOutcome::Failed {
                reason: "the disk is full".into(),
            });
        }
        // Invariant 1, where it is decided: never while a sale is open.
        if self.in_sale {
            return Err(format!("register {} applied during a sale", self.id));
        }
        let before = self.stored.applied_revision;
        let current = before.max(revision);
        if self.applied.contains_key(&target_id) && current > before {
            return Err(format!(
                "register {} applied target {target_id} twice",
                self.id
            ));
        }
        self.stored.applied_revision = current;
        self.stored.remember(target_id, current, now);
        self.applied.insert(target_id, (current, now));
        self.ever_applied.insert(target_id, now);
        self.max_revision = self.max_revision.max(current);
        self.last_applied_at = self.last_applied_at.max(Some(now));
        Ok(SyncOutcome::Applied {
            revision: current,
            applied_at: now,
        })
    }

    /// Wiped and set up again: a fresh disk, no memory of what it applied.
    pub fn reinstall(&mut self) {
        self.stored = Stored::default();
        self.install += 1;
        self.applied.clear();
        self.connection = None;
    }
}
