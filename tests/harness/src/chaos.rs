//! The invariants under chaos: 200 registers with random sales, disconnects, menu changes and
//! syncs for a while, against one Back Office or several nodes (each call to a node picked at
//! random, the registers through the balancer). No sync is ever applied during a sale, and every
//! target ends terminal. The seed is printed; `REGSYNC_SEED=<n>` replays a run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regsync_backoffice::admin;
use regsync_register::simulate::{SaleProfile, run_sales};
use regsync_register::{Agent, AgentConfig, AgentEvent, NoHooks};
use reqwest::Method;
use serde_json::json;

use regsync_backoffice::Db;

use crate::{BackOffice, Venue, eventually};

const REGISTERS_PER_SITE: usize = 100;
const CHAOS: Duration = Duration::from_secs(8);

struct Register {
    credential: String,
    state: std::path::PathBuf,
    agent: Option<Arc<Agent>>,
    sales: Option<tokio::task::JoinHandle<()>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

/// Watches one agent's events, which are published under its sale lock in the order they
/// happened, and counts syncs applied while a sale was open.
fn watch(
    agent: &Agent,
    applied_in_sale: Arc<AtomicUsize>,
    applied: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    let mut events = agent.subscribe();
    tokio::spawn(async move {
        let mut in_sale = false;
        loop {
            match events.recv().await {
                Ok(AgentEvent::SaleStarted) => in_sale = true,
                Ok(AgentEvent::SaleEnded) => in_sale = false,
                Ok(AgentEvent::Applied { .. }) => {
                    applied.fetch_add(1, Ordering::Relaxed);
                    if in_sale {
                        applied_in_sale.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // The check would be blind: count it as a failure.
                    applied_in_sale.fetch_add(1_000_000, Ordering::Relaxed);
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// The flags chaos runs Back Office with: the tests' short timings ([`FAST`](crate::FAST)) and
/// a short wait for sales, so a few seconds see every kind of end.
pub fn chaos_args() -> Vec<&'static str> {
    let mut args = crate::FAST.to_vec();
    args.extend(["--wait-expiry-secs", "4"]);
    args
}

/// Runs the chaos against `nodes` (one, or several on one database), registers connecting to
/// `agents_url`, their menus kept in `dir`, the venue seeded through `db`.
pub async fn chaos(nodes: &[&BackOffice], agents_url: &str, dir: &std::path::Path, db: &Db) {
    let seed: u64 = std::env::var("REGSYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("REGSYNC_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    // Each call goes to a node picked at random: managers call any node.
    let pick = |rng: &mut StdRng| nodes[rng.random_range(0..nodes.len())];
    let bo = nodes[0];
    let venue = Venue::seed(db, "Harbour").await;
    let second = admin::create_site(db, &venue.company.id.to_string(), "Terrace")
        .await
        .unwrap();
    let mut registers = Vec::new();
    let mut ids = Vec::new();
    for (site, skip) in [(&venue.site, venue.registers.len()), (&second, 0)] {
        for i in skip..REGISTERS_PER_SITE {
            let created = admin::create_register(db, site, &format!("R{i:03}"))
                .await
                .unwrap();
            ids.push(created.register.id);
            registers.push(created.credential);
        }
    }
    for existing in &venue.registers {
        ids.push(existing.register.id);
        registers.push(existing.credential.clone());
    }
    let token = bo.login(&venue.manager).await.access_token;
    let sites = [venue.site.id, second.id];
    assert_eq!(registers.len(), 2 * REGISTERS_PER_SITE);

    let applied_in_sale = Arc::new(AtomicUsize::new(0));
    let applied = Arc::new(AtomicUsize::new(0));
    let profile = SaleProfile {
        mean_gap: Duration::from_millis(400),
        mean_duration: Duration::from_millis(300),
    };
    let start = |credential: &str, state: &std::path::Path| {
        let mut config = AgentConfig::new(agents_url, credential);
        config.state_path = Some(state.to_owned());
        config.reconnect_max = Duration::from_millis(500);
        let agent = Arc::new(Agent::start(config, Arc::new(NoHooks)));
        let watcher = watch(&agent, applied_in_sale.clone(), applied.clone());
        let sales = run_sales(Arc::downgrade(&agent), profile);
        (agent, sales, watcher)
    };
    let mut fleet: Vec<Register> = registers
        .iter()
        .enumerate()
        .map(|(i, credential)| {
            let state = dir.join(format!("register-{i}.json"));
            let (agent, sales, watcher) = start(credential, &state);
            Register {
                credential: credential.clone(),
                state,
                agent: Some(agent),
                sales: Some(sales),
                watcher: Some(watcher),
            }
        })
        .collect();
    eventually(Duration::from_secs(30), "every register online", || async {
        let (_, snapshot) = bo
            .get(&format!("/v1/sites/{}/registers", sites[1]), &token)
            .await;
        let online = snapshot
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["online"] == true)
            .count();
        (online == REGISTERS_PER_SITE).then_some(())
    })
    .await;

    // Chaos: syncs of one register or a whole site, menu changes, registers dropping and back.
    let mut jobs = Vec::new();
    let chaos_end = tokio::time::Instant::now() + CHAOS;
    let mut actions = 0;
    while tokio::time::Instant::now() < chaos_end {
        actions += 1;
        match rng.random_range(0..10) {
            0..=2 => {
                let site = sites[rng.random_range(0..2)];
                let body = json!({ "retry_when_free": rng.random_bool(0.7) });
                let (status, job) = pick(&mut rng)
                    .call(
                        Method::POST,
                        &format!("/v1/sites/{site}/sync"),
                        Some(&token),
                        Some(body),
                    )
                    .await;
                assert_eq!(status, 202, "{job}");
                jobs.push(job);
            }
            3..=5 => {
                let register = ids[rng.random_range(0..ids.len())];
                let body = json!({ "retry_when_free": rng.random_bool(0.7) });
                let (status, job) = pick(&mut rng)
                    .call(
                        Method::POST,
                        &format!("/v1/registers/{register}/sync"),
                        Some(&token),
                        Some(body),
                    )
                    .await;
                assert_eq!(status, 202, "{job}");
                jobs.push(job);
            }
            6 => {
                let site = sites[rng.random_range(0..2)];
                let body =
                    json!({ "set_settings": { "special": format!("{}", rng.random::<u32>()) } });
                let (status, _) = pick(&mut rng)
                    .call(
                        Method::PATCH,
                        &format!("/v1/sites/{site}/catalog"),
                        Some(&token),
                        Some(body),
                    )
                    .await;
                assert_eq!(status, 200);
            }
            _ => {
                // A register drops (no goodbye) or comes back.
                let i = rng.random_range(0..registers.len());
                let register = &mut fleet[i];
                match register.agent.take() {
                    Some(agent) => {
                        if let Some(sales) = register.sales.take() {
                            sales.abort();
                        }
                        if let Ok(agent) = Arc::try_unwrap(agent) {
                            agent.kill();
                        }
                    }
                    None => {
                        let (agent, sales, watcher) = start(&register.credential, &register.state);
                        register.agent = Some(agent);
                        register.sales = Some(sales);
                        register.watcher = Some(watcher);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..120))).await;
    }

    // Calm: every register back, sales over.
    {
        for register in fleet.iter_mut() {
            if let Some(sales) = register.sales.take() {
                sales.abort();
            }
            match &register.agent {
                Some(agent) => {
                    let _ = agent.end_sale();
                }
                None => {
                    let (agent, sales, watcher) = start(&register.credential, &register.state);
                    sales.abort();
                    register.agent = Some(agent);
                    register.watcher = Some(watcher);
                }
            }
        }
    }

    // Every target of every job reaches a terminal state.
    for job in &jobs {
        let job = bo
            .wait_job(&token, job, "every target terminal", |job| {
                !job["finished_at"].is_null()
            })
            .await;
        for target in job["targets"].as_array().unwrap() {
            let state = target["state"].as_str().unwrap();
            assert!(
                [
                    "synced",
                    "skipped_busy",
                    "skipped_offline",
                    "expired",
                    "failed"
                ]
                .contains(&state),
                "not terminal: {target}"
            );
        }
    }

    // With everyone idle and online, one last sync per site brings every register up to date.
    eventually(
        Duration::from_secs(30),
        "every register online again",
        || async {
            let mut online = 0;
            for site in sites {
                let (_, registers) = bo.get(&format!("/v1/sites/{site}/registers"), &token).await;
                online += registers
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["online"] == true)
                    .count();
            }
            (online == registers.len()).then_some(())
        },
    )
    .await;
    for site in sites {
        let bo = pick(&mut rng);
        let job = bo.sync_site(&token, site, true).await;
        let job = pick(&mut rng)
            .wait_job(&token, &job, "the final sync", |job| {
                !job["finished_at"].is_null()
            })
            .await;
        assert_eq!(
            job["counts"]["synced"], REGISTERS_PER_SITE as u64,
            "{}",
            job["counts"]
        );
        let (_, registers) = bo.get(&format!("/v1/sites/{site}/registers"), &token).await;
        for register in registers.as_array().unwrap() {
            assert_eq!(register["up_to_date"], true, "{register}");
        }
    }
    for (i, register) in fleet.iter().enumerate() {
        let agent = register.agent.as_ref().unwrap();
        let (_, seen) = bo.get(&format!("/v1/registers/{}", ids[i]), &token).await;
        assert_eq!(
            agent.applied_revision(),
            seen["applied_revision"].as_i64().unwrap(),
            "register {i}"
        );
    }

    println!(
        "{actions} actions, {} jobs, {} menus applied, {} applied during a sale",
        jobs.len(),
        applied.load(Ordering::Relaxed),
        applied_in_sale.load(Ordering::Relaxed)
    );
    assert!(
        applied.load(Ordering::Relaxed) > 0,
        "the run exercised applying at all"
    );
    assert_eq!(
        applied_in_sale.load(Ordering::Relaxed),
        0,
        "a sync was applied during a sale (seed {seed})"
    );
}
