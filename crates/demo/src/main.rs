//! `regsync-demo`: Back Office with the demo company and simulated registers, until Ctrl-C. The
//! sign-in details are printed; `scripts/demo --backoffice` runs this.

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use regsync_demo::{COMPANY, Demo, MANAGER_EMAIL, MANAGER_PASSWORD, STAFF_EMAIL, STAFF_PASSWORD};

/// Back Office with a demo company and simulated registers
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Where to listen.
    #[arg(long, env = "REGSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Keep the demo database here instead of in a temporary folder removed at exit.
    #[arg(long, env = "REGSYNC_DEMO_DATABASE")]
    keep_database: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    regsync_log::init("info,sqlx=warn");
    let shutdown = regsync_backoffice::shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    let (demo, server) = Demo::start(listener, cli.keep_database.as_deref(), shutdown).await?;
    // On stdout, for people and for scripts (and tests) that started us on port 0.
    println!(
        "Demo company `{COMPANY}` is ready (database {}).",
        demo.database.display()
    );
    println!("  manager (Sites permission): {MANAGER_EMAIL} / {MANAGER_PASSWORD}");
    println!("  staff (no Sites permission): {STAFF_EMAIL} / {STAFF_PASSWORD}");
    println!("Back Office listening on {}", demo.url);
    println!(
        "Simulated registers are connecting: some selling, Kitchen dropping offline now and \
         then, Cellar Door switched off."
    );
    server.await??;
    drop(demo);
    Ok(())
}
