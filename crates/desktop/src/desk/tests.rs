//! The desk against a real Back Office (and register agents), with a fake host standing in for
//! the keychain, the notification service, the tray and the page.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use regsync_testkit::{FAST, PASSWORD, Scene, WAIT, eventually};

use super::*;

#[derive(Default)]
struct FakeHost {
    tokens: Mutex<HashMap<(String, String), String>>,
    notes: Mutex<Vec<Notification>>,
    trays: Mutex<Vec<TraySummary>>,
    views: AtomicUsize,
    signed_out: AtomicUsize,
    updates: Mutex<Vec<UpdateNotice>>,
}

impl Host for FakeHost {
    fn store_token(&self, url: &str, email: &str, token: &str) -> Result<(), String> {
        let key = (url.to_owned(), email.to_owned());
        self.tokens.lock().unwrap().insert(key, token.to_owned());
        Ok(())
    }
    fn load_token(&self, url: &str, email: &str) -> Result<Option<String>, String> {
        let key = (url.to_owned(), email.to_owned());
        Ok(self.tokens.lock().unwrap().get(&key).cloned())
    }
    fn delete_token(&self, url: &str, email: &str) -> Result<(), String> {
        let key = (url.to_owned(), email.to_owned());
        self.tokens.lock().unwrap().remove(&key);
        Ok(())
    }
    fn notify(&self, notification: &Notification) {
        self.notes.lock().unwrap().push(notification.clone());
    }
    fn show_tray(&self, summary: &TraySummary) {
        self.trays.lock().unwrap().push(summary.clone());
    }
    fn publish(&self, _view: &LiveView) {
        self.views.fetch_add(1, Ordering::Relaxed);
    }
    fn signed_out(&self) {
        self.signed_out.fetch_add(1, Ordering::Relaxed);
    }
    fn zone(&self) -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }
    fn publish_update(&self, notice: &UpdateNotice) {
        self.updates.lock().unwrap().push(notice.clone());
    }
}

impl FakeHost {
    fn token_count(&self) -> usize {
        self.tokens.lock().unwrap().len()
    }
    fn last_tray(&self) -> Option<String> {
        self.trays.lock().unwrap().last().map(|t| t.status.clone())
    }
}

struct Folders {
    data: tempfile::TempDir,
    config: tempfile::TempDir,
}

impl Folders {
    fn new() -> Folders {
        Folders {
            data: tempfile::tempdir().unwrap(),
            config: tempfile::tempdir().unwrap(),
        }
    }
    fn desk(&self, host: &Arc<FakeHost>) -> Arc<Desk> {
        Desk::new(host.clone(), self.data.path(), self.config.path(), false)
    }
}

#[tokio::test]
async fn signing_in_keeps_only_the_refresh_token_and_signing_out_forgets_it() {
    let Scene { bo, venue, .. } = Scene::start(FAST).await;
    let host = Arc::new(FakeHost::default());
    let folders = Folders::new();
    let desk = folders.desk(&host);
    desk.started().await;
    assert_eq!(host.last_tray().as_deref(), Some("Signed out"));

    let wrong = desk
        .sign_in(Endpoint::new(bo.url.as_str()), &venue.manager, "nope", true)
        .await
        .unwrap_err();
    assert_eq!(wrong.code, ProblemCode::WrongPassword);
    assert_eq!(host.token_count(), 0);

    let session = desk
        .sign_in(
            Endpoint::new(bo.url.as_str()),
            &venue.manager,
            PASSWORD,
            true,
        )
        .await
        .unwrap();
    assert_eq!(session.email, venue.manager);
    let token = host.load_token(&session.url, &session.email).unwrap();
    assert!(
        token.is_some_and(|t| t.starts_with("rsr_")),
        "the refresh token, in the keychain"
    );
    assert_eq!(
        session::load(&folders.config.path().join("config.json")),
        Some(session)
    );
    // The picture reaches the page, and the tray says how the registers are.
    eventually(WAIT, "the registers on the tray", || async {
        host.last_tray()
            .filter(|s| s.contains("offline"))
            .map(|_| ())
    })
    .await;
    assert!(host.views.load(Ordering::Relaxed) > 0);

    desk.sign_out().await.unwrap();
    assert_eq!(host.token_count(), 0, "the keychain entry is gone");
    assert!(!folders.config.path().join("config.json").exists());
    assert_eq!(host.last_tray().as_deref(), Some("Signed out"));
    assert_eq!(desk.session().await, None);
}

#[tokio::test]
async fn a_saved_session_resumes_and_one_that_no_longer_works_signs_out() {
    let Scene { bo, venue, .. } = Scene::start(FAST).await;
    let host = Arc::new(FakeHost::default());
    let folders = Folders::new();
    let first = folders.desk(&host);
    let session = first
        .sign_in(
            Endpoint::new(bo.url.as_str()),
            &venue.manager,
            PASSWORD,
            true,
        )
        .await
        .unwrap();
    drop(first);

    // The next start resumes it.
    let again = folders.desk(&host);
    again.resume_saved().await;
    assert_eq!(
        again.session().await.map(|s| s.email),
        Some(venue.manager.clone())
    );
    eventually(WAIT, "live again", || async {
        (again.live().await.live.connection == Connection::Live).then_some(())
    })
    .await;

    // A token Back Office no longer accepts: signed out, and forgotten.
    host.store_token(&session.url, &session.email, "rsr_not_a_token")
        .unwrap();
    let third = folders.desk(&host);
    third.resume_saved().await;
    assert_eq!(host.signed_out.load(Ordering::Relaxed), 1);
    assert_eq!(host.token_count(), 0);
}

#[tokio::test]
async fn a_sync_that_finishes_is_one_notification() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = &venue.registers[0];
    let _agent = bo.agent(&bar1.credential);
    bo.wait_online(&token, bar1.register.id, true).await;
    let host = Arc::new(FakeHost::default());
    let folders = Folders::new();
    let desk = folders.desk(&host);
    desk.sign_in(
        Endpoint::new(bo.url.as_str()),
        &venue.manager,
        PASSWORD,
        false,
    )
    .await
    .unwrap();
    eventually(WAIT, "live", || async {
        (desk.live().await.live.connection == Connection::Live).then_some(())
    })
    .await;

    desk.sync_register(bar1.register.id, true).await.unwrap();
    let note = eventually(WAIT, "a notification", || async {
        host.notes.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(note.title, "Bar 1 synced");
    assert_eq!(host.notes.lock().unwrap().len(), 1);
    assert_eq!(
        host.token_count(),
        0,
        "not remembered: nothing in the keychain"
    );
}

#[tokio::test]
async fn diagnostics_say_where_back_office_is_and_whether_it_answers_and_hold_no_secret() {
    let Scene { mut bo, venue, .. } = Scene::start(FAST).await;
    let host = Arc::new(FakeHost::default());
    let folders = Folders::new();
    let desk = folders.desk(&host);
    desk.started().await;
    let about = crate::diagnostics::About {
        version: "9.8.7".into(),
        os: crate::diagnostics::os_name(),
        log_folder: folders.data.path().join("logs"),
    };
    let signed_out = desk.diagnostics(&about).await;
    assert!(
        signed_out.starts_with("Register Sync 9.8.7\n"),
        "{signed_out}"
    );
    assert!(signed_out.contains("Back Office: none\nBack Office reachable: not signed in"));

    desk.sign_in(
        Endpoint::new(bo.url.as_str()),
        &venue.manager,
        PASSWORD,
        true,
    )
    .await
    .unwrap();
    let report = desk.diagnostics(&about).await;
    assert!(
        report.contains(&format!("Back Office: {}\n", bo.url)),
        "{report}"
    );
    assert!(
        report.contains("Back Office reachable: answers (ok, version"),
        "{report}"
    );
    assert!(report.contains(&format!("Log folder: {}", about.log_folder.display())));
    let token = host.load_token(&bo.url, &venue.manager).unwrap().unwrap();
    for secret in [
        PASSWORD,
        token.as_str(),
        "rsr_",
        "rsa_",
        venue.manager.as_str(),
    ] {
        assert!(!report.contains(secret), "{secret:?} in {report}");
    }

    bo.crash().await;
    let report = desk.diagnostics(&about).await;
    assert!(
        report.contains("Back Office reachable: does not answer"),
        "{report}"
    );
    bo.restart().await;
}

#[tokio::test]
async fn an_update_ready_shows_on_the_tray_and_the_page_and_the_choice_to_check_is_kept() {
    let host = Arc::new(FakeHost::default());
    let folders = Folders::new();
    let desk = folders.desk(&host);
    desk.started().await;
    assert!(desk.automatic_updates(), "on by default");

    desk.set_update(UpdateNotice::ready("0.2.0")).await;
    let tray = host.trays.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        tray.update_item.as_deref(),
        Some("Version 0.2.0 is ready — restart to update")
    );
    assert_eq!(
        host.updates.lock().unwrap().last(),
        Some(&UpdateNotice::ready("0.2.0"))
    );
    assert_eq!(desk.update(), UpdateNotice::ready("0.2.0"));

    desk.set_notifications(false).unwrap();
    desk.set_automatic_updates(false).unwrap();
    let again = folders.desk(&host);
    assert!(!again.automatic_updates(), "kept across restarts");
    assert!(!again.notifications(), "and the other setting with it");
    assert_eq!(
        again.update(),
        UpdateNotice::default(),
        "a new start checks again"
    );
}
