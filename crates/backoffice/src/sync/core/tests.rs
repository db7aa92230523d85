//! The core's rules as short stories: inputs in, the batch and effects out, on a clock that is
//! just a number.

use chrono::{DateTime, TimeDelta, Utc};
use regsync_protocol::api::SyncSource;
use regsync_protocol::register::{AppliedTarget, SyncOutcome};
use regsync_protocol::sync::{JobKind, TargetState};
use uuid::Uuid;

use super::*;

const REGISTER: Uuid = Uuid::from_u128(7);
const TARGET: Uuid = Uuid::from_u128(100);
const JOB: Uuid = Uuid::from_u128(50);

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
}

fn core() -> Core {
    Core::new(Timing {
        result_timeout: TimeDelta::seconds(60),
        wait_expiry: TimeDelta::minutes(10),
        offline_grace: TimeDelta::seconds(30),
    })
}

fn connect(core: &mut Core, generation: u64, in_sale: bool, now: DateTime<Utc>) {
    let register = RegisterRef {
        id: REGISTER,
        site_id: Uuid::from_u128(2),
        company_id: Uuid::from_u128(1),
    };
    let input = Input::Connected {
        register,
        generation,
        applied_revision: 3,
        in_sale,
        recent: Vec::new(),
        claim: None,
    };
    core.handle(input, now);
}

fn sync(core: &mut Core, retry_when_free: bool, now: DateTime<Utc>) -> Step {
    sync_queueing(core, retry_when_free, None, now)
}

/// A sync that queues the register, if offline, until `queue_until`.
fn sync_queueing(
    core: &mut Core,
    retry_when_free: bool,
    queue_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Step {
    let job = NewJob {
        id: JOB,
        company_id: Uuid::from_u128(1),
        site_id: Uuid::from_u128(2),
        kind: JobKind::Register,
        source: SyncSource::BackOffice,
        requested_by: Some((Uuid::from_u128(9), "Alex".into())),
        retry_when_free,
        created_at: now,
        group: None,
    };
    let spec = JobSpec {
        job,
        registers: vec![(REGISTER, "Bar 1".into(), TARGET)],
        elsewhere: std::collections::HashMap::new(),
        queue_until,
    };
    core.handle(Input::CreateJob { token: 1, spec }, now);
    core.take()
}

fn answer(core: &mut Core, outcome: SyncOutcome, now: DateTime<Utc>) {
    core.handle(Input::Result(answer_of(outcome), None), now);
}

fn answer_of(outcome: SyncOutcome) -> SyncAnswer {
    SyncAnswer {
        register_id: REGISTER,
        generation: 1,
        target_id: TARGET,
        outcome,
    }
}

fn sends(step: &Step) -> usize {
    step.effects
        .iter()
        .filter(|e| matches!(e, Effect::Send { .. }))
        .count()
}

#[test]
fn a_sync_for_a_free_register_is_delivered_at_once_and_settled_by_its_answer() {
    let mut core = core();
    connect(&mut core, 1, false, at(0));
    core.take();
    let step = sync(&mut core, true, at(1));
    assert_eq!(sends(&step), 1);
    assert_eq!(step.batch.targets[0].state, TargetState::Delivered);
    assert_eq!(
        step.batch.targets[0].stamp.deliver_site,
        Some(Uuid::from_u128(2))
    );

    let applied = SyncOutcome::Applied {
        revision: 4,
        applied_at: at(2),
    };
    answer(&mut core, applied, at(3));
    let step = core.take();
    assert_eq!(step.batch.moves[0].to, TargetState::Synced);
    assert_eq!(step.batch.finished, [JOB]);
    let credit = step.batch.registers[&REGISTER].synced.clone();
    assert_eq!(
        credit.map(|s| s.at),
        Some(at(2)),
        "credited at the register's time"
    );
    assert_eq!(core.poll_timeout(), None, "nothing left open");
}

#[test]
fn a_busy_answer_after_the_sale_ended_is_sent_again_at_once() {
    let mut core = core();
    connect(&mut core, 1, false, at(0));
    sync(&mut core, true, at(1));
    // The sale started and ended before the busy answer for it arrived.
    for in_sale in [true, false] {
        let sale = Input::Sale(SaleState {
            register_id: REGISTER,
            generation: 1,
            in_sale,
        });
        core.handle(sale, at(2));
    }
    core.take();
    answer(&mut core, SyncOutcome::Busy, at(3));
    let step = core.take();
    assert_eq!(
        sends(&step),
        1,
        "the lost wake-up race: sent again, not left waiting"
    );
    assert_eq!(step.batch.moves[0].from, TargetState::Delivered);
    assert_eq!(step.batch.moves[0].to, TargetState::Delivered);
}

#[test]
fn a_repeated_answer_credits_the_register_once() {
    let mut core = core();
    connect(&mut core, 1, false, at(0));
    sync(&mut core, true, at(1));
    let applied = SyncOutcome::Applied {
        revision: 4,
        applied_at: at(2),
    };
    answer(&mut core, applied.clone(), at(3));
    answer(&mut core, applied.clone(), at(4));
    let step = core.take();
    assert_eq!(step.batch.moves.len(), 1);
    assert!(
        step.batch.late_applied.is_empty(),
        "the copy credits nothing"
    );

    // In a later batch, the store knows the target was credited.
    let known = KnownTarget {
        register_id: REGISTER,
        job_id: JOB,
        state: TargetState::Synced,
        credited: true,
        source: SyncSource::BackOffice,
        requested_by: None,
    };
    core.handle(Input::Result(answer_of(applied), Some(known)), at(9));
    let step = core.take();
    assert!(
        step.batch
            .registers
            .get(&REGISTER)
            .is_none_or(|c| c.synced.is_none())
    );
}

#[test]
fn a_register_that_drops_mid_sync_gets_the_grace_then_fails() {
    let mut core = core();
    connect(&mut core, 1, false, at(0));
    sync(&mut core, true, at(1));
    let gone = Input::Disconnected(Dropped {
        register_id: REGISTER,
        generation: 1,
        last_seen: at(5),
    });
    core.handle(gone, at(5));
    let step = core.take();
    assert_eq!(
        step.batch.moves[0].stamp.deadline_ms,
        Some(at(35).timestamp_millis())
    );
    assert_eq!(core.poll_timeout(), Some(at(35)));
    core.handle_timeout(at(34));
    assert!(core.take().batch.is_empty(), "not before its deadline");
    core.handle_timeout(at(35));
    let step = core.take();
    assert_eq!(step.batch.moves[0].to, TargetState::Failed);
    assert_eq!(
        step.batch.moves[0].stamp.reason.as_deref(),
        Some("lost its connection during the sync")
    );
}

#[test]
fn a_hello_is_the_truth_and_its_recent_syncs_settle_what_was_lost() {
    let mut core = core();
    connect(&mut core, 1, false, at(0));
    sync(&mut core, true, at(1));
    let gone = Input::Disconnected(Dropped {
        register_id: REGISTER,
        generation: 1,
        last_seen: at(2),
    });
    core.handle(gone, at(2));
    core.take();
    let recent = AppliedTarget {
        target_id: TARGET,
        revision: 4,
        applied_at: at(1),
    };
    let hello = Input::Connected {
        register: RegisterRef {
            id: REGISTER,
            site_id: Uuid::from_u128(2),
            company_id: Uuid::from_u128(1),
        },
        generation: 2,
        applied_revision: 0,
        in_sale: false,
        recent: vec![(recent, None)],
        claim: None,
    };
    core.handle(hello, at(3));
    let step = core.take();
    assert_eq!(step.batch.moves[0].to, TargetState::Synced);
    assert_eq!(sends(&step), 0, "not sent again: the register had it");
    let change = &step.batch.registers[&REGISTER];
    assert_eq!(
        change.set_revision,
        Some(0),
        "shown as it reports, even lower"
    );
    assert_eq!(change.raise_revision, None);
}

// Several nodes.

const OTHER_NODE: Uuid = Uuid::from_u128(77);

fn open_row(state: TargetState, deadline: DateTime<Utc>) -> OpenRow {
    OpenRow {
        id: TARGET,
        register_id: REGISTER,
        job_id: JOB,
        state,
        deadline_ms: Some(deadline.timestamp_millis()),
        source: SyncSource::BackOffice,
        requested_by: Some("Alex".into()),
        retry_when_free: true,
    }
}

#[test]
fn a_sync_for_a_register_on_another_node_is_saved_queued_for_it_and_that_node_woken() {
    let mut core = core();
    let job = NewJob {
        id: JOB,
        company_id: Uuid::from_u128(1),
        site_id: Uuid::from_u128(2),
        kind: JobKind::Register,
        source: SyncSource::BackOffice,
        requested_by: None,
        retry_when_free: true,
        created_at: at(0),
        group: None,
    };
    let spec = JobSpec {
        job,
        registers: vec![(REGISTER, "Bar 1".into(), TARGET)],
        elsewhere: [(
            REGISTER,
            Elsewhere {
                node: OTHER_NODE,
                online: true,
            },
        )]
        .into(),
        queue_until: None,
    };
    core.handle(Input::CreateJob { token: 1, spec }, at(0));
    let step = core.take();
    let target = &step.batch.targets[0];
    assert_eq!(target.state, TargetState::Queued, "not skipped as offline");
    assert_eq!(target.stamp.deadline_ms, Some(at(60).timestamp_millis()));
    assert_eq!(sends(&step), 0, "the other node delivers it");
    assert!(step.wake.contains(&OTHER_NODE));
    assert_eq!(
        core.poll_timeout(),
        None,
        "its deadline is the other node's to keep"
    );
}

#[test]
fn adopted_targets_are_sent_to_a_register_connected_here_and_get_the_grace_otherwise() {
    let mut core = core();
    connect(&mut core, 1, false, at(0));
    core.take();
    core.handle(
        Input::Adopt(vec![open_row(TargetState::Queued, at(60))]),
        at(1),
    );
    let step = core.take();
    assert_eq!(
        sends(&step),
        1,
        "a queued target of a register here is delivered"
    );
    assert_eq!(step.batch.moves[0].to, TargetState::Delivered);

    let mut core = self::core();
    core.handle(
        Input::Adopt(vec![open_row(TargetState::Delivered, at(600))]),
        at(1),
    );
    assert_eq!(
        core.poll_timeout(),
        Some(at(31)),
        "a delivery to a register not connected here gets the offline grace, not more"
    );
}

#[test]
fn a_claim_elsewhere_closes_the_connection_here_unless_this_node_claimed_it_since() {
    let mut core = core();
    let register = RegisterRef {
        id: REGISTER,
        site_id: Uuid::from_u128(2),
        company_id: Uuid::from_u128(1),
    };
    let claim = Claim {
        epoch: 5,
        open: vec![open_row(TargetState::Waiting, at(600))],
    };
    let hello = Input::Connected {
        register,
        generation: 1,
        applied_revision: 3,
        in_sale: true,
        recent: Vec::new(),
        claim: Some(claim),
    };
    core.handle(hello, at(0));
    core.take();
    assert!(core.is_open(&TARGET), "claimed with its open target");

    core.handle(
        Input::Release {
            register_id: REGISTER,
            epoch: 4,
        },
        at(1),
    );
    assert!(core.take().effects.is_empty(), "an older claim is old news");
    assert!(core.connected(&REGISTER).is_some());

    core.handle(
        Input::Release {
            register_id: REGISTER,
            epoch: 6,
        },
        at(2),
    );
    let step = core.take();
    assert!(
        step.effects
            .iter()
            .any(|e| matches!(e, Effect::Close { generation: 1, .. })),
        "{:?}",
        step.effects
    );
    assert!(core.connected(&REGISTER).is_none());
    assert!(!core.is_open(&TARGET), "its target is the other node's now");
    assert!(
        step.batch.is_empty(),
        "nothing written: it is not this node's to write"
    );
}

#[test]
fn an_offline_register_queued_by_the_job_is_synced_when_it_reconnects() {
    let mut core = core();
    let step = sync_queueing(&mut core, true, Some(at(3600)), at(0));
    let target = &step.batch.targets[0];
    assert_eq!(target.state, TargetState::AwaitingReconnect);
    assert_eq!(target.stamp.wait_expires_at, Some(at(3600)));
    assert_eq!(
        sends(&step),
        0,
        "nothing is sent to a register that is offline"
    );
    assert!(step.batch.finished.is_empty(), "the job waits for it");
    assert_eq!(
        core.poll_timeout(),
        Some(at(3600)),
        "the queue's end is its deadline"
    );

    connect(&mut core, 1, false, at(600));
    let step = core.take();
    assert_eq!(sends(&step), 1, "its hello delivers it");
    assert_eq!(step.batch.moves[0].from, TargetState::AwaitingReconnect);
    assert_eq!(step.batch.moves[0].to, TargetState::Delivered);
    assert_eq!(
        core.poll_timeout(),
        Some(at(660)),
        "then it has the answer's deadline"
    );

    let applied = SyncOutcome::Applied {
        revision: 4,
        applied_at: at(601),
    };
    answer(&mut core, applied, at(601));
    let step = core.take();
    assert_eq!(step.batch.moves[0].to, TargetState::Synced);
    assert_eq!(step.batch.finished, [JOB]);
}

#[test]
fn a_queued_offline_register_back_in_a_sale_waits_for_the_sale_to_end() {
    let mut core = core();
    sync_queueing(&mut core, true, Some(at(3600)), at(0));
    connect(&mut core, 1, true, at(600));
    core.take();
    answer(&mut core, SyncOutcome::Busy, at(601));
    let step = core.take();
    assert_eq!(step.batch.moves[0].to, TargetState::Waiting);
    assert_eq!(sends(&step), 0, "not sent again during the sale");
}

#[test]
fn a_queue_that_runs_out_expires_the_target_and_a_late_hello_sends_nothing() {
    let mut core = core();
    sync_queueing(&mut core, true, Some(at(3600)), at(0));
    core.handle_timeout(at(3599));
    assert!(core.take().batch.moves.is_empty(), "not before its end");
    core.handle_timeout(at(3600));
    let step = core.take();
    let moved = &step.batch.moves[0];
    assert_eq!(
        (moved.from, moved.to),
        (TargetState::AwaitingReconnect, TargetState::Expired)
    );
    assert_eq!(
        moved.stamp.reason.as_deref(),
        Some("the register did not come back online in time")
    );
    assert_eq!(step.batch.finished, [JOB]);
    connect(&mut core, 1, false, at(3700));
    assert_eq!(sends(&core.take()), 0);
}

#[test]
fn a_hello_after_the_queue_ran_out_but_before_its_timer_ends_it_instead_of_sending() {
    let mut core = core();
    sync_queueing(&mut core, true, Some(at(3600)), at(0));
    connect(&mut core, 1, false, at(3601));
    let step = core.take();
    assert_eq!(sends(&step), 0);
    assert_eq!(step.batch.moves[0].to, TargetState::Expired);
}

#[test]
fn without_a_queue_an_offline_register_is_skipped_as_before() {
    let mut core = core();
    let step = sync_queueing(&mut core, true, None, at(0));
    assert_eq!(step.batch.targets[0].state, TargetState::SkippedOffline);
    assert_eq!(step.batch.finished, [JOB]);
}

#[test]
fn an_offline_register_held_by_another_node_is_queued_for_that_node() {
    let mut core = core();
    let job = NewJob {
        id: JOB,
        company_id: Uuid::from_u128(1),
        site_id: Uuid::from_u128(2),
        kind: JobKind::Register,
        source: SyncSource::BackOffice,
        requested_by: None,
        retry_when_free: true,
        created_at: at(0),
        group: None,
    };
    let other = OTHER_NODE;
    let spec = JobSpec {
        job,
        registers: vec![(REGISTER, "Bar 1".into(), TARGET)],
        elsewhere: [(
            REGISTER,
            Elsewhere {
                node: other,
                online: false,
            },
        )]
        .into(),
        queue_until: Some(at(3600)),
    };
    core.handle(Input::CreateJob { token: 1, spec }, at(0));
    let step = core.take();
    assert_eq!(step.batch.targets[0].state, TargetState::AwaitingReconnect);
    assert!(step.wake.contains(&other), "the holder is told to adopt it");
    assert_eq!(core.poll_timeout(), None, "its end is the holder's to keep");
}
