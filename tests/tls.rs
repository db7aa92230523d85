//! The client, `regsync` and a register agent reaching a Back Office that serves HTTPS and WSS
//! itself, with a certificate from a CA made in the test: what works when the CA is trusted, and
//! the plain words when it is not, or when the certificate is for another name.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use regsync_client::{Client, Endpoint, Error, Trust, Update};
use regsync_protocol::sync::{Event, SyncRequest, TargetState};
use regsync_register::{AgentConfig, AgentEvent, AgentHooks};
use regsync_testkit::tls::TestCa;
use regsync_testkit::{BackOffice, FAST, PASSWORD, Venue, WAIT, eventually};

struct Https {
    bo: BackOffice,
    /// The address by the name the certificate is for (`localhost`).
    url: String,
    ca: TestCa,
    _dir: tempfile::TempDir,
}

async fn https_back_office() -> Https {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Register Sync test CA");
    let mut args: Vec<String> = ca.issue(dir.path(), &["localhost"]).flags().into();
    args.extend(FAST.iter().map(|a| a.to_string()));
    let bo = BackOffice::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(bo.url.starts_with("https://127.0.0.1:"), "{}", bo.url);
    let url = bo.url.replace("127.0.0.1", "localhost");
    Https {
        bo,
        url,
        ca,
        _dir: dir,
    }
}

/// Keeps what an agent reports, to read why it could not connect.
#[derive(Default)]
struct Recorder(Mutex<Vec<AgentEvent>>);

impl AgentHooks for Recorder {
    fn banner(&self, _text: &str) {}
    fn event(&self, event: &AgentEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn disconnect_reasons(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Disconnected { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn sign_in_live_events_and_a_register_sync_over_tls() {
    let https = https_back_office().await;
    let venue = Venue::seed(&https.bo.db().await, "Harbour").await;
    let trust = Trust::default()
        .with_ca_pem(https.ca.pem().as_bytes())
        .unwrap();

    let endpoint = Endpoint::new(https.url.as_str()).trust(trust.clone());
    let (client, _) = Client::login(&endpoint, &venue.manager, PASSWORD)
        .await
        .unwrap();
    assert_eq!(client.base_url(), https.url);
    let mut events = client.subscribe();

    let bar1 = &venue.registers[0];
    let mut config = AgentConfig::new(https.url.clone(), bar1.credential.clone());
    config.tls = Some(trust.client_config());
    config.reconnect_max = Duration::from_millis(500);
    let agent = regsync_register::Agent::start(config, Arc::new(regsync_register::NoHooks));
    eventually(WAIT, "the register is online over wss://", || async {
        client
            .register(bar1.register.id)
            .await
            .unwrap()
            .online
            .then_some(())
    })
    .await;

    let job = client
        .sync_register(bar1.register.id, &SyncRequest::default())
        .await
        .unwrap();
    let job = client.wait_for_job(job.summary.id, WAIT).await.unwrap();
    assert_eq!(job.targets[0].state, TargetState::Synced);
    assert_eq!(agent.applied_revision(), 1);

    // The live stream, over the same TLS, saw the register's target settle.
    tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(Update::Event(Event::Target { target }))
                    if target.state == TargetState::Synced =>
                {
                    return;
                }
                Some(_) => {}
                None => panic!("the event stream ended"),
            }
        }
    })
    .await
    .expect("a live event for the synced target");
}

#[tokio::test]
async fn untrusted_and_wrong_name_certificates_are_refused_in_plain_words() {
    let https = https_back_office().await;
    let venue = Venue::seed(&https.bo.db().await, "Harbour").await;

    // Nobody told this client about the test CA.
    let error = Client::login(https.url.as_str(), &venue.manager, PASSWORD)
        .await
        .unwrap_err();
    match &error {
        Error::Certificate { message, .. } => assert!(
            message.starts_with("The certificate of localhost is not trusted"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }

    // Trusted, but asked for by a name the certificate is not for.
    let trust = Trust::default()
        .with_ca_pem(https.ca.pem().as_bytes())
        .unwrap();
    let error = Client::login(
        Endpoint::new(https.bo.url.as_str()).trust(trust),
        &venue.manager,
        PASSWORD,
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "The certificate of 127.0.0.1 is for another name (localhost)."
    );

    // A register agent that does not trust the CA says why it cannot connect.
    let recorder = Arc::new(Recorder::default());
    let mut config = AgentConfig::new(https.url.clone(), venue.registers[0].credential.clone());
    config.reconnect_max = Duration::from_millis(200);
    let _agent = regsync_register::Agent::start(config, recorder.clone());
    let reason = eventually(WAIT, "the agent reports the certificate", || async {
        recorder.disconnect_reasons().into_iter().next()
    })
    .await;
    assert!(
        reason.starts_with("The certificate of localhost is not trusted"),
        "{reason}"
    );
}

#[tokio::test]
async fn plain_http_to_another_computer_is_refused_unless_allowed() {
    // Refused before anything is sent: no server needed.
    let error = Client::login("http://bo.harbour.example", "a@b.example", "secret")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unencrypted { .. }), "{error:?}");
    assert!(error.to_string().contains("is not encrypted"), "{error}");

    // Allowed explicitly, it is tried (and here finds nobody: a reserved, unroutable name).
    let allowed = Client::login(
        Endpoint::new("http://bo.harbour.invalid").allow_plain_http(true),
        "a@b.example",
        "secret",
    )
    .await
    .unwrap_err();
    assert!(allowed.is_unreachable(), "{allowed:?}");

    // A bare host means https://.
    let error = Client::login("bo.harbour.invalid", "a@b.example", "secret")
        .await
        .unwrap_err();
    match error {
        Error::Unreachable { url, .. } => assert_eq!(url, "https://bo.harbour.invalid"),
        other => panic!("{other:?}"),
    }
}
