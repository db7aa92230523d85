//! A store in memory, for the deterministic simulation and for checking that the conformance
//! suite asks nothing of SQLite in particular. Transactions stage their batches and check every
//! compare-and-set at once, so a batch lands whole or not at all; a commit can be made to fail.

use regsync_protocol::ErrorCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use regsync_protocol::sync::{Job, JobCounts, JobSummary, Target, TargetState};
use uuid::Uuid;

use super::{CatalogAt, Notice, RegisterRecord, Scope, Store, StoreTx, TargetRecord, stale_move};
use crate::db::by_name;
use crate::error::{Error, Result};
use crate::sync::core::{Batch, Claim, Elsewhere, KnownTarget, NewJob, OpenRow};

mod write;

use write::write;

#[derive(Debug, Clone)]
struct MemRegister {
    site_id: Uuid,
    name: String,
    record: RegisterRecord,
}

#[derive(Debug, Clone)]
struct MemTarget {
    record: TargetRecord,
    register_name: String,
    wait_expires_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct State {
    sites: HashMap<Uuid, Uuid>,
    registers: HashMap<Uuid, MemRegister>,
    catalogs: HashMap<Uuid, (i64, String)>,
    jobs: HashMap<Uuid, (NewJob, Option<DateTime<Utc>>)>,
    job_targets: HashMap<Uuid, Vec<Uuid>>,
    targets: HashMap<Uuid, MemTarget>,
    /// Committed batches, oldest first, for a checker to read.
    log: Vec<Batch>,
    fail_next_commit: bool,
    /// Several nodes: who holds each register (node, epoch, online), as `register_sessions`.
    sessions: HashMap<Uuid, (Uuid, i64, bool)>,
    /// Nodes taken for dead: their registers are not "elsewhere".
    dead: std::collections::BTreeSet<Uuid>,
    /// Notices committed, oldest first, for the simulated nodes to hear.
    notices: Vec<Notice>,
}

/// The store, as one node sees it (`node`), or as the only Back Office (`None`). Handles of one
/// store share its state.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    node: Option<Uuid>,
}

impl State {
    /// Whether `node` (the only one, when `None`) holds the register.
    fn holds(&self, node: Option<Uuid>, register_id: &Uuid) -> bool {
        node.is_none_or(|node| self.sessions.get(register_id).is_some_and(|s| s.0 == node))
    }

    fn open_rows(&self, held: impl Fn(&Uuid) -> bool) -> Vec<OpenRow> {
        let mut rows: Vec<OpenRow> = self
            .targets
            .iter()
            .filter(|(_, t)| open(t.record.state) && held(&t.record.register_id))
            .filter_map(|(id, t)| {
                let (job, _) = self.jobs.get(&t.record.job_id)?;
                Some(OpenRow {
                    id: *id,
                    register_id: t.record.register_id,
                    job_id: t.record.job_id,
                    state: t.record.state,
                    deadline_ms: t.record.deadline_ms,
                    source: job.source,
                    requested_by: job.requested_by.as_ref().map(|(_, name)| name.clone()),
                    retry_when_free: job.retry_when_free,
                })
            })
            .collect();
        rows.sort_by_key(|row| row.id);
        rows
    }
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add_site(&self, company_id: Uuid, site_id: Uuid) {
        let mut state = self.lock();
        state.sites.insert(site_id, company_id);
        state.catalogs.insert(site_id, (1, "{}".into()));
    }

    pub fn add_register(&self, site_id: Uuid, register_id: Uuid, name: &str) {
        self.lock().registers.insert(
            register_id,
            MemRegister {
                site_id,
                name: name.to_owned(),
                record: RegisterRecord::default(),
            },
        );
    }

    /// The same store as node `node` sees it, as a node of several.
    pub fn for_node(&self, node: Uuid) -> MemoryStore {
        MemoryStore {
            state: self.state.clone(),
            node: Some(node),
        }
    }

    /// A node is taken for dead: its registers are no longer online elsewhere.
    pub fn mark_dead(&self, node: Uuid) {
        self.lock().dead.insert(node);
    }

    /// Node `by` takes over the registers a dead node held, as `cluster::Member` does.
    pub fn take_over(&self, dead: Uuid, by: Uuid) -> usize {
        let mut state = self.lock();
        let mut n = 0;
        for session in state.sessions.values_mut() {
            if session.0 == dead {
                *session = (by, session.1 + 1, false);
                n += 1;
            }
        }
        n
    }

    /// Notices committed since the last call.
    pub fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(&mut self.lock().notices)
    }

    /// A menu edit: the site's next revision.
    pub fn bump_catalog(&self, site_id: Uuid) -> i64 {
        let mut state = self.lock();
        let entry = state.catalogs.entry(site_id).or_insert((0, "{}".into()));
        entry.0 += 1;
        entry.1 = format!("{{\"settings\":{{\"revision\":\"{}\"}}}}", entry.0);
        entry.0
    }

    pub fn catalog_revision(&self, site_id: Uuid) -> i64 {
        self.lock().catalogs.get(&site_id).map_or(0, |c| c.0)
    }

    /// The next commit fails, as a database that lost its disk would.
    pub fn fail_next_commit(&self) {
        self.lock().fail_next_commit = true;
    }

    /// Batches committed since the last call.
    pub fn take_log(&self) -> Vec<Batch> {
        std::mem::take(&mut self.lock().log)
    }
}

fn open(state: TargetState) -> bool {
    !state.is_terminal()
}

impl Store for MemoryStore {
    type Tx = MemoryTx;

    async fn recover(&self, grace_ms: i64) -> Result<u64> {
        let mut state = self.lock();
        let held: std::collections::BTreeSet<Uuid> = state
            .registers
            .keys()
            .filter(|r| state.holds(self.node, r))
            .copied()
            .collect();
        let mut n = 0;
        for target in state.targets.values_mut() {
            let record = &mut target.record;
            if matches!(record.state, TargetState::Queued | TargetState::Delivered)
                && held.contains(&record.register_id)
            {
                record.deadline_ms = Some(record.deadline_ms.unwrap_or(grace_ms).min(grace_ms));
                n += 1;
            }
        }
        Ok(n)
    }

    async fn load_open(&self) -> Result<Vec<OpenRow>> {
        let state = self.lock();
        Ok(state.open_rows(|r| state.holds(self.node, r)))
    }

    async fn begin(&self) -> Result<MemoryTx> {
        Ok(MemoryTx {
            store: self.clone(),
            claims: HashMap::new(),
            notices: Vec::new(),
            pending: Vec::new(),
            staged: HashMap::new(),
        })
    }

    async fn job(&self, company_id: Uuid, job_id: Uuid) -> Result<Job> {
        let state = self.lock();
        let (job, finished_at) = state
            .jobs
            .get(&job_id)
            .filter(|(job, _)| job.company_id == company_id)
            .ok_or(Error::NotFound("sync job"))?;
        let mut targets: Vec<Target> = state
            .job_targets
            .get(&job_id)
            .into_iter()
            .flatten()
            .filter_map(|id| state.targets.get(id).map(|t| (id, t)))
            .map(|(id, t)| Target {
                id: *id,
                job_id,
                register_id: t.record.register_id,
                register_name: t.register_name.clone(),
                state: t.record.state,
                revision: t.record.revision,
                reason: t.record.reason.clone(),
                updated_at: t.updated_at,
                wait_expires_at: t.wait_expires_at,
            })
            .collect();
        targets.sort_by(|a, b| by_name(&a.register_name, &b.register_name));
        let counts: JobCounts = targets.iter().map(|t| t.state).collect();
        Ok(Job {
            summary: JobSummary {
                id: job.id,
                site_id: job.site_id,
                kind: job.kind,
                source: job.source,
                requested_by: job.requested_by.as_ref().map(|(_, n)| n.clone()),
                retry_when_free: job.retry_when_free,
                created_at: job.created_at,
                finished_at: *finished_at,
                counts,
                group: job.group,
            },
            targets,
        })
    }

    async fn register(&self, register_id: Uuid) -> Result<Option<RegisterRecord>> {
        Ok(self
            .lock()
            .registers
            .get(&register_id)
            .map(|r| r.record.clone()))
    }

    async fn target(&self, target_id: Uuid) -> Result<Option<TargetRecord>> {
        Ok(self
            .lock()
            .targets
            .get(&target_id)
            .map(|t| t.record.clone()))
    }
}

#[derive(Debug)]
pub struct MemoryTx {
    store: MemoryStore,
    /// Registers claimed in this transaction, at their new epoch.
    claims: HashMap<Uuid, i64>,
    notices: Vec<Notice>,
    pending: Vec<Batch>,
    /// Target states as the pending batches leave them.
    staged: HashMap<Uuid, TargetState>,
}

impl StoreTx for MemoryTx {
    async fn scope(
        &mut self,
        company_id: Uuid,
        scope: Scope,
    ) -> Result<(Uuid, Vec<(Uuid, String)>)> {
        let state = self.store.lock();
        let in_company = |site: &Uuid| state.sites.get(site) == Some(&company_id);
        match scope {
            Scope::Register(id) => {
                let register = state
                    .registers
                    .get(&id)
                    .filter(|r| in_company(&r.site_id))
                    .ok_or(Error::NotFound("register"))?;
                Ok((register.site_id, vec![(id, register.name.clone())]))
            }
            Scope::SiteOnline(site_id) => {
                if !in_company(&site_id) {
                    return Err(Error::NotFound("site"));
                }
                let mut registers: Vec<(Uuid, String)> = state
                    .registers
                    .iter()
                    .filter(|(_, r)| r.site_id == site_id)
                    .map(|(id, r)| (*id, r.name.clone()))
                    .collect();
                if registers.is_empty() {
                    return Err(Error::Conflict {
                        code: ErrorCode::NoRegisters,
                        message: "this site has no registers to sync".into(),
                    });
                }
                registers.sort_by(|(ia, a), (ib, b)| by_name(a, b).then(ia.cmp(ib)));
                Ok((site_id, registers))
            }
        }
    }

    async fn known(&mut self, target_ids: &[Uuid]) -> Result<HashMap<Uuid, KnownTarget>> {
        let state = self.store.lock();
        Ok(target_ids
            .iter()
            .filter_map(|id| {
                let target = state.targets.get(id)?;
                let (job, _) = state.jobs.get(&target.record.job_id)?;
                Some((
                    *id,
                    KnownTarget {
                        register_id: target.record.register_id,
                        job_id: target.record.job_id,
                        state: target.record.state,
                        credited: target.record.credited,
                        source: job.source,
                        requested_by: job.requested_by.as_ref().map(|(_, n)| n.as_str().into()),
                    },
                ))
            })
            .collect())
    }

    async fn catalog(&mut self, site_id: Uuid, held: Option<i64>) -> Result<CatalogAt> {
        let state = self.store.lock();
        let (revision, content) = state
            .catalogs
            .get(&site_id)
            .ok_or_else(|| Error::Internal(format!("site {site_id} has no catalog")))?;
        Ok(CatalogAt {
            revision: *revision,
            content: (held != Some(*revision)).then(|| content.clone()),
        })
    }

    async fn held_open(&mut self) -> Result<Option<Vec<OpenRow>>> {
        let Some(_) = self.store.node else {
            return Ok(None);
        };
        let state = self.store.lock();
        Ok(Some(state.open_rows(|r| self.holds(&state, r))))
    }

    async fn elsewhere(&mut self, registers: &[Uuid]) -> Result<HashMap<Uuid, Elsewhere>> {
        let Some(me) = self.store.node else {
            return Ok(HashMap::new());
        };
        let state = self.store.lock();
        Ok(registers
            .iter()
            .filter(|r| !self.claims.contains_key(r))
            .filter_map(|r| {
                let (node, _, online) = state.sessions.get(r)?;
                let here = Elsewhere {
                    node: *node,
                    online: *online,
                };
                (*node != me && !state.dead.contains(node)).then_some((*r, here))
            })
            .collect())
    }

    async fn claim(&mut self, register_id: Uuid) -> Result<Option<Claim>> {
        let Some(_) = self.store.node else {
            return Ok(None);
        };
        let state = self.store.lock();
        let epoch = self
            .claims
            .get(&register_id)
            .copied()
            .unwrap_or_else(|| state.sessions.get(&register_id).map_or(0, |s| s.1))
            + 1;
        let open = state.open_rows(|r| *r == register_id);
        drop(state);
        self.claims.insert(register_id, epoch);
        Ok(Some(Claim { epoch, open }))
    }

    async fn publish(&mut self, notice: &Notice) -> Result<()> {
        if let Some(node) = self.store.node {
            self.notices.push(Notice {
                node,
                ..notice.clone()
            });
        }
        Ok(())
    }

    async fn apply(&mut self, batch: &Batch) -> Result<Vec<Uuid>> {
        let mut staged = self.staged.clone();
        let finished: Vec<Uuid>;
        {
            let state = self.store.lock();
            // Several nodes: only registers this node holds are its to change.
            let changed = batch.moves.iter().map(|m| &m.register_id);
            if let Some(lost) = changed
                .chain(batch.registers.keys())
                .find(|r| !self.holds(&state, r))
            {
                return Err(Error::Internal(format!(
                    "register {lost} is held by another Back Office node now; the batch was not saved"
                )));
            }
            let stored = |staged: &HashMap<Uuid, TargetState>, id: &Uuid| {
                staged
                    .get(id)
                    .copied()
                    .or_else(|| state.targets.get(id).map(|t| t.record.state))
            };
            for target in &batch.targets {
                if stored(&staged, &target.id).is_some() {
                    return Err(Error::Internal(format!("sync target {} exists", target.id)));
                }
                staged.insert(target.id, target.state);
            }
            for change in &batch.moves {
                if stored(&staged, &change.id) != Some(change.from) {
                    return Err(stale_move(change.id, change.from));
                }
                staged.insert(change.id, change.to);
            }
            finished = batch
                .finished
                .iter()
                .filter(|job_id| {
                    let done = state.jobs.get(job_id).is_some_and(|(_, at)| at.is_some());
                    let targets = state.job_targets.get(job_id).into_iter().flatten();
                    let new = batch
                        .targets
                        .iter()
                        .filter(|t| t.job_id == **job_id)
                        .map(|t| &t.id);
                    let any_open = targets
                        .chain(new)
                        .any(|id| stored(&staged, id).is_some_and(open));
                    !done && !any_open
                })
                .copied()
                .collect();
        }
        self.staged = staged;
        let mut batch = batch.clone();
        batch.finished = finished.clone();
        self.pending.push(batch);
        Ok(finished)
    }

    async fn commit(self) -> Result<()> {
        let mut state = self.store.lock();
        if std::mem::take(&mut state.fail_next_commit) {
            return Err(Error::Internal("the simulated disk failed".into()));
        }
        if let Some(node) = self.store.node {
            for (register_id, epoch) in &self.claims {
                state.sessions.insert(*register_id, (node, *epoch, true));
            }
            // An offline register no node holds yet is this node's, as on PostgreSQL.
            let unheld = self.pending.iter().flat_map(|b| &b.targets);
            for t in unheld.filter(|t| t.state == TargetState::AwaitingReconnect) {
                state
                    .sessions
                    .entry(t.register_id)
                    .or_insert((node, 1, false));
            }
            for batch in &self.pending {
                for (register_id, (online, _)) in &batch.presence {
                    if let Some(session) = state.sessions.get_mut(register_id)
                        && session.0 == node
                    {
                        session.2 = *online;
                    }
                }
            }
            state.notices.extend(self.notices);
        }
        for batch in self.pending {
            write(&mut state, &batch);
            state.log.push(batch);
        }
        Ok(())
    }
}

impl MemoryTx {
    /// Whether this node holds the register, counting its claims in this transaction.
    fn holds(&self, state: &State, register_id: &Uuid) -> bool {
        self.claims.contains_key(register_id) || state.holds(self.store.node, register_id)
    }
}
