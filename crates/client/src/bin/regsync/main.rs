//! `regsync`: Register Sync from the command line, for IT staff and scripts.
//!
//! Signs in once (`regsync login`), keeping only the refresh token, in the OS keychain; the config
//! file holds just the Back Office URL and the email. Tables for people, `--json` for scripts,
//! colour only on a terminal. Exit codes (also in `--help`):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done; every register synced |
//! | 1 | something else went wrong (bad arguments, a Back Office error) |
//! | 2 | not signed in, or not allowed |
//! | 3 | Back Office unreachable, not answering, or its certificate refused |
//! | 4 | done, but some registers were not synced (skipped, failed, expired, still waiting) |

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use chrono::Local;
use clap::{Parser, Subcommand};
use regsync_client::{Client, Error, Update, keychain};
use regsync_protocol::ExitCode as Exit;
use regsync_protocol::api::{Register, Site};
use regsync_protocol::sync::{MAX_QUEUE_MINUTES, SyncRequest, TargetState};
use uuid::Uuid;

mod config;
mod output;
mod register;
mod schedule;

use config::{Config, blocking, config_path, endpoint, load_config, save_config};
use output::{colour, print_group, print_job, print_jobs, print_json, relative, table, watch_line};
const EXIT_HELP: &str = "Exit codes: 0 done (every register synced); 1 other error; 2 not signed \
in or not allowed; 3 Back Office unreachable or its certificate refused; 4 done, but some registers were not synced.";

#[derive(Debug, Parser)]
#[command(name = "regsync", version, about = "Sync point-of-sale registers from Back Office", after_help = EXIT_HELP)]
struct Cli {
    /// Machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Where the config file lives (default: the OS's config folder for regsync).
    #[arg(long, global = true, env = "REGSYNC_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in; the session is kept in the OS keychain.
    Login(Login),
    /// Sign out and forget the session.
    Logout,
    /// Who is signed in.
    Whoami,
    /// The sites you can see.
    Sites,
    /// Registers of a site: online, in a sale, last synced, up to date.
    Registers {
        /// The site's name or id (default: every site).
        #[arg(long)]
        site: Option<String>,
        /// Only registers whose name holds this (any case).
        #[arg(long)]
        find: Option<String>,
        /// Only registers that are offline, in a sale, or behind the latest menu.
        #[arg(long, value_enum)]
        show: Option<register::Show>,
    },
    /// A register's own page: what it is missing from the latest menu, its recent syncs, and
    /// when it went online and offline.
    Register {
        /// The register's name or id.
        register: String,
        /// The site's name or id, when several registers have that name.
        #[arg(long)]
        site: Option<String>,
    },
    /// Sync one register, or every online register of a site (`--online --site`).
    Sync(Sync),
    /// Recent syncs of a site; with --csv, every sync over a time range, one line per register.
    Jobs {
        #[arg(long)]
        site: Option<String>,
        /// How many, newest first (1 to 200).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// Write the history as CSV (for a spreadsheet) instead: jobs and their registers.
        #[arg(long)]
        csv: bool,
        /// With --csv: from this date or time (2026-11-01, or RFC 3339); default 30 days ago.
        #[arg(long, requires = "csv")]
        from: Option<String>,
        /// With --csv: up to (not including) this date or time; default now.
        #[arg(long, requires = "csv")]
        to: Option<String>,
    },
    /// Follow changes live until Ctrl-C.
    Watch,
    /// Scheduled syncs of a site ("every day at 05:30"), in the site's time zone.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
}

/// What failed, and the exit code it deserves.
struct Failure {
    code: Exit,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        let error = error.into();
        let code = match error.downcast_ref::<Error>() {
            Some(Error::NotSignedIn { .. } | Error::Forbidden { .. }) => Exit::NotSignedIn,
            Some(Error::Unreachable { .. } | Error::TimedOut(_) | Error::Certificate { .. }) => {
                Exit::Unreachable
            }
            _ => Exit::Failed,
        };
        Failure { code, error }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    regsync_log::init("warn");
    match run(cli).await {
        Ok(code) => ExitCode::from(code as u8),
        Err(Failure { code, error }) => {
            let hint = match code {
                Exit::NotSignedIn => "\n(sign in with `regsync login --url URL --email EMAIL`)",
                _ => "",
            };
            eprintln!("error: {error:#}{hint}");
            ExitCode::from(code as u8)
        }
    }
}

/// Signs in from the stored session, storing each rotated refresh token.
async fn signed_in(config_dir: Option<&Path>) -> Result<Client, Failure> {
    let config = load_config(config_dir)?.ok_or_else(|| Failure {
        code: Exit::NotSignedIn,
        error: anyhow!("not signed in"),
    })?;
    let (url, email) = (config.url.clone(), config.email.clone());
    let token = blocking(move || keychain::load(&url, &email))
        .await?
        .ok_or_else(|| Failure {
            code: Exit::NotSignedIn,
            error: anyhow!("not signed in (no session in the OS keychain)"),
        })?;
    let (url, email) = (config.url.clone(), config.email.clone());
    let on_refresh: regsync_client::OnRefresh = std::sync::Arc::new(move |token: &str| {
        if let Err(error) = keychain::store(&url, &email, token) {
            tracing::warn!(%error, "could not save the renewed session");
        }
    });
    Ok(Client::resume(config.endpoint()?, &token, Some(on_refresh)).await?)
}

async fn find_site(client: &Client, reference: &str) -> anyhow::Result<Site> {
    let sites = client.sites().await?;
    let wanted = Uuid::parse_str(reference).ok();
    sites
        .into_iter()
        .find(|s| Some(s.id) == wanted || s.name.eq_ignore_ascii_case(reference))
        .ok_or_else(|| anyhow!("no site named `{reference}`"))
}

async fn sites_of(client: &Client, site: Option<&str>) -> anyhow::Result<Vec<Site>> {
    match site {
        Some(reference) => Ok(vec![find_site(client, reference).await?]),
        None => Ok(client.sites().await?),
    }
}

async fn find_register(
    client: &Client,
    reference: &str,
    site: Option<&str>,
) -> anyhow::Result<Register> {
    if let Ok(id) = Uuid::parse_str(reference) {
        return Ok(client.register(id).await?);
    }
    let mut found = Vec::new();
    for site in sites_of(client, site).await? {
        found.extend(
            client
                .registers(site.id)
                .await?
                .into_iter()
                .filter(|r| r.name.eq_ignore_ascii_case(reference)),
        );
    }
    match found.len() {
        0 => Err(anyhow!("no register named `{reference}`")),
        1 => Ok(found.remove(0)),
        _ => Err(anyhow!(
            "several registers are named `{reference}`; add --site"
        )),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "no terminal to ask for the password on; use --password-stdin"
    );
    Ok(rpassword::prompt_password("Password: ")?)
}

async fn run(cli: Cli) -> Result<Exit, Failure> {
    let dir = cli.config_dir.as_deref();
    let json = cli.json;
    match cli.command {
        Command::Login(login) => login.run(dir, json).await,
        Command::Logout => logout(dir).await,
        Command::Whoami => whoami(&signed_in(dir).await?, json).await,
        Command::Sites => sites(&signed_in(dir).await?, json).await,
        Command::Registers { site, find, show } => {
            registers(&signed_in(dir).await?, site, find, show, json).await
        }
        Command::Register { register, site } => {
            register::show_register(&signed_in(dir).await?, &register, site.as_deref(), json).await
        }
        Command::Sync(sync) => sync.run(&signed_in(dir).await?, json).await,
        Command::Jobs {
            site,
            csv: true,
            from,
            to,
            ..
        } => jobs_csv(&signed_in(dir).await?, site, from, to).await,
        Command::Jobs { site, limit, .. } => jobs(&signed_in(dir).await?, site, limit, json).await,
        Command::Watch => watch(&signed_in(dir).await?, json).await,
        Command::Schedule(command) => command.run(&signed_in(dir).await?, json).await,
    }
}

#[derive(Debug, clap::Args)]
struct Login {
    /// Back Office's URL, e.g. https://backoffice.example.com
    #[arg(long, env = "REGSYNC_URL")]
    url: String,
    #[arg(long, env = "REGSYNC_EMAIL")]
    email: String,
    /// Read the password from standard input instead of asking.
    #[arg(long)]
    password_stdin: bool,
    /// Allow `http://` to a Back Office on another computer: the password and everything
    /// else then cross the network unencrypted. Remembered for this sign-in.
    #[arg(long)]
    allow_http: bool,
    /// Also trust the certificate authority in this PEM file (a Back Office with a
    /// certificate of its own making). Remembered for this sign-in.
    #[arg(long, env = "REGSYNC_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

impl Login {
    async fn run(self, dir: Option<&Path>, json: bool) -> Result<Exit, Failure> {
        // An unusable address is refused before the password is asked for.
        let ca_cert = self
            .ca_cert
            .map(|path| std::path::absolute(&path).unwrap_or(path));
        let endpoint = endpoint(&self.url, self.allow_http, ca_cert.as_deref())?;
        regsync_transport::checked(&self.url, self.allow_http).map_err(Error::from)?;
        let password = read_password(self.password_stdin)?;
        let (client, session) = Client::login(endpoint, &self.email, &password).await?;
        let url = client.base_url().to_owned();
        let (u, e, token) = (
            url.clone(),
            self.email.clone(),
            session.refresh_token.clone(),
        );
        blocking(move || keychain::store(&u, &e, &token)).await?;
        let config = Config {
            url: url.clone(),
            email: self.email,
            allow_http: self.allow_http,
            ca_cert,
        };
        save_config(dir, &config)?;
        if json {
            print_json(&session.me)?;
        } else {
            println!(
                "Signed in to {url} as {} ({}).",
                session.me.user.display_name, session.me.company.name
            );
        }
        Ok(Exit::Done)
    }
}

async fn logout(dir: Option<&Path>) -> Result<Exit, Failure> {
    let Some(config) = load_config(dir)? else {
        println!("Not signed in.");
        return Ok(Exit::Done);
    };
    if let Ok(client) = signed_in(dir).await {
        // Best effort: the session ends on Back Office too when it can be reached.
        let _ = client.logout().await;
    }
    let (u, e) = (config.url.clone(), config.email.clone());
    blocking(move || keychain::delete(&u, &e)).await?;
    std::fs::remove_file(config_path(dir)?)?;
    println!("Signed out of {}.", config.url);
    Ok(Exit::Done)
}

async fn whoami(client: &Client, json: bool) -> Result<Exit, Failure> {
    let me = client.me().await?;
    if json {
        print_json(&me)?;
        return Ok(Exit::Done);
    }
    let permissions: Vec<&str> = me.permissions.iter().map(|p| p.as_str()).collect();
    println!(
        "{} <{}> at {} ({}), permissions: {}",
        me.user.display_name,
        me.user.email,
        me.company.name,
        client.base_url(),
        if permissions.is_empty() {
            "none".to_owned()
        } else {
            permissions.join(", ")
        }
    );
    Ok(Exit::Done)
}

async fn sites(client: &Client, json: bool) -> Result<Exit, Failure> {
    let sites = client.sites().await?;
    if json {
        print_json(&sites)?;
        return Ok(Exit::Done);
    }
    let mut t = table(&["Site", "Registers", "Menu revision"]);
    for site in &sites {
        t.add_row(vec![
            site.name.clone(),
            site.register_count.to_string(),
            site.catalog_revision.to_string(),
        ]);
    }
    println!("{t}");
    Ok(Exit::Done)
}

async fn registers(
    client: &Client,
    site: Option<String>,
    find: Option<String>,
    show: Option<register::Show>,
    json: bool,
) -> Result<Exit, Failure> {
    let mut all = Vec::new();
    for site in sites_of(client, site.as_deref()).await? {
        for register in client.registers(site.id).await? {
            if register::shown(&register, find.as_deref(), show) {
                all.push((site.name.clone(), register));
            }
        }
    }
    if json {
        let registers: Vec<&Register> = all.iter().map(|(_, r)| r).collect();
        print_json(&registers)?;
        return Ok(Exit::Done);
    }
    let mut t = table(&["Site", "Register", "Status", "Last synced", "Menu"]);
    for (site, r) in &all {
        let status = match (r.online, r.in_sale) {
            (false, _) => colour("○ offline", false),
            (true, true) => colour("◐ in a sale", true),
            (true, false) => colour("● online", true),
        };
        let menu = if r.up_to_date {
            colour("up to date", true)
        } else {
            colour(&format!("{} behind", r.revisions_behind), false)
        };
        t.add_row(vec![
            site.clone(),
            r.name.clone(),
            status,
            relative(r.last_synced_at),
            menu,
        ]);
    }
    println!("{t}");
    Ok(Exit::Done)
}

#[derive(Debug, clap::Args)]
struct Sync {
    /// The register's name or id.
    register: Option<String>,
    /// Every online register of `--site`.
    #[arg(long, requires = "site", conflicts_with = "register")]
    online: bool,
    /// Every online register of every site you see, as one sync with a line per site.
    #[arg(long, conflicts_with_all = ["register", "online", "site"])]
    all: bool,
    #[arg(long)]
    site: Option<String>,
    /// Skip registers in a sale instead of syncing them when the sale ends.
    #[arg(long)]
    no_retry: bool,
    /// Queue registers that are offline now: they sync when they reconnect (never during a
    /// sale), until the queue ends.
    #[arg(long)]
    queue_offline: bool,
    /// How long offline registers stay queued: minutes, hours or days ("90m", "6h", "2d");
    /// a day unless given, three days at most.
    #[arg(long, requires = "queue_offline", value_parser = queue_minutes)]
    queue_for: Option<u32>,
    /// Return at once instead of waiting for the outcome.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the outcome, in seconds.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
}

impl Sync {
    async fn run(self, client: &Client, json: bool) -> Result<Exit, Failure> {
        let request = SyncRequest {
            retry_when_free: !self.no_retry,
            queue_offline: self.queue_offline,
            queue_minutes: self.queue_for,
        };
        if self.all {
            return self.run_all(client, request, json).await;
        }
        let job = if self.online {
            let site = find_site(client, self.site.as_deref().unwrap_or_default()).await?;
            client.sync_site(site.id, &request).await?
        } else {
            let reference = self
                .register
                .ok_or_else(|| anyhow!("name a register, or use --online --site SITE"))?;
            let register = find_register(client, &reference, self.site.as_deref()).await?;
            client.sync_register(register.id, &request).await?
        };
        // Registers queued until they reconnect are not waited for: the rest is the outcome now.
        let job =
            if self.no_wait || job.summary.counts.open() == job.summary.counts.awaiting_reconnect {
                job
            } else {
                let within = Duration::from_secs(self.wait_secs);
                client.wait_for_job(job.summary.id, within).await?
            };
        print_job(&job, json)?;
        let all_synced = job.targets.iter().all(|t| t.state == TargetState::Synced);
        Ok(if self.no_wait || all_synced {
            Exit::Done
        } else {
            Exit::NotAllSynced
        })
    }
}

/// "90m", "6h", "2d" (or plain minutes) as minutes, within what Back Office accepts.
fn queue_minutes(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "m"),
    };
    let n: u32 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a length such as 90m, 6h or 2d"))?;
    let minutes = match unit.trim() {
        "m" | "min" => Some(n),
        "h" => n.checked_mul(60),
        "d" => n.checked_mul(24 * 60),
        _ => None,
    }
    .ok_or_else(|| format!("`{text}` is not a length such as 90m, 6h or 2d"))?;
    if (1..=MAX_QUEUE_MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err("the queue lasts from a minute to three days (3d)".into())
    }
}

impl Sync {
    /// `--all`: one job per site, waited for together, a line per site.
    async fn run_all(
        self,
        client: &Client,
        request: SyncRequest,
        json: bool,
    ) -> Result<Exit, Failure> {
        let group = client.sync_all(&request).await?;
        let c = &group.counts;
        let group = if self.no_wait || c.open() == c.awaiting_reconnect {
            group
        } else {
            let within = Duration::from_secs(self.wait_secs);
            client.wait_for_group(group.id, within).await?
        };
        let names: std::collections::HashMap<Uuid, String> = client
            .sites()
            .await?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
        print_group(&group, &names, json)?;
        let c = &group.counts;
        Ok(if self.no_wait || c.synced == c.total() {
            Exit::Done
        } else {
            Exit::NotAllSynced
        })
    }
}

async fn jobs(
    client: &Client,
    site: Option<String>,
    limit: u32,
    json: bool,
) -> Result<Exit, Failure> {
    let mut jobs = Vec::new();
    for site in sites_of(client, site.as_deref()).await? {
        jobs.extend(client.jobs(site.id, limit).await?);
    }
    jobs.sort_by_key(|job| std::cmp::Reverse(job.created_at));
    print_jobs(&jobs, json)?;
    Ok(Exit::Done)
}

/// Every site's (or one site's) history over the range as one CSV: one header, then each site's
/// lines (they carry their site's id).
async fn jobs_csv(
    client: &Client,
    site: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<Exit, Failure> {
    let mut out = std::io::stdout().lock();
    for (n, site) in sites_of(client, site.as_deref()).await?.iter().enumerate() {
        let csv = client
            .jobs_csv(site.id, from.as_deref(), to.as_deref())
            .await?;
        let body = if n == 0 {
            csv.as_str()
        } else {
            csv.split_once("\r\n").map_or("", |(_, lines)| lines)
        };
        out.write_all(body.as_bytes())?;
    }
    Ok(Exit::Done)
}

async fn watch(client: &Client, json: bool) -> Result<Exit, Failure> {
    let mut events = client.subscribe();
    let mut out = std::io::stdout().lock();
    loop {
        let update = tokio::select! {
            update = events.next() => update,
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Done),
        };
        let Some(update) = update else {
            return Err(Failure {
                code: Exit::NotSignedIn,
                error: anyhow!("the session ended"),
            });
        };
        if json {
            if let Update::Event(event) = &update {
                serde_json::to_writer(&mut out, event).map_err(anyhow::Error::from)?;
                writeln!(out).map_err(anyhow::Error::from)?;
            }
            continue;
        }
        let Some(line) = watch_line(update) else {
            continue;
        };
        writeln!(out, "{} {line}", Local::now().format("%H:%M:%S")).map_err(anyhow::Error::from)?;
        out.flush().map_err(anyhow::Error::from)?;
    }
}
