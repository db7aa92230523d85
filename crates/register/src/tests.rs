use super::*;
use crate::apply::{Asker, apply};
use crate::connection::connect_url;
use regsync_protocol::register::SyncOutcome;
use regsync_transport::TransportError;

/// An agent with no connection task, whose answers land in the returned queue.
fn offline_agent(path: Option<std::path::PathBuf>) -> (Agent, mpsc::UnboundedReceiver<String>) {
    let store = Store::new(path);
    let (link, answers) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(64);
    let shared = Arc::new(Shared {
        local: Mutex::new(Local {
            stored: store.load(),
            in_sale: false,
            link: Some(link),
        }),
        store,
        hooks: Arc::new(NoHooks),
        events,
        connected: AtomicBool::new(true),
        crash_at: None,
    });
    let (stop, _) = watch::channel(false);
    (
        Agent {
            shared,
            stop,
            task: None,
        },
        answers,
    )
}

fn answers(rx: &mut mpsc::UnboundedReceiver<String>) -> Vec<RegisterMessage> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|text| serde_json::from_str(&text).unwrap())
        .collect()
}

fn menu(footer: &str) -> Catalog {
    Catalog {
        settings: [("footer".to_owned(), footer.to_owned())].into(),
        ..Default::default()
    }
}

#[test]
fn a_repeated_target_is_applied_once_and_answered_the_same() {
    let (agent, mut rx) = offline_agent(None);
    let target = Uuid::now_v7();
    let _ = apply(&agent.shared, target, 2, nobody(), menu("two"));
    let mut events = agent.subscribe();
    let _ = apply(&agent.shared, target, 2, nobody(), menu("two"));
    let sent = answers(&mut rx);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "the same answer both times");
    assert_eq!(
        events.try_recv().unwrap(),
        AgentEvent::AlreadyUpToDate {
            target_id: target,
            revision: 2
        }
    );
}

#[test]
fn an_older_menu_never_replaces_a_newer_one() {
    let (agent, mut rx) = offline_agent(None);
    let _ = apply(&agent.shared, Uuid::now_v7(), 5, nobody(), menu("five"));
    let _ = apply(&agent.shared, Uuid::now_v7(), 3, nobody(), menu("three"));
    assert_eq!(agent.applied_revision(), 5);
    assert_eq!(agent.catalog(), menu("five"));
    let sent = answers(&mut rx);
    assert!(matches!(
        &sent[1],
        RegisterMessage::SyncResult {
            outcome: SyncOutcome::Applied { revision: 5, .. },
            ..
        }
    ));
}

#[test]
fn a_sync_during_a_sale_is_refused_and_answers_keep_the_order_of_events() {
    let (agent, mut rx) = offline_agent(None);
    agent.start_sale().unwrap();
    let target = Uuid::now_v7();
    let _ = apply(&agent.shared, target, 2, nobody(), menu("two"));
    assert_eq!(
        agent.applied_revision(),
        0,
        "nothing applied during the sale"
    );
    agent.end_sale().unwrap();
    let sent = answers(&mut rx);
    assert_eq!(sent[0], RegisterMessage::SaleStarted);
    assert_eq!(
        sent[1],
        RegisterMessage::SyncResult {
            target_id: target,
            outcome: SyncOutcome::Busy
        }
    );
    assert_eq!(sent[2], RegisterMessage::SaleEnded);
    assert_eq!(agent.start_sale(), Ok(()));
    assert_eq!(agent.start_sale(), Err(SaleError::AlreadyInSale));
}

#[test]
fn an_applied_menu_survives_a_restart_with_its_recent_targets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("register.json");
    let target = Uuid::now_v7();
    let (agent, _rx) = offline_agent(Some(path.clone()));
    let _ = apply(&agent.shared, target, 4, manager("Alex"), menu("four"));
    drop(agent);
    let (agent, _rx) = offline_agent(Some(path));
    assert_eq!(agent.applied_revision(), 4);
    assert_eq!(agent.catalog(), menu("four"));
    assert!(agent.shared.lock().stored.remembered(target).is_some());
}

#[test]
fn connect_urls_follow_the_scheme() {
    assert_eq!(
        connect_url("http://127.0.0.1:8080/", false).unwrap(),
        "ws://127.0.0.1:8080/v1/registers/connect"
    );
    assert_eq!(
        connect_url("bo.example:8443", false).unwrap(),
        "wss://bo.example:8443/v1/registers/connect"
    );
    assert!(matches!(
        connect_url("http://bo.example", false),
        Err(TransportError::Unencrypted { .. })
    ));
    assert_eq!(
        connect_url("http://bo.example", true).unwrap(),
        "ws://bo.example/v1/registers/connect"
    );
    assert_eq!(
        connect_url("https://bo.example", false).unwrap(),
        "wss://bo.example/v1/registers/connect"
    );
}

fn nobody() -> Asker {
    Asker {
        requested_by: None,
        scheduled: false,
    }
}

fn manager(name: &str) -> Asker {
    Asker {
        requested_by: Some(name.into()),
        scheduled: false,
    }
}
