//! How every Register Sync binary logs: to standard error, filtered by `REGSYNC_LOG` (tracing's
//! `EnvFilter` syntax, e.g. `debug,sqlx=warn`), or by the binary's own default when it is unset.
//! Standard output stays for what the binary prints for people and scripts.

/// Starts logging; `default` is the filter when `REGSYNC_LOG` is unset or unreadable.
pub fn init(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("REGSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
