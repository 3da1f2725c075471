//! [`Recurrence`], [`Override`] and the expansion into [`Occurrence`]s.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::time::resolve_local;
use super::{ItemTime, ScheduleItem, Status};
use crate::error::{Error, Result};

/// Hard cap on the number of occurrences one expansion returns, whatever
/// limit the caller passes.
pub const MAX_OCCURRENCES: usize = 10_000;

/// Hard cap on the number of recurrence instances one expansion (or the
/// override check of validation) may walk through from `DTSTART`; past it
/// the expansion fails instead of spinning.
pub const MAX_SCANNED_INSTANCES: usize = 500_000;

/// Years accepted for expansion (iCalendar dates have four-digit years).
pub(crate) const YEAR_RANGE: std::ops::RangeInclusive<i32> = 1..=9999;

/// How an item repeats: iCalendar `RRULE`, `RDATE`, `EXDATE` and overridden
/// instances (components with a `RECURRENCE-ID`).
///
/// `DTSTART` (the item's `start`) is always the first instance, as in RFC
/// 5545; exclude it with an `exdate` if it should not be one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// RRULE values without the `RRULE:` prefix (which is tolerated), such as
    /// `FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20241231T230000Z`. With a zoned start,
    /// `UNTIL` must be UTC (ends in `Z`), as RFC 5545 requires; with an
    /// all-day start it may be a date (`UNTIL=20241231`). Several rules are
    /// merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rrule: Vec<String>,
    /// Extra instances (`RDATE`), same kind (zoned or all-day) as `start`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rdate: Vec<ItemTime>,
    /// Removed instances (`EXDATE`), same kind as `start`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exdate: Vec<ItemTime>,
    /// Changed or cancelled instances, each keyed by its `recurrence_id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
}

impl Recurrence {
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.rrule.is_empty()
            && self.rdate.is_empty()
            && self.exdate.is_empty()
            && self.overrides.is_empty()
    }
}

/// A change to one instance of a recurring item, identified by the
/// instance's original start (`RECURRENCE-ID`). Fields left out keep the
/// item's values; `status: cancelled` removes the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The original start of the instance being changed.
    pub recurrence_id: ItemTime,
    /// New start (the instance moves here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<ItemTime>,
    /// New end; when absent the instance keeps the item's duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<ItemTime>,
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// New status; `cancelled` removes the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Override {
    /// An override that changes nothing yet.
    pub const fn new(recurrence_id: ItemTime) -> Self {
        Self {
            recurrence_id,
            start: None,
            end: None,
            title: None,
            description: None,
            location: None,
            status: None,
        }
    }

    /// An override that cancels the instance.
    pub const fn cancel(recurrence_id: ItemTime) -> Self {
        let mut o = Self::new(recurrence_id);
        o.status = Some(Status::Cancelled);
        o
    }

    /// Whether it cancels the instance.
    pub fn is_cancellation(&self) -> bool {
        self.status == Some(Status::Cancelled)
    }
}

/// One concrete occurrence of a [`ScheduleItem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    /// The original start of this instance (its `RECURRENCE-ID`); for a
    /// non-recurring item, its start.
    pub recurrence_id: ItemTime,
    /// Start, in the item's zone (after any override).
    pub start: ItemTime,
    /// End, exclusive, in the zone of the item's end (after any override).
    pub end: ItemTime,
    /// Start as an instant (all-day dates: midnight UTC).
    pub start_utc: DateTime<Utc>,
    /// End as an instant (all-day dates: midnight UTC).
    pub end_utc: DateTime<Utc>,
    /// Title (the override's if it changed it).
    pub title: String,
    /// Description (the override's if it changed it).
    pub description: Option<String>,
    /// Location (the override's if it changed it).
    pub location: Option<String>,
    /// Effective status.
    pub status: Status,
    /// Whether an [`Override`] applies to this instance.
    pub overridden: bool,
    /// Whether the instance is cancelled (only returned by
    /// [`ScheduleItem::occurrences_including_cancelled`]).
    pub cancelled: bool,
}

/// How instances are compared (RECURRENCE-ID, EXDATE matching): by instant
/// for zoned items, by date for all-day items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

/// Fits `t` to the value type of `start`, for lenient matching: an all-day
/// value on a zoned item takes the start's wall-clock time, a zoned value on
/// an all-day item its local date.
pub(crate) fn key_for(start: &ItemTime, t: &ItemTime) -> Key {
    match (start, t) {
        (ItemTime::AllDay(_), other) => Key::Date(other.date()),
        (ItemTime::Zoned { .. }, ItemTime::Zoned { .. }) => Key::Instant(t.to_utc()),
        (ItemTime::Zoned { local, tz }, ItemTime::AllDay(date)) => {
            Key::Instant(resolve_local(*tz, date.and_time(local.time())).with_timezone(&Utc))
        }
    }
}

/// Normalize an RRULE value for the `rrule` crate: strip an `RRULE:` prefix
/// and, for all-day items (whose DTSTART is handed over as midnight UTC),
/// turn a DATE or floating `UNTIL` into UTC.
pub(crate) fn normalize_rrule(rule: &str, all_day: bool) -> String {
    let trimmed = rule.trim();
    let body = match (trimmed.get(..6), trimmed.get(6..)) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("RRULE:") => rest,
        _ => trimmed,
    };
    if !all_day {
        return body.to_owned();
    }
    body.split(';')
        .map(|part| match part.split_once('=') {
            Some((name, value)) if name.eq_ignore_ascii_case("UNTIL") => {
                if !value.contains(['T', 't']) {
                    format!("{name}={value}T000000Z")
                } else if !value.ends_with(['Z', 'z']) {
                    format!("{name}={value}Z")
                } else {
                    part.to_owned()
                }
            }
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// DTSTART as the `rrule` crate wants it.
fn rrule_start(start: &ItemTime) -> DateTime<rrule::Tz> {
    match start {
        ItemTime::Zoned { local, tz } => {
            resolve_local(*tz, *local).with_timezone(&rrule::Tz::Tz(*tz))
        }
        ItemTime::AllDay(date) => date
            .and_time(NaiveTime::MIN)
            .and_utc()
            .with_timezone(&rrule::Tz::UTC),
    }
}

/// Parse and validate every RRULE of `item`; on failure, the index and the
/// `rrule` crate's message for each bad rule.
pub(crate) fn parse_rrules(
    item: &ScheduleItem,
) -> std::result::Result<Vec<rrule::RRule>, Vec<(usize, String)>> {
    let dt_start = rrule_start(&item.start);
    let all_day = item.start.is_all_day();
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (i, text) in item.recurrence.rrule.iter().enumerate() {
        let parsed = normalize_rrule(text, all_day)
            .parse::<rrule::RRule<rrule::Unvalidated>>()
            .and_then(|r| r.validate(dt_start));
        match parsed {
            Ok(rule) => rules.push(rule),
            Err(err) => errors.push((i, err.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// Whether a date-time is inside the years expansion accepts.
pub(crate) fn in_year_range(t: &ItemTime) -> bool {
    YEAR_RANGE.contains(&t.date().year())
}

/// The instances of an item, in order, without duplicates or EXDATEs.
pub(crate) struct Instances {
    start: ItemTime,
    inner: InstancesInner,
    excluded: BTreeSet<Key>,
    last: Option<Key>,
    scanned: usize,
}

enum InstancesInner {
    Single(Option<ItemTime>),
    Set(Box<rrule::RRuleSetIter>),
}

/// The scan cap was reached before the walk finished.
#[derive(Debug)]
pub(crate) struct ScanLimitReached;

impl Instances {
    /// Fails with the bad RRULEs' indexes and messages.
    pub(crate) fn new(item: &ScheduleItem) -> std::result::Result<Self, Vec<(usize, String)>> {
        let start = item.start;
        let excluded = item
            .recurrence
            .exdate
            .iter()
            .map(|t| key_for(&start, t))
            .collect();
        let inner = if item.is_recurring() {
            let rules = parse_rrules(item)?;
            let dt_start = rrule_start(&start);
            let mut set = rrule::RRuleSet::new(dt_start)
                .set_rrules(rules)
                .rdate(dt_start);
            for rdate in &item.recurrence.rdate {
                if in_year_range(rdate) {
                    set = set.rdate(rrule_start(&fit(&start, rdate)));
                }
            }
            InstancesInner::Set(Box::new(set.limit().into_iter()))
        } else {
            InstancesInner::Single(Some(start))
        };
        Ok(Self {
            start,
            inner,
            excluded,
            last: None,
            scanned: 0,
        })
    }

    /// The next instance (its original start), `Ok(None)` at the end.
    pub(crate) fn next_instance(
        &mut self,
    ) -> std::result::Result<Option<(Key, ItemTime)>, ScanLimitReached> {
        loop {
            if self.scanned >= MAX_SCANNED_INSTANCES {
                return Err(ScanLimitReached);
            }
            self.scanned += 1;
            let time = match &mut self.inner {
                InstancesInner::Single(slot) => slot.take(),
                InstancesInner::Set(iter) => iter.next().map(|dt| self.to_item_time(dt)),
            };
            let Some(time) = time else {
                return Ok(None);
            };
            let key = key_for(&self.start, &time);
            if self.last == Some(key) || self.excluded.contains(&key) {
                continue;
            }
            self.last = Some(key);
            return Ok(Some((key, time)));
        }
    }

    fn to_item_time(&self, dt: DateTime<rrule::Tz>) -> ItemTime {
        match self.start {
            ItemTime::Zoned { tz, .. } => ItemTime::Zoned {
                local: dt.with_timezone(&tz).naive_local(),
                tz,
            },
            ItemTime::AllDay(_) => ItemTime::AllDay(dt.with_timezone(&Utc).date_naive()),
        }
    }
}

/// `t` converted to the value type of `start` (see [`key_for`]).
fn fit(start: &ItemTime, t: &ItemTime) -> ItemTime {
    match (start, t) {
        (ItemTime::AllDay(_), other) => ItemTime::AllDay(other.date()),
        (ItemTime::Zoned { .. }, ItemTime::Zoned { .. }) => *t,
        (ItemTime::Zoned { local, tz }, ItemTime::AllDay(date)) => ItemTime::Zoned {
            local: date.and_time(local.time()),
            tz: *tz,
        },
    }
}

/// The item's length, used for every instance.
enum Length {
    Exact(Duration),
    Days(i64),
}

fn length_of(start: &ItemTime, end: &ItemTime) -> Length {
    match start {
        ItemTime::AllDay(s) => Length::Days((end.date() - *s).num_days().max(0)),
        ItemTime::Zoned { .. } => {
            Length::Exact((end.to_utc() - start.to_utc()).max(Duration::zero()))
        }
    }
}

/// The end of an instance starting at `start`, in `end_tz` for zoned items.
fn end_for(start: &ItemTime, length: &Length, end_like: &ItemTime) -> ItemTime {
    match (start, length) {
        (ItemTime::AllDay(date), Length::Days(days)) => ItemTime::AllDay(
            date.checked_add_signed(Duration::days(*days))
                .unwrap_or(*date),
        ),
        (ItemTime::AllDay(date), Length::Exact(_)) => ItemTime::AllDay(*date),
        (ItemTime::Zoned { tz, .. }, length) => {
            let exact = match length {
                Length::Exact(d) => *d,
                Length::Days(days) => Duration::days(*days),
            };
            let end_tz = end_like.tz().unwrap_or(*tz);
            let instant = start.to_utc();
            let end = instant.checked_add_signed(exact).unwrap_or(instant);
            ItemTime::Zoned {
                local: end.with_timezone(&end_tz).naive_local(),
                tz: end_tz,
            }
        }
    }
}

fn overlaps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> bool {
    start < to && (end > from || (start == end && start >= from))
}

impl ScheduleItem {
    /// The occurrences that overlap `[window_start, window_end)`, earliest
    /// first, at most `limit` of them (and never more than
    /// [`MAX_OCCURRENCES`]).
    ///
    /// Honors every RRULE, RDATE and EXDATE; DTSTART is the first instance.
    /// Instances keep their wall-clock time in the item's zone across DST
    /// changes. An [`Override`] moves or changes its instance (a moved
    /// instance is returned where it lands); a cancelled one is dropped. A
    /// non-recurring item yields itself if it overlaps the window. All-day
    /// dates are compared with the window as midnight UTC. A zero-length item
    /// overlaps when its start is inside the window.
    ///
    /// Fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// when an RRULE is invalid, a date is outside years 1..=9999, or more
    /// than [`MAX_SCANNED_INSTANCES`] instances lie before the window.
    ///
    /// ```
    /// use chrono::{NaiveDate, TimeZone, Utc};
    /// use flextime_core::schedule::{ItemKind, ItemTime, ScheduleItem};
    ///
    /// let at = |d, h| NaiveDate::from_ymd_opt(2024, 3, d).unwrap().and_hms_opt(h, 0, 0).unwrap();
    /// let berlin = chrono_tz::Europe::Berlin;
    /// let mut item = ScheduleItem::new("e1", ItemKind::Event, "Daily",
    ///     ItemTime::zoned(at(29, 9), berlin), ItemTime::zoned(at(29, 10), berlin),
    ///     Utc::now());
    /// item.recurrence.rrule.push("FREQ=DAILY".into());
    /// let occ = item.occurrences(
    ///     Utc.with_ymd_and_hms(2024, 3, 29, 0, 0, 0).unwrap(),
    ///     Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(), 10).unwrap();
    /// // 09:00 local every day: 08:00Z before the 31 March change, 07:00Z after.
    /// let utc: Vec<u32> = occ.iter().map(|o| chrono::Timelike::hour(&o.start_utc)).collect();
    /// assert_eq!(utc, [8, 8, 7]);
    /// ```
    pub fn occurrences(
        &self,
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Occurrence>> {
        self.expand(window_start, window_end, limit, false)
    }

    /// Like [`occurrences`](Self::occurrences), but instances cancelled by
    /// an override are returned too, at their original time, with
    /// `cancelled: true` and status `cancelled`.
    pub fn occurrences_including_cancelled(
        &self,
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Occurrence>> {
        self.expand(window_start, window_end, limit, true)
    }

    fn expand(
        &self,
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
        limit: usize,
        include_cancelled: bool,
    ) -> Result<Vec<Occurrence>> {
        let limit = limit.min(MAX_OCCURRENCES);
        if limit == 0 || window_end <= window_start {
            return Ok(Vec::new());
        }
        if !in_year_range(&self.start) || !in_year_range(&self.end) {
            return Err(Error::invalid_input(format!(
                "schedule item {}: start and end must be within years 1..=9999",
                self.id
            )));
        }
        let mut instances = Instances::new(self).map_err(|errors| {
            let list: Vec<String> = errors
                .iter()
                .map(|(i, msg)| format!("recurrence.rrule[{i}]: {msg}"))
                .collect();
            Error::invalid_input(format!(
                "schedule item {}: invalid RRULE: {}",
                self.id,
                list.join("; ")
            ))
        })?;

        let length = length_of(&self.start, &self.end);
        // Overrides by key; the first one wins for duplicate keys.
        let mut overrides: BTreeMap<Key, &Override> = BTreeMap::new();
        for o in &self.recurrence.overrides {
            overrides
                .entry(key_for(&self.start, &o.recurrence_id))
                .or_insert(o);
        }
        let last_override = overrides.keys().next_back().copied();

        let mut plain = Vec::new(); // instances without overrides, in the window
        let mut plain_full = false;
        let mut hits: Vec<(ItemTime, &Override)> = Vec::new();
        loop {
            let next = instances.next_instance().map_err(|ScanLimitReached| {
                Error::invalid_input(format!(
                    "schedule item {}: more than {MAX_SCANNED_INSTANCES} recurrence instances \
                     to walk; the rule is too dense for this window",
                    self.id
                ))
            })?;
            let Some((key, original)) = next else {
                break;
            };
            let start_utc = original.to_utc();
            let overrides_pending = last_override.is_some_and(|last| key <= last);
            if start_utc >= window_end && !overrides_pending {
                break;
            }
            if plain_full && !overrides_pending {
                break;
            }
            if let Some(o) = overrides.get(&key) {
                hits.push((original, o));
                continue;
            }
            if plain_full || start_utc >= window_end {
                continue;
            }
            let end = end_for(&original, &length, &self.end);
            let end_utc = end.to_utc();
            if overlaps(start_utc, end_utc, window_start, window_end) {
                plain.push(Occurrence {
                    recurrence_id: original,
                    start: original,
                    end,
                    start_utc,
                    end_utc,
                    title: self.title.clone(),
                    description: self.description.clone(),
                    location: self.location.clone(),
                    status: self.status,
                    overridden: false,
                    cancelled: false,
                });
                plain_full = plain.len() >= limit;
            }
        }

        let mut out = plain;
        for (original, o) in hits {
            let cancelled = o.is_cancellation();
            if cancelled && !include_cancelled {
                continue;
            }
            let (start, end) = if cancelled {
                (original, end_for(&original, &length, &self.end))
            } else {
                let start = o.start.map_or(original, |s| fit(&self.start, &s));
                let end = o.end.map_or_else(
                    || end_for(&start, &length, &self.end),
                    |e| fit(&self.end, &e),
                );
                (start, end)
            };
            if !in_year_range(&start) || !in_year_range(&end) {
                continue;
            }
            let (start_utc, end_utc) = (start.to_utc(), end.to_utc());
            if !overlaps(start_utc, end_utc, window_start, window_end) {
                continue;
            }
            out.push(Occurrence {
                recurrence_id: original,
                start,
                end,
                start_utc,
                end_utc,
                title: o.title.clone().unwrap_or_else(|| self.title.clone()),
                description: o.description.clone().or_else(|| self.description.clone()),
                location: o.location.clone().or_else(|| self.location.clone()),
                status: o.status.unwrap_or(self.status),
                overridden: true,
                cancelled,
            });
        }
        out.sort_by(|a, b| {
            (a.start_utc, key_for(&self.start, &a.recurrence_id))
                .cmp(&(b.start_utc, key_for(&self.start, &b.recurrence_id)))
        });
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_rrule_text() {
        assert_eq!(normalize_rrule("RRULE:FREQ=DAILY", false), "FREQ=DAILY");
        assert_eq!(
            normalize_rrule("FREQ=DAILY;UNTIL=19971224", true),
            "FREQ=DAILY;UNTIL=19971224T000000Z"
        );
        assert_eq!(
            normalize_rrule("FREQ=DAILY;UNTIL=19971224T100000", true),
            "FREQ=DAILY;UNTIL=19971224T100000Z"
        );
        assert_eq!(
            normalize_rrule("FREQ=DAILY;UNTIL=19971224", false),
            "FREQ=DAILY;UNTIL=19971224"
        );
    }
}
