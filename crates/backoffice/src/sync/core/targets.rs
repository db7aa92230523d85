//! How the core moves targets: registers' answers, their sales, deadlines, and the one place
//! where a transition of the table becomes a change to persist.

use chrono::{DateTime, Utc};
use regsync_protocol::register::SyncOutcome;
use regsync_protocol::sync::TargetState;
use uuid::Uuid;

use super::{
    Core, Effect, KnownTarget, Move, Next, Stamp, SyncAnswer, Synced, TargetEvent, human, ms, next,
};

impl Core {
    pub(super) fn on_result(
        &mut self,
        answer: SyncAnswer,
        known: Option<KnownTarget>,
        now: DateTime<Utc>,
    ) {
        let SyncAnswer {
            register_id,
            generation,
            target_id,
            outcome,
        } = answer;
        let current = self.links.get(&register_id).map(|l| l.generation) == Some(generation);
        match outcome {
            SyncOutcome::Applied {
                revision,
                applied_at,
            } => {
                let at = applied_at.min(now);
                self.applied(register_id, target_id, revision, at, current, known, now);
            }
            SyncOutcome::Busy => {
                let Some(target) = self.open.get(&target_id) else {
                    return;
                };
                if target.register_id != register_id {
                    tracing::warn!(%register_id, %target_id, "a register answered another register's sync; ignored");
                    return;
                }
                let retry_when_free = self
                    .jobs
                    .get(&target.job_id)
                    .is_some_and(|job| job.retry_when_free);
                let event = TargetEvent::Busy { retry_when_free };
                let reason = (!retry_when_free).then(|| "in a sale".to_owned());
                let moved = self.apply_event(target_id, event, now, reason, None);
                // The sale may have ended already (its message handled before this one): look
                // at the register's latest state at once, never wait for another signal.
                let free = self
                    .links
                    .get(&register_id)
                    .is_some_and(|link| link.generation == generation && !link.in_sale);
                if moved == Some(TargetState::Waiting) && free {
                    self.free(register_id, now);
                    self.send_open(register_id, &[TargetState::Queued], now);
                }
            }
            SyncOutcome::Failed { reason } => {
                if self.open.get(&target_id).map(|t| t.register_id) != Some(register_id) {
                    return;
                }
                let reason = format!("could not apply the menu: {reason}");
                self.apply_event(target_id, TargetEvent::Failed, now, Some(reason), None);
            }
        }
    }

    /// The register applied `target_id` and holds `revision` since `at`. It is credited with
    /// the sync ("last synced") once per target, whatever copies of the answer arrive; its
    /// revision is raised only by its current connection (a hello since then is newer truth).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn applied(
        &mut self,
        register_id: Uuid,
        target_id: Uuid,
        revision: i64,
        at: DateTime<Utc>,
        raise: bool,
        known: Option<KnownTarget>,
        now: DateTime<Utc>,
    ) {
        let (job_id, credit) = match self.open.get(&target_id) {
            Some(target) if target.register_id == register_id => {
                let job_id = target.job_id;
                let job = self.jobs.get(&job_id);
                let asker = job.map(|j| (j.source, j.requested_by.clone()));
                self.apply_event(target_id, TargetEvent::Applied, now, None, Some(revision));
                (job_id, asker)
            }
            Some(_) => {
                tracing::warn!(%register_id, %target_id, "a register reported another register's sync; ignored");
                return;
            }
            None => {
                let Some(ended) = self.ended(&target_id).cloned().or(known) else {
                    tracing::warn!(%register_id, %target_id, "a result for an unknown sync target; ignored");
                    return;
                };
                if ended.register_id != register_id {
                    tracing::warn!(%register_id, %target_id, "a register reported another register's sync; ignored");
                    return;
                }
                let first = !ended.credited;
                if first {
                    // Ended before its answer (say, by its deadline): it stays as it ended,
                    // but the register did apply it.
                    self.step.batch.late_applied.push(target_id);
                }
                let job_id = ended.job_id;
                let asker = first.then(|| (ended.source, ended.requested_by.clone()));
                let credited = KnownTarget {
                    credited: true,
                    ..ended
                };
                self.ended.push((target_id, credited));
                (job_id, asker)
            }
        };
        let change = self.step.batch.register(register_id);
        if raise {
            change.raise_revision(revision);
        }
        if let Some((source, by)) = credit {
            change.credit(Synced {
                target_id,
                at,
                source,
                by,
            });
        }
        self.step.touched.registers.insert(register_id);
        self.step.touched.targets.insert(target_id);
        self.step.touched.jobs.insert(job_id);
    }

    /// A free register's waiting targets go back to the queue.
    pub(super) fn free(&mut self, register_id: Uuid, now: DateTime<Utc>) {
        for target_id in self.open.of_register(register_id, &[TargetState::Waiting]) {
            self.apply_event(target_id, TargetEvent::Free, now, None, None);
        }
    }

    /// Sends a connected register its open targets in `states`, oldest first.
    pub(super) fn send_open(
        &mut self,
        register_id: Uuid,
        states: &[TargetState],
        now: DateTime<Utc>,
    ) {
        if !self.links.contains_key(&register_id) {
            return;
        }
        for target_id in self.open.of_register(register_id, states) {
            // A queue that ran out (its end not handled yet) is over, not delivered late.
            let over = self.open.get(&target_id).is_some_and(|t| {
                t.state == TargetState::AwaitingReconnect && t.deadline_ms <= ms(now)
            });
            if over {
                let reason = self.deadline_reason(target_id);
                self.apply_event(target_id, TargetEvent::Deadline, now, reason, None);
            } else {
                self.apply_event(target_id, TargetEvent::Send, now, None, None);
            }
        }
    }

    /// Why a target ends at its deadline, in words for the manager.
    fn deadline_reason(&self, target_id: Uuid) -> Option<String> {
        let target = self.open.get(&target_id)?;
        Some(match target.state {
            TargetState::Waiting => format!(
                "the sale did not end within {}",
                human(self.timing.wait_expiry)
            ),
            TargetState::AwaitingReconnect => {
                "the register did not come back online in time".into()
            }
            _ if self.links.contains_key(&target.register_id) => format!(
                "no answer from the register within {}",
                human(self.timing.result_timeout)
            ),
            _ => "lost its connection during the sync".to_owned(),
        })
    }

    /// Ends targets whose deadline passed: waits expire, unanswered deliveries fail.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        let due = self.open.due(ms(now));
        if due.is_empty() {
            return;
        }
        self.step.batch.at = Some(now);
        for target_id in due {
            let Some(reason) = self.deadline_reason(target_id) else {
                continue;
            };
            tracing::info!(%target_id, %reason, "sync target ended by its deadline");
            self.apply_event(target_id, TargetEvent::Deadline, now, Some(reason), None);
        }
    }

    /// Applies the transition table to one open target and records the change. Answers the
    /// state it moved to, if it moved.
    pub(super) fn apply_event(
        &mut self,
        target_id: Uuid,
        event: TargetEvent,
        now: DateTime<Utc>,
        reason: Option<String>,
        revision: Option<i64>,
    ) -> Option<TargetState> {
        let target = *self.open.get(&target_id)?;
        let timing = self.timing;
        let (to, deadline_ms) = match next(target.state, event) {
            Next::Ignore => return None,
            Next::Stay => {
                // Only a disconnect stays: its syncs in flight get a short grace.
                let grace = ms(now + timing.offline_grace);
                if target.deadline_ms <= grace {
                    return None;
                }
                (target.state, Some(grace))
            }
            Next::To(to) => (
                to,
                match to {
                    TargetState::Queued | TargetState::Delivered => {
                        Some(ms(now + timing.result_timeout))
                    }
                    TargetState::Waiting => Some(ms(now + timing.wait_expiry)),
                    _ => None,
                },
            ),
        };
        let wait_expires_at = match to {
            TargetState::Waiting => Some(now + timing.wait_expiry),
            _ => None,
        };
        let link = self.links.get(&target.register_id).copied();
        let deliver = to == TargetState::Delivered && event == TargetEvent::Send;
        self.step.batch.add_move(Move {
            id: target_id,
            job_id: target.job_id,
            register_id: target.register_id,
            from: target.state,
            to,
            stamp: Stamp {
                revision,
                reason,
                deadline_ms,
                wait_expires_at,
                deliver_site: deliver.then(|| link.map(|l| l.register.site_id)).flatten(),
            },
        });
        self.step.touched.targets.insert(target_id);
        self.step.touched.jobs.insert(target.job_id);
        let job = self.jobs.get(&target.job_id).cloned();
        if let (true, Some(link)) = (deliver, link) {
            self.step.effects.push(Effect::Send {
                register_id: target.register_id,
                generation: link.generation,
                target_id,
                job_id: target.job_id,
                requested_by: job.as_ref().and_then(|j| j.requested_by.clone()),
                scheduled: job
                    .as_ref()
                    .is_some_and(|j| j.source == regsync_protocol::api::SyncSource::Schedule),
            });
        }
        match deadline_ms {
            Some(deadline) if !to.is_terminal() => self.open.update(&target_id, to, deadline),
            _ => self.end(target_id, to, job),
        }
        Some(to)
    }

    fn end(&mut self, target_id: Uuid, state: TargetState, job: Option<super::JobInfo>) {
        let Some(target) = self.open.remove(&target_id) else {
            return;
        };
        if let Some(job) = &job {
            self.ended.push((
                target_id,
                KnownTarget {
                    register_id: target.register_id,
                    job_id: target.job_id,
                    state,
                    credited: state == TargetState::Synced,
                    source: job.source,
                    requested_by: job.requested_by.clone(),
                },
            ));
        }
        if let Some(info) = self.jobs.get_mut(&target.job_id) {
            info.open = info.open.saturating_sub(1);
        }
        self.finish_if_done(target.job_id);
    }
}
