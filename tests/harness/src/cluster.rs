//! Back Office as several nodes: a real PostgreSQL server, N real `regsync-backoffice`
//! processes on one database, and HAProxy (Debian's package) in front of them as the one address
//! registers and managers use, checking each node's health so a dead node's registers come back
//! through it on the others.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use regsync_backoffice::Db;
use tokio::process::{Child, Command};

use crate::{BackOffice, Postgres, WAIT, eventually};

pub struct Cluster {
    pub postgres: Arc<Postgres>,
    pub database: String,
    /// One pool for the test's own reads and seeding, opened once.
    pub pool: sqlx::PgPool,
    pub nodes: Vec<BackOffice>,
    pub balancer: Balancer,
    _temp: tempfile::TempDir,
}

impl Cluster {
    /// `count` nodes on a fresh database, each started with `args`, behind a balancer.
    pub async fn start(count: usize, args: &[&str]) -> Cluster {
        let temp = tempfile::tempdir().unwrap();
        let postgres = Arc::new(Postgres::start());
        let database = postgres.fresh_database().await;
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut nodes = Vec::new();
        for i in 0..count {
            let dir = temp.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            nodes.push(BackOffice::start_on(&dir, &database, args.clone()).await);
        }
        let urls: Vec<&str> = nodes.iter().map(|bo| bo.url.as_str()).collect();
        let balancer = Balancer::start(temp.path(), &urls).await;
        // The nodes migrated the database already.
        let pool = regsync_backoffice::db::postgres_pool(&database, 4)
            .await
            .unwrap();
        Cluster {
            postgres,
            database,
            pool,
            nodes,
            balancer,
            _temp: temp,
        }
    }

    /// The cluster's database, for seeding through `admin` (shares [`Cluster::pool`]).
    pub fn db(&self) -> Db {
        Db::Postgres(self.pool.clone())
    }

    /// A register agent connecting through the balancer.
    pub fn agent(&self, credential: &str) -> regsync_register::Agent {
        let mut config = regsync_register::AgentConfig::new(self.balancer.url.clone(), credential);
        config.reconnect_max = Duration::from_millis(500);
        regsync_register::Agent::start(config, Arc::new(regsync_register::NoHooks))
    }

    /// Which node holds `register_id` now (its index), if any live one does.
    pub async fn holder(&self, register_id: uuid::Uuid) -> Option<usize> {
        let node: Option<uuid::Uuid> = sqlx::query_scalar(
            "SELECT node_id FROM register_sessions WHERE register_id = $1 AND online",
        )
        .bind(register_id)
        .fetch_optional(&self.pool)
        .await
        .unwrap();
        let node = node?;
        for (i, bo) in self.nodes.iter().enumerate() {
            if bo.log().contains(&node.to_string()) {
                return Some(i);
            }
        }
        None
    }

    /// Waits until a live node holds the register; answers which.
    pub async fn wait_held(&self, register_id: uuid::Uuid) -> usize {
        eventually(
            WAIT,
            &format!("register {register_id} held by a node"),
            || self.holder(register_id),
        )
        .await
    }
}

/// HAProxy in front of the nodes: HTTP and WebSocket, health-checked every 500 ms.
pub struct Balancer {
    child: Child,
    pub url: String,
    config: PathBuf,
}

impl Balancer {
    /// HAProxy in front of the nodes at `urls`, its configuration and log in `dir`. One holds
    /// about 9,000 connections (two sockets each) under a 20,000-file limit; more registers need
    /// a second balancer.
    pub async fn start(dir: &std::path::Path, urls: &[&str]) -> Balancer {
        let port = crate::free_port();
        let servers: String = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let address = url.trim_start_matches("http://");
                format!("    server node{i} {address} check\n")
            })
            .collect();
        let config = dir.join(format!("haproxy-{port}.cfg"));
        std::fs::write(
            &config,
            format!(
                "global\n    maxconn 9000\n\
                 defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n\
                 \x20   timeout server 60s\n    timeout tunnel 1h\n    option redispatch\n\
                 \x20   retries 3\n\
                 frontend regsync\n    bind 127.0.0.1:{port}\n    default_backend nodes\n\
                 backend nodes\n    balance roundrobin\n\
                 \x20   option httpchk GET /v1/health\n    http-check expect status 200\n\
                 \x20   default-server inter 500ms fall 2 rise 1\n{servers}"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("haproxy-{port}.log"))).unwrap();
        let child = Command::new(haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually(WAIT, "the balancer answers", || async {
            let health = http.get(format!("{url}/v1/health")).send().await;
            health.ok().filter(|r| r.status().is_success()).map(drop)
        })
        .await;
        Balancer { child, url, config }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn config(&self) -> &std::path::Path {
        &self.config
    }
}

/// Debian puts HAProxy in /usr/sbin, off a normal user's `PATH`.
fn haproxy() -> PathBuf {
    [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("HAProxy is not installed (sudo apt-get install haproxy)"))
}
