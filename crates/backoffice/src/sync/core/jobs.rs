//! Jobs: made with one target per register, finished when none is left open.

use chrono::{DateTime, Utc};
use regsync_protocol::sync::TargetState;
use uuid::Uuid;

use super::{Core, Effect, JobInfo, JobSpec, NewTarget, OpenTarget, Stamp, TargetEvent, ms};

impl Core {
    pub(super) fn create_job(&mut self, token: u64, spec: JobSpec, now: DateTime<Utc>) {
        let job = spec.job;
        let job_id = job.id;
        let deadline = ms(now + self.timing.result_timeout);
        self.jobs.insert(
            job_id,
            JobInfo {
                source: job.source,
                requested_by: job
                    .requested_by
                    .as_ref()
                    .map(|(_, name)| name.as_str().into()),
                retry_when_free: job.retry_when_free,
                open: 0,
            },
        );
        self.step.batch.jobs.push(job);
        // A queue that ends before it starts queues nothing (the driver never asks for one).
        let queue_until = spec.queue_until.filter(|until| *until > now);
        for (register_id, register_name, target_id) in spec.registers {
            let online = self.links.contains_key(&register_id);
            // Held by another node: that node delivers it, now or when it reconnects there.
            let elsewhere = spec.elsewhere.get(&register_id).filter(|_| !online);
            let (state, stamp) = match (online, elsewhere, queue_until) {
                (true, _, _) => (TargetState::Queued, deadline_stamp(deadline)),
                (false, Some(e), _) if e.online => (TargetState::Queued, deadline_stamp(deadline)),
                (false, _, Some(until)) => (
                    TargetState::AwaitingReconnect,
                    Stamp {
                        deadline_ms: Some(ms(until)),
                        wait_expires_at: Some(until),
                        ..Stamp::default()
                    },
                ),
                (false, _, None) => (
                    TargetState::SkippedOffline,
                    Stamp {
                        reason: Some("offline".to_owned()),
                        ..Stamp::default()
                    },
                ),
            };
            let here = match elsewhere {
                Some(e) if !state.is_terminal() => {
                    self.step.wake.insert(e.node);
                    false
                }
                _ => !state.is_terminal(),
            };
            let deadline_ms = stamp.deadline_ms;
            self.step.batch.add_target(NewTarget {
                id: target_id,
                job_id,
                register_id,
                register_name,
                state,
                stamp,
            });
            self.step.touched.targets.insert(target_id);
            if let (true, Some(deadline_ms)) = (here, deadline_ms) {
                self.open_target(target_id, register_id, job_id, state, deadline_ms);
                if online {
                    self.apply_event(target_id, TargetEvent::Send, now, None, None);
                }
            }
        }
        self.step.touched.jobs.insert(job_id);
        self.step.effects.push(Effect::Created { token, job_id });
        self.finish_if_done(job_id);
    }

    pub(super) fn open_target(
        &mut self,
        target_id: Uuid,
        register_id: Uuid,
        job_id: Uuid,
        state: TargetState,
        deadline_ms: i64,
    ) {
        self.open.insert(
            target_id,
            OpenTarget {
                register_id,
                job_id,
                state,
                deadline_ms,
            },
        );
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.open += 1;
        }
    }

    /// A job with no open target left is finished.
    pub(super) fn finish_if_done(&mut self, job_id: Uuid) {
        if self.jobs.get(&job_id).is_some_and(|job| job.open == 0) {
            self.jobs.remove(&job_id);
            self.step.batch.finished.push(job_id);
            self.step.effects.push(Effect::Finished { job_id });
        }
    }
}

/// A new target about to be sent, due to be answered by `deadline_ms`.
fn deadline_stamp(deadline_ms: i64) -> Stamp {
    Stamp {
        deadline_ms: Some(deadline_ms),
        ..Stamp::default()
    }
}
