//! What managers of several sites asked for, through the window: offline registers queued until
//! they reconnect, scheduled syncs, all sites at once.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_registers_queued_from_the_window_sync_when_they_reconnect() {
    use regsync_testkit::Notifications;

    let Harbour {
        bo,
        venue,
        token,
        bar1: _bar1,
        bar2: _bar2,
    } = harbour().await;
    let keyring = PrivateKeyring::start();
    let notifications = Notifications::start(&keyring);
    let home = tempfile::tempdir().unwrap();
    let desktop = desktop(&keyring, home.path(), true).await;
    let window = desktop.launch(&app()).await;
    sign_in(&window, &bo, &venue).await;
    window.wait_for_text("● Live").await;
    window.wait_for_text("Kitchen").await;

    // "Also sync offline registers when they reconnect", then "Sync online registers".
    window.click("#queue-offline").await;
    window.click("#sync-online").await;
    window
        .wait_for_text("Kitchen: Queued — offline, syncs when it reconnects, until")
        .await;
    window
        .wait_for_text("2 synced · 1 offline, syncing when it reconnects")
        .await;
    notifications
        .wait_for(&[
            "Main Bar: 2 registers synced",
            "Kitchen is offline; it will sync when it reconnects.",
        ])
        .await;
    window
        .screenshot(&screenshots().join("queued-offline.png"))
        .await;

    // The Kitchen comes back: it syncs, and the manager hears of it.
    let kitchen = bo.agent(&venue.registers[2].credential);
    bo.wait_online(&token, venue.registers[2].register.id, true)
        .await;
    notifications
        .wait_for(&[
            "Kitchen synced",
            "It came back online; it now has menu revision 1.",
        ])
        .await;
    window.wait_for_text("3 synced").await;
    assert_eq!(kitchen.applied_revision(), 1);
    window.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_set_up_in_the_window_runs_and_is_announced_as_scheduled() {
    use regsync_testkit::Notifications;

    let mut args = FAST.to_vec();
    args.extend(["--schedule-poll-secs", "1"]);
    let Scene { bo, venue, token } = Scene::start(&args).await;
    let bar1 = bo.agent(&venue.registers[0].credential);
    bo.wait_online(&token, venue.registers[0].register.id, true)
        .await;
    let keyring = PrivateKeyring::start();
    let notifications = Notifications::start(&keyring);
    let home = tempfile::tempdir().unwrap();
    let desktop = desktop(&keyring, home.path(), true).await;
    let window = desktop.launch(&app()).await;
    sign_in(&window, &bo, &venue).await;
    window.wait_for_text("● Live").await;

    // Weekdays at 06:00, from the page.
    window.click("#open-schedules").await;
    window.wait_for_text("No scheduled syncs").await;
    window.click("#schedule-form input[value='sat']").await;
    window.click("#schedule-form input[value='sun']").await;
    window
        .script(
            "const time = document.querySelector('#schedule-time'); time.value = '06:00'; \
             time.dispatchEvent(new Event('input', { bubbles: true }));",
        )
        .await;
    window.click("#save-schedule").await;
    window.wait_for_text("Weekdays at 06:00").await;
    window.wait_for_text("Next scheduled sync").await;
    let path = format!("/v1/sites/{}/schedules", venue.site.id);
    let (_, saved) = bo.get(&path, &token).await;
    let schedule = &saved["schedules"][0];
    assert_eq!(schedule["time"], "06:00", "{saved}");
    assert_eq!(
        schedule["days"],
        serde_json::json!(["mon", "tue", "wed", "thu", "fri"])
    );
    window.painted().await;
    window
        .screenshot(&screenshots().join("schedules.png"))
        .await;

    // Its time comes: an ordinary job, announced and listed as the schedule's.
    let id: uuid::Uuid = schedule["id"].as_str().unwrap().parse().unwrap();
    let due = chrono::Utc::now().timestamp_millis() - 1000;
    regsync_backoffice::on_db!(&bo.db().await, |pool| sqlx::query(
        "UPDATE site_schedules SET next_run_ms = $1 WHERE id = $2"
    )
    .bind(due)
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    notifications
        .wait_for(&["Main Bar: 1 register synced (scheduled)"])
        .await;
    window.wait_for_text("schedule · online registers").await;
    assert_eq!(bar1.applied_revision(), 1);
    window.close().await;
}

/// "Sync online registers at all my sites": from the overview and from the tray, one job per
/// site, one notification, one history entry; the overview says where to look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_sites_at_once_from_the_overview_and_the_tray() {
    use regsync_testkit::{Notifications, TrayHost};

    let Harbour {
        bo,
        venue,
        token,
        bar1: _bar1,
        bar2: _bar2,
    } = harbour().await;
    let db = bo.db().await;
    let company = venue.company.id.to_string();
    let terrace = regsync_backoffice::admin::create_site(&db, &company, "Terrace")
        .await
        .unwrap();
    let patio = regsync_backoffice::admin::create_register(&db, &terrace, "Patio")
        .await
        .unwrap();
    let _patio = bo.agent(&patio.credential);
    bo.wait_online(&token, patio.register.id, true).await;
    let keyring = PrivateKeyring::start();
    let notifications = Notifications::start(&keyring);
    let host = TrayHost::start(&keyring);
    let home = tempfile::tempdir().unwrap();
    let desktop = desktop(&keyring, home.path(), true).await;
    let window = desktop.launch(&app()).await;
    sign_in(&window, &bo, &venue).await;
    window.wait_for_text("● Live").await;

    // The tray speaks of both sites, and offers them both at once.
    let tray = host.item().await;
    let menu = tray
        .wait_for_entry(4, "Sync online registers at all 2 sites")
        .await;
    // The Main Bar's three and the new Terrace's Patio have not had the menu yet.
    assert_eq!(menu[0].label, "1 offline · 4 out of date — at 2 of 2 sites");

    // The overview: every site, where to look.
    window.click("#all-sites").await;
    window.wait_for_text("Next scheduled sync").await;
    let text = window.text().await;
    assert!(
        text.contains("Terrace") && text.contains("2 sites need a look"),
        "{text}"
    );

    // One sync over both sites: one notification, each site's part on the card.
    window.click("#sync-all").await;
    notifications
        .wait_for(&["All sites: 3 registers synced", "Main Bar: 1 skipped"])
        .await;
    window
        .wait_for_text("All sites: 3 synced · 1 skipped")
        .await;
    window.wait_for_text("Terrace: 1 synced").await;
    // The Terrace is all well now; the Main Bar's Kitchen is still offline and behind.
    tray.wait_for_entry(0, "1 offline · 1 out of date — at 1 of 2 sites")
        .await;
    window.wait_for_text("1 site needs a look").await;
    window
        .wait_for_text("online registers at all 2 sites · 3 synced, 1 skipped")
        .await;
    assert_eq!(
        notifications.calls().len(),
        1,
        "one notification for the whole sync: {:#?}",
        notifications.calls()
    );
    window.painted().await;
    window.screenshot(&screenshots().join("overview.png")).await;

    // From the tray too, the window closed or not.
    tray.click("Sync online registers at all 2 sites");
    eventually(WAIT, "a second all-sites notification", || async {
        (notifications.calls().len() == 2).then_some(())
    })
    .await;
    let jobs = format!("/v1/sites/{}/jobs", terrace.id);
    let (_, listed) = bo.get(&jobs, &token).await;
    let grouped = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["group"]["jobs"] == 2)
        .count();
    assert_eq!(grouped, 2, "{listed}");
    window.close().await;
}
