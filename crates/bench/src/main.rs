//! `regsync-bench`: Back Office with many connected registers, measured.
//!
//! Back Office runs in a child process (this binary, re-executed as `backoffice`), so its memory
//! and CPU are read from `/proc` without the registers' share; the registers are real agents in
//! this process, over real loopback sockets. Figures:
//!
//! - memory per connected register: Back Office's RSS growth from idle to N registers online, / N;
//! - "sync online registers" for N idle registers: from the POST to every target terminal, as seen
//!   through the API (polled every millisecond), over several rounds: p50, p99, max;
//! - Back Office CPU while N registers only beat (every 10 s, the default).
//!
//! Compare with `../shared/tools/floor-bench` run in the same session (see BENCHMARKS.md).

#![allow(clippy::print_stdout)]

mod cluster;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use regsync_backoffice::admin::{self, NewUser};
use regsync_backoffice::{App, Settings, db};
use regsync_protocol::api::Permission;
use regsync_register::{Agent, AgentConfig, NoHooks};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "regsync-bench",
    about = "Back Office with many registers, measured"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Mode>,
    /// Register counts to measure memory (and heartbeat CPU) at.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    counts: Vec<usize>,
    /// The count at which "sync online registers" is timed.
    #[arg(long, default_value_t = 1000)]
    fanout: usize,
    /// Rounds of "sync online registers".
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Managers following live events during a second series of rounds (0: none).
    #[arg(long, default_value_t = 1)]
    watchers: usize,
    /// Seconds over which heartbeat CPU is measured.
    #[arg(long, default_value_t = 30)]
    heartbeat_window_secs: u64,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Internal: run Back Office on a database, print its address (and node id).
    #[command(hide = true)]
    Backoffice { database: String },
    /// Several nodes on PostgreSQL behind HAProxy: fan-out, memory per node, a node's death.
    Cluster(cluster::ClusterArgs),
}

const PASSWORD: &str = "bench password";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    regsync_backoffice::raise_open_file_limit();
    match cli.command {
        Some(Mode::Backoffice { ref database }) => runtime.block_on(backoffice(database)),
        Some(Mode::Cluster(args)) => runtime.block_on(cluster::run(args)),
        None => runtime.block_on(bench(cli)),
    }
}

async fn backoffice(database: &str) -> anyhow::Result<()> {
    regsync_log::init("warn");
    let db = db::open(database).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = App::start(db, Settings::default()).await?;
    let node = app.node.map(|id| id.to_string()).unwrap_or_default();
    println!("{} {node}", listener.local_addr()?);
    regsync_backoffice::serve(listener, app, std::future::pending()).await?;
    Ok(())
}

/// Back Office in its own process.
struct Server {
    child: Child,
    url: String,
    /// On PostgreSQL: the node's id.
    node: String,
}

impl Server {
    fn start(database: &str) -> anyhow::Result<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["backoffice", database])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let address = words.next().context("the node's address")?;
        Ok(Server {
            child,
            url: format!("http://{address}"),
            node: words.next().unwrap_or_default().to_owned(),
        })
    }

    fn status(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .with_context(|| format!("{field} in /proc/pid/status"))?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
    }

    fn rss_kb(&self) -> anyhow::Result<u64> {
        self.status("VmRSS:")
    }

    /// User plus system CPU time, in clock ticks (1/100 s on Linux).
    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let after_name = &stat[stat.rfind(')').context("stat")? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Venue {
    site: String,
    credentials: Vec<String>,
    _dir: tempfile::TempDir,
    database: String,
}

async fn seed(count: usize) -> anyhow::Result<Venue> {
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("bench.db").to_string_lossy().into_owned();
    let db = db::open(&database).await?;
    let company_ref = bench_company(&db).await?;
    let site = admin::create_site(&db, &company_ref, "Main Bar").await?;
    let mut credentials = Vec::with_capacity(count);
    for i in 0..count {
        credentials.push(
            admin::create_register(&db, &site, &format!("R{i:05}"))
                .await?
                .credential,
        );
    }
    db.close().await;
    Ok(Venue {
        site: site.id.to_string(),
        credentials,
        _dir: dir,
        database,
    })
}

/// The bench's company and its manager (who signs in with [`PASSWORD`]); answers its id.
async fn bench_company(db: &regsync_backoffice::Db) -> anyhow::Result<String> {
    let company = admin::create_company(db, "Bench").await?;
    let company_ref = company.id.to_string();
    admin::create_user(
        db,
        NewUser {
            company: &company_ref,
            email: "bench@bench.example",
            display_name: "Bench",
            password: PASSWORD,
            permissions: &[Permission::Sites],
        },
    )
    .await?;
    Ok(company_ref)
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn login(url: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::new();
        let session: Value = http
            .post(format!("{url}/v1/auth/login"))
            .json(&json!({ "email": "bench@bench.example", "password": PASSWORD }))
            .send()
            .await?
            .json()
            .await?;
        let token = session["access_token"]
            .as_str()
            .context("signed in")?
            .to_owned();
        Ok(Api {
            http,
            url: url.to_owned(),
            token,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?
            .json()
            .await?)
    }

    async fn post(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?
            .json()
            .await?)
    }

    /// Follows /v1/events until aborted, reading everything as a manager's app would.
    fn watch(&self) -> tokio::task::JoinHandle<()> {
        let request = self
            .http
            .get(format!("{}/v1/events", self.url))
            .bearer_auth(&self.token);
        tokio::spawn(async move {
            let Ok(mut response) = request.send().await else {
                return;
            };
            while let Ok(Some(_chunk)) = response.chunk().await {}
        })
    }

    async fn online(&self, site: &str) -> anyhow::Result<usize> {
        let registers = self.get(&format!("/v1/sites/{site}/registers")).await?;
        Ok(registers
            .as_array()
            .context("registers")?
            .iter()
            .filter(|r| r["online"] == true)
            .count())
    }
}

async fn connect(url: &str, credentials: &[String]) -> Vec<Agent> {
    let mut agents = Vec::with_capacity(credentials.len());
    for chunk in credentials.chunks(250) {
        for credential in chunk {
            let mut config = AgentConfig::new(url, credential.clone());
            config.reconnect_min = Duration::from_millis(500);
            agents.push(Agent::start(config, Arc::new(NoHooks)));
        }
        // Let each wave finish its handshakes before the next: a burst of thousands at once only
        // measures the listen backlog.
        let deadline = Instant::now() + Duration::from_secs(30);
        while agents.iter().any(|a| !a.is_connected()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    agents
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Times of "sync online registers", in milliseconds, one per round.
struct SiteSyncTimes {
    /// Back Office's own record of each job: created -> every target terminal (as floor-bench
    /// times its fan-out inside its server).
    in_backoffice: Vec<f64>,
    /// From sending the POST to holding the finished job, asked for the way `regsync sync`
    /// does: one request that Back Office answers when the job finishes.
    seen: Vec<f64>,
    /// The POST's 202, with the saved job.
    accepted: Vec<f64>,
}

impl SiteSyncTimes {
    fn print(mut self, count: usize, rounds: usize, label: &str) {
        for list in [&mut self.in_backoffice, &mut self.seen, &mut self.accepted] {
            list.sort_by(f64::total_cmp);
        }
        let line = |list: &[f64]| {
            format!(
                "p50={:.1} p99={:.1} max={:.1}",
                percentile(list, 0.5),
                percentile(list, 0.99),
                percentile(list, 1.0)
            )
        };
        println!("N={count} sync_online_registers_ms rounds={rounds} [{label}]");
        println!(
            "N={count}   in_backoffice(created->all terminal) {}",
            line(&self.in_backoffice)
        );
        println!(
            "N={count}   seen_by_client(POST->finished job in hand) {}",
            line(&self.seen)
        );
        println!(
            "N={count}   post_answered(202 with the saved job) {}",
            line(&self.accepted)
        );
    }
}

async fn time_site_syncs(
    api: &Api,
    site: &str,
    count: usize,
    rounds: usize,
) -> anyhow::Result<SiteSyncTimes> {
    let mut times = SiteSyncTimes {
        in_backoffice: Vec::with_capacity(rounds),
        seen: Vec::with_capacity(rounds),
        accepted: Vec::with_capacity(rounds),
    };
    for _ in 0..rounds {
        let started = Instant::now();
        let job = api.post(&format!("/v1/sites/{site}/sync")).await?;
        times
            .accepted
            .push(started.elapsed().as_secs_f64() * 1000.0);
        let id = job["id"].as_str().context("job id")?.to_owned();
        let job = api.get(&format!("/v1/jobs/{id}?wait_secs=20")).await?;
        times.seen.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            job["finished_at"].is_string(),
            "the job did not finish within 20 s: {}",
            job["counts"]
        );
        anyhow::ensure!(
            job["counts"]["synced"] == count as u64,
            "not every register synced: {}",
            job["counts"]
        );
        let at = |field: &str| -> anyhow::Result<DateTime<Utc>> {
            Ok(job[field].as_str().context("a time")?.parse()?)
        };
        let took = at("finished_at")? - at("created_at")?;
        times
            .in_backoffice
            .push(took.num_microseconds().context("µs")? as f64 / 1000.0);
    }
    Ok(times)
}

async fn bench(cli: Cli) -> anyhow::Result<()> {
    let mut counts = cli.counts.clone();
    if !counts.contains(&cli.fanout) {
        counts.push(cli.fanout);
    }
    counts.sort_unstable();
    for count in counts {
        let venue = seed(count).await?;
        let server = Server::start(&venue.database)?;
        let api = Api::login(&server.url).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_kb = server.rss_kb()?;

        let started = Instant::now();
        let agents = connect(&server.url, &venue.credentials).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let online = api.online(&venue.site).await?;
            if online == count {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {online} of {count} registers came online");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let connect_secs = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let online_kb = server.rss_kb()?;
        let per_register_kb = online_kb.saturating_sub(idle_kb) as f64 / count as f64;
        println!(
            "N={count} connect_all_s={connect_secs:.1} backoffice_rss_mb idle={:.1} online={:.1} \
             rss_per_register_kb={per_register_kb:.1}",
            idle_kb as f64 / 1024.0,
            online_kb as f64 / 1024.0
        );

        let window = Duration::from_secs(cli.heartbeat_window_secs);
        let before = server.cpu_ticks()?;
        tokio::time::sleep(window).await;
        let ticks = server.cpu_ticks()?.saturating_sub(before);
        let cpu_share = ticks as f64 / 100.0 / window.as_secs_f64();
        let beats = count as f64 * window.as_secs_f64()
            / Settings::default().heartbeat_interval.as_secs_f64();
        println!(
            "N={count} heartbeat_cpu_percent={:.2} (of one core, beats every {} s) cpu_us_per_heartbeat={:.1}",
            cpu_share * 100.0,
            Settings::default().heartbeat_interval.as_secs(),
            ticks as f64 * 10_000.0 / beats.max(1.0)
        );

        if count == cli.fanout {
            fan_out(&cli, &server, &api, &venue.site, count).await?;
        }
        for agent in agents {
            agent.kill();
        }
        drop(server);
    }
    Ok(())
}

/// The fan-out rounds at `count` registers: latency and Back Office's CPU per round, with no one
/// watching and then with managers watching live events.
async fn fan_out(
    cli: &Cli,
    server: &Server,
    api: &Api,
    site: &str,
    count: usize,
) -> anyhow::Result<()> {
    let before = server.cpu_ticks()?;
    let quiet = time_site_syncs(api, site, count, cli.rounds).await?;
    let ticks = server.cpu_ticks()?.saturating_sub(before);
    quiet.print(count, cli.rounds, "no one watching");
    // Steadier than latency on a shared machine: what a round costs Back Office.
    println!(
        "N={count}   backoffice_cpu_ms_per_round={:.1}",
        ticks as f64 * 10.0 / cli.rounds.max(1) as f64
    );
    if cli.watchers > 0 {
        // Managers with the app open: each gets every register's and target's change.
        let watching: Vec<_> = (0..cli.watchers).map(|_| api.watch()).collect();
        let watched = time_site_syncs(api, site, count, cli.rounds).await?;
        watched.print(
            count,
            cli.rounds,
            &format!("{} manager(s) watching live events", cli.watchers),
        );
        for watcher in watching {
            watcher.abort();
        }
    }
    Ok(())
}
