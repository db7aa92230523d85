//! Scheduled syncs: managing them through the API, a run that falls due, and runs missed while
//! Back Office was down, with real agents and a real Back Office.

use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use regsync_backoffice::{Db, on_db};
use regsync_protocol::register::SCHEDULED_BANNER;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{
    BackOffice, Banners, FAST, Scene, Venue, WAIT, assert_error, eventually, state_of,
};

/// Back Office looking for due schedules every second.
fn args() -> Vec<&'static str> {
    let mut args = FAST.to_vec();
    args.extend(["--schedule-poll-secs", "1"]);
    args
}

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

async fn add(bo: &BackOffice, token: &str, site: uuid::Uuid, body: Value) -> (StatusCode, Value) {
    let path = format!("/v1/sites/{site}/schedules");
    bo.call(Method::POST, &path, Some(token), Some(body)).await
}

/// Makes a schedule due `ago` in the past, as if its time had come (or come and gone while Back
/// Office was down).
async fn due(db: &Db, schedule: &Value, ago: TimeDelta) {
    let id: uuid::Uuid = schedule["id"].as_str().unwrap().parse().unwrap();
    let when = (Utc::now() - ago).timestamp_millis();
    on_db!(db, |pool| sqlx::query(
        "UPDATE site_schedules SET next_run_ms = $1 WHERE id = $2"
    )
    .bind(when)
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
}

async fn scheduled_jobs(bo: &BackOffice, token: &str, site: uuid::Uuid) -> Vec<Value> {
    let (status, jobs) = bo.get(&format!("/v1/sites/{site}/jobs"), token).await;
    assert_eq!(status, StatusCode::OK, "{jobs}");
    jobs.as_array()
        .unwrap()
        .iter()
        .filter(|j| j["source"] == "schedule")
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_manager_adds_changes_and_removes_schedules_in_the_site_s_time_zone() {
    let Scene { bo, venue, token } = Scene::start(&args()).await;
    let site = venue.site.id;
    let path = format!("/v1/sites/{site}/schedules");
    let (status, empty) = bo.get(&path, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["time_zone"], "UTC");
    assert_eq!(empty["schedules"], json!([]));

    // The site is in London.
    let zone = format!("/v1/sites/{site}/time_zone");
    let body = json!({ "time_zone": "Europe/London" });
    let (status, set) = bo.call(Method::PUT, &zone, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["time_zone"], "Europe/London");

    // Mondays at 06:00, London time.
    let (status, monday) = add(
        &bo,
        &token,
        site,
        json!({ "days": ["mon"], "time": "06:00" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{monday}");
    assert_eq!(monday["days"], json!(["mon"]));
    assert_eq!(monday["time"], "06:00");
    assert_eq!(monday["created_by"], "Harbour manager");
    let next = at(&monday["next_run_at"]).with_timezone(&chrono_tz::Europe::London);
    assert_eq!(next.weekday(), chrono::Weekday::Mon);
    assert_eq!((next.hour(), next.minute()), (6, 0));
    assert!(at(&monday["next_run_at"]) > Utc::now());
    assert!(at(&monday["next_run_at"]) <= Utc::now() + TimeDelta::days(7));

    // Every day at 05:30: the soonest, so listed first and shown on the site.
    let every_day =
        json!({ "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": "05:30" });
    let (status, daily) = add(&bo, &token, site, every_day).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, listed) = bo.get(&path, &token).await;
    let schedules = listed["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 2);
    assert!(at(&schedules[0]["next_run_at"]) <= at(&schedules[1]["next_run_at"]));
    let (_, shown) = bo.get(&format!("/v1/sites/{site}"), &token).await;
    assert_eq!(shown["time_zone"], "Europe/London");
    assert_eq!(shown["next_scheduled_sync"], schedules[0]["next_run_at"]);

    // Changed to Fridays at 23:15.
    let one = format!("/v1/schedules/{}", monday["id"].as_str().unwrap());
    let body = json!({ "days": ["fri"], "time": "23:15" });
    let (status, changed) = bo.call(Method::PUT, &one, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let next = at(&changed["next_run_at"]).with_timezone(&chrono_tz::Europe::London);
    assert_eq!(
        (next.weekday(), next.hour(), next.minute()),
        (chrono::Weekday::Fri, 23, 15)
    );

    // A move to New York moves the next runs with it (05:30 there).
    let body = json!({ "time_zone": "America/New_York" });
    let (_, moved) = bo.call(Method::PUT, &zone, Some(&token), Some(body)).await;
    let daily_id = daily["id"].clone();
    let moved_daily = moved["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == daily_id)
        .unwrap();
    let next = at(&moved_daily["next_run_at"]).with_timezone(&chrono_tz::America::New_York);
    assert_eq!((next.hour(), next.minute()), (5, 30));

    // Removed.
    let (status, _) = bo.call(Method::DELETE, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = bo.get(&path, &token).await;
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1);
    let (status, _) = bo.call(Method::DELETE, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "gone once removed");
}

#[tokio::test]
async fn bad_schedules_and_time_zones_are_refused_and_nothing_changes() {
    let Scene { bo, venue, token } = Scene::start(&args()).await;
    let site = venue.site.id;
    for (body, field) in [
        (json!({ "days": [], "time": "05:30" }), "days"),
        (json!({ "days": ["mon"], "time": "25:00" }), "time"),
        (json!({ "days": ["mon"], "time": "5.30" }), "time"),
    ] {
        let answer = add(&bo, &token, site, body.clone()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
        assert!(
            answer.1["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}: {}",
            answer.1
        );
    }
    for body in [
        json!({ "days": ["someday"], "time": "05:30" }),
        json!({ "time": "05:30" }),
    ] {
        let (status, answer) = add(&bo, &token, site, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let zone = format!("/v1/sites/{site}/time_zone");
    let answer = bo
        .call(
            Method::PUT,
            &zone,
            Some(&token),
            Some(json!({ "time_zone": "Mars/Olympus" })),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    let (_, listed) = bo.get(&format!("/v1/sites/{site}/schedules"), &token).await;
    assert_eq!(listed["time_zone"], "UTC");
    assert_eq!(listed["schedules"], json!([]));

    // Twenty at most.
    for minute in 0..20 {
        let body = json!({ "days": ["mon"], "time": format!("04:{minute:02}") });
        assert_eq!(add(&bo, &token, site, body).await.0, StatusCode::CREATED);
    }
    let answer = add(
        &bo,
        &token,
        site,
        json!({ "days": ["mon"], "time": "04:30" }),
    )
    .await;
    assert_error(&answer, StatusCode::CONFLICT, "already_exists");

    // Staff without the Sites permission, and another company, cannot see or touch them.
    let (_, listed) = bo.get(&format!("/v1/sites/{site}/schedules"), &token).await;
    let id = listed["schedules"][0]["id"].as_str().unwrap().to_owned();
    let staff = bo.login(&venue.staff).await.access_token;
    assert_error(
        &bo.get(&format!("/v1/sites/{site}/schedules"), &staff).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let other = Venue::seed(&bo.db().await, "Lighthouse").await;
    let stranger = bo.login(&other.manager).await.access_token;
    let path = format!("/v1/schedules/{id}");
    for method in [Method::PUT, Method::DELETE] {
        let body = (method == Method::PUT).then(|| json!({ "days": ["tue"], "time": "07:00" }));
        let answer = bo.call(method, &path, Some(&stranger), body).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    assert_error(
        &bo.get(&format!("/v1/sites/{site}/schedules"), &stranger)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, listed) = bo.get(&format!("/v1/sites/{site}/schedules"), &token).await;
    assert_eq!(
        listed["schedules"].as_array().unwrap().len(),
        20,
        "none changed"
    );
}

#[tokio::test]
async fn a_schedule_that_falls_due_syncs_the_online_registers_as_a_scheduled_job() {
    let Scene { bo, venue, token } = Scene::start(&args()).await;
    let site = venue.site.id;
    let banners = Arc::new(Banners::default());
    let agent = bo.agent_with(&venue.registers[0].credential, None, banners.clone());
    bo.wait_online(&token, venue.registers[0].register.id, true)
        .await;
    let (_, schedule) = add(
        &bo,
        &token,
        site,
        json!({ "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": "05:30" }),
    )
    .await;

    // Its time comes.
    due(&bo.db().await, &schedule, TimeDelta::seconds(1)).await;
    let job = eventually(WAIT, "the scheduled job", || async {
        scheduled_jobs(&bo, &token, site).await.into_iter().next()
    })
    .await;
    assert_eq!(job["kind"], "site_online");
    assert_eq!(job["requested_by"], Value::Null);
    let job = bo
        .wait_job(&token, &job, "the scheduled job to finish", |j| {
            !j["finished_at"].is_null()
        })
        .await;
    assert_eq!(state_of(&job, "Bar 1"), "synced");
    assert_eq!(state_of(&job, "Kitchen"), "skipped_offline");
    assert_eq!(agent.applied_revision(), 1);
    assert_eq!(*banners.0.lock().unwrap(), [SCHEDULED_BANNER]);
    let register = bo.register(&token, venue.registers[0].register.id).await;
    assert_eq!(register["last_synced_source"], "schedule");

    // The next run is tomorrow's, and it ran once.
    let (_, listed) = bo.get(&format!("/v1/sites/{site}/schedules"), &token).await;
    let next = at(&listed["schedules"][0]["next_run_at"]);
    assert!(
        next > Utc::now() && next <= Utc::now() + TimeDelta::days(1),
        "{listed}"
    );
    assert!(listed["schedules"][0]["last_run_at"].is_string());
    assert_eq!(scheduled_jobs(&bo, &token, site).await.len(), 1);
}

#[tokio::test]
async fn runs_missed_while_back_office_was_down_run_once_when_it_starts() {
    let Scene {
        mut bo,
        venue,
        token,
    } = Scene::start(&args()).await;
    let site = venue.site.id;
    let (_, schedule) = add(
        &bo,
        &token,
        site,
        json!({ "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": "05:30" }),
    )
    .await;

    // Down for three days: three runs missed.
    bo.crash().await;
    due(&bo.db().await, &schedule, TimeDelta::days(3)).await;
    bo.restart().await;
    let job = eventually(WAIT, "the missed run, once", || async {
        scheduled_jobs(&bo, &token, site).await.into_iter().next()
    })
    .await;
    bo.wait_job(&token, &job, "it to finish", |j| {
        !j["finished_at"].is_null()
    })
    .await;
    // Its next run is tomorrow's, not another missed one: the runner, looking every second
    // since, found nothing more due.
    let (_, listed) = bo.get(&format!("/v1/sites/{site}/schedules"), &token).await;
    let next = at(&listed["schedules"][0]["next_run_at"]);
    assert!(next > Utc::now(), "{listed}");
    assert_eq!(scheduled_jobs(&bo, &token, site).await.len(), 1);
}
