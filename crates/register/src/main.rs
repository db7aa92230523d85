//! `regsync-register`: simulated registers against a Back Office, with random sales, printing
//! what staff would see (banners) and what happens to each register.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use regsync_register::simulate::{SaleProfile, run_sales};
use regsync_register::{Agent, AgentConfig, AgentEvent, AgentHooks, CrashPoint};
use regsync_transport::Trust;

/// Simulated registers for Register Sync
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Back Office's URL.
    #[arg(
        long,
        env = "REGSYNC_BACK_OFFICE",
        default_value = "http://127.0.0.1:8080"
    )]
    back_office: String,
    /// One register's device credential (as printed by `regsync-backoffice register create`).
    #[arg(long, env = "REGSYNC_CREDENTIAL", conflicts_with = "credentials_file")]
    credential: Option<String>,
    /// A file with one device credential per line, for many registers.
    #[arg(long)]
    credentials_file: Option<PathBuf>,
    /// How many registers of the credentials file to run (default: all).
    #[arg(long)]
    count: Option<usize>,
    /// Keep each register's menu in this folder (default: in memory only).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Mean seconds between sales; 0: no sales.
    #[arg(long, default_value_t = 0.0)]
    sale_every: f64,
    /// Mean seconds a sale lasts.
    #[arg(long, default_value_t = 5.0)]
    sale_duration: f64,
    /// Allow `http://` to a Back Office on another computer: the device credentials and menus
    /// then cross the network unencrypted.
    #[arg(long)]
    allow_http: bool,
    /// Also trust the certificate authority in this PEM file.
    #[arg(long, env = "REGSYNC_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Exit abruptly when a sync arrives, before applying it (crash tests).
    #[arg(long, hide = true)]
    crash_before_apply: bool,
    /// Exit abruptly after applying a sync, before answering it (crash tests).
    #[arg(long, hide = true)]
    crash_after_apply: bool,
}

struct Printer {
    label: String,
}

impl AgentHooks for Printer {
    fn banner(&self, text: &str) {
        say(&format!("[{}] banner: {text}", self.label));
    }

    fn event(&self, event: &AgentEvent) {
        let line = match event {
            AgentEvent::Connected { register_name } => format!("connected as {register_name}"),
            AgentEvent::Disconnected { reason } => format!("disconnected: {reason}"),
            AgentEvent::Applied { revision, .. } => format!("applied menu revision {revision}"),
            AgentEvent::AlreadyUpToDate { revision, .. } => {
                format!("already has menu revision {revision}")
            }
            AgentEvent::RefusedInSale { .. } => "sync refused: in a sale".to_owned(),
            AgentEvent::SaleStarted => "sale started".to_owned(),
            AgentEvent::SaleEnded => "sale ended".to_owned(),
            AgentEvent::Crashed => {
                say(&format!(
                    "[{}] crashed (injected fault); exiting",
                    self.label
                ));
                std::process::exit(101);
            }
        };
        say(&format!("[{}] {line}", self.label));
    }
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    regsync_log::init("warn");
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            say(&format!("error: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut credentials: Vec<String> = match (&cli.credential, &cli.credentials_file) {
        (Some(credential), _) => vec![credential.clone()],
        (None, Some(file)) => std::fs::read_to_string(file)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        (None, None) => anyhow::bail!("give --credential or --credentials-file"),
    };
    if let Some(count) = cli.count {
        anyhow::ensure!(
            count <= credentials.len(),
            "--count {count} but only {} credentials",
            credentials.len()
        );
        credentials.truncate(count);
    }
    let profile = SaleProfile {
        mean_gap: Duration::from_secs_f64(cli.sale_every.max(0.0)),
        mean_duration: Duration::from_secs_f64(cli.sale_duration.max(0.0)),
    };
    let crash_at = match (cli.crash_before_apply, cli.crash_after_apply) {
        (true, _) => Some(CrashPoint::BeforeApplying),
        (_, true) => Some(CrashPoint::AfterApplying),
        _ => None,
    };
    // Refuse an unencrypted or unusable address before starting anything.
    regsync_transport::checked(&cli.back_office, cli.allow_http)?;
    let trust = match &cli.ca_cert {
        Some(path) => Trust::default().with_ca_file(path)?,
        None => Trust::default(),
    };
    let tls = trust.client_config();
    let mut registers = Vec::with_capacity(credentials.len());
    for (i, credential) in credentials.into_iter().enumerate() {
        let mut config = AgentConfig::new(cli.back_office.clone(), credential);
        config.allow_plain_http = cli.allow_http;
        config.tls = Some(tls.clone());
        config.state_path = cli
            .state_dir
            .as_ref()
            .map(|dir| dir.join(format!("register-{i}.json")));
        config.crash_at = crash_at;
        let hooks = Arc::new(Printer {
            label: format!("register {}", i + 1),
        });
        let agent = Arc::new(Agent::start(config, hooks));
        let sales = run_sales(Arc::downgrade(&agent), profile);
        registers.push((agent, sales));
    }
    say(&format!(
        "running {} simulated register(s); Ctrl-C stops",
        registers.len()
    ));
    tokio::signal::ctrl_c().await?;
    for (agent, sales) in registers {
        sales.abort();
        if let Ok(agent) = Arc::try_unwrap(agent) {
            agent.shutdown().await;
        }
    }
    Ok(())
}
