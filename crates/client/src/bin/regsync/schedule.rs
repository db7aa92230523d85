//! `regsync schedule …`: a site's scheduled syncs, in its own time zone.

use chrono::{DateTime, Utc};
use regsync_client::Client;
use regsync_protocol::schedule::{Day, Schedule, ScheduleRequest, SiteSchedules, parse_time};
use uuid::Uuid;

use crate::output::{print_json, table};
use crate::{Exit, Failure, find_site, sites_of};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Each site's schedules, its time zone and next runs.
    List {
        #[arg(long)]
        site: Option<String>,
    },
    /// Sync a site's online registers on these days at this time (the site's time zone).
    Add {
        #[arg(long)]
        site: String,
        /// The time of day, 24-hour: 05:30.
        #[arg(long, value_parser = time)]
        at: String,
        /// Days, comma-separated ("mon,fri", "monday"); every day when not given.
        #[arg(long, value_delimiter = ',', value_parser = day)]
        days: Vec<Day>,
    },
    /// Change a schedule's time and days (`schedule list` shows its id).
    Change {
        id: Uuid,
        #[arg(long, value_parser = time)]
        at: String,
        #[arg(long, value_delimiter = ',', value_parser = day)]
        days: Vec<Day>,
    },
    /// Remove a schedule.
    Remove { id: Uuid },
    /// Set a site's time zone (an IANA name such as Europe/London); its schedules follow it.
    TimeZone {
        #[arg(long)]
        site: String,
        zone: String,
    },
}

fn time(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    parse_time(trimmed)
        .map(|_| trimmed.to_owned())
        .ok_or_else(|| format!("`{text}` is not a time of day such as 05:30"))
}

fn day(text: &str) -> Result<Day, String> {
    Day::parse(text).ok_or_else(|| format!("`{text}` is not a day (mon, tue, … or monday, …)"))
}

/// Every day when none are named.
fn request(at: String, days: Vec<Day>) -> ScheduleRequest {
    let days = if days.is_empty() {
        Day::ALL.to_vec()
    } else {
        days
    };
    ScheduleRequest { days, time: at }
}

/// "every day", "weekdays", or "mon, fri".
pub(crate) fn days_words(days: &[Day]) -> String {
    match days.len() {
        7 => "every day".to_owned(),
        5 if !days.contains(&Day::Sat) && !days.contains(&Day::Sun) => "weekdays".to_owned(),
        _ => days
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A run's time in the site's own zone, "Mon 30 Nov 06:00".
fn in_zone(at: DateTime<Utc>, zone: &str) -> String {
    match zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => at.with_timezone(&tz).format("%a %d %b %H:%M").to_string(),
        Err(_) => at.format("%a %d %b %H:%M UTC").to_string(),
    }
}

impl ScheduleCommand {
    pub(crate) async fn run(self, client: &Client, json: bool) -> Result<Exit, Failure> {
        match self {
            ScheduleCommand::List { site } => {
                let mut all = Vec::new();
                for site in sites_of(client, site.as_deref()).await? {
                    all.push((site.name.clone(), client.schedules(site.id).await?));
                }
                if json {
                    let sites: Vec<&SiteSchedules> = all.iter().map(|(_, s)| s).collect();
                    print_json(&sites)?;
                } else {
                    print_schedules(&all);
                }
            }
            ScheduleCommand::Add { site, at, days } => {
                let site = find_site(client, &site).await?;
                let schedule = client.add_schedule(site.id, &request(at, days)).await?;
                let zone = client.schedules(site.id).await?.time_zone;
                print_one(&schedule, &zone, json, "added")?;
            }
            ScheduleCommand::Change { id, at, days } => {
                let schedule = client.change_schedule(id, &request(at, days)).await?;
                let zone = client.schedules(schedule.site_id).await?.time_zone;
                print_one(&schedule, &zone, json, "changed")?;
            }
            ScheduleCommand::Remove { id } => {
                client.remove_schedule(id).await?;
                if !json {
                    println!("schedule {id} removed");
                }
            }
            ScheduleCommand::TimeZone { site, zone } => {
                let site = find_site(client, &site).await?;
                let schedules = client.set_time_zone(site.id, &zone).await?;
                if json {
                    print_json(&schedules)?;
                } else {
                    println!("{} is in {} now", site.name, schedules.time_zone);
                    print_schedules(&[(site.name, schedules)]);
                }
            }
        }
        Ok(Exit::Done)
    }
}

fn print_one(schedule: &Schedule, zone: &str, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        return print_json(schedule);
    }
    println!(
        "schedule {what}: {} at {} ({zone}); next run {}\nid {}",
        days_words(&schedule.days),
        schedule.time,
        in_zone(schedule.next_run_at, zone),
        schedule.id
    );
    Ok(())
}

fn print_schedules(sites: &[(String, SiteSchedules)]) {
    let mut t = table(&["Site", "When", "Next run", "Id"]);
    for (name, site) in sites {
        if site.schedules.is_empty() {
            t.add_row(vec![
                name.clone(),
                format!("no schedules ({})", site.time_zone),
                String::new(),
                String::new(),
            ]);
        }
        for schedule in &site.schedules {
            t.add_row(vec![
                name.clone(),
                format!(
                    "{} at {} ({})",
                    days_words(&schedule.days),
                    schedule.time,
                    site.time_zone
                ),
                in_zone(schedule.next_run_at, &site.time_zone),
                schedule.id.to_string(),
            ]);
        }
    }
    println!("{t}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_read_as_people_say_them() {
        assert_eq!(days_words(&Day::ALL), "every day");
        assert_eq!(days_words(&Day::ALL[..5]), "weekdays");
        assert_eq!(days_words(&[Day::Mon, Day::Fri]), "mon, fri");
        assert!(time("25:00").is_err());
        assert!(day("someday").is_err());
    }
}
