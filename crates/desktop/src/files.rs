//! Small files the app keeps: written whole or not at all.

use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder, synced and then renamed
/// over the old file: a crash or a full disk leaves the old file, never half of the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The file name "Export…" saves a site's history under: `Register Sync history - Main Bar -
/// 2026-11-01 to 2026-11-28.csv`, with what file systems refuse in a name taken out.
pub fn export_name(site: &str, from: chrono::NaiveDate, to: chrono::NaiveDate) -> String {
    let site: String = site
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '-',
            c if c.is_control() => '-',
            c => c,
        })
        .collect();
    let site = site.trim().trim_matches('.');
    let site = if site.is_empty() { "site" } else { site };
    format!("Register Sync history - {site} - {from} to {to}.csv")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_is_named_for_its_site_and_days_and_never_escapes_its_folder() {
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(
            export_name("Main Bar", day(1), day(28)),
            "Register Sync history - Main Bar - 2026-11-01 to 2026-11-28.csv"
        );
        assert_eq!(
            export_name("../../etc/passwd", day(1), day(2)),
            "Register Sync history - -..-etc-passwd - 2026-11-01 to 2026-11-02.csv"
        );
        assert_eq!(
            export_name("..", day(1), day(2)),
            "Register Sync history - site - 2026-11-01 to 2026-11-02.csv"
        );
    }
}
