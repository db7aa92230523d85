//! Back Office as several nodes on a real PostgreSQL server, behind a real HAProxy: a sync asked
//! on one node reaches a register on another, live events and held answers cross nodes, a node
//! killed mid-fan-out costs its registers a reconnect and never a sync, a register that moves
//! takes its syncs along, and a lost PostgreSQL listener costs seconds.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use regsync_backoffice::admin;
use regsync_register::{Agent, AgentEvent};
use regsync_testkit::{
    BackOffice, Cluster, EventStream, FAST, RawRegister, Venue, WAIT, chaos, chaos_args,
    eventually, state_of,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Nodes of a test take a silent one for dead after 3 s.
fn args() -> Vec<&'static str> {
    let mut args = FAST.to_vec();
    args.extend(["--node-grace-secs", "3"]);
    args
}

const TERMINAL: [&str; 5] = [
    "synced",
    "skipped_busy",
    "skipped_offline",
    "expired",
    "failed",
];

fn all_terminal(job: &Value) -> bool {
    job["targets"].as_array().is_some_and(|t| {
        t.iter()
            .all(|t| TERMINAL.contains(&t["state"].as_str().unwrap()))
    })
}

/// Every "applied" an agent reports, by target, from now on.
fn applied_counter(agent: &Agent) -> broadcast::Receiver<AgentEvent> {
    agent.subscribe()
}

fn applied(events: &mut broadcast::Receiver<AgentEvent>) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    while let Ok(event) = events.try_recv() {
        if let AgentEvent::Applied { target_id, .. } = event {
            *counts.entry(target_id).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn a_sync_asked_on_one_node_reaches_a_register_on_another() {
    let cluster = Cluster::start(2, &args()).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let venue = Venue::seed(&cluster.db(), "Harbour").await;
    let token = a.login(&venue.manager).await.access_token;
    let bar1 = &venue.registers[0];
    // Bar 1 is connected to node B; the manager uses node A.
    let agent = b.agent(&bar1.credential);
    let online = a.wait_online(&token, bar1.register.id, true).await;
    assert_eq!(online["in_sale"], false, "{online}");
    let mut events = EventStream::open(a, &token).await;

    let job = a.sync_register(&token, bar1.register.id, true).await;
    assert_eq!(
        state_of(&job, "Bar 1"),
        "queued",
        "saved for node B to deliver"
    );
    let path = format!("/v1/jobs/{}?wait_secs=20", job["id"].as_str().unwrap());
    let (_, finished) = a.get(&path, &token).await;
    assert!(
        finished["finished_at"].is_string(),
        "node A's held answer saw node B finish it: {finished}"
    );
    assert_eq!(state_of(&finished, "Bar 1"), "synced");
    assert_eq!(agent.applied_revision(), 1);
    let job_id = job["id"].clone();
    events
        .until(
            "node A's stream shows the target synced on node B",
            |kind, e| {
                kind == "target"
                    && e["target"]["job_id"] == job_id
                    && e["target"]["state"] == "synced"
            },
        )
        .await;
    // A menu changed through node B: node A's managers see the site and its registers behind.
    let path = format!("/v1/sites/{}/catalog", venue.site.id);
    let edit = json!({ "set_settings": { "footer": "See you soon" } });
    let (status, _) = b.call(Method::PATCH, &path, Some(&token), Some(edit)).await;
    assert_eq!(status, 200);
    events
        .until(
            "node A's stream shows the menu changed on node B",
            |kind, e| kind == "site" && e["site"]["catalog_revision"] == 2,
        )
        .await;
    let id = bar1.register.id.to_string();
    agent.start_sale().unwrap();
    events
        .until(
            "node A's stream shows Bar 1 in a sale on node B",
            |kind, e| {
                kind == "register" && e["register"]["id"] == id && e["register"]["in_sale"] == true
            },
        )
        .await;
    agent.shutdown().await;
}

#[tokio::test]
async fn a_node_killed_mid_fan_out_costs_its_registers_a_reconnect_and_no_sync() {
    let mut cluster = Cluster::start(3, &args()).await;
    let db = cluster.db();
    let venue = Venue::seed(&db, "Harbour").await;
    let mut credentials: Vec<(Uuid, String)> = venue
        .registers
        .iter()
        .map(|r| (r.register.id, r.credential.clone()))
        .collect();
    for name in ["Bar 3", "Terrace", "Till 5", "Till 6"] {
        let register = admin::create_register(&db, &venue.site, name)
            .await
            .unwrap();
        credentials.push((register.register.id, register.credential));
    }
    let agents: Vec<Agent> = credentials
        .iter()
        .map(|(_, credential)| cluster.agent(credential))
        .collect();
    let mut counters: Vec<_> = agents.iter().map(applied_counter).collect();
    let mut holders = Vec::new();
    for (id, _) in &credentials {
        holders.push(cluster.wait_held(*id).await);
    }
    // Kill the node holding the first register; ask on a node that survives.
    let doomed = holders[0];
    let survivor = (doomed + 1) % cluster.nodes.len();
    let token = cluster.nodes[survivor]
        .login(&venue.manager)
        .await
        .access_token;
    // One register is in a sale: its sync must wait for the sale, whichever node holds it.
    agents[1].start_sale().unwrap();
    let job = cluster.nodes[survivor]
        .sync_site(&token, venue.site.id, true)
        .await;
    cluster.nodes[doomed].crash().await;

    // Its registers come back through the balancer, on the others.
    for (id, _) in &credentials {
        let held = eventually(WAIT, "every register held by a live node", || async {
            cluster.holder(*id).await.filter(|n| *n != doomed)
        })
        .await;
        assert_ne!(held, doomed);
    }
    let bo = &cluster.nodes[survivor];
    let during_sale = bo.job(&token, &job["id"]).await;
    let in_sale_name = during_sale["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["register_id"] == credentials[1].0.to_string())
        .unwrap()["register_name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        state_of(&during_sale, &in_sale_name),
        "synced",
        "never applied during a sale"
    );
    agents[1].end_sale().unwrap();
    let done = bo
        .wait_job(&token, &job, "every target terminal", all_terminal)
        .await;
    assert!(done["finished_at"].is_string(), "{done}");
    for counter in &mut counters {
        for (target, times) in applied(counter) {
            assert!(times <= 1, "target {target} applied {times} times");
        }
    }
    // The registers the dead node held were not lost: each ends synced (it came back in time).
    for target in done["targets"].as_array().unwrap() {
        assert_eq!(target["state"], "synced", "{done}");
    }
    let _ = &mut cluster;
    for agent in agents {
        agent.shutdown().await;
    }
}

#[tokio::test]
async fn a_register_that_reconnects_to_another_node_takes_its_delivered_sync_along() {
    let cluster = Cluster::start(2, &args()).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let venue = Venue::seed(&cluster.db(), "Harbour").await;
    let token = a.login(&venue.manager).await.access_token;
    let bar1 = &venue.registers[0];
    let (mut on_a, _) = RawRegister::hello(a, &bar1.credential, false, json!([])).await;
    a.wait_online(&token, bar1.register.id, true).await;
    let job = b.sync_register(&token, bar1.register.id, true).await;
    let command = on_a.recv().await.expect("node A delivers it");
    assert_eq!(command["type"], "sync", "{command}");

    // Before answering, the register's connection moves to node B.
    let (mut on_b, _) = RawRegister::hello(b, &bar1.credential, false, json!([])).await;
    let reason = on_a.closed_reason().await;
    assert!(reason.contains("another Back Office node"), "{reason}");
    let again = on_b.recv().await.expect("node B delivers it again");
    assert_eq!(again["target_id"], command["target_id"]);
    on_b.send(json!({
        "type": "sync_result", "target_id": again["target_id"],
        "outcome": { "status": "applied", "revision": again["revision"], "applied_at": chrono_now() },
    }))
    .await;
    let done = a
        .wait_job(&token, &job, "the job finished", |job| {
            job["finished_at"].is_string()
        })
        .await;
    assert_eq!(state_of(&done, "Bar 1"), "synced");
}

#[tokio::test]
async fn offline_registers_queued_on_one_node_sync_when_they_reconnect_to_any() {
    let cluster = Cluster::start(2, &args()).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let venue = Venue::seed(&cluster.db(), "Harbour").await;
    let token = a.login(&venue.manager).await.access_token;
    let (bar1, bar2) = (&venue.registers[0], &venue.registers[1]);
    // Bar 1 was last connected to node B and went offline there; Bar 2 never connected at all.
    let (on_b, _) = RawRegister::hello(b, &bar1.credential, false, json!([])).await;
    a.wait_online(&token, bar1.register.id, true).await;
    drop(on_b);
    a.wait_online(&token, bar1.register.id, false).await;

    let body = json!({ "queue_offline": true, "queue_minutes": 60 });
    let path = format!("/v1/sites/{}/sync", venue.site.id);
    let (status, job) = a.call(Method::POST, &path, Some(&token), Some(body)).await;
    assert_eq!(status, 202, "{job}");
    for name in ["Bar 1", "Bar 2", "Kitchen"] {
        assert_eq!(state_of(&job, name), "awaiting_reconnect", "{job}");
    }

    // Bar 1 comes back on node A, Bar 2 on node B: each is delivered by the node it reaches.
    let (mut bar1_on_a, _) = RawRegister::hello(a, &bar1.credential, false, json!([])).await;
    let (mut bar2_on_b, _) = RawRegister::hello(b, &bar2.credential, false, json!([])).await;
    for raw in [&mut bar1_on_a, &mut bar2_on_b] {
        let command = raw.recv().await.expect("the queued sync, on reconnecting");
        assert_eq!(command["type"], "sync", "{command}");
        assert_eq!(command["requested_by"], "Harbour manager");
        raw.send(json!({
            "type": "sync_result", "target_id": command["target_id"],
            "outcome": { "status": "applied", "revision": command["revision"], "applied_at": chrono_now() },
        }))
        .await;
    }
    let job = b
        .wait_job(&token, &job, "Bar 1 and Bar 2 synced", |job| {
            state_of(job, "Bar 1") == "synced" && state_of(job, "Bar 2") == "synced"
        })
        .await;
    assert_eq!(state_of(&job, "Kitchen"), "awaiting_reconnect");
    assert!(job["finished_at"].is_null(), "the Kitchen is still queued");
    let agent = cluster.agent(&venue.registers[2].credential);
    let job = a
        .wait_job(&token, &job, "the job finished", |job| {
            job["finished_at"].is_string()
        })
        .await;
    assert_eq!(state_of(&job, "Kitchen"), "synced");
    assert_eq!(agent.applied_revision(), 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_schedule_runs_once_however_many_nodes_look_for_it() {
    let mut args = args();
    args.extend(["--schedule-poll-secs", "1"]);
    let cluster = Cluster::start(3, &args).await;
    let a = &cluster.nodes[0];
    let venue = Venue::seed(&cluster.db(), "Harbour").await;
    let token = a.login(&venue.manager).await.access_token;
    let agent = cluster.agent(&venue.registers[0].credential);
    a.wait_online(&token, venue.registers[0].register.id, true)
        .await;
    let path = format!("/v1/sites/{}/schedules", venue.site.id);
    let body =
        json!({ "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": "05:30" });
    let (status, schedule) = a.call(Method::POST, &path, Some(&token), Some(body)).await;
    assert_eq!(status, 201, "{schedule}");

    // Due now, missed by a while: every node's runner sees it; one claims it.
    let id: Uuid = schedule["id"].as_str().unwrap().parse().unwrap();
    let due = chrono::Utc::now().timestamp_millis() - 60_000;
    sqlx::query("UPDATE site_schedules SET next_run_ms = $1 WHERE id = $2")
        .bind(due)
        .bind(id)
        .execute(&cluster.pool)
        .await
        .unwrap();
    let jobs_path = format!("/v1/sites/{}/jobs", venue.site.id);
    let job = eventually(WAIT, "the scheduled job", || async {
        let (_, jobs) = a.get(&jobs_path, &token).await;
        jobs.as_array()?
            .iter()
            .find(|j| j["source"] == "schedule")
            .cloned()
    })
    .await;
    let done = a
        .wait_job(&token, &job, "the scheduled job to finish", |job| {
            job["finished_at"].is_string()
        })
        .await;
    assert_eq!(state_of(&done, "Bar 1"), "synced");
    // Claimed once: the next run is after now, and one job was made.
    let (_, listed) = a.get(&path, &token).await;
    let next: chrono::DateTime<chrono::Utc> = listed["schedules"][0]["next_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next > chrono::Utc::now(), "{listed}");
    let (_, jobs) = a.get(&jobs_path, &token).await;
    let scheduled = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["source"] == "schedule")
        .count();
    assert_eq!(scheduled, 1, "{jobs}");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_lost_postgres_listener_costs_seconds_not_syncs() {
    let cluster = Cluster::start(2, &args()).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let venue = Venue::seed(&cluster.db(), "Harbour").await;
    let token = a.login(&venue.manager).await.access_token;
    let bar1 = &venue.registers[0];
    let agent = b.agent(&bar1.credential);
    a.wait_online(&token, bar1.register.id, true).await;

    // Every node's listening connection is cut: notices sent now are lost.
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&cluster.pool)
    .await
    .unwrap();
    assert!(!cut.is_empty(), "the nodes were listening");

    let job = a.sync_register(&token, bar1.register.id, true).await;
    let done = a
        .wait_job(&token, &job, "the job finished all the same", |job| {
            job["finished_at"].is_string()
        })
        .await;
    assert_eq!(state_of(&done, "Bar 1"), "synced");
    assert_eq!(agent.applied_revision(), 1);
    agent.shutdown().await;
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invariants_hold_under_chaos_on_three_nodes() {
    let mut args = chaos_args();
    args.extend(["--node-grace-secs", "3"]);
    let cluster = Cluster::start(3, &args).await;
    let nodes: Vec<&BackOffice> = cluster.nodes.iter().collect();
    let dir = tempfile::tempdir().unwrap();
    chaos(&nodes, &cluster.balancer.url, dir.path(), &cluster.db()).await;
}
