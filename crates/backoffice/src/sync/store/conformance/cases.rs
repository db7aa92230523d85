//! The cases: each takes a fresh store and answers what did not hold.

use chrono::TimeDelta;
use regsync_protocol::api::SyncSource;
use regsync_protocol::sync::TargetState::{self, *};
use uuid::Uuid;

use super::{Furnish, a_job, at, check, commit, moved, scene, state_of};
use crate::error::{Error, Result};
use crate::sync::core::{Batch, Synced};
use crate::sync::store::{Scope, Store, StoreTx};

pub async fn a_batch_lands_whole_or_not_at_all<S: Furnish>(store: S) -> Result<()> {
    let scene = scene(&store).await?;
    let job = a_job(&store, &scene).await?;
    let mut batch = Batch::at(at(5));
    batch.add_move(moved(101, job.id, Delivered, Synced));
    // Stale: bar 2's target is waiting, not delivered.
    batch.add_move(moved(102, job.id, Delivered, Failed));
    batch.register(scene.registers[0]).set_revision(7);
    let mut tx = store.begin().await?;
    let refused = tx.apply(&batch).await.is_err();
    drop(tx);
    check(refused, "a batch with a stale move is refused")?;
    check(
        state_of(&store, 101).await? == Some(TargetState::Delivered),
        "nothing of a refused batch lands",
    )?;
    let register = store
        .register(scene.registers[0])
        .await?
        .unwrap_or_default();
    check(
        register.applied_revision == 0,
        "nothing of a refused batch lands (registers)",
    )?;

    // Uncommitted: dropped without commit, nothing lands either.
    let mut ok = Batch::at(at(6));
    ok.add_move(moved(101, job.id, Delivered, Synced));
    let mut tx = store.begin().await?;
    tx.apply(&ok).await?;
    drop(tx);
    check(
        state_of(&store, 101).await? == Some(TargetState::Delivered),
        "an uncommitted transaction leaves nothing",
    )?;
    commit(&store, &ok).await?;
    check(
        state_of(&store, 101).await? == Some(TargetState::Synced),
        "a committed move lands",
    )
}

pub async fn every_move_is_a_compare_and_set<S: Furnish>(store: S) -> Result<()> {
    let scene = scene(&store).await?;
    let job = a_job(&store, &scene).await?;
    let mut first = Batch::default();
    first.add_move(moved(101, job.id, Delivered, Failed));
    commit(&store, &first).await?;
    // The register's answer comes second: it expected `delivered`, and must change nothing.
    let mut second = Batch::default();
    second.add_move(moved(101, job.id, Delivered, Synced));
    check(
        commit(&store, &second).await.is_err(),
        "a second decider is refused",
    )?;
    let target = store.target(Uuid::from_u128(101)).await?;
    check(
        target.is_some_and(|t| {
            t.state == TargetState::Failed && t.reason.as_deref() == Some("no answer")
        }),
        "the first decider's outcome stands",
    )
}

pub async fn open_targets_load_with_their_jobs<S: Furnish>(store: S) -> Result<()> {
    let scene = scene(&store).await?;
    a_job(&store, &scene).await?;
    let mut open = store.load_open().await?;
    open.sort_by_key(|row| row.id);
    check(open.len() == 2, "only open targets load")?;
    check(
        open.iter().all(|row| {
            row.retry_when_free
                && row.requested_by.as_deref() == Some("Alex")
                && row.source == SyncSource::BackOffice
        }),
        "open targets load with their job's asker and wait rule",
    )?;
    check(
        open[0].state == TargetState::Delivered && open[1].state == TargetState::Waiting,
        "open targets load with their states",
    )
}

pub async fn recovery_gives_deliveries_a_grace_and_leaves_waits<S: Furnish>(
    store: S,
) -> Result<()> {
    let scene = scene(&store).await?;
    a_job(&store, &scene).await?;
    let grace = at(30).timestamp_millis();
    let resumed = store.recover(grace).await?;
    check(resumed == 1, "recovery counts the deliveries it resumed")?;
    let delivered = store.target(Uuid::from_u128(101)).await?;
    let waiting = store.target(Uuid::from_u128(102)).await?;
    check(
        delivered.and_then(|t| t.deadline_ms) == Some(grace),
        "a delivery's deadline is cut to the grace",
    )?;
    check(
        waiting.and_then(|t| t.deadline_ms) == Some(at(60).timestamp_millis()),
        "a wait keeps its own deadline",
    )?;
    store.recover(at(90).timestamp_millis()).await?;
    let delivered = store.target(Uuid::from_u128(101)).await?;
    check(
        delivered.and_then(|t| t.deadline_ms) == Some(grace),
        "recovery never extends a deadline",
    )
}

pub async fn a_hello_sets_the_revision_and_answers_only_raise_it<S: Furnish>(
    store: S,
) -> Result<()> {
    let scene = scene(&store).await?;
    let id = scene.registers[0];
    let steps: [(Option<i64>, Option<i64>, i64); 5] = [
        (Some(5), None, 5),
        (None, Some(3), 5),
        (Some(2), None, 2),
        (None, Some(4), 4),
        (Some(1), Some(3), 3),
    ];
    for (set, raise, want) in steps {
        let mut batch = Batch::default();
        let change = batch.register(id);
        change.set_revision = set;
        change.raise_revision = raise;
        commit(&store, &batch).await?;
        let got = store.register(id).await?.map(|r| r.applied_revision);
        check(
            got == Some(want),
            &format!("set {set:?}, raise {raise:?} → {want}, got {got:?}"),
        )?;
    }
    Ok(())
}

pub async fn last_synced_only_moves_forward<S: Furnish>(store: S) -> Result<()> {
    let scene = scene(&store).await?;
    let id = scene.registers[1];
    let credit = |secs: i64, by: &str| Synced {
        target_id: Uuid::from_u128(secs as u128),
        at: at(secs) + TimeDelta::microseconds(250),
        source: SyncSource::BackOffice,
        by: Some(by.into()),
    };
    for (synced, want_secs, want_by) in [
        (credit(20, "Alex"), 20, "Alex"),
        (credit(10, "Sam"), 20, "Alex"),
        (credit(20, "Kim"), 20, "Alex"),
        (credit(30, "Kim"), 30, "Kim"),
    ] {
        let mut batch = Batch::default();
        batch.register(id).credit(synced);
        batch.register(id).seen_at = Some(at(40));
        commit(&store, &batch).await?;
        let record = store.register(id).await?.unwrap_or_default();
        check(
            record.last_synced_at == Some(at(want_secs) + TimeDelta::microseconds(250))
                && record.last_synced_by.as_deref() == Some(want_by)
                && record.last_seen_at == Some(at(40)),
            &format!("last synced stays at the newest ({want_secs}, {want_by}): {record:?}"),
        )?;
    }
    Ok(())
}

pub async fn ended_targets_are_known_with_their_credit<S: Furnish>(store: S) -> Result<()> {
    let scene = scene(&store).await?;
    let job = a_job(&store, &scene).await?;
    let mut batch = Batch::default();
    batch.add_move(moved(101, job.id, Delivered, Synced));
    batch.add_move(moved(102, job.id, Waiting, Expired));
    batch.late_applied.push(Uuid::from_u128(103));
    batch.finished.push(job.id);
    commit(&store, &batch).await?;
    let mut tx = store.begin().await?;
    let ids = [101, 102, 103, 999].map(Uuid::from_u128);
    let known = tx.known(&ids).await?;
    drop(tx);
    let credited = |id: u128| known.get(&Uuid::from_u128(id)).map(|k| k.credited);
    check(known.len() == 3, "unknown ids are left out")?;
    check(credited(101) == Some(true), "a synced target is credited")?;
    check(credited(102) == Some(false), "an expired one is not")?;
    check(credited(103) == Some(true), "a late-applied one is")?;
    let k = &known[&Uuid::from_u128(101)];
    check(
        k.job_id == job.id
            && k.register_id == scene.registers[0]
            && k.requested_by.as_deref() == Some("Alex"),
        "a known target says whose and who asked",
    )?;
    let read = store.job(scene.company, job.id).await?;
    check(read.summary.finished_at.is_some(), "the job reads finished")?;
    check(
        read.targets
            .iter()
            .map(|t| t.register_id)
            .collect::<Vec<_>>()
            == scene.registers,
        "targets read by register name as people read them",
    )?;
    check(
        matches!(
            store.job(scene.other_company, job.id).await,
            Err(Error::NotFound(_))
        ),
        "another company's job is not found",
    )
}

pub async fn a_job_finishes_only_without_open_targets<S: Furnish>(store: S) -> Result<()> {
    let scene = scene(&store).await?;
    let job = a_job(&store, &scene).await?;
    // With several nodes, one may end its last targets of a job while another holds more.
    let mut batch = Batch::at(at(5));
    batch.add_move(moved(101, job.id, Delivered, Synced));
    batch.finished.push(job.id);
    let mut tx = store.begin().await?;
    let finished = tx.apply(&batch).await?;
    tx.commit().await?;
    check(
        finished.is_empty() && finished_at(&store, &scene, job.id).await?.is_none(),
        "a job with open targets stays open",
    )?;
    let mut batch = Batch::at(at(6));
    batch.add_move(moved(102, job.id, Waiting, Expired));
    batch.finished.push(job.id);
    let mut tx = store.begin().await?;
    let finished = tx.apply(&batch).await?;
    tx.commit().await?;
    check(
        finished == [job.id] && finished_at(&store, &scene, job.id).await? == Some(at(6)),
        "the job finishes with its last open target, and says so",
    )
}

async fn finished_at<S: Store>(
    store: &S,
    scene: &super::Scene,
    job_id: Uuid,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    Ok(store.job(scene.company, job_id).await?.summary.finished_at)
}

pub async fn scopes_stay_inside_the_company<S: Furnish>(store: S) -> Result<()> {
    let scene = scene(&store).await?;
    let mut tx = store.begin().await?;
    let (site, registers) = tx
        .scope(scene.company, Scope::SiteOnline(scene.site))
        .await?;
    let names: Vec<&str> = registers.iter().map(|(_, n)| n.as_str()).collect();
    check(
        site == scene.site && names == ["Bar 1", "bar 2", "Kitchen"],
        "a site's registers, by name",
    )?;
    let one = tx
        .scope(scene.company, Scope::Register(scene.registers[2]))
        .await?;
    check(
        one == (scene.site, vec![(scene.registers[2], "Kitchen".into())]),
        "one register",
    )?;
    let foreign = tx
        .scope(scene.other_company, Scope::Register(scene.registers[0]))
        .await;
    check(
        matches!(foreign, Err(Error::NotFound(_))),
        "another company's register is not found",
    )?;
    let foreign = tx
        .scope(scene.other_company, Scope::SiteOnline(scene.site))
        .await;
    check(
        matches!(foreign, Err(Error::NotFound(_))),
        "another company's site is not found",
    )?;
    let empty = tx
        .scope(scene.other_company, Scope::SiteOnline(scene.empty_site))
        .await;
    check(
        matches!(empty, Err(Error::Conflict { .. })),
        "a site without registers is a conflict",
    )?;
    let catalog = tx.catalog(scene.site, None).await?;
    check(
        catalog.revision == 1 && catalog.content.is_some(),
        "the menu, when not held",
    )?;
    let held = tx.catalog(scene.site, Some(1)).await?;
    check(
        held.content.is_none(),
        "no menu content when it is held already",
    )
}
