//! Scheduled syncs: "every day at 05:30", "Mondays at 06:00", in the site's own time zone.
//!
//! A schedule is a set of days and a time of day; Back Office works out each next run in the
//! site's time zone, so a daylight-saving change neither skips a run nor repeats one: a time that
//! does not exist that night (the clocks jump past it) runs when the clocks have jumped, and a time
//! that happens twice (the clocks go back) runs the first time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    /// Monday is 0.
    pub fn index(self) -> u32 {
        self as u32
    }

    pub fn as_str(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }

    pub fn parse(text: &str) -> Option<Day> {
        let text = text.trim().to_ascii_lowercase();
        Day::ALL
            .into_iter()
            .find(|day| text.get(..3) == Some(day.as_str()) && day_name(*day).starts_with(&text))
    }
}

fn day_name(day: Day) -> &'static str {
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][day as usize]
}

/// A set of days as a bit mask (bit 0: Monday), as stored.
pub fn days_mask(days: &[Day]) -> u8 {
    days.iter().fold(0, |mask, day| mask | (1 << day.index()))
}

/// The days of a mask, Monday first.
pub fn mask_days(mask: u8) -> Vec<Day> {
    Day::ALL
        .into_iter()
        .filter(|day| mask & (1 << day.index()) != 0)
        .collect()
}

/// One schedule of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub id: Uuid,
    pub site_id: Uuid,
    /// The days it runs on, Monday first (all seven: every day).
    pub days: Vec<Day>,
    /// The time of day it runs, "HH:MM", in the site's time zone.
    #[cfg_attr(feature = "openapi", schema(example = "05:30"))]
    pub time: String,
    /// When it runs next.
    pub next_run_at: DateTime<Utc>,
    /// When it last ran, if it has.
    pub last_run_at: Option<DateTime<Utc>>,
    /// Who set it up.
    pub created_by: Option<String>,
}

/// A schedule as a manager asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// One or more days.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub days: Vec<Day>,
    /// "HH:MM" (or "H:MM"), 24-hour, in the site's time zone.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "05:30", pattern = "^([01]?[0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub time: String,
}

/// A site's schedules and the time zone they are in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteSchedules {
    pub site_id: Uuid,
    /// An IANA time zone name, such as "Europe/London".
    pub time_zone: String,
    /// Soonest first.
    pub schedules: Vec<Schedule>,
}

/// A site's time zone, as a manager sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeZoneRequest {
    /// An IANA time zone name, such as "Europe/London".
    #[cfg_attr(feature = "openapi", schema(example = "Europe/London"))]
    pub time_zone: String,
}

/// "05:30" as minutes after midnight; `None` unless it is a time of day, "H:MM" or "HH:MM"
/// (digits only: what the API's schema says, `^([01]?[0-9]|2[0-3]):[0-5][0-9]$`).
pub fn parse_time(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if hours.is_empty()
        || hours.len() > 2
        || minutes.len() != 2
        || !digits(hours)
        || !digits(minutes)
    {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// Minutes after midnight as "HH:MM".
pub fn time_text(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day_parse_and_print_back() {
        assert_eq!(parse_time("05:30"), Some(330));
        assert_eq!(parse_time("5:30"), Some(330));
        assert_eq!(parse_time("23:59"), Some(1439));
        for bad in [
            "24:00", "12:60", "12", "12:5", ":30", "ab:cd", "-1:30", "12:30:00", "+5:30", " 5:30",
            "5:+3",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(time_text(330), "05:30");
    }

    #[test]
    fn days_round_trip_through_their_mask_and_names() {
        let days = [Day::Mon, Day::Fri, Day::Sun];
        assert_eq!(mask_days(days_mask(&days)), days);
        assert_eq!(Day::parse("Monday"), Some(Day::Mon));
        assert_eq!(Day::parse("fri"), Some(Day::Fri));
        assert_eq!(Day::parse("mo"), None);
        assert_eq!(Day::parse("mondays"), None);
        assert_eq!(serde_json::to_string(&Day::Wed).unwrap(), "\"wed\"");
    }
}
