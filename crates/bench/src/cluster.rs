//! `regsync-bench cluster`: Back Office as several nodes on PostgreSQL behind HAProxy, measured.
//!
//! A real PostgreSQL server in a temporary folder, N node processes (this binary as `backoffice`,
//! so each node's memory and CPU are its own in `/proc`), one HAProxy for every ~9,000 registers
//! (each holds two sockets a register under this machine's 20,000-file limit), and the registers
//! as real agents in this process connecting through the balancers. Figures:
//!
//! - memory per register on each node: its RSS growth from idle to its registers online, / them;
//! - "sync online registers" for the fan-out site, whose registers sit on every node, asked on a
//!   node through the balancer: p50, p99, max (in Back Office, and as a client sees it);
//! - a node's death (`kill -9`): the time until every one of its registers is back online on the
//!   others, through the balancers, as Back Office's registers page shows it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use regsync_backoffice::admin;
use regsync_testkit::{Balancer, Postgres};

use crate::{Api, Server, bench_company, connect, time_site_syncs};

/// The longest the registers may take to be online (again).
const ALL_BACK: Duration = Duration::from_secs(300);

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Back Office nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Registers in all, over two sites.
    #[arg(long, default_value_t = 10_000)]
    registers: usize,
    /// Registers of the site whose "sync online registers" is timed.
    #[arg(long, default_value_t = 1_000)]
    site: usize,
    /// Rounds of "sync online registers".
    #[arg(long, default_value_t = 50)]
    rounds: usize,
    /// Registers one balancer carries.
    #[arg(long, default_value_t = 8_000)]
    per_balancer: usize,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.site <= args.registers,
        "--site must not exceed --registers"
    );
    let temp = tempfile::tempdir()?;
    let postgres = Postgres::start();
    let database = postgres.fresh_database().await;
    let seeded = seed(&database, args.registers, args.site).await?;

    let mut nodes = Vec::with_capacity(args.nodes);
    for _ in 0..args.nodes {
        nodes.push(Server::start(&database)?);
    }
    let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
    let balancers_needed = args.registers.div_ceil(args.per_balancer.max(1)).max(1);
    let mut balancers = Vec::with_capacity(balancers_needed);
    for _ in 0..balancers_needed {
        balancers.push(Balancer::start(temp.path(), &urls).await);
    }
    let api = Api::login(&balancers[0].url).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kb: Vec<u64> = nodes.iter().map(Server::rss_kb).collect::<Result<_, _>>()?;

    // Each balancer takes its share of the registers, round robin over the nodes behind it.
    let started = Instant::now();
    let mut agents = Vec::with_capacity(args.registers);
    let share = args.registers.div_ceil(balancers.len());
    for (balancer, credentials) in balancers.iter().zip(seeded.credentials.chunks(share)) {
        agents.extend(connect(&balancer.url, credentials).await);
    }
    wait_online(&api, &seeded.sites, args.registers, ALL_BACK).await?;
    println!(
        "cluster nodes={} registers={} balancers={} connect_all_s={:.1}",
        args.nodes,
        args.registers,
        balancers.len(),
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    // One pool for the bench's own reads, opened once (the node-death poll runs every 20 ms).
    let pool = regsync_backoffice::db::postgres_pool(&database, 2).await?;
    let held = held_per_node(&pool).await?;
    for (i, node) in nodes.iter().enumerate() {
        let online_kb = node.rss_kb()?;
        let count = node
            .node
            .parse()
            .ok()
            .and_then(|id| held.get(&id).copied())
            .unwrap_or(0);
        println!(
            "cluster node={i} registers_held={count} rss_mb idle={:.1} online={:.1} \
             rss_per_register_kb={:.1}",
            idle_kb[i] as f64 / 1024.0,
            online_kb as f64 / 1024.0,
            online_kb.saturating_sub(idle_kb[i]) as f64 / count.max(1) as f64
        );
    }

    let times = time_site_syncs(&api, &seeded.sites[0], args.site, args.rounds).await?;
    times.print(
        args.site,
        args.rounds,
        &format!("{} nodes on PostgreSQL behind HAProxy", args.nodes),
    );

    if nodes.len() < 2 {
        return Ok(());
    }
    // A node dies: how long until its registers are back, on the others.
    let doomed = nodes.pop().context("a node")?;
    let doomed_held = doomed
        .node
        .parse()
        .ok()
        .and_then(|id| held.get(&id).copied())
        .unwrap_or(0);
    let doomed_id: Option<uuid::Uuid> = doomed.node.parse().ok();
    drop(doomed);
    let died = Instant::now();
    // Back when a live node holds every register again (each reconnected through a balancer
    // and was claimed), and when the registers page, asked on a live node, shows them all.
    let deadline = died + Duration::from_secs(300);
    loop {
        let held = held_per_node(&pool).await?;
        let on_live: usize = held
            .iter()
            .filter(|(node, _)| Some(**node) != doomed_id)
            .map(|(_, n)| n)
            .sum();
        if on_live == args.registers {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {on_live} of {} registers came back", args.registers);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back = died.elapsed().as_secs_f64();
    wait_online(&api, &seeded.sites, args.registers, ALL_BACK).await?;
    println!(
        "cluster node_death registers_on_it={doomed_held} all_held_again_s={back:.2} \
         page_shows_all_online_s={:.2}",
        died.elapsed().as_secs_f64()
    );
    for agent in agents {
        agent.kill();
    }
    drop(balancers);
    drop(nodes);
    Ok(())
}

struct Seeded {
    /// The fan-out site first.
    sites: Vec<String>,
    credentials: Vec<String>,
}

async fn seed(database: &str, registers: usize, site_size: usize) -> anyhow::Result<Seeded> {
    let db = regsync_backoffice::db::open(database).await?;
    let company_ref = bench_company(&db).await?;
    let fan_out = admin::create_site(&db, &company_ref, "Main Bar").await?;
    let rest = admin::create_site(&db, &company_ref, "Group").await?;
    let mut credentials = Vec::with_capacity(registers);
    // Interleaved, so every balancer (and so every node) carries registers of both sites.
    let mut on_fan_out = 0;
    for i in 0..registers {
        let fan = on_fan_out < site_size && (i * site_size / registers.max(1)) >= on_fan_out;
        let site = if fan { &fan_out } else { &rest };
        on_fan_out += usize::from(fan);
        let created = admin::create_register(&db, site, &format!("R{i:05}")).await?;
        credentials.push(created.credential);
    }
    db.close().await;
    Ok(Seeded {
        sites: vec![fan_out.id.to_string(), rest.id.to_string()],
        credentials,
    })
}

async fn online(api: &Api, sites: &[String]) -> anyhow::Result<usize> {
    let mut online = 0;
    for site in sites {
        online += api.online(site).await?;
    }
    Ok(online)
}

async fn wait_online(
    api: &Api,
    sites: &[String],
    count: usize,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let now_online = online(api, sites).await.unwrap_or(0);
        if now_online == count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {now_online} of {count} registers came online");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers held, by node id.
async fn held_per_node(pool: &sqlx::PgPool) -> anyhow::Result<HashMap<uuid::Uuid, usize>> {
    let rows: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "SELECT node_id, count(*) FROM register_sessions WHERE online GROUP BY node_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(node, n)| (node, usize::try_from(n).unwrap_or(0)))
        .collect())
}
