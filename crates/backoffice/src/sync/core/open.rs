//! The open targets, indexed the three ways the core looks them up: by id, by register (oldest
//! first) and by deadline (mini-redis style: the earliest deadline is the next thing to do, so
//! nothing scans on a timer).

use std::collections::{BTreeSet, HashMap};

use regsync_protocol::sync::TargetState;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTarget {
    pub register_id: Uuid,
    pub job_id: Uuid,
    pub state: TargetState,
    /// Unix milliseconds. Every open target has one: it is what guarantees an end.
    pub deadline_ms: i64,
}

#[derive(Debug, Default)]
pub struct OpenTargets {
    by_id: HashMap<Uuid, OpenTarget>,
    /// Target ids are time-ordered (v7), so a set per register is oldest first.
    by_register: HashMap<Uuid, BTreeSet<Uuid>>,
    deadlines: BTreeSet<(i64, Uuid)>,
}

impl OpenTargets {
    pub fn insert(&mut self, id: Uuid, target: OpenTarget) {
        self.remove(&id);
        self.by_register
            .entry(target.register_id)
            .or_default()
            .insert(id);
        self.deadlines.insert((target.deadline_ms, id));
        self.by_id.insert(id, target);
    }

    pub fn remove(&mut self, id: &Uuid) -> Option<OpenTarget> {
        let target = self.by_id.remove(id)?;
        if let Some(ids) = self.by_register.get_mut(&target.register_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_register.remove(&target.register_id);
            }
        }
        self.deadlines.remove(&(target.deadline_ms, *id));
        Some(target)
    }

    pub fn get(&self, id: &Uuid) -> Option<&OpenTarget> {
        self.by_id.get(id)
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
        self.by_register.clear();
        self.deadlines.clear();
    }

    /// Moves an open target to another open state with a new deadline.
    pub fn update(&mut self, id: &Uuid, state: TargetState, deadline_ms: i64) {
        if let Some(target) = self.by_id.get_mut(id) {
            if target.deadline_ms != deadline_ms {
                self.deadlines.remove(&(target.deadline_ms, *id));
                self.deadlines.insert((deadline_ms, *id));
            }
            target.state = state;
            target.deadline_ms = deadline_ms;
        }
    }

    /// A register's open targets in one of `states`, oldest first.
    pub fn of_register(&self, register_id: Uuid, states: &[TargetState]) -> Vec<Uuid> {
        let Some(ids) = self.by_register.get(&register_id) else {
            return Vec::new();
        };
        ids.iter()
            .filter(|id| {
                self.by_id
                    .get(id)
                    .is_some_and(|t| states.contains(&t.state))
            })
            .copied()
            .collect()
    }

    /// The earliest deadline, if any target is open.
    pub fn next_deadline(&self) -> Option<i64> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Targets whose deadline is at or before `now_ms`, earliest first.
    pub fn due(&self, now_ms: i64) -> Vec<Uuid> {
        self.deadlines
            .range(..=(now_ms, Uuid::max()))
            .map(|(_, id)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(register: u128, deadline_ms: i64) -> OpenTarget {
        OpenTarget {
            register_id: Uuid::from_u128(register),
            job_id: Uuid::nil(),
            state: TargetState::Delivered,
            deadline_ms,
        }
    }

    #[test]
    fn indexes_follow_every_change() {
        let mut open = OpenTargets::default();
        open.insert(Uuid::from_u128(2), target(7, 50));
        open.insert(Uuid::from_u128(1), target(7, 10));
        open.insert(Uuid::from_u128(3), target(8, 30));
        assert_eq!(open.next_deadline(), Some(10));
        assert_eq!(open.due(30), [Uuid::from_u128(1), Uuid::from_u128(3)]);
        assert_eq!(
            open.of_register(Uuid::from_u128(7), &[TargetState::Delivered]),
            [Uuid::from_u128(1), Uuid::from_u128(2)]
        );
        open.update(&Uuid::from_u128(1), TargetState::Waiting, 100);
        assert_eq!(open.next_deadline(), Some(30));
        assert!(
            open.of_register(Uuid::from_u128(7), &[TargetState::Queued])
                .is_empty()
        );
        open.remove(&Uuid::from_u128(3));
        open.remove(&Uuid::from_u128(2));
        open.remove(&Uuid::from_u128(1));
        assert!(open.by_id.is_empty());
        assert_eq!(open.next_deadline(), None);
        assert!(open.by_register.is_empty());
    }
}
