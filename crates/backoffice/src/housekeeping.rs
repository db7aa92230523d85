//! Housekeeping: what Back Office keeps only for a while, swept every ten minutes.

use chrono::Utc;

use crate::{AppState, on_db};

/// Deletes now and then what Back Office keeps only for a while: expired tokens (the tables hold
/// only live sessions, and spent refresh tokens until their family expires, which reuse
/// detection needs), menu revisions past their days, registers' online and offline times past
/// theirs.
pub async fn sweep(app: AppState) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        interval.tick().await;
        let now = Utc::now();
        let swept = async {
            for table in ["access_tokens", "refresh_tokens"] {
                let sql = format!("DELETE FROM {table} WHERE expires_at <= $1");
                on_db!(&app.db, |pool| sqlx::query(&sql)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(drop))?;
            }
            // Past menus are kept 90 days; the current one always.
            let menus_since = now - chrono::Duration::days(crate::catalog::REVISIONS_KEPT_DAYS);
            on_db!(&app.db, |pool| sqlx::query(
                "DELETE FROM catalog_revisions WHERE updated_at < $1
                 AND revision < (SELECT c.revision FROM catalogs c
                                 WHERE c.site_id = catalog_revisions.site_id)"
            )
            .bind(menus_since)
            .execute(pool)
            .await
            .map(drop))?;
            // A register's online and offline times are kept 30 days.
            let kept_since = now - chrono::Duration::days(crate::registers::PRESENCE_KEPT_DAYS);
            on_db!(&app.db, |pool| sqlx::query(
                "DELETE FROM register_presence WHERE at < $1"
            )
            .bind(kept_since)
            .execute(pool)
            .await
            .map(drop))?;
            Ok::<_, sqlx::Error>(())
        };
        if let Err(error) = swept.await {
            tracing::warn!(%error, "sweeping expired records failed; will try again");
        }
    }
}
