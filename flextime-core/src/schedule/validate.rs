//! Validation of [`ScheduleItem`]: every violation, each with its path.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use email_address::EmailAddress;

use super::recurrence::{Instances, Key, in_year_range, key_for};
use super::{ItemTime, ScheduleItem};
use crate::error::Result;
use crate::validate::{Validator, Violation, violations_to_result};

/// The violation codes used for schedule items.
pub mod codes {
    /// A required field is empty (`id`, `title` of events/bookings/shifts, external ref `id`).
    pub const REQUIRED: &str = "required";
    /// `end` is before `start` (all-day: not after it, the end date being exclusive).
    pub const END_BEFORE_START: &str = "end_before_start";
    /// One of start/end is all-day and the other is zoned.
    pub const MIXED_ALL_DAY: &str = "mixed_all_day";
    /// A date outside years 1..=9999.
    pub const OUT_OF_RANGE: &str = "out_of_range";
    /// An RDATE, EXDATE or RECURRENCE-ID is all-day while `start` is zoned, or the reverse.
    pub const MISMATCHED_VALUE_TYPE: &str = "mismatched_value_type";
    /// An RRULE the `rrule` crate rejects (its message is the violation message).
    pub const INVALID_RRULE: &str = "invalid_rrule";
    /// An override for a RECURRENCE-ID that is not an instance of the item.
    pub const UNKNOWN_RECURRENCE_ID: &str = "unknown_recurrence_id";
    /// Two overrides for the same RECURRENCE-ID.
    pub const DUPLICATE_OVERRIDE: &str = "duplicate_override";
    /// The instances before the last override could not all be walked (see
    /// [`MAX_SCANNED_INSTANCES`](crate::schedule::MAX_SCANNED_INSTANCES)).
    pub const EXPANSION_LIMIT: &str = "expansion_limit";
    /// Not an email address.
    pub const INVALID_EMAIL: &str = "invalid_email";
    /// The same attendee email twice (case-insensitive).
    pub const DUPLICATE_ATTENDEE: &str = "duplicate_attendee";
    /// A list longer than its cap.
    pub const TOO_MANY: &str = "too_many";
    /// An IANA time zone name that is not known (from [`ScheduleItem::parse_json`](crate::schedule::ScheduleItem::parse_json)).
    pub const UNKNOWN_TIME_ZONE: &str = "unknown_time_zone";
    /// A field that is not part of the JSON shape (from [`ScheduleItem::parse_json`](crate::schedule::ScheduleItem::parse_json)).
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    /// A value of the wrong type or format (from [`ScheduleItem::parse_json`](crate::schedule::ScheduleItem::parse_json)).
    pub const INVALID_VALUE: &str = "invalid_value";
    /// The input is not JSON (from [`ScheduleItem::parse_json`](crate::schedule::ScheduleItem::parse_json)).
    pub const INVALID_JSON: &str = "invalid_json";
}

/// At most this many RRULEs.
const MAX_RRULES: usize = 16;
/// At most this many RDATEs, EXDATEs or overrides each.
const MAX_DATES: usize = 10_000;
/// At most this many attendees.
const MAX_ATTENDEES: usize = 10_000;

/// [`Validator`] for [`ScheduleItem`]s; the same checks as
/// [`ScheduleItem::validate`].
///
/// ```
/// use flextime_core::Validator;
/// use flextime_core::schedule::{ScheduleItem, ScheduleItemValidator};
///
/// let item: ScheduleItem = serde_json::from_str(r#"{
///     "id": "b1", "kind": "booking", "title": "",
///     "start": {"date": "2024-06-02"}, "end": {"date": "2024-06-01"},
///     "updated_at": "2024-06-01T00:00:00Z"}"#).unwrap();
/// let found = ScheduleItemValidator.validate(&item);
/// let at: Vec<(&str, &str)> = found.iter().map(|v| (v.path.as_str(), v.code.as_str())).collect();
/// assert_eq!(at, [("title", "required"), ("end", "end_before_start")]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ScheduleItemValidator;

impl Validator<ScheduleItem> for ScheduleItemValidator {
    fn validate(&self, value: &ScheduleItem) -> Vec<Violation> {
        value.validate()
    }
}

impl ScheduleItem {
    /// Every broken rule, each with its field path (`end`,
    /// `recurrence.rrule[0]`, `attendees[2].email` ...) and a code from
    /// [`codes`]; empty when the item is valid.
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        if self.id.trim().is_empty() {
            out.push(Violation::new("id", codes::REQUIRED, "must not be empty"));
        }
        if self.kind.requires_title() && self.title.trim().is_empty() {
            out.push(Violation::new(
                "title",
                codes::REQUIRED,
                format!("a {} needs a title", kind_name(self)),
            ));
        }
        let times_ok =
            check_range(&mut out, "start", &self.start) & check_range(&mut out, "end", &self.end);
        if times_ok {
            check_span(&mut out, "end", &self.start, &self.end);
        }
        self.validate_recurrence(&mut out, times_ok);
        self.validate_people(&mut out);
        for (system, reference) in &self.external_refs {
            if system.trim().is_empty() {
                out.push(Violation::new(
                    "external_refs",
                    codes::REQUIRED,
                    "system names must not be empty",
                ));
            }
            if reference.id.trim().is_empty() {
                out.push(Violation::new(
                    format!("external_refs.{system}.id"),
                    codes::REQUIRED,
                    "must not be empty",
                ));
            }
        }
        out
    }

    /// `Ok(())` when [`validate`](Self::validate) finds nothing, otherwise an
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error listing every violation.
    pub fn check(&self) -> Result<()> {
        violations_to_result(&self.validate())
    }

    fn validate_recurrence(&self, out: &mut Vec<Violation>, times_ok: bool) {
        let rec = &self.recurrence;
        let all_day = self.start.is_all_day();
        if rec.rrule.len() > MAX_RRULES {
            out.push(too_many("recurrence.rrule", MAX_RRULES));
        }
        for (name, list) in [("rdate", &rec.rdate), ("exdate", &rec.exdate)] {
            if list.len() > MAX_DATES {
                out.push(too_many(&format!("recurrence.{name}"), MAX_DATES));
            }
            for (i, t) in list.iter().enumerate() {
                let path = format!("recurrence.{name}[{i}]");
                if check_range(out, &path, t) {
                    check_type(out, &path, all_day, t);
                }
            }
        }
        if rec.overrides.len() > MAX_DATES {
            out.push(too_many("recurrence.overrides", MAX_DATES));
        }

        let mut rrules_ok = true;
        if times_ok {
            if let Err(errors) = super::recurrence::parse_rrules(self) {
                rrules_ok = false;
                for (i, message) in errors {
                    out.push(Violation::new(
                        format!("recurrence.rrule[{i}]"),
                        codes::INVALID_RRULE,
                        message,
                    ));
                }
            }
        }

        // Overrides: shape first, then whether each is an instance.
        let mut seen: BTreeMap<Key, usize> = BTreeMap::new();
        let mut to_find: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
        for (i, o) in rec.overrides.iter().enumerate() {
            let base = format!("recurrence.overrides[{i}]");
            let id_path = format!("{base}.recurrence_id");
            if !check_range(out, &id_path, &o.recurrence_id) {
                continue;
            }
            check_type(out, &id_path, all_day, &o.recurrence_id);
            let key = key_for(&self.start, &o.recurrence_id);
            if let Some(first) = seen.get(&key) {
                out.push(Violation::new(
                    id_path.clone(),
                    codes::DUPLICATE_OVERRIDE,
                    format!("recurrence.overrides[{first}] already overrides this instance"),
                ));
            } else {
                seen.insert(key, i);
                to_find.entry(key).or_default().push(i);
            }
            let start_ok = o
                .start
                .as_ref()
                .is_none_or(|s| check_range(out, &format!("{base}.start"), s));
            let end_ok = o
                .end
                .as_ref()
                .is_none_or(|e| check_range(out, &format!("{base}.end"), e));
            if let Some(s) = &o.start {
                if start_ok {
                    check_type(out, &format!("{base}.start"), all_day, s);
                }
            }
            if let (true, true, Some(end)) = (start_ok, end_ok, &o.end) {
                let start = o.start.unwrap_or(o.recurrence_id);
                check_span(out, &format!("{base}.end"), &start, end);
            }
            if self.kind.requires_title() && o.title.as_deref().is_some_and(|t| t.trim().is_empty())
            {
                out.push(Violation::new(
                    format!("{base}.title"),
                    codes::REQUIRED,
                    "an override may not blank the title",
                ));
            }
        }

        if times_ok && rrules_ok && !to_find.is_empty() {
            self.find_override_instances(out, to_find);
        }
    }

    /// Report overrides whose RECURRENCE-ID is not an instance.
    fn find_override_instances(
        &self,
        out: &mut Vec<Violation>,
        mut to_find: BTreeMap<Key, Vec<usize>>,
    ) {
        let Ok(mut instances) = Instances::new(self) else {
            return;
        };
        let Some(last) = to_find.keys().next_back().copied() else {
            return;
        };
        loop {
            match instances.next_instance() {
                Ok(Some((key, _))) => {
                    to_find.remove(&key);
                    if key >= last || to_find.is_empty() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    out.push(Violation::new(
                        "recurrence.overrides",
                        codes::EXPANSION_LIMIT,
                        format!(
                            "more than {} instances before the last override; cannot check them",
                            super::MAX_SCANNED_INSTANCES
                        ),
                    ));
                    return;
                }
            }
        }
        let mut missing: Vec<usize> = to_find.into_values().flatten().collect();
        missing.sort_unstable();
        for i in missing {
            let Some(id) = self.recurrence.overrides.get(i).map(|o| o.recurrence_id) else {
                continue;
            };
            out.push(Violation::new(
                format!("recurrence.overrides[{i}].recurrence_id"),
                codes::UNKNOWN_RECURRENCE_ID,
                format!("{id} is not an occurrence of this item"),
            ));
        }
    }

    fn validate_people(&self, out: &mut Vec<Violation>) {
        if self.attendees.len() > MAX_ATTENDEES {
            out.push(too_many("attendees", MAX_ATTENDEES));
        }
        let mut seen = BTreeSet::new();
        for (i, a) in self.attendees.iter().enumerate() {
            let path = format!("attendees[{i}].email");
            if let Some(v) = email_violation(&path, &a.email) {
                out.push(v);
            } else if !seen.insert(a.email.to_lowercase()) {
                out.push(Violation::new(
                    path,
                    codes::DUPLICATE_ATTENDEE,
                    format!("{} is listed more than once", a.email),
                ));
            }
        }
        if let Some(org) = &self.organizer {
            if let Some(v) = email_violation("organizer.email", &org.email) {
                out.push(v);
            }
        }
    }
}

fn kind_name(item: &ScheduleItem) -> &'static str {
    match item.kind {
        super::ItemKind::Event => "event",
        super::ItemKind::Booking => "booking",
        super::ItemKind::Shift => "shift",
        super::ItemKind::TimeOff => "time off",
        super::ItemKind::Availability => "availability",
    }
}

fn too_many(path: &str, max: usize) -> Violation {
    Violation::new(path, codes::TOO_MANY, format!("at most {max} entries"))
}

fn email_violation(path: &str, email: &str) -> Option<Violation> {
    if email.trim().is_empty() {
        return Some(Violation::new(
            path,
            codes::INVALID_EMAIL,
            "must not be empty",
        ));
    }
    EmailAddress::from_str(email).err().map(|e| {
        Violation::new(
            path,
            codes::INVALID_EMAIL,
            format!("`{email}` is not an email address: {e}"),
        )
    })
}

/// Years 1..=9999; false (and a violation) otherwise.
fn check_range(out: &mut Vec<Violation>, path: &str, t: &ItemTime) -> bool {
    if in_year_range(t) {
        true
    } else {
        out.push(Violation::new(
            path,
            codes::OUT_OF_RANGE,
            "year must be within 1..=9999",
        ));
        false
    }
}

fn check_type(out: &mut Vec<Violation>, path: &str, all_day: bool, t: &ItemTime) {
    if t.is_all_day() != all_day {
        let (want, got) = if all_day {
            ("an all-day date", "a date-time")
        } else {
            ("a date-time", "an all-day date")
        };
        out.push(Violation::new(
            path,
            codes::MISMATCHED_VALUE_TYPE,
            format!("must be {want} like `start`, not {got}"),
        ));
    }
}

/// `end` against `start`: same kind, and not before it.
fn check_span(out: &mut Vec<Violation>, path: &str, start: &ItemTime, end: &ItemTime) {
    match (start, end) {
        (ItemTime::AllDay(s), ItemTime::AllDay(e)) => {
            if e <= s {
                out.push(Violation::new(
                    path,
                    codes::END_BEFORE_START,
                    format!("all-day end {e} must be after start {s} (the end date is exclusive)"),
                ));
            }
        }
        (ItemTime::Zoned { .. }, ItemTime::Zoned { .. }) => {
            if end.to_utc() < start.to_utc() {
                out.push(Violation::new(
                    path,
                    codes::END_BEFORE_START,
                    format!("end {end} is before start {start}"),
                ));
            }
        }
        _ => out.push(Violation::new(
            path,
            codes::MIXED_ALL_DAY,
            "start and end must both be all-day dates or both be date-times",
        )),
    }
}
