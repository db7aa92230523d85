//! The store conformance suite: what the sync engine relies on of any store, as tests that run
//! unchanged against every implementation (`run_all`). A batch is atomic; every move is a
//! compare-and-set; a hello sets a register's revision and answers only raise it; last synced
//! only moves forward; recovery gives open deliveries a grace and leaves waits alone.

use std::future::Future;

use chrono::{DateTime, Utc};
use regsync_protocol::api::SyncSource;
use regsync_protocol::sync::{JobKind, TargetState};
use uuid::Uuid;

use super::{Store, StoreTx};
use crate::error::{Error, Result};
use crate::sync::core::{Batch, Move, NewJob, NewTarget, Stamp};

mod cases;

pub use cases::*;

/// A store that a test can furnish with a company, a site and its registers.
#[allow(async_fn_in_trait)]
pub trait Furnish: Store {
    /// A site with a menu at revision 1, its registers, and a manager whose id is
    /// [`manager_of`] the company.
    async fn furnish(&self, site: &Furniture<'_>) -> Result<()>;
}

/// Furnishes a database (either), as [`Furnish::furnish`] says; with `node`, that node holds
/// the registers, as if each had connected to it.
pub async fn furnish_on(db: &crate::Db, node: Option<Uuid>, site: &Furniture<'_>) -> Result<()> {
    use crate::on_tx;
    let (company_id, site_id) = (site.company_id, site.site_id);
    let now = Utc::now();
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "INSERT INTO companies (id, name, created_at) VALUES ($1, $2, $3)"
    )
    .bind(company_id)
    .bind(company_id.to_string())
    .bind(now)
    .execute(conn)
    .await
    .map(drop))?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "INSERT INTO users (id, company_id, email, display_name, password_hash, created_at)
         VALUES ($1, $2, $3, 'Manager', '-', $4)"
    )
    .bind(manager_of(company_id))
    .bind(company_id)
    .bind(format!("{company_id}@example.com"))
    .bind(now)
    .execute(conn)
    .await
    .map(drop))?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "INSERT INTO sites (id, company_id, name, created_at) VALUES ($1, $2, 'Site', $3)"
    )
    .bind(site_id)
    .bind(company_id)
    .bind(now)
    .execute(conn)
    .await
    .map(drop))?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "INSERT INTO catalogs (site_id, revision, content, updated_at) VALUES ($1, 1, '{}', $2)"
    )
    .bind(site_id)
    .bind(now)
    .execute(conn)
    .await
    .map(drop))?;
    for (id, name) in site.registers {
        on_tx!(&mut tx, |conn| sqlx::query(
            "INSERT INTO registers (id, site_id, name, credential_hash, created_at)
             VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(id)
        .bind(site_id)
        .bind(name)
        .bind(id.as_bytes().as_slice())
        .bind(now)
        .execute(conn)
        .await
        .map(drop))?;
        if let Some(node) = node {
            on_tx!(&mut tx, |conn| sqlx::query(
                "INSERT INTO register_sessions (register_id, node_id, epoch, online, in_sale,
                    changed_at)
                 VALUES ($1, $2, 1, true, false, $3)"
            )
            .bind(id)
            .bind(node)
            .bind(now)
            .execute(conn)
            .await
            .map(drop))?;
        }
    }
    tx.commit().await
}

/// A site of a company, with its registers (id, name).
#[derive(Debug)]
pub struct Furniture<'a> {
    pub company_id: Uuid,
    pub site_id: Uuid,
    pub registers: &'a [(Uuid, &'a str)],
}

/// What each test starts from: one company, one site, three registers, and a second company.
#[derive(Debug)]
pub struct Scene {
    pub company: Uuid,
    pub other_company: Uuid,
    pub site: Uuid,
    pub empty_site: Uuid,
    pub registers: [Uuid; 3],
}

/// The id of the manager [`Furnish::furnish`] makes for a company.
pub fn manager_of(company_id: Uuid) -> Uuid {
    Uuid::from_u128(company_id.as_u128() ^ 0xABCD)
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
}

async fn scene<S: Furnish>(store: &S) -> Result<Scene> {
    let scene = Scene {
        company: Uuid::from_u128(1),
        other_company: Uuid::from_u128(2),
        site: Uuid::from_u128(10),
        empty_site: Uuid::from_u128(11),
        registers: [
            Uuid::from_u128(21),
            Uuid::from_u128(22),
            Uuid::from_u128(23),
        ],
    };
    let [a, b, c] = scene.registers;
    store
        .furnish(&Furniture {
            company_id: scene.company,
            site_id: scene.site,
            registers: &[(b, "bar 2"), (a, "Bar 1"), (c, "Kitchen")],
        })
        .await?;
    store
        .furnish(&Furniture {
            company_id: scene.other_company,
            site_id: scene.empty_site,
            registers: &[],
        })
        .await?;
    Ok(scene)
}

fn job(scene: &Scene, id: u128, retry_when_free: bool) -> NewJob {
    NewJob {
        id: Uuid::from_u128(id),
        company_id: scene.company,
        site_id: scene.site,
        kind: JobKind::SiteOnline,
        source: SyncSource::BackOffice,
        requested_by: Some((manager_of(scene.company), "Alex".into())),
        retry_when_free,
        created_at: at(0),
        group: None,
    }
}

fn target(job: &NewJob, id: u128, register: Uuid, state: TargetState) -> NewTarget {
    NewTarget {
        id: Uuid::from_u128(id),
        job_id: job.id,
        register_id: register,
        register_name: String::new(),
        state,
        stamp: Stamp {
            reason: (state == TargetState::SkippedOffline).then(|| "offline".into()),
            deadline_ms: (!state.is_terminal()).then_some(at(60).timestamp_millis()),
            ..Stamp::default()
        },
    }
}

fn moved(id: u128, job: Uuid, from: TargetState, to: TargetState) -> Move {
    // The scene's registers are 21, 22, 23; its targets 101, 102, 103, one each.
    let register = Uuid::from_u128(21 + (id.saturating_sub(101) % 3));
    Move {
        id: Uuid::from_u128(id),
        job_id: job,
        register_id: register,
        from,
        to,
        stamp: Stamp {
            revision: (to == TargetState::Synced).then_some(1),
            reason: (to == TargetState::Failed).then(|| "no answer".into()),
            deadline_ms: (!to.is_terminal()).then_some(at(120).timestamp_millis()),
            ..Stamp::default()
        },
    }
}

async fn commit<S: Store>(store: &S, batch: &Batch) -> Result<()> {
    let mut tx = store.begin().await?;
    tx.apply(batch).await?;
    tx.commit().await
}

/// A job of three targets: Bar 1 delivered, bar 2 waiting, Kitchen skipped offline.
async fn a_job<S: Store>(store: &S, scene: &Scene) -> Result<NewJob> {
    let job = job(scene, 100, true);
    let mut batch = Batch::at(at(0));
    batch.jobs.push(job.clone());
    let [a, b, c] = scene.registers;
    batch.add_target(target(&job, 101, a, TargetState::Delivered));
    batch.add_target(target(&job, 102, b, TargetState::Waiting));
    batch.add_target(target(&job, 103, c, TargetState::SkippedOffline));
    commit(store, &batch).await?;
    Ok(job)
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Internal(format!("store conformance: {what}")))
    }
}

async fn state_of<S: Store>(store: &S, id: u128) -> Result<Option<TargetState>> {
    Ok(store.target(Uuid::from_u128(id)).await?.map(|t| t.state))
}

/// Runs every test of the suite, each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Furnish,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    macro_rules! run {
        ($($test:ident),* $(,)?) => {$(
            if let Err(error) = $test(make().await).await {
                panic!("{}: {error}", stringify!($test));
            }
        )*};
    }
    run!(
        a_batch_lands_whole_or_not_at_all,
        every_move_is_a_compare_and_set,
        open_targets_load_with_their_jobs,
        recovery_gives_deliveries_a_grace_and_leaves_waits,
        a_hello_sets_the_revision_and_answers_only_raise_it,
        last_synced_only_moves_forward,
        ended_targets_are_known_with_their_credit,
        a_job_finishes_only_without_open_targets,
        scopes_stay_inside_the_company,
    );
}
