//! After the commit: what to tell whom — the askers their job, the registers their commands.

use std::collections::HashMap;

use regsync_protocol::api::SyncSource;
use regsync_protocol::sync::{Job, JobCounts, JobKind, JobSummary, Target};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{Driver, Output};
use crate::db::by_name;
use crate::error::{Error, Result};
use crate::sync::core::{Batch, Effect, Step};
use crate::sync::store::Store;

/// The sync command, with the catalog spliced in as already-serialized JSON: a fan-out to a
/// thousand registers serializes the menu once, not a thousand times.
#[derive(Serialize)]
#[serde(tag = "type", rename = "sync")]
struct SyncCommand<'a> {
    target_id: Uuid,
    revision: i64,
    requested_by: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    scheduled: bool,
    catalog: &'a RawValue,
}

pub fn command(
    target_id: Uuid,
    revision: i64,
    requested_by: Option<&str>,
    scheduled: bool,
    catalog: &RawValue,
) -> Result<String> {
    serde_json::to_string(&SyncCommand {
        target_id,
        revision,
        requested_by,
        scheduled,
        catalog,
    })
    .map_err(|e| Error::Internal(format!("serializing a sync command: {e}")))
}

impl<S: Store> Driver<S> {
    /// What the committed step asks for, in the order it matters: the askers first (their tasks
    /// then run ahead of the connection tasks the sends wake), then the registers.
    pub(super) fn effects(
        &mut self,
        step: Step,
        finished: &[Uuid],
        out: &mut Output,
    ) -> Result<()> {
        let batch = &step.batch;
        let delivered: HashMap<Uuid, (i64, Uuid)> = batch
            .moves
            .iter()
            .filter_map(|m| Some((m.id, (m.stamp.revision?, m.stamp.deliver_site?))))
            .chain(
                batch
                    .targets
                    .iter()
                    .filter_map(|t| Some((t.id, (t.stamp.revision?, t.stamp.deliver_site?)))),
            )
            .collect();
        for effect in step.effects {
            match effect {
                Effect::Created { token, job_id } => {
                    if token != 0 {
                        let done = finished.contains(&job_id);
                        out.replies
                            .push((token, Ok(created_job(batch, job_id, done))));
                    }
                }
                Effect::Send {
                    register_id,
                    generation,
                    target_id,
                    requested_by,
                    scheduled,
                    ..
                } => {
                    let Some((revision, site)) = delivered.get(&target_id) else {
                        continue;
                    };
                    let Some(catalog) = self.catalogs.get(site) else {
                        continue;
                    };
                    let asker = requested_by.as_deref();
                    let text = command(target_id, *revision, asker, scheduled, &catalog.json)?;
                    out.sends.push((register_id, generation, text));
                }
                Effect::Close {
                    register_id,
                    generation,
                    reason,
                } => out.closes.push((register_id, generation, reason)),
                Effect::Presence {
                    register_id,
                    online,
                    in_sale,
                } => out.presence.push((register_id, online, in_sale)),
                // Finished only if the store found none of its targets open (with several
                // nodes, others may hold some).
                Effect::Finished { job_id } if finished.contains(&job_id) => {
                    out.finished.push(job_id);
                }
                Effect::Finished { .. } => {}
            }
        }
        out.touched = step.touched;
        Ok(())
    }
}

/// What a step changed of who is connected, which holds even when its batch was not saved.
pub(super) fn connections(step: &Step, out: &mut Output) {
    for effect in &step.effects {
        match effect {
            Effect::Presence {
                register_id,
                online,
                in_sale,
            } => out.presence.push((*register_id, *online, *in_sale)),
            Effect::Close {
                register_id,
                generation,
                reason,
            } => out.closes.push((*register_id, *generation, reason.clone())),
            _ => {}
        }
    }
}

/// The job as its asker gets it: as it was saved, with its targets by register name.
fn created_job(batch: &Batch, job_id: Uuid, finished: bool) -> Job {
    let job = batch.jobs.iter().find(|j| j.id == job_id);
    let at = batch.at.unwrap_or_default();
    let mut targets: Vec<Target> = batch
        .targets
        .iter()
        .filter(|t| t.job_id == job_id)
        .map(|t| Target {
            id: t.id,
            job_id,
            register_id: t.register_id,
            register_name: t.register_name.clone(),
            state: t.state,
            revision: t.stamp.revision,
            reason: t.stamp.reason.clone(),
            updated_at: at,
            wait_expires_at: t.stamp.wait_expires_at,
        })
        .collect();
    targets.sort_by(|a, b| by_name(&a.register_name, &b.register_name));
    let counts: JobCounts = targets.iter().map(|t| t.state).collect();
    Job {
        summary: JobSummary {
            id: job_id,
            site_id: job.map(|j| j.site_id).unwrap_or_default(),
            kind: job.map_or(JobKind::Register, |j| j.kind),
            source: job.map_or(SyncSource::BackOffice, |j| j.source),
            requested_by: job.and_then(|j| j.requested_by.as_ref().map(|(_, n)| n.clone())),
            retry_when_free: job.is_some_and(|j| j.retry_when_free),
            created_at: job.map_or(at, |j| j.created_at),
            finished_at: finished.then_some(at),
            counts,
            group: job.and_then(|j| j.group),
        },
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regsync_protocol::register::ServerMessage;

    #[test]
    fn the_spliced_command_is_a_valid_sync_message() {
        let catalog = regsync_protocol::Catalog {
            settings: [("footer".to_owned(), "Hi \"there\"".to_owned())].into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&catalog).unwrap_or_default();
        let raw = RawValue::from_string(json).unwrap_or_else(|e| panic!("{e}"));
        let text = command(Uuid::nil(), 7, Some("Alex"), false, &raw).unwrap_or_default();
        let parsed: ServerMessage = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            parsed,
            ServerMessage::Sync {
                target_id: Uuid::nil(),
                revision: 7,
                requested_by: Some("Alex".into()),
                scheduled: false,
                catalog,
            }
        );
        let text = command(Uuid::nil(), 7, None, true, &raw).unwrap_or_default();
        let parsed: ServerMessage = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            parsed,
            ServerMessage::Sync {
                scheduled: true,
                ..
            }
        ));
    }
}
