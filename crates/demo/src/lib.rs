//! The demo: what a newcomer sees on the first run, and what the app's demo mode runs inside.
//!
//! A fresh Back Office on a temporary SQLite file, the demo company seeded into it (two sites,
//! registers, a menu, a manager and a member of staff whose sign-in details are public on purpose),
//! and simulated registers: some selling, one dropping offline now and then, one never connecting.
//! It lives apart from Back Office so the production server does not link the register agent.

mod venue;

pub use venue::{
    COMPANY, DemoVenue, MANAGER_EMAIL, MANAGER_NAME, MANAGER_PASSWORD, SITES, STAFF_EMAIL,
    STAFF_NAME, STAFF_PASSWORD, Simulation, seed, simulate,
};

use std::path::{Path, PathBuf};

use regsync_backoffice::{App, Settings, db};
use tokio::net::TcpListener;

/// A running demo: Back Office serving the demo company, its registers simulated. Dropping it
/// stops the simulation; the server task ends with the runtime.
#[derive(Debug)]
pub struct Demo {
    /// Back Office's address, `http://127.0.0.1:…`.
    pub url: String,
    /// The database file.
    pub database: PathBuf,
    _simulation: Simulation,
    _dir: Option<tempfile::TempDir>,
}

impl Demo {
    /// Seeds the demo company into a fresh database (`keep` names the file; otherwise a temporary
    /// one), serves it on `listener` until `shutdown`, and starts the simulated registers.
    pub async fn start(
        listener: TcpListener,
        keep: Option<&Path>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<(Demo, tokio::task::JoinHandle<std::io::Result<()>>)> {
        let (dir, database) = match keep {
            Some(path) => (None, path.to_owned()),
            None => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("demo.db");
                (Some(dir), path)
            }
        };
        let db = db::open(&database.to_string_lossy()).await?;
        let venue = seed(&db).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = App::start(db, Settings::default()).await?;
        let server = tokio::spawn(regsync_backoffice::serve(listener, app, shutdown));
        let simulation = simulate(&url, &venue);
        Ok((
            Demo {
                url,
                database,
                _simulation: simulation,
                _dir: dir,
            },
            server,
        ))
    }
}
