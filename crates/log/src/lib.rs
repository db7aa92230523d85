//! How every Register Sync binary logs: to standard error, filtered by `REGSYNC_LOG` (tracing's
//! `EnvFilter` syntax, e.g. `debug,sqlx=warn`), or by the binary's own default when it is unset.
//! Standard output stays for what the binary prints for people and scripts.
//!
//! The desktop app also logs to rotating files in the OS log folder ([`init_with_files`]), keeps
//! its latest warnings and errors for "Copy diagnostics" ([`recent_problems`]), and logs a panic
//! before it ends ([`log_panics`]): nobody sees an office PC's standard error.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// The log files' names: `register-sync.YYYY-MM-DD.log`.
pub const FILE_PREFIX: &str = "register-sync";
const FILE_SUFFIX: &str = "log";
/// Days of log files kept; older ones are deleted as a new day's file starts.
pub const FILES_KEPT: usize = 7;
/// Warnings and errors kept for diagnostics.
const RECENT_KEPT: usize = 20;

/// Starts logging to standard error; `default` is the filter when `REGSYNC_LOG` is unset or
/// unreadable.
pub fn init(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_writer(std::io::stderr)
        .init();
}

/// Starts logging to standard error and to a file a day in `dir` (the last [`FILES_KEPT`] kept),
/// and keeps the latest warnings and errors for [`recent_problems`]. The file is written as each
/// line is logged, so the last lines before a crash are in it.
pub fn init_with_files(default: &str, dir: &Path) -> Result<(), String> {
    let files = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix(FILE_SUFFIX)
        .max_log_files(FILES_KEPT)
        .build(dir)
        .map_err(|e| format!("cannot log to {}: {e}", dir.display()))?;
    tracing_subscriber::registry()
        .with(filter(default))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(files),
        )
        .with(RecentProblems)
        .try_init()
        .map_err(|e| e.to_string())
}

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("REGSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default))
}

/// Logs a panic (where, what, and a backtrace) as an error before the process ends, then lets
/// the previous hook do what it did (print to standard error).
pub fn log_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(target: "panic", "Register Sync stopped on an internal error: {info}\n{backtrace}");
        previous(info);
    }));
}

fn recent() -> &'static Mutex<VecDeque<String>> {
    static RECENT: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    RECENT.get_or_init(|| Mutex::new(VecDeque::with_capacity(RECENT_KEPT)))
}

/// The latest warnings and errors logged (oldest first), as one line each.
pub fn recent_problems() -> Vec<String> {
    let recent = recent().lock().unwrap_or_else(|e| e.into_inner());
    recent.iter().cloned().collect()
}

/// Keeps the latest warnings and errors, as the log files write them, for diagnostics.
struct RecentProblems;

impl<S: Subscriber> Layer<S> for RecentProblems {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut line = format!("{level} {}:", event.metadata().target());
        event.record(&mut Line(&mut line));
        let mut recent = recent().lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_KEPT {
            recent.pop_front();
        }
        recent.push_back(line);
    }
}

/// Writes an event's fields as `message key=value …`.
struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One process, one global subscriber: everything about the files in one test.
    #[test]
    fn files_get_every_line_and_diagnostics_the_latest_problems() {
        let dir = tempfile::tempdir().unwrap();
        init_with_files("info", dir.path()).unwrap();
        tracing::info!("an ordinary line");
        for n in 0..(RECENT_KEPT + 5) {
            tracing::warn!(attempt = n, "Back Office did not answer");
        }
        tracing::error!(code = "unreachable", "gave up");

        let problems = recent_problems();
        assert_eq!(problems.len(), RECENT_KEPT);
        assert_eq!(
            problems.last().unwrap(),
            r#"ERROR regsync_log::tests: gave up code="unreachable""#
        );
        assert!(problems[0].contains("attempt=6"), "{problems:?}");
        assert!(!problems.iter().any(|p| p.contains("ordinary")));

        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("register-sync.") && name.ends_with(".log"),
            "{name}"
        );
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("an ordinary line"), "{text}");
        assert!(text.contains("gave up"), "{text}");
        assert!(!text.contains('\u{1b}'), "no terminal colours in a file");
    }

    /// Runs itself again as a child that panics; the child's log file must say so.
    #[test]
    fn a_panic_is_logged_before_the_process_ends() {
        const CHILD: &str = "REGSYNC_LOG_PANIC_CHILD";
        if let Some(dir) = std::env::var_os(CHILD) {
            init_with_files("info", Path::new(&dir)).unwrap();
            log_panics();
            panic!("the sync table lost a row");
        }
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::a_panic_is_logged_before_the_process_ends",
            ])
            .env(CHILD, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child panicked");
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(
            text.contains("Register Sync stopped on an internal error"),
            "{text}"
        );
        assert!(text.contains("the sync table lost a row"), "{text}");
        assert!(text.contains("src/lib.rs"), "where it happened: {text}");
    }
}
