//! "Sync online registers at all my sites": one notification for the whole sync, and a tray
//! that speaks of every site.

use regsync_protocol::sync::JobGroupRef;

use super::*;

#[test]
fn an_all_sites_sync_is_one_notification_naming_the_sites_that_need_a_look() {
    let bar = site("Main Bar", 42);
    let terrace = site("Terrace", 7);
    let mut live = live_with(vec![bar.clone(), terrace.clone()], vec![]);
    let group = JobGroupRef {
        id: Uuid::new_v4(),
        jobs: 2,
    };
    let mut at_bar = job(&bar, counts(2, 0, 0, 0, 0), true);
    at_bar.group = Some(group);
    let mut at_terrace = job(&terrace, counts(1, 0, 0, 0, 1), true);
    at_terrace.group = Some(group);
    let bar_targets: Vec<Target> = ["Bar 1", "Bar 2"]
        .into_iter()
        .map(|name| target(&at_bar, name, TargetState::Synced, Some(42), None))
        .collect();
    let terrace_targets = vec![
        target(&at_terrace, "Deck", TargetState::Synced, Some(7), None),
        target(
            &at_terrace,
            "Kiosk",
            TargetState::Failed,
            None,
            Some("the register stopped answering"),
        ),
    ];

    let mut raised = run_job(&mut live, &at_bar, &bar_targets);
    assert_eq!(raised, [], "one site's part says nothing on its own");
    raised = run_job(&mut live, &at_terrace, &terrace_targets);
    assert_eq!(
        raised,
        [Notification {
            title: "All sites: 3 registers synced, 1 failed".into(),
            body: "2 sites. Terrace: 1 failed.".into()
        }]
    );

    // Said once: a late copy of a settled part raises nothing more.
    let change = live.apply(Update::Event(Event::Job { job: at_bar }), Utc::now());
    assert_eq!(for_change(&change, &live.picture), None);
}

#[test]
fn an_all_sites_sync_all_well_says_so() {
    let bar = site("Main Bar", 42);
    let terrace = site("Terrace", 7);
    let mut live = live_with(vec![bar.clone(), terrace.clone()], vec![]);
    let group = JobGroupRef {
        id: Uuid::new_v4(),
        jobs: 2,
    };
    let mut raised = Vec::new();
    for (site, name, revision) in [(&bar, "Bar 1", 42), (&terrace, "Deck", 7)] {
        let mut part = job(site, counts(1, 0, 0, 0, 0), true);
        part.group = Some(group);
        let done = target(&part, name, TargetState::Synced, Some(revision), None);
        raised.extend(run_job(&mut live, &part, &[done]));
    }
    assert_eq!(
        raised,
        [Notification {
            title: "All sites: 2 registers synced".into(),
            body: "Every online register at 2 sites has the latest menu.".into()
        }]
    );
}

#[test]
fn with_several_sites_the_tray_speaks_of_all_of_them() {
    let bar = site("Main Bar", 42);
    let terrace = site("Terrace", 7);
    let kiosk = site("Kiosk", 3);
    let sites = vec![bar.clone(), terrace.clone(), kiosk.clone()];
    let all_good = live_with(
        sites.clone(),
        vec![
            register(&bar, "Bar 1", true, 42),
            register(&terrace, "Deck", true, 7),
            register(&kiosk, "Front", true, 3),
        ],
    );
    let tray = summarize(true, &all_good, Some(bar.id), &utc());
    assert_eq!(tray.icon, TrayIcon::AllGood);
    assert_eq!(tray.status, "All 3 registers up to date, at 3 sites");
    assert_eq!(
        tray.sync_all_item.as_deref(),
        Some("Sync online registers at all 3 sites")
    );

    let trouble = live_with(
        sites,
        vec![
            register(&bar, "Bar 1", true, 42),
            register(&terrace, "Deck", false, 7),
            register(&terrace, "Bar", true, 6),
            register(&kiosk, "Front", true, 2),
        ],
    );
    let tray = summarize(true, &trouble, Some(bar.id), &utc());
    assert_eq!(tray.icon, TrayIcon::Attention);
    assert_eq!(tray.status, "1 offline · 2 out of date — at 2 of 3 sites");

    let one_site = live_with(vec![bar.clone()], vec![register(&bar, "Bar 1", true, 42)]);
    let tray = summarize(true, &one_site, Some(bar.id), &utc());
    assert_eq!(tray.sync_all_item, None, "one site: its own item is enough");
}
