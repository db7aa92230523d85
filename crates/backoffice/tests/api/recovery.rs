//! Crashes: a register that dies mid-sync, Back Office killed and restarted mid-job. Every target
//! still ends in exactly one terminal state, and nothing is applied twice.

use std::sync::Arc;

use regsync_register::{AgentConfig, AgentEvent, CrashPoint, NoHooks};

use crate::harness::{BackOffice, Banners, FAST, Scene, WAIT, eventually, state_of, target};

fn crashing_agent(
    bo: &BackOffice,
    credential: &str,
    state: std::path::PathBuf,
    at: CrashPoint,
) -> regsync_register::Agent {
    let mut config = AgentConfig::new(bo.url.clone(), credential);
    config.state_path = Some(state);
    config.crash_at = Some(at);
    regsync_register::Agent::start(config, Arc::new(NoHooks))
}

async fn crashed(events: &mut tokio::sync::broadcast::Receiver<AgentEvent>) {
    tokio::time::timeout(WAIT, async {
        while let Ok(event) = events.recv().await {
            if event == AgentEvent::Crashed {
                return;
            }
        }
    })
    .await
    .expect("the agent crashed");
}

#[tokio::test]
async fn a_register_killed_after_applying_reports_it_when_it_comes_back() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let kitchen = &venue.registers[2];
    let state = bo.dir.join("kitchen.json");

    let agent = crashing_agent(
        &bo,
        &kitchen.credential,
        state.clone(),
        CrashPoint::AfterApplying,
    );
    bo.wait_online(&token, kitchen.register.id, true).await;
    let mut crash = agent.subscribe();
    let job = bo.sync_register(&token, kitchen.register.id, true).await;
    crashed(&mut crash).await;
    drop(agent);
    bo.wait_online(&token, kitchen.register.id, false).await;

    // Back on, with the menu it saved before dying: its hello settles the sync, nothing re-applies.
    let banners = Arc::new(Banners::default());
    let agent = bo.agent_with(&kitchen.credential, Some(state), banners.clone());
    let job = bo
        .wait_job(&token, &job, "the sync settled by the hello", |j| {
            !j["finished_at"].is_null()
        })
        .await;
    assert_eq!(state_of(&job, "Kitchen"), "synced");
    assert_eq!(agent.applied_revision(), 1);
    assert!(
        banners.0.lock().unwrap().is_empty(),
        "not applied a second time"
    );
}

#[tokio::test]
async fn a_register_killed_before_applying_ends_failed_with_the_reason() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let kitchen = &venue.registers[2];
    let agent = crashing_agent(
        &bo,
        &kitchen.credential,
        bo.dir.join("k.json"),
        CrashPoint::BeforeApplying,
    );
    bo.wait_online(&token, kitchen.register.id, true).await;
    let mut crash = agent.subscribe();
    let job = bo.sync_register(&token, kitchen.register.id, true).await;
    crashed(&mut crash).await;
    let job = bo
        .wait_job(&token, &job, "the sync to fail", |j| {
            !j["finished_at"].is_null()
        })
        .await;
    assert_eq!(state_of(&job, "Kitchen"), "failed");
    assert_eq!(
        target(&job, "Kitchen")["reason"],
        "lost its connection during the sync"
    );
}

#[tokio::test]
async fn back_office_killed_mid_job_resumes_every_target_after_a_restart() {
    let Scene {
        mut bo,
        venue,
        token,
    } = Scene::start(FAST).await;
    let [bar1, bar2, kitchen] = &venue.registers[..] else {
        unreachable!()
    };

    // Bar 1 is in a sale (its sync will wait), Bar 2 is idle, the Kitchen dies after applying.
    let bar1_agent = bo.agent(&bar1.credential);
    let bar2_agent = bo.agent(&bar2.credential);
    let kitchen_state = bo.dir.join("kitchen.json");
    let kitchen_agent = crashing_agent(
        &bo,
        &kitchen.credential,
        kitchen_state.clone(),
        CrashPoint::AfterApplying,
    );
    for register in &venue.registers {
        bo.wait_online(&token, register.register.id, true).await;
    }
    bar1_agent.start_sale().unwrap();
    let mut crash = kitchen_agent.subscribe();
    let job = bo.sync_site(&token, venue.site.id, true).await;
    crashed(&mut crash).await;
    drop(kitchen_agent);
    bo.wait_job(&token, &job, "Bar 1 waiting, Bar 2 synced", |j| {
        state_of(j, "Bar 1") == "waiting" && state_of(j, "Bar 2") == "synced"
    })
    .await;

    // Back Office dies with Bar 1 waiting and the Kitchen's result never received.
    bo.crash().await;
    bo.restart().await;
    let token = bo.login(&venue.manager).await.access_token;
    let job_now = bo.job(&token, &job["id"]).await;
    assert_eq!(
        state_of(&job_now, "Bar 1"),
        "waiting",
        "the wait survived the restart"
    );
    assert!(job_now["finished_at"].is_null());

    // The registers reconnect by themselves; the Kitchen comes back with its saved state.
    let kitchen_agent = bo.agent_with(&kitchen.credential, Some(kitchen_state), Arc::new(NoHooks));
    bo.wait_online(&token, bar1.register.id, true).await;
    bar1_agent.end_sale().unwrap();
    let job = bo
        .wait_job(&token, &job, "every target synced", |j| {
            !j["finished_at"].is_null()
        })
        .await;
    for register in ["Bar 1", "Bar 2", "Kitchen"] {
        assert_eq!(state_of(&job, register), "synced", "{register}: {job}");
    }
    assert_eq!(job["counts"]["synced"], 3);
    for agent in [&bar1_agent, &bar2_agent, &kitchen_agent] {
        assert_eq!(agent.applied_revision(), 1);
    }
}

#[tokio::test]
async fn back_office_restarted_while_a_register_stays_away_fails_its_target() {
    let Scene {
        mut bo,
        venue,
        token,
    } = Scene::start(FAST).await;
    let kitchen = &venue.registers[2];
    let agent = crashing_agent(
        &bo,
        &kitchen.credential,
        bo.dir.join("k.json"),
        CrashPoint::AfterApplying,
    );
    bo.wait_online(&token, kitchen.register.id, true).await;
    let mut crash = agent.subscribe();
    let job = bo.sync_register(&token, kitchen.register.id, true).await;
    crashed(&mut crash).await;
    bo.crash().await;
    bo.restart().await;
    let token = bo.login(&venue.manager).await.access_token;
    let job = bo
        .wait_job(&token, &job, "the sync to fail after the grace", |j| {
            !j["finished_at"].is_null()
        })
        .await;
    assert_eq!(state_of(&job, "Kitchen"), "failed");
    assert_eq!(
        target(&job, "Kitchen")["reason"],
        "lost its connection during the sync"
    );
    eventually(WAIT, "nothing left open", || async {
        let job = bo.job(&token, &job["id"]).await;
        (job["counts"]["delivered"] == 0 && job["counts"]["queued"] == 0).then_some(())
    })
    .await;
}
