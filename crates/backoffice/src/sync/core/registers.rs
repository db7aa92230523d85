//! Registers coming, going and selling: the signals that move their targets.

use chrono::{DateTime, Utc};
use regsync_protocol::register::AppliedTarget;
use regsync_protocol::sync::TargetState;
use uuid::Uuid;

use super::{Core, Effect, KnownTarget, Link, RegisterRef, TargetEvent};

impl Core {
    pub(super) fn on_connected(
        &mut self,
        register: RegisterRef,
        generation: u64,
        applied_revision: i64,
        in_sale: bool,
        recent: Vec<(AppliedTarget, Option<KnownTarget>)>,
        now: DateTime<Utc>,
    ) {
        let id = register.id;
        if let Some(old) = self.links.get(&id)
            && old.generation != generation
        {
            self.step.effects.push(Effect::Close {
                register_id: id,
                generation: old.generation,
                reason: "replaced by a newer connection from this register".into(),
            });
        }
        let epoch = self.links.get(&id).and_then(|link| link.epoch);
        self.links.insert(
            id,
            Link {
                register,
                generation,
                in_sale,
                epoch,
            },
        );
        self.presence(id, true, in_sale);
        // The hello is the truth about what the register holds, even a lower revision.
        let change = self.step.batch.register(id);
        change.set_revision(applied_revision);
        change.seen_at = Some(now);
        // Results lost with the last connection (or a restart of Back Office) are in `recent`.
        for (applied, known) in recent {
            let at = applied.applied_at.min(now);
            self.applied(
                id,
                applied.target_id,
                applied.revision,
                at,
                false,
                known,
                now,
            );
        }
        // The hello is a "free" signal too: never rely on having seen the sale end.
        if !in_sale {
            self.free(id, now);
        }
        // Queued while it was offline: delivered now, or over if the queue ran out.
        let states = [
            TargetState::Queued,
            TargetState::Delivered,
            TargetState::AwaitingReconnect,
        ];
        self.send_open(id, &states, now);
    }

    pub(super) fn on_disconnected(
        &mut self,
        register_id: Uuid,
        generation: u64,
        last_seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        // An older connection, already replaced: the register is still online.
        if self.links.get(&register_id).map(|l| l.generation) != Some(generation) {
            return;
        }
        self.links.remove(&register_id);
        self.presence(register_id, false, false);
        self.step.batch.register(register_id).seen_at = Some(last_seen);
        let states = [TargetState::Queued, TargetState::Delivered];
        for target_id in self.open.of_register(register_id, &states) {
            self.apply_event(target_id, TargetEvent::Disconnected, now, None, None);
        }
    }

    pub(super) fn on_sale(
        &mut self,
        register_id: Uuid,
        generation: u64,
        in_sale: bool,
        now: DateTime<Utc>,
    ) {
        let Some(link) = self.links.get_mut(&register_id) else {
            return;
        };
        if link.generation != generation {
            return;
        }
        link.in_sale = in_sale;
        self.presence(register_id, true, in_sale);
        if !in_sale {
            self.free(register_id, now);
            self.send_open(register_id, &[TargetState::Queued], now);
        }
    }

    pub(super) fn presence(&mut self, register_id: Uuid, online: bool, in_sale: bool) {
        self.step.effects.push(Effect::Presence {
            register_id,
            online,
            in_sale,
        });
        self.step.touched.registers.insert(register_id);
        self.step
            .batch
            .presence
            .insert(register_id, (online, in_sale));
    }
}
