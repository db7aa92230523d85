//! `regsync-backoffice`: serve Back Office, or set up a venue. (The demo is `regsync-demo`.)

// A binary: its user output goes to the terminal.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use regsync_backoffice::admin::{self, NewUser};
use regsync_backoffice::{App, Settings, db};
use regsync_protocol::api::Permission;
use tokio::net::TcpListener;

/// Register Sync Back Office
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The database: a SQLite file path or `sqlite://PATH` (created if missing), or
    /// `postgres://…` for several nodes on PostgreSQL; migrated on start.
    #[arg(
        long,
        env = "REGSYNC_DATABASE",
        global = true,
        default_value = "regsync.db"
    )]
    database: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Companies: each has its own sites, users and registers.
    #[command(subcommand)]
    Company(CompanyCommand),
    /// Sites of a company.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Users who sign in to Back Office.
    #[command(subcommand)]
    User(UserCommand),
    /// Registers and their device credentials.
    #[command(subcommand)]
    Register(RegisterCommand),
    /// Everything that exists: companies, their users, sites and registers.
    List,
    /// A consistent copy of the SQLite database, taken while Back Office runs.
    Backup {
        /// The file to write (it must not exist yet).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Puts a backup back as the database. Stop Back Office first.
    Restore {
        /// A file `backup` wrote.
        #[arg(long)]
        from: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, env = "REGSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where `/metrics` (Prometheus' text format) is served: an address of its own, never the
    /// API's. Unset: 127.0.0.1:9464 when free; `off` serves none.
    #[arg(long, env = "REGSYNC_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Seconds an access token works.
    #[arg(long, env = "REGSYNC_ACCESS_TTL_SECS", default_value_t = 15 * 60)]
    access_ttl_secs: u64,
    /// Seconds a sign-in lasts without being refreshed.
    #[arg(long, env = "REGSYNC_REFRESH_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    refresh_ttl_secs: u64,
    /// Failed sign-ins allowed per account within the window.
    #[arg(long, env = "REGSYNC_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    login_failures_per_account: usize,
    /// Failed sign-ins allowed per client address within the window.
    #[arg(
        long,
        env = "REGSYNC_LOGIN_FAILURES_PER_ADDRESS",
        default_value_t = 100
    )]
    login_failures_per_address: usize,
    /// The window failed sign-ins are counted over, in seconds.
    #[arg(long, env = "REGSYNC_LOGIN_FAILURE_WINDOW_SECS", default_value_t = 15 * 60)]
    login_failure_window_secs: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "REGSYNC_BODY_LIMIT", default_value_t = 2 * 1024 * 1024)]
    body_limit: usize,
    /// Serve HTTPS and WSS with this certificate chain (PEM); needs --tls-key. Without it, plain
    /// HTTP: for loopback, or behind a proxy that terminates TLS.
    #[arg(long, env = "REGSYNC_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "REGSYNC_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Seconds a client may take to send a request's headers; also how long an idle kept-alive
    /// connection stays open.
    #[arg(long, env = "REGSYNC_HEADER_READ_TIMEOUT_SECS", default_value_t = 30)]
    header_read_timeout_secs: u64,
    /// Seconds a request may take, body included, before it is answered 408.
    #[arg(long, env = "REGSYNC_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    /// Seconds between register heartbeats.
    #[arg(long, env = "REGSYNC_HEARTBEAT_SECS", default_value_t = 10)]
    heartbeat_secs: u64,
    /// Seconds without a message after which a register is offline.
    #[arg(long, env = "REGSYNC_OFFLINE_AFTER_SECS", default_value_t = 30)]
    offline_after_secs: u64,
    /// Seconds a sync waits for a register's sale to end before it expires.
    #[arg(long, env = "REGSYNC_WAIT_EXPIRY_SECS", default_value_t = 2 * 3600)]
    wait_expiry_secs: u64,
    /// Seconds a register has to answer a sync.
    #[arg(long, env = "REGSYNC_RESULT_TIMEOUT_SECS", default_value_t = 60)]
    result_timeout_secs: u64,
    /// Seconds a register that dropped mid-sync has to reconnect and report before the sync fails.
    #[arg(long, env = "REGSYNC_OFFLINE_GRACE_SECS", default_value_t = 30)]
    offline_grace_secs: u64,
    /// On PostgreSQL, as several nodes: seconds a node may miss its heartbeat before the others
    /// take it for dead and take over its registers.
    #[arg(long, env = "REGSYNC_NODE_GRACE_SECS", default_value_t = 10)]
    node_grace_secs: u64,
    /// Seconds at most between looks for scheduled syncs due (the runner also wakes at each next
    /// run): how late a schedule changed on another node, or a clock that jumped, is noticed.
    #[arg(long, env = "REGSYNC_SCHEDULE_POLL_SECS", default_value_t = 30)]
    schedule_poll_secs: u64,
}

impl ServeArgs {
    fn settings(&self) -> Settings {
        Settings {
            access_ttl: Duration::from_secs(self.access_ttl_secs),
            refresh_ttl: Duration::from_secs(self.refresh_ttl_secs),
            login_failures_per_account: self.login_failures_per_account,
            login_failures_per_address: self.login_failures_per_address,
            login_failure_window: Duration::from_secs(self.login_failure_window_secs),
            body_limit: self.body_limit,
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(2)),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            heartbeat_interval: Duration::from_secs(self.heartbeat_secs),
            offline_after: Duration::from_secs(self.offline_after_secs),
            wait_expiry: Duration::from_secs(self.wait_expiry_secs),
            result_timeout: Duration::from_secs(self.result_timeout_secs),
            offline_grace: Duration::from_secs(self.offline_grace_secs),
            node_grace: Duration::from_secs(self.node_grace_secs.max(1)),
            schedule_poll: Duration::from_secs(self.schedule_poll_secs.max(1)),
            ..Settings::default()
        }
    }
}

#[derive(Debug, Subcommand)]
enum CompanyCommand {
    /// Create a company.
    Create { name: String },
}

#[derive(Debug, Subcommand)]
enum SiteCommand {
    /// Create a site, with an empty menu at revision 1.
    Create {
        /// The company's id or name.
        #[arg(long)]
        company: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password is asked for (or read from stdin), never taken as an argument.
    Create {
        /// The company's id or name.
        #[arg(long)]
        company: String,
        #[arg(long)]
        email: String,
        /// The name staff see on the register banner.
        #[arg(long)]
        name: String,
        /// `sites` (the registers page and syncs) or `admin`; repeat for several.
        #[arg(long = "permission")]
        permissions: Vec<Permission>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Which sites the user sees: `--site` (repeat it) limits them to those; `--all` gives them
    /// every site of their company. Takes effect at once.
    Sites {
        #[arg(long)]
        email: String,
        /// A site's name or id.
        #[arg(long = "site", required_unless_present = "all", conflicts_with = "all")]
        sites: Vec<String>,
        #[arg(long)]
        all: bool,
    },
    /// Set a new password and sign the user out everywhere.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RegisterCommand {
    /// Create a register and print its device credential (shown once; only a hash is kept).
    Create {
        /// The site's id or name.
        #[arg(long)]
        site: String,
        /// The company's id or name, when two companies have a site of that name.
        #[arg(long)]
        company: Option<String>,
        name: String,
        /// Create this many, named "NAME 1" … "NAME N" (for simulations and load tests).
        #[arg(long)]
        count: Option<usize>,
        /// Append the credentials to this file, one per line, instead of printing them (the
        /// format `regsync-register --credentials-file` reads).
        #[arg(long)]
        credentials_out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    regsync_backoffice::raise_open_file_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    regsync_log::init("info,sqlx=warn,tower_http=info");
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let db = db::open(&cli.database).await?;
            serve(db, &args).await
        }
        Command::Company(CompanyCommand::Create { name }) => {
            let db = db::open(&cli.database).await?;
            let company = admin::create_company(&db, &name).await?;
            say(format_args!(
                "created company {} ({})",
                company.name, company.id
            ))
        }
        Command::Site(SiteCommand::Create { company, name }) => {
            let db = db::open(&cli.database).await?;
            let site = admin::create_site(&db, &company, &name).await?;
            say(format_args!("created site {} ({})", site.name, site.id))
        }
        Command::User(UserCommand::Create {
            company,
            email,
            name,
            permissions,
            password_stdin,
        }) => {
            let db = db::open(&cli.database).await?;
            let password = read_new_password(password_stdin)?;
            let user = NewUser {
                company: &company,
                email: &email,
                display_name: &name,
                password: &password,
                permissions: &permissions,
            };
            create_user(&db, user).await
        }
        Command::User(UserCommand::Sites { email, sites, all }) => {
            let db = db::open(&cli.database).await?;
            let limited = (!all).then_some(sites.as_slice());
            let names = admin::set_user_sites(&db, &email, limited).await?;
            if names.is_empty() {
                say(format_args!("{email} sees every site of their company"))
            } else {
                say(format_args!("{email} sees only: {}", names.join(", ")))
            }
        }
        Command::User(UserCommand::ResetPassword {
            email,
            password_stdin,
        }) => {
            let db = db::open(&cli.database).await?;
            let password = read_new_password(password_stdin)?;
            admin::reset_password(&db, &email, &password).await?;
            say(format_args!(
                "password changed; {email} is signed out everywhere"
            ))
        }
        Command::Register(RegisterCommand::Create {
            site,
            company,
            name,
            count,
            credentials_out,
        }) => {
            let db = db::open(&cli.database).await?;
            let names: Vec<String> = match count {
                None => vec![name],
                Some(count) => (1..=count).map(|i| format!("{name} {i}")).collect(),
            };
            let site = admin::find_site(&db, &site, company.as_deref()).await?;
            create_registers(&db, &site, &names, credentials_out.as_deref()).await
        }
        Command::List => list(&db::open(&cli.database).await?).await,
        Command::Backup { to } => {
            db::backup(&db::open(&cli.database).await?, &to).await?;
            writeln!(std::io::stdout(), "backed up to {}", to.display())?;
            Ok(())
        }
        Command::Restore { from } => {
            db::restore(&from, &cli.database).await?;
            writeln!(
                std::io::stdout(),
                "restored {} as the database",
                from.display()
            )?;
            Ok(())
        }
    }
}

async fn create_user(db: &regsync_backoffice::Db, user: NewUser<'_>) -> anyhow::Result<()> {
    let user = admin::create_user(db, user).await?;
    let permissions: Vec<&str> = user.permissions.iter().map(|p| p.as_str()).collect();
    say(format_args!(
        "created user {} <{}> ({}) with permissions [{}]",
        user.display_name,
        user.email,
        user.id,
        permissions.join(", ")
    ))
}

/// Creates registers at `site`; each device credential is printed once, or appended to
/// `credentials_out` (a file only the owner can read).
async fn create_registers(
    db: &regsync_backoffice::Db,
    site: &admin::SiteRecord,
    names: &[String],
    credentials_out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut file = match credentials_out {
        Some(path) => Some(open_private(path)?),
        None => None,
    };
    for name in names {
        let created = admin::create_register(db, site, name).await?;
        match &mut file {
            Some(file) => {
                writeln!(file, "{}", created.credential)?;
                say(format_args!(
                    "created register {} ({}) at {}",
                    created.register.name, created.register.id, site.name
                ))?;
            }
            None => say(format_args!(
                "created register {} ({}) at {}\ndevice credential (shown once, keep it safe): {}",
                created.register.name, created.register.id, site.name, created.credential
            ))?,
        }
    }
    if let Some(path) = credentials_out {
        say(format_args!("credentials appended to {}", path.display()))?;
    }
    Ok(())
}

/// Everything that exists: companies, their users, sites and registers.
async fn list(db: &regsync_backoffice::Db) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let companies = admin::overview(db).await?;
    if companies.is_empty() {
        writeln!(
            out,
            "No companies yet: start with `regsync-backoffice company create NAME`."
        )?;
    }
    for entry in companies {
        writeln!(out, "{} ({})", entry.company.name, entry.company.id)?;
        for user in &entry.users {
            let permissions: Vec<&str> = user.permissions.iter().map(|p| p.as_str()).collect();
            writeln!(
                out,
                "  user {} <{}> [{}]",
                user.display_name,
                user.email,
                permissions.join(", ")
            )?;
        }
        for (site, registers) in &entry.sites {
            writeln!(out, "  site {} ({})", site.name, site.id)?;
            for register in registers {
                writeln!(out, "    register {} ({})", register.name, register.id)?;
            }
        }
    }
    Ok(())
}

fn say(line: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

/// Opens a file for appending that only its owner can read: it will hold credentials.
fn open_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Asks twice on a terminal; reads one line from stdin with `--password-stdin`.
fn read_new_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no terminal to ask for the password on; pass --password-stdin");
    }
    let first = rpassword::prompt_password("New password: ")?;
    let second = rpassword::prompt_password("Again: ")?;
    anyhow::ensure!(first == second, "the two passwords differ");
    Ok(first)
}

/// Serves until Ctrl-C or SIGTERM.
/// The default metrics address: loopback, Prometheus exporters' customary range.
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// Binds the metrics address asked for, or the default one when it is free (several nodes or
/// test servers on one machine cannot all have it; a node without it still serves the API).
async fn bind_metrics(asked: Option<&str>) -> anyhow::Result<Option<TcpListener>> {
    match asked {
        Some("off") => Ok(None),
        Some(address) => {
            let address: SocketAddr = address.parse().map_err(|_| {
                anyhow::anyhow!(
                    "--metrics-listen: {address:?} is not an address and port, nor `off`"
                )
            })?;
            let listener = TcpListener::bind(address)
                .await
                .map_err(|error| anyhow::anyhow!("cannot serve metrics on {address}: {error}"))?;
            Ok(Some(listener))
        }
        None => match TcpListener::bind(DEFAULT_METRICS_LISTEN).await {
            Ok(listener) => Ok(Some(listener)),
            Err(error) => {
                tracing::warn!(%error, "no metrics: {DEFAULT_METRICS_LISTEN} is taken (set --metrics-listen)");
                Ok(None)
            }
        },
    }
}

async fn serve(db: regsync_backoffice::Db, args: &ServeArgs) -> anyhow::Result<()> {
    let shutdown = regsync_backoffice::shutdown_signal()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(regsync_backoffice::tls::acceptor(cert, key)?),
        _ => None,
    };
    let listener = TcpListener::bind(args.listen).await?;
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // On stdout, for people and for scripts (and tests) that started us on port 0.
    say(format_args!(
        "Back Office listening on {scheme}://{address}"
    ))?;
    std::io::stdout().flush()?;
    tracing::info!(%address, "listening");
    let metrics = bind_metrics(args.metrics_listen.as_deref()).await?;
    let app = App::start(db, args.settings()).await?;
    if let Some(metrics) = metrics {
        let address = metrics.local_addr()?;
        say(format_args!("Metrics on http://{address}/metrics"))?;
        std::io::stdout().flush()?;
        let router = regsync_backoffice::metrics::router(app.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(metrics, router).await {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
    }
    regsync_backoffice::serve_with(listener, app, shutdown, tls).await?;
    tracing::info!("stopped");
    Ok(())
}
