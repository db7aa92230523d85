//! "Copy diagnostics": what support needs to help a manager, in a few lines of plain text —
//! the app's version, the computer, Back Office's address and whether it answers, where the logs
//! are and the latest problems. Never a secret: no token, no password, no email.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use regsync_client::Client;

/// How long diagnostics wait for Back Office's health check.
const HEALTH_WAIT: Duration = Duration::from_secs(5);

/// What the shell knows of the computer and the app.
#[derive(Debug, Clone)]
pub struct About {
    pub version: String,
    /// The operating system and its version, in words (`Debian GNU/Linux 12 (bookworm)`).
    pub os: String,
    pub log_folder: PathBuf,
}

/// Whether Back Office answered its health check, in words.
pub async fn reachability(client: Option<&Client>) -> String {
    let Some(client) = client else {
        return "not signed in".into();
    };
    match tokio::time::timeout(HEALTH_WAIT, client.health()).await {
        Ok(Ok(health)) => format!("answers ({}, version {})", health.status, health.version),
        Ok(Err(error)) => format!("does not answer: {error}"),
        Err(_) => format!("does not answer within {} s", HEALTH_WAIT.as_secs()),
    }
}

/// The report, as copied.
pub fn report(about: &About, url: Option<&str>, reachable: &str, problems: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Register Sync {}", about.version);
    let _ = writeln!(out, "Computer: {} ({})", about.os, std::env::consts::ARCH);
    let _ = writeln!(out, "Back Office: {}", url.unwrap_or("none"));
    let _ = writeln!(out, "Back Office reachable: {reachable}");
    let _ = writeln!(out, "Log folder: {}", about.log_folder.display());
    let _ = writeln!(out, "Time: {}", chrono::Local::now().to_rfc3339());
    if problems.is_empty() {
        let _ = writeln!(out, "Latest problems: none");
    } else {
        let _ = writeln!(out, "Latest problems (oldest first):");
        for problem in problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    out
}

/// The operating system in words: `PRETTY_NAME` of os-release on Linux, else its family.
pub fn os_name() -> String {
    #[cfg(target_os = "linux")]
    if let Ok(release) = std::fs::read_to_string("/etc/os-release") {
        let pretty = release.lines().find_map(|line| {
            let value = line.strip_prefix("PRETTY_NAME=")?;
            Some(value.trim_matches('"').to_owned())
        });
        if let Some(pretty) = pretty {
            return pretty;
        }
    }
    std::env::consts::OS.to_owned()
}
