//! [`ItemTime`]: a zoned local date-time or an all-day date.

use std::fmt;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of the serde error raised for an unknown IANA zone name; the JSON
/// parser turns errors starting with it into `unknown_time_zone` violations.
pub(crate) const UNKNOWN_TZ_MARKER: &str = "unknown time zone";

/// The start or end of a [`ScheduleItem`](super::ScheduleItem), or a date in
/// its recurrence (RDATE, EXDATE, RECURRENCE-ID).
///
/// - [`ItemTime::Zoned`]: a wall-clock date-time in an IANA time zone (use
///   [`Tz::UTC`] for UTC). JSON: `{"date_time": "2024-03-10T09:00:00", "tz": "Europe/Berlin"}`.
/// - [`ItemTime::AllDay`]: a calendar date without time or zone. JSON:
///   `{"date": "2024-03-10"}`. As in iCalendar, an all-day *end* is
///   exclusive: a one-day item on 10 March ends on 11 March.
///
/// A local time that falls in a daylight-saving gap is read with the offset
/// in force before the gap (02:30 on a spring-forward night becomes 03:30
/// summer time); an ambiguous local time (autumn fall-back) is the earlier
/// instant. This is the rule of RFC 5545 section 3.3.5.
///
/// ```
/// use chrono::{NaiveDate, TimeZone, Utc};
/// use flextime_core::schedule::ItemTime;
///
/// let t = ItemTime::zoned(
///     NaiveDate::from_ymd_opt(2024, 7, 1).unwrap().and_hms_opt(9, 0, 0).unwrap(),
///     chrono_tz::Europe::Berlin,
/// );
/// assert_eq!(t.to_utc(), Utc.with_ymd_and_hms(2024, 7, 1, 7, 0, 0).unwrap());
/// assert!(!t.is_all_day());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemTime {
    /// A wall-clock date-time in an IANA zone.
    Zoned {
        /// The local date and time, as read on a clock in `tz`.
        local: NaiveDateTime,
        /// The zone (`Tz::UTC` for UTC).
        tz: Tz,
    },
    /// A whole day (floating: no zone).
    AllDay(NaiveDate),
}

impl ItemTime {
    /// A zoned date-time.
    pub const fn zoned(local: NaiveDateTime, tz: Tz) -> Self {
        Self::Zoned { local, tz }
    }

    /// A UTC date-time (zone `UTC`).
    pub fn utc(instant: DateTime<Utc>) -> Self {
        Self::Zoned {
            local: instant.naive_utc(),
            tz: Tz::UTC,
        }
    }

    /// An all-day date.
    pub const fn all_day(date: NaiveDate) -> Self {
        Self::AllDay(date)
    }

    /// Whether this is an all-day date.
    pub const fn is_all_day(&self) -> bool {
        matches!(self, Self::AllDay(_))
    }

    /// The zone of a zoned time; `None` for all-day dates.
    pub const fn tz(&self) -> Option<Tz> {
        match self {
            Self::Zoned { tz, .. } => Some(*tz),
            Self::AllDay(_) => None,
        }
    }

    /// The calendar date (the local date of a zoned time).
    pub fn date(&self) -> NaiveDate {
        match self {
            Self::Zoned { local, .. } => local.date(),
            Self::AllDay(date) => *date,
        }
    }

    /// The instant this time denotes. All-day dates are read as midnight UTC
    /// (they float; this is the convention used for window comparisons).
    pub fn to_utc(&self) -> DateTime<Utc> {
        match self {
            Self::Zoned { local, tz } => resolve_local(*tz, *local).with_timezone(&Utc),
            Self::AllDay(date) => date.and_time(NaiveTime::MIN).and_utc(),
        }
    }

    /// The instant in the item's own zone (all-day: midnight in UTC).
    pub fn to_zoned(&self) -> DateTime<Tz> {
        match self {
            Self::Zoned { local, tz } => resolve_local(*tz, *local),
            Self::AllDay(_) => self.to_utc().with_timezone(&Tz::UTC),
        }
    }
}

impl fmt::Display for ItemTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zoned { local, tz } => {
                write!(f, "{} {}", local.format("%Y-%m-%dT%H:%M:%S"), tz.name())
            }
            Self::AllDay(date) => write!(f, "{date}"),
        }
    }
}

/// Resolve a wall-clock time in `tz` to an instant, never failing: ambiguous
/// times take the earlier instant, times in a gap use the offset before it.
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Tz> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) => dt,
        LocalResult::None => {
            // Walk back to a wall-clock time before the gap, then add the
            // same span as elapsed time: that is `local` read with the offset
            // in force before the gap.
            for minutes in (15..=26 * 60).step_by(15) {
                let back = Duration::minutes(minutes);
                let Some(earlier) = local.checked_sub_signed(back) else {
                    break;
                };
                if let Some(dt) = tz.from_local_datetime(&earlier).earliest() {
                    if let Some(shifted) = dt.checked_add_signed(back) {
                        return shifted;
                    }
                }
            }
            // Unreachable with real zone data; read the wall clock as UTC.
            Tz::UTC.from_utc_datetime(&local).with_timezone(&tz)
        }
    }
}

/// The JSON form of [`ItemTime`]: exactly one of `date_time` (with `tz`) or `date`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemTimeRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    date_time: Option<NaiveDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tz: Option<TzName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    date: Option<NaiveDate>,
}

/// An IANA zone name that (de)serializes as a string and fails with a
/// recognisable message when the zone is unknown.
struct TzName(Tz);

impl Serialize for TzName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TzName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        parse_tz(&name).map(TzName).ok_or_else(|| {
            serde::de::Error::custom(format!("{UNKNOWN_TZ_MARKER} `{name}` (expected an IANA name such as `Europe/Berlin` or `UTC`)"))
        })
    }
}

/// Parse an IANA zone name (exact spelling; `Z` is accepted for UTC).
pub fn parse_tz(name: &str) -> Option<Tz> {
    if name == "Z" {
        return Some(Tz::UTC);
    }
    name.parse::<Tz>().ok()
}

impl Serialize for ItemTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let repr = match self {
            Self::Zoned { local, tz } => ItemTimeRepr {
                date_time: Some(*local),
                tz: Some(TzName(*tz)),
                date: None,
            },
            Self::AllDay(date) => ItemTimeRepr {
                date_time: None,
                tz: None,
                date: Some(*date),
            },
        };
        repr.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ItemTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let repr = ItemTimeRepr::deserialize(deserializer)?;
        match (repr.date_time, repr.tz, repr.date) {
            (Some(local), Some(TzName(tz)), None) => Ok(Self::Zoned { local, tz }),
            (None, None, Some(date)) => Ok(Self::AllDay(date)),
            (Some(_), None, None) => Err(D::Error::custom(
                "missing field `tz` (a `date_time` needs an IANA zone; use \"UTC\" for UTC)",
            )),
            (None, Some(_) | None, None) => Err(D::Error::custom(
                "missing field `date_time` or `date` (expected {\"date_time\", \"tz\"} or {\"date\"})",
            )),
            (_, _, Some(_)) => Err(D::Error::custom(
                "`date` (all-day) cannot be combined with `date_time` or `tz`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(y: i32, m: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    #[test]
    fn gap_uses_offset_before_gap() {
        // 2024-03-31 02:30 does not exist in Berlin; read with +01:00 => 01:30Z.
        let t = ItemTime::zoned(dt(2024, 3, 31, 2, 30), chrono_tz::Europe::Berlin);
        assert_eq!(
            t.to_utc(),
            Utc.with_ymd_and_hms(2024, 3, 31, 1, 30, 0).unwrap()
        );
    }

    #[test]
    fn ambiguous_takes_earlier() {
        let t = ItemTime::zoned(dt(2024, 10, 27, 2, 30), chrono_tz::Europe::Berlin);
        assert_eq!(
            t.to_utc(),
            Utc.with_ymd_and_hms(2024, 10, 27, 0, 30, 0).unwrap()
        );
    }

    #[test]
    fn json_shapes() {
        let t = ItemTime::zoned(dt(2024, 3, 10, 9, 0), chrono_tz::Europe::Berlin);
        let json = serde_json::to_value(t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"date_time": "2024-03-10T09:00:00", "tz": "Europe/Berlin"})
        );
        let d = ItemTime::all_day(NaiveDate::from_ymd_opt(2024, 3, 10).unwrap());
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            serde_json::json!({"date": "2024-03-10"})
        );
        let err = serde_json::from_value::<ItemTime>(
            serde_json::json!({"date_time": "2024-03-10T09:00:00", "tz": "Mars/Base"}),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with(UNKNOWN_TZ_MARKER), "{err}");
        assert!(
            serde_json::from_value::<ItemTime>(
                serde_json::json!({"date": "2024-03-10", "tz": "UTC"})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<ItemTime>(
                serde_json::json!({"date_time": "2024-03-10T09:00:00"})
            )
            .is_err()
        );
    }
}
