//! A site's sync history as CSV: what a manager takes away to a spreadsheet.

use regsync_backoffice::admin;
use reqwest::StatusCode;

use crate::harness::{BackOffice, FAST, Scene, Venue};

/// `GET path` with the token; answers the status, the content type and the body as text.
async fn get_text(bo: &BackOffice, path: &str, token: &str) -> (StatusCode, String, String) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", bo.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

/// The CSV's lines as fields, a minimal RFC 4180 reader (quotes, doubled quotes).
fn parse(csv: &str) -> Vec<Vec<String>> {
    let mut rows = vec![];
    let (mut row, mut field, mut quoted) = (vec![], String::new(), false);
    let mut chars = csv.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn a_sites_history_exports_as_csv_one_line_per_register_and_safe_to_open() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let tricky = admin::create_register(&bo.db().await, &venue.site, "=HYPERLINK(\"x\"), \"Bar\"")
        .await
        .unwrap();
    let bar1 = &venue.registers[0];
    let _agent = bo.agent(&bar1.credential);
    bo.wait_online(&token, bar1.register.id, true).await;
    let job = bo.sync_site(&token, venue.site.id, true).await;
    let job = bo
        .wait_job(&token, &job, "the site sync to finish", |j| {
            !j["finished_at"].is_null()
        })
        .await;

    let path = format!("/v1/sites/{}/jobs.csv", venue.site.id);
    let (status, kind, csv) = get_text(&bo, &path, &token).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert_eq!(kind, "text/csv; charset=utf-8");
    let rows = parse(&csv);
    assert_eq!(
        rows[0].join(","),
        regsync_backoffice::sync::history::COLUMNS.join(",")
    );
    let registers = venue.registers.len() + 1;
    assert_eq!(
        rows.len(),
        1 + registers,
        "a line per register of the one job:\n{csv}"
    );
    let column = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    let line_of = |register: &str| {
        rows.iter()
            .find(|r| r[column("register")] == register)
            .unwrap_or_else(|| panic!("no line for {register}:\n{csv}"))
    };
    let bar = line_of("Bar 1");
    assert_eq!(bar[column("job_id")], job["id"].as_str().unwrap());
    assert_eq!(bar[column("state")], "synced");
    assert_eq!(bar[column("requested_by")], "Harbour manager");
    assert_eq!(bar[column("kind")], "site_online");
    assert_eq!(bar[column("revision")], "1");
    // A name a spreadsheet would run as a formula is kept as text, commas and quotes intact.
    let defused = line_of("'=HYPERLINK(\"x\"), \"Bar\"");
    assert_eq!(defused[column("state")], "skipped_offline");
    assert_eq!(
        defused[column("register_id")],
        tricky.register.id.to_string()
    );

    // A range with no job: the header alone.
    let (status, _, csv) = get_text(
        &bo,
        &format!("{path}?from=2020-01-01&to=2020-02-01"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(parse(&csv).len(), 1, "{csv}");
}

#[tokio::test]
async fn a_bad_range_is_a_clear_400_and_another_companys_site_is_404() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let other = Venue::seed(&bo.db().await, "Elsewhere").await;
    let path = format!("/v1/sites/{}/jobs.csv", venue.site.id);
    for (query, says) in [
        ("?from=yesterday", "from: not a date"),
        ("?from=2026-11-02&to=2026-11-01", "from: must be before to"),
        ("?from=2024-01-01&to=2026-01-01", "longer than 366 days"),
    ] {
        let (status, _, body) = get_text(&bo, &format!("{path}{query}"), &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
    let (status, _, _) = get_text(
        &bo,
        &format!("/v1/sites/{}/jobs.csv", other.site.id),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get_text(&bo, &path, "rsa_not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
