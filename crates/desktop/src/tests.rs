use chrono::{FixedOffset, TimeZone, Utc};
use regsync_client::Update;
use regsync_protocol::api::{Register, Site, SyncSource};
use regsync_protocol::sync::{Event, JobCounts, JobKind, JobSummary, Target, TargetState};
use uuid::Uuid;

use crate::cache::{Cache, account};
use crate::notify::{Notification, for_change};
use crate::state::{Change, Connection, Live, Picture};
use crate::tray::{TrayIcon, summarize};

mod all_sites;

fn site(name: &str, revision: i64) -> Site {
    Site {
        id: Uuid::new_v4(),
        name: name.into(),
        register_count: 0,
        catalog_revision: revision,
        time_zone: "UTC".into(),
        next_scheduled_sync: None,
    }
}

fn register(site: &Site, name: &str, online: bool, applied: i64) -> Register {
    Register {
        id: Uuid::new_v4(),
        site_id: site.id,
        name: name.into(),
        online,
        in_sale: false,
        last_seen_at: None,
        last_synced_at: None,
        last_synced_source: None,
        last_synced_by: None,
        applied_revision: applied,
        site_revision: site.catalog_revision,
        revisions_behind: (site.catalog_revision - applied).max(0),
        up_to_date: applied >= site.catalog_revision,
    }
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).unwrap()
}

fn live_with(sites: Vec<Site>, registers: Vec<Register>) -> Live {
    let mut live = Live::default();
    live.apply(
        Update::Event(Event::Snapshot {
            sites,
            registers,
            jobs: vec![],
        }),
        Utc.with_ymd_and_hms(2026, 11, 27, 14, 2, 0).unwrap(),
    );
    live
}

fn job(site: &Site, counts: JobCounts, retry: bool) -> JobSummary {
    JobSummary {
        id: Uuid::new_v4(),
        site_id: site.id,
        kind: JobKind::SiteOnline,
        source: SyncSource::BackOffice,
        requested_by: Some("Alex Manager".into()),
        retry_when_free: retry,
        created_at: Utc::now(),
        finished_at: None,
        counts,
        group: None,
    }
}

fn target(
    job: &JobSummary,
    name: &str,
    state: TargetState,
    revision: Option<i64>,
    reason: Option<&str>,
) -> Target {
    Target {
        id: Uuid::new_v4(),
        job_id: job.id,
        register_id: Uuid::new_v4(),
        register_name: name.into(),
        state,
        revision,
        reason: reason.map(Into::into),
        updated_at: Utc::now(),
        wait_expires_at: None,
    }
}

fn counts(synced: u32, waiting: u32, delivered: u32, offline: u32, failed: u32) -> JobCounts {
    JobCounts {
        synced,
        waiting,
        delivered,
        skipped_offline: offline,
        failed,
        ..Default::default()
    }
}

#[test]
fn the_tray_answers_is_everything_synced() {
    let bar = site("Main Bar", 42);
    let all_good = live_with(
        vec![bar.clone()],
        vec![
            register(&bar, "Bar 1", true, 42),
            register(&bar, "Bar 2", true, 42),
        ],
    );
    let tray = summarize(true, &all_good, Some(bar.id), &utc());
    assert_eq!(tray.icon, TrayIcon::AllGood);
    assert_eq!(tray.status, "All 2 registers up to date");
    assert_eq!(
        tray.sync_item.as_deref(),
        Some("Sync online registers — Main Bar")
    );
    assert_eq!(tray.updated.as_deref(), Some("Updated 14:02"));

    let problems = live_with(
        vec![bar.clone()],
        vec![
            register(&bar, "Bar 1", false, 42),
            register(&bar, "Kitchen", false, 41),
            register(&bar, "Bar 2", true, 40),
        ],
    );
    let tray = summarize(true, &problems, None, &utc());
    assert_eq!(tray.icon, TrayIcon::Attention);
    assert_eq!(tray.status, "2 offline · 2 out of date");

    let mut unreachable = all_good.clone();
    unreachable.apply(
        Update::Disconnected {
            reason: "refused".into(),
        },
        Utc::now(),
    );
    let tray = summarize(true, &unreachable, Some(bar.id), &utc());
    assert_eq!(tray.icon, TrayIcon::Unreachable);
    assert_eq!(tray.status, "Back Office unreachable — as of 14:02");
    assert_eq!(tray.sync_item, None, "no sync while unreachable");

    assert_eq!(
        summarize(false, &all_good, None, &utc()).status,
        "Signed out"
    );
}

#[test]
fn the_tray_shows_a_sync_in_progress() {
    let bar = site("Main Bar", 42);
    let mut live = live_with(vec![bar.clone()], vec![register(&bar, "Bar 1", true, 41)]);
    live.apply(
        Update::Event(Event::Job {
            job: job(&bar, counts(0, 0, 1, 0, 0), true),
        }),
        Utc::now(),
    );
    let tray = summarize(true, &live, None, &utc());
    assert_eq!(
        (tray.icon, tray.status.as_str()),
        (TrayIcon::Syncing, "Syncing Main Bar…")
    );
}

#[test]
fn a_site_event_updates_whether_registers_are_up_to_date() {
    let bar = site("Main Bar", 1);
    let mut live = live_with(vec![bar.clone()], vec![register(&bar, "Bar 1", true, 1)]);
    let mut newer = bar.clone();
    newer.catalog_revision = 3;
    live.apply(Update::Event(Event::Site { site: newer }), Utc::now());
    let r = live.picture.registers.values().next().unwrap();
    assert_eq!((r.up_to_date, r.revisions_behind), (false, 2));
}

/// Feeds a job's targets and then its settled summary; answers the notifications raised.
fn run_job(live: &mut Live, job: &JobSummary, targets: &[Target]) -> Vec<Notification> {
    let mut raised = Vec::new();
    let mut running = job.clone();
    running.counts = counts(0, 0, targets.len() as u32, 0, 0);
    let change = live.apply(Update::Event(Event::Job { job: running }), Utc::now());
    raised.extend(for_change(&change, &live.picture));
    for target in targets {
        let change = live.apply(
            Update::Event(Event::Target {
                target: target.clone(),
            }),
            Utc::now(),
        );
        raised.extend(for_change(&change, &live.picture));
    }
    let change = live.apply(Update::Event(Event::Job { job: job.clone() }), Utc::now());
    raised.extend(for_change(&change, &live.picture));
    raised
}

#[test]
fn a_job_all_synced_is_one_notification_in_the_manager_s_words() {
    let bar = site("Main Bar", 42);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let all = job(&bar, counts(6, 0, 0, 0, 0), true);
    let targets: Vec<Target> = (1..=6)
        .map(|i| {
            target(
                &all,
                &format!("Bar {i}"),
                TargetState::Synced,
                Some(42),
                None,
            )
        })
        .collect();
    let raised = run_job(&mut live, &all, &targets);
    assert_eq!(
        raised,
        [Notification {
            title: "Main Bar: 6 registers synced".into(),
            body: "Every online register has menu revision 42.".into()
        }]
    );
}

#[test]
fn a_job_with_a_register_waiting_says_so_and_later_its_sync() {
    let bar = site("Main Bar", 42);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let some_waiting = job(&bar, counts(5, 1, 0, 0, 0), true);
    let mut targets: Vec<Target> = (1..=5)
        .map(|i| {
            target(
                &some_waiting,
                &format!("R{i}"),
                TargetState::Synced,
                Some(42),
                None,
            )
        })
        .collect();
    targets.push(target(
        &some_waiting,
        "Bar 2",
        TargetState::Waiting,
        Some(42),
        None,
    ));
    let raised = run_job(&mut live, &some_waiting, &targets);
    assert_eq!(
        raised,
        [Notification {
            title: "Main Bar: 5 synced, 1 waiting".into(),
            body: "Bar 2 is in a sale; it will sync when the sale ends.".into()
        }]
    );

    // Later the waiting register syncs: its own notification, and the job finishing then is not
    // announced a second time.
    let mut running = some_waiting.clone();
    running.counts = counts(5, 0, 1, 0, 0);
    let change = live.apply(Update::Event(Event::Job { job: running }), Utc::now());
    assert_eq!(for_change(&change, &live.picture), None);
    let mut synced = targets[5].clone();
    synced.state = TargetState::Delivered;
    let change = live.apply(
        Update::Event(Event::Target {
            target: synced.clone(),
        }),
        Utc::now(),
    );
    assert_eq!(
        for_change(&change, &live.picture),
        None,
        "nothing while it is being delivered"
    );
    synced.state = TargetState::Synced;
    let change = live.apply(Update::Event(Event::Target { target: synced }), Utc::now());
    assert_eq!(
        for_change(&change, &live.picture),
        Some(Notification {
            title: "Bar 2 synced".into(),
            body: "Its sale ended; it now has menu revision 42.".into()
        })
    );
    let mut finished = some_waiting.clone();
    finished.counts = counts(6, 0, 0, 0, 0);
    let change = live.apply(Update::Event(Event::Job { job: finished }), Utc::now());
    assert_eq!(
        for_change(&change, &live.picture),
        None,
        "the job was announced once already"
    );
}

#[test]
fn a_failed_sync_names_the_register_and_why() {
    let bar = site("Main Bar", 42);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let failing = job(&bar, counts(0, 0, 0, 0, 1), true);
    let targets = [target(
        &failing,
        "Kitchen",
        TargetState::Failed,
        None,
        Some("lost its connection during the sync"),
    )];
    assert_eq!(
        run_job(&mut live, &failing, &targets),
        [Notification {
            title: "Main Bar: 1 sync failed".into(),
            body: "Kitchen lost its connection during the sync.".into()
        }]
    );
}

#[test]
fn syncing_one_register_names_the_register() {
    let bar = site("Main Bar", 42);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let mut one = job(&bar, counts(1, 0, 0, 0, 0), true);
    one.kind = JobKind::Register;
    let targets = [target(&one, "Bar 1", TargetState::Synced, Some(42), None)];
    assert_eq!(
        run_job(&mut live, &one, &targets),
        [Notification {
            title: "Bar 1 synced".into(),
            body: "It now has menu revision 42.".into()
        }]
    );

    let mut busy = job(&bar, counts(0, 1, 0, 0, 0), true);
    busy.kind = JobKind::Register;
    let targets = [target(&busy, "Bar 2", TargetState::Waiting, Some(42), None)];
    assert_eq!(
        run_job(&mut live, &busy, &targets),
        [Notification {
            title: "Bar 2 is waiting".into(),
            body: "It is in a sale; it will sync when the sale ends.".into()
        }]
    );
}

#[test]
fn an_expired_wait_says_so() {
    let bar = site("Main Bar", 42);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let waiting_job = job(&bar, counts(0, 1, 0, 0, 0), true);
    let mut waiting = target(&waiting_job, "Bar 2", TargetState::Waiting, Some(42), None);
    run_job(&mut live, &waiting_job, std::slice::from_ref(&waiting));
    waiting.state = TargetState::Expired;
    waiting.reason = Some("the sale did not end within 2 hours".into());
    let change = live.apply(Update::Event(Event::Target { target: waiting }), Utc::now());
    assert_eq!(
        for_change(&change, &live.picture),
        Some(Notification {
            title: "Bar 2 was not synced".into(),
            body: "Its sale did not end within 2 hours. Sync it again when it is free.".into()
        })
    );
}

#[test]
fn a_job_over_500_registers_is_one_notification() {
    let bar = site("Main Bar", 7);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let big = job(&bar, counts(498, 0, 0, 2, 0), true);
    let mut targets: Vec<Target> = (0..498)
        .map(|i| {
            target(
                &big,
                &format!("R{i:03}"),
                TargetState::Synced,
                Some(7),
                None,
            )
        })
        .collect();
    targets.push(target(
        &big,
        "Kitchen",
        TargetState::SkippedOffline,
        None,
        Some("offline"),
    ));
    targets.push(target(
        &big,
        "Cellar Door",
        TargetState::SkippedOffline,
        None,
        Some("offline"),
    ));
    let raised = run_job(&mut live, &big, &targets);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].title, "Main Bar: 498 registers synced");
    assert_eq!(raised[0].body, "Cellar Door and Kitchen were offline.");
}

#[test]
fn syncs_staff_started_at_the_register_raise_nothing() {
    let bar = site("Main Bar", 3);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let mut own = job(&bar, counts(1, 0, 0, 0, 0), false);
    own.source = SyncSource::Register;
    let targets = [target(&own, "Bar 1", TargetState::Synced, Some(3), None)];
    assert!(run_job(&mut live, &own, &targets).is_empty());
}

#[test]
fn actions_need_a_live_connection() {
    let bar = site("Main Bar", 1);
    let mut live = live_with(vec![bar.clone()], vec![]);
    assert!(live.can_act().is_ok());
    live.apply(Update::Disconnected { reason: "x".into() }, Utc::now());
    assert!(matches!(live.connection, Connection::Reconnecting { .. }));
    assert!(
        live.can_act()
            .unwrap_err()
            .message
            .contains("can't be reached")
    );
}

#[test]
fn the_cache_round_trips_per_account_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let bar = site("Main Bar", 5);
    let live = live_with(vec![bar.clone()], vec![register(&bar, "Bar 1", true, 5)]);
    let alex = account("https://bo.example", "alex@harbour.example");
    let sam = account("https://bo.example", "sam@harbour.example");

    assert_eq!(cache.load(&alex), None);
    cache.save(&alex, &live.picture).unwrap();
    let loaded = cache.load(&alex).unwrap();
    assert_eq!(loaded.registers, live.picture.registers);
    assert_eq!(
        cache.load(&sam),
        None,
        "another account's picture is not shown"
    );
    let name = cache
        .path(&alex)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        !name.contains("alex"),
        "the file name does not say who uses the PC: {name}"
    );

    // Started from the cache, the app says it is offline as of the cached time.
    let offline = Live::from_cache(loaded);
    assert!(matches!(offline.connection, Connection::Offline { .. }));

    std::fs::write(cache.path(&alex), b"{\"version\":1,\"acc").unwrap();
    assert_eq!(cache.load(&alex), None, "a corrupt file is ignored");
    assert!(!cache.path(&alex).exists(), "and discarded");
    std::fs::write(
        cache.path(&alex),
        br#"{"version":99,"account":"x","saved_at":"2026-01-01T00:00:00Z","picture":{}}"#,
    )
    .unwrap();
    assert_eq!(cache.load(&alex), None, "an outdated format is ignored");
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 0, "no temporary files are left");
}

#[test]
fn changes_are_reported_for_jobs_and_targets() {
    let bar = site("Main Bar", 1);
    let mut picture = Picture::default();
    let j = job(&bar, counts(0, 0, 1, 0, 0), true);
    assert!(matches!(
        picture.apply(Event::Job { job: j.clone() }, Utc::now()),
        Change::Job { before: None, .. }
    ));
    assert!(matches!(
        picture.apply(Event::Job { job: j }, Utc::now()),
        Change::Job {
            before: Some(_),
            ..
        }
    ));
}

#[test]
fn settings_default_to_notifications_on_and_survive_a_bad_file() {
    use crate::settings::{Settings, SettingsFile};
    let dir = tempfile::tempdir().unwrap();
    let file = SettingsFile::new(dir.path().join("nested/settings.json"));
    assert!(
        file.load().notifications,
        "on until the manager turns them off"
    );

    file.save(&Settings {
        notifications: false,
        ..Settings::default()
    })
    .unwrap();
    assert!(!file.load().notifications, "the choice is kept");
    assert!(
        file.load().automatic_updates,
        "updates stay on until turned off"
    );

    // A file from a later version with more settings keeps what it can read.
    std::fs::write(file.path(), br#"{"notifications":false,"theme":"dark"}"#).unwrap();
    assert!(!file.load().notifications);

    // A corrupt file falls back to the defaults rather than keeping the app from starting.
    std::fs::write(file.path(), b"{\"notif").unwrap();
    assert_eq!(file.load(), Settings::default());
    // No temporary files are left next to it.
    let names: Vec<_> = std::fs::read_dir(file.path().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["settings.json"]);
}

#[test]
fn the_picture_keeps_recent_history_not_every_job_ever() {
    use crate::state::{HISTORY_PER_SITE, RESULTS_PER_SITE};
    let bar = site("Main Bar", 1);
    let terrace = site("Terrace", 1);
    let mut live = live_with(vec![bar.clone(), terrace.clone()], vec![]);
    let start = Utc::now() - chrono::Duration::hours(1);
    let mut finished_bar = Vec::new();
    for i in 0..(HISTORY_PER_SITE as i64 + 5) {
        let mut done = job(&bar, counts(1, 0, 0, 0, 0), true);
        done.created_at = start + chrono::Duration::seconds(i);
        done.finished_at = Some(done.created_at);
        let t = target(&done, "Bar 1", TargetState::Synced, Some(1), None);
        live.apply(Update::Event(Event::Target { target: t }), Utc::now());
        live.apply(Update::Event(Event::Job { job: done.clone() }), Utc::now());
        finished_bar.push(done.id);
    }
    // An old job still open (a register waiting for its sale to end) is kept, and so is the
    // other site's history.
    let mut open = job(&bar, counts(0, 1, 0, 0, 0), true);
    open.created_at = start - chrono::Duration::hours(1);
    live.apply(Update::Event(Event::Job { job: open.clone() }), Utc::now());
    let mut other = job(&terrace, counts(1, 0, 0, 0, 0), true);
    other.created_at = start - chrono::Duration::hours(2);
    other.finished_at = Some(other.created_at);
    live.apply(Update::Event(Event::Job { job: other.clone() }), Utc::now());

    let jobs = &live.picture.jobs;
    assert_eq!(jobs.len(), HISTORY_PER_SITE + 2, "{:?}", jobs.keys());
    assert!(jobs.contains_key(&open.id) && jobs.contains_key(&other.id));
    let (forgotten, kept) = finished_bar.split_at(5);
    assert!(
        kept.iter().all(|id| jobs.contains_key(id)),
        "the newest stay"
    );
    let with_targets: Vec<&Uuid> = kept
        .iter()
        .filter(|id| live.picture.targets.contains_key(id))
        .collect();
    assert_eq!(
        with_targets,
        kept.iter()
            .rev()
            .take(RESULTS_PER_SITE)
            .rev()
            .collect::<Vec<_>>(),
        "only the newest keep their targets"
    );
    assert!(
        forgotten
            .iter()
            .all(|id| !jobs.contains_key(id) && !live.picture.targets.contains_key(id)),
        "the oldest go, with their targets"
    );
}

#[test]
fn the_fuzzers_cache_seed_is_a_cache_file_the_app_reads() {
    // fuzz/seeds/offline_cache/picture.json starts the fuzzer from a real file: if the format
    // moves on, this fails and the seed is remade, so fuzzing keeps reaching past the parser.
    let seed = include_bytes!("../../../fuzz/seeds/offline_cache/picture.json");
    let picture = crate::cache::read(
        seed,
        "manager@harbour.example at https://bo.harbour.example",
    )
    .unwrap();
    assert!(!picture.sites.is_empty() && !picture.registers.is_empty());
    assert!(!picture.jobs.is_empty() && !picture.targets.is_empty());
    assert!(matches!(
        crate::cache::read(seed, "someone else"),
        Err(crate::cache::Unusable::Foreign)
    ));
}

#[test]
fn offline_registers_queued_by_a_site_sync_are_named_and_told_of_when_they_sync_or_not() {
    let bar = site("Main Bar", 42);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let queued = job(
        &bar,
        JobCounts {
            synced: 4,
            awaiting_reconnect: 2,
            ..Default::default()
        },
        true,
    );
    let mut targets: Vec<Target> = (1..=4)
        .map(|i| {
            target(
                &queued,
                &format!("R{i}"),
                TargetState::Synced,
                Some(42),
                None,
            )
        })
        .collect();
    for name in ["Kitchen", "Terrace"] {
        targets.push(target(
            &queued,
            name,
            TargetState::AwaitingReconnect,
            None,
            None,
        ));
    }
    let raised = run_job(&mut live, &queued, &targets);
    assert_eq!(
        raised,
        [Notification {
            title: "Main Bar: 4 registers synced".into(),
            body: "Every online register has menu revision 42. Kitchen and Terrace are offline; \
                   they will sync when they reconnect."
                .into()
        }]
    );

    // The Kitchen reconnects and syncs; the Terrace's queue runs out.
    let mut kitchen = targets[4].clone();
    for state in [TargetState::Delivered, TargetState::Synced] {
        kitchen.state = state;
        kitchen.revision = Some(42);
        let target = kitchen.clone();
        let change = live.apply(Update::Event(Event::Target { target }), Utc::now());
        let raised = for_change(&change, &live.picture);
        if state == TargetState::Synced {
            assert_eq!(
                raised,
                Some(Notification {
                    title: "Kitchen synced".into(),
                    body: "It came back online; it now has menu revision 42.".into()
                })
            );
        } else {
            assert_eq!(raised, None, "nothing while it is being delivered");
        }
    }
    let mut terrace = targets[5].clone();
    terrace.state = TargetState::Expired;
    terrace.reason = Some("the register did not come back online in time".into());
    let change = live.apply(Update::Event(Event::Target { target: terrace }), Utc::now());
    assert_eq!(
        for_change(&change, &live.picture),
        Some(Notification {
            title: "Terrace was not synced".into(),
            body: "It did not come back online in time. Sync it again when it is online.".into()
        })
    );
}

#[test]
fn a_scheduled_sync_is_announced_as_scheduled() {
    let bar = site("Main Bar", 42);
    let mut live = live_with(vec![bar.clone()], vec![]);
    let mut scheduled = job(&bar, counts(2, 0, 0, 0, 0), true);
    scheduled.source = SyncSource::Schedule;
    scheduled.requested_by = None;
    let targets: Vec<Target> = ["Bar 1", "Bar 2"]
        .into_iter()
        .map(|name| target(&scheduled, name, TargetState::Synced, Some(42), None))
        .collect();
    let raised = run_job(&mut live, &scheduled, &targets);
    assert_eq!(
        raised,
        [Notification {
            title: "Main Bar: 2 registers synced (scheduled)".into(),
            body: "Every online register has menu revision 42.".into()
        }]
    );
}
