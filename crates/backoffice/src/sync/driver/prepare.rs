//! Before the core sees a batch: who each job covers (and ids for it), and what the store knows
//! of targets the core no longer holds open. After it: each delivery stamped with its site's
//! current menu.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use regsync_protocol::api::SyncSource;
use regsync_protocol::sync::JobKind;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{CachedCatalog, Driver, JobRequest, Output, Request};
use crate::error::{Error, Result};
use crate::sync::core::{Batch, Claim, Input, JobSpec, KnownTarget, NewJob};
use crate::sync::store::{Scope, Store, StoreTx};

impl<S: Store> Driver<S> {
    /// Turns requests into the core's inputs. A job that cannot be made (an unknown register, a
    /// site with none) is answered at once and never reaches the core.
    pub(super) async fn resolve(
        &mut self,
        tx: &mut S::Tx,
        requests: Vec<Request>,
        now: DateTime<Utc>,
        out: &mut Output,
    ) -> Result<(Vec<Input>, Vec<(Uuid, i64)>)> {
        let known = self.known(tx, &requests).await?;
        let mut inputs = Vec::with_capacity(requests.len());
        let mut claimed = Vec::new();
        for request in requests {
            let (token, request) = match request {
                Request::Connected { register, .. } => {
                    // Several nodes: the register is this node's now, with its open targets.
                    let claim = tx.claim(register.id).await?;
                    if let Some(claim) = &claim {
                        claimed.push((register.id, claim.epoch));
                    }
                    inputs.extend(input(request, &known, claim));
                    continue;
                }
                Request::Rescan {
                    claimed: elsewhere,
                    look,
                } => {
                    for (register_id, epoch) in elsewhere {
                        inputs.push(Input::Release { register_id, epoch });
                    }
                    if !look {
                        continue;
                    }
                    if let Some(rows) = tx.held_open().await? {
                        let new: Vec<_> = rows
                            .into_iter()
                            .filter(|r| !self.core.is_open(&r.id))
                            .collect();
                        if !new.is_empty() {
                            inputs.push(Input::Adopt(new));
                        }
                    }
                    continue;
                }
                Request::CreateJob { token, request } => (token, request),
                Request::SyncRequested { register_id } => {
                    // Only a connected register can ask; it hears back through the sync itself.
                    let Some(register) = self.core.connected(&register_id) else {
                        continue;
                    };
                    let request = JobRequest {
                        company_id: register.company_id,
                        scope: Scope::Register(register_id),
                        source: SyncSource::Register,
                        requested_by: None,
                        retry_when_free: false,
                        queue_offline: None,
                        group: None,
                    };
                    (0, request)
                }
                other => {
                    inputs.extend(input(other, &known, None));
                    continue;
                }
            };
            match self.job_spec(tx, request, now).await {
                Ok(spec) => inputs.push(Input::CreateJob { token, spec }),
                Err(error @ (Error::Database(_) | Error::Internal(_))) => return Err(error),
                Err(error) if token == 0 => {
                    tracing::warn!(%error, "a register's own sync could not be made");
                }
                Err(error) => out.replies.push((token, Err(error))),
            }
        }
        Ok((inputs, claimed))
    }

    /// What the store knows of the targets answered in `requests` that are no longer open.
    async fn known(
        &self,
        tx: &mut S::Tx,
        requests: &[Request],
    ) -> Result<HashMap<Uuid, KnownTarget>> {
        // Nearly always none: answers are for open targets.
        let mut wanted = BTreeSet::new();
        let closed = |id: &&Uuid| !self.core.is_open(id);
        for request in requests {
            match request {
                Request::Result(answer) => {
                    wanted.extend(std::iter::once(&answer.target_id).filter(closed));
                }
                Request::Connected { recent, .. } => {
                    wanted.extend(recent.iter().map(|a| &a.target_id).filter(closed));
                }
                _ => {}
            }
        }
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Uuid> = wanted.into_iter().copied().collect();
        tx.known(&ids).await
    }

    async fn job_spec(
        &mut self,
        tx: &mut S::Tx,
        request: JobRequest,
        now: DateTime<Utc>,
    ) -> Result<JobSpec> {
        let (site_id, registers) = tx.scope(request.company_id, request.scope).await?;
        let kind = match request.scope {
            Scope::Register(_) => JobKind::Register,
            Scope::SiteOnline(_) => JobKind::SiteOnline,
        };
        let job = NewJob {
            id: (self.new_id)(),
            company_id: request.company_id,
            site_id,
            kind,
            source: request.source,
            requested_by: request.requested_by,
            retry_when_free: request.retry_when_free,
            created_at: now,
            group: request.group,
        };
        let ids: Vec<Uuid> = registers.iter().map(|(id, _)| *id).collect();
        let elsewhere = tx.elsewhere(&ids).await?;
        let registers = registers
            .into_iter()
            .map(|(id, name)| (id, name, (self.new_id)()))
            .collect();
        Ok(JobSpec {
            job,
            registers,
            elsewhere,
            queue_until: request.queue_offline.map(|wait| now + wait),
        })
    }

    /// Gives every delivery of the batch its site's menu as it is now: a target that waited gets
    /// the latest menu, not the one of when it was asked for.
    pub(super) async fn stamp(&mut self, tx: &mut S::Tx, batch: &mut Batch) -> Result<()> {
        let sites: BTreeSet<Uuid> = batch
            .moves
            .iter()
            .filter_map(|m| m.stamp.deliver_site)
            .chain(batch.targets.iter().filter_map(|t| t.stamp.deliver_site))
            .collect();
        let mut revisions = HashMap::new();
        for site_id in sites {
            let held = self.catalogs.get(&site_id).map(|c| c.revision);
            let at = tx.catalog(site_id, held).await?;
            if let Some(content) = at.content {
                let json: Arc<RawValue> = RawValue::from_string(content)
                    .map_err(|e| Error::Internal(format!("stored catalog of site {site_id}: {e}")))?
                    .into();
                self.catalogs.insert(
                    site_id,
                    CachedCatalog {
                        revision: at.revision,
                        json,
                    },
                );
            }
            revisions.insert(site_id, at.revision);
        }
        for m in &mut batch.moves {
            if let Some(site) = m.stamp.deliver_site {
                m.stamp.revision = revisions.get(&site).copied();
            }
        }
        for t in &mut batch.targets {
            if let Some(site) = t.stamp.deliver_site {
                t.stamp.revision = revisions.get(&site).copied();
            }
        }
        Ok(())
    }
}

/// A request that needs nothing but what it carries and what is known of its targets.
fn input(
    request: Request,
    known: &HashMap<Uuid, KnownTarget>,
    claim: Option<Claim>,
) -> Option<Input> {
    Some(match request {
        Request::Connected {
            register,
            generation,
            applied_revision,
            in_sale,
            recent,
        } => Input::Connected {
            register,
            generation,
            applied_revision,
            in_sale,
            recent: recent
                .into_iter()
                .map(|a| {
                    let k = known.get(&a.target_id).cloned();
                    (a, k)
                })
                .collect(),
            claim,
        },
        Request::Disconnected(dropped) => Input::Disconnected(dropped),
        Request::Sale(sale) => Input::Sale(sale),
        Request::Result(answer) => {
            let known = known.get(&answer.target_id).cloned();
            Input::Result(answer, known)
        }
        Request::SyncRequested { .. } | Request::CreateJob { .. } | Request::Rescan { .. } => {
            return None;
        }
    })
}
