//! [`ScheduleItem`] <-> VEVENT.
//!
//! # Mapped properties
//!
//! | VEVENT | ScheduleItem |
//! |---|---|
//! | `UID` | `id` |
//! | `SUMMARY`, `DESCRIPTION`, `LOCATION` | `title`, `description`, `location` (TEXT-unescaped) |
//! | `DTSTART`, `DTEND` (or `DURATION` on input) | `start`, `end`: `TZID=` -> zoned, `...Z` -> UTC, `VALUE=DATE` -> all-day |
//! | `RRULE`, `RDATE`, `EXDATE` | `recurrence.rrule`, `rdate`, `exdate` |
//! | each VEVENT of the same UID with `RECURRENCE-ID` | `recurrence.overrides` (`STATUS:CANCELLED` cancels) |
//! | `STATUS` | `status` (`CONFIRMED`, `TENTATIVE`, `CANCELLED`) |
//! | `SEQUENCE` | `sequence` |
//! | `LAST-MODIFIED`, else `DTSTAMP`, else `CREATED` | `updated_at` (the Unix epoch when none is present) |
//! | `ATTENDEE` (`CN`, `ROLE`, `PARTSTAT`) | `attendees` (`mailto:` removed; another URI is kept whole) |
//! | `ORGANIZER` (`CN`) | `organizer` |
//! | `X-FLEXTIME-KIND`, `X-FLEXTIME-REF`, `X-FLEXTIME-EXT` | `kind`, `external_refs`, `extensions` other than `ics` |
//!
//! A floating date-time (no `TZID`, no `Z`) is read in the calendar's
//! `X-WR-TIMEZONE` when it has one, else in UTC; it is written back zoned.
//!
//! # Everything else: `extensions["ics"]`
//!
//! Properties that are not mapped (`X-...`, `CATEGORIES`, `URL`, `CLASS`,
//! `TRANSP`, `GEO`, `CREATED`, `PRIORITY` ...) are kept **as the original
//! property**, one unfolded content line each, and sub-components such as
//! `VALARM` as their content lines, in
//!
//! ```json
//! "extensions": {"ics": {
//!   "properties": ["CATEGORIES:work,meeting", "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC"],
//!   "components": [["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT15M", "END:VALARM"]],
//!   "overrides": {"2024-03-29T09:00:00 Europe/Berlin": {"properties": ["..."], "components": []}}
//! }}
//! ```
//!
//! and written back unchanged after the mapped properties. `overrides` holds,
//! per `RECURRENCE-ID` (its [`ItemTime`] display form), what an override
//! VEVENT had beyond the [`Override`] fields (its attendees, `SEQUENCE`,
//! `DTSTAMP`, alarms ...). When the master has both `LAST-MODIFIED` and
//! `DTSTAMP`, the `DTSTAMP` is kept there too. VEVENTs with a
//! `RECURRENCE-ID` but no master in the object (an invitation to some
//! instances only) become one item: the first instance, with
//! `"recurrence_id"` (its content line) in this object, and the others as
//! its overrides.
//!
//! An override VEVENT that carries exactly the master's attendees,
//! organizer and `SEQUENCE` (and no other property) keeps nothing there;
//! the writer gives such an override the master's people again. Override
//! fields equal to what the master implies (same start as the
//! `RECURRENCE-ID`, the master's duration, title, description, location,
//! status) are read as `None`: an item whose overrides repeat master values
//! comes back with those fields unset, which means the same.
//!
//! Parameters of `ATTENDEE` beyond `CN`, `ROLE`, `PARTSTAT` (`CUTYPE`,
//! `RSVP`, `X-NUM-GUESTS`, Apple's `EMAIL` ...) are kept per address in
//! `"attendee_params": {"ana@example.com": "CUTYPE=INDIVIDUAL;RSVP=TRUE"}`,
//! those of `ORGANIZER` beyond `CN` in `"organizer_params"`, and added back
//! when writing.
//!
//! Parameters of the master's `SUMMARY`, `DESCRIPTION` and `LOCATION`
//! (`LANGUAGE`, `ALTREP`) are kept in `"params": {"SUMMARY": "LANGUAGE=en-us"}`.
//!
//! Not kept: `X-FLEXTIME-*`, `RRULE`, `RDATE` and `EXDATE` on an override
//! VEVENT; parameters of an override's text properties and of the other
//! mapped properties (such as an `X-` parameter on `DTSTART`);
//! `RECURRENCE-ID;RANGE`; `RDATE;VALUE=PERIOD` is kept as an unmapped
//! property instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use flextime_core::schedule::{
    Attendee, ExternalRef, ItemKind, ItemTime, Organizer, Override, ParticipationStatus,
    Recurrence, Role, ScheduleItem, Status,
};
use flextime_core::{Error, Result};
use serde_json::{Map, Value, json};

use super::parser::{Component, Property, error_at, escape_text};
use super::timezone::TzResolver;

/// The `extensions` key that holds the iCalendar data not mapped to fields.
pub const ICS_EXTENSION: &str = "ics";

/// Context for reading one calendar: its TZID resolver and the zone of
/// floating times.
pub(crate) struct ReadCtx<'a> {
    pub(crate) tz: &'a mut TzResolver,
    pub(crate) floating: Tz,
}

// ---------------------------------------------------------------------------
// Reading values
// ---------------------------------------------------------------------------

fn digits(s: &str, line: usize, what: &str) -> Result<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error_at(
            line,
            format!("{what}: expected digits, found {s:?}"),
        ));
    }
    s.parse()
        .map_err(|_| error_at(line, format!("{what}: number out of range")))
}

fn parse_date(s: &str, line: usize, what: &str) -> Result<NaiveDate> {
    if s.len() != 8 || !s.is_ascii() {
        return Err(error_at(
            line,
            format!("{what}: expected a date YYYYMMDD, found {s:?}"),
        ));
    }
    let y = digits(&s[0..4], line, what)?;
    let m = digits(&s[4..6], line, what)?;
    let d = digits(&s[6..8], line, what)?;
    i32::try_from(y)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(|| error_at(line, format!("{what}: {s:?} is not a calendar date")))
}

/// `YYYYMMDDTHHMMSS` (without a trailing `Z`).
fn parse_local(s: &str, line: usize, what: &str) -> Result<NaiveDateTime> {
    let (date, time) = match (s.get(..8), s.get(8..9), s.get(9..)) {
        (Some(d), Some("T" | "t"), Some(t)) if t.len() == 6 && t.is_ascii() => (d, t),
        _ => {
            return Err(error_at(
                line,
                format!("{what}: expected a date-time YYYYMMDDTHHMMSS, found {s:?}"),
            ));
        }
    };
    let date = parse_date(date, line, what)?;
    let h = digits(&time[0..2], line, what)?;
    let m = digits(&time[2..4], line, what)?;
    let sec = digits(&time[4..6], line, what)?;
    let time = NaiveTime::from_hms_opt(h, m, sec)
        .ok_or_else(|| error_at(line, format!("{what}: {s:?} is not a valid time")))?;
    Ok(date.and_time(time))
}

/// One DATE or DATE-TIME value with the property's `TZID` / `VALUE`.
fn parse_time_value(
    value: &str,
    tzid: Option<&str>,
    is_date: bool,
    line: usize,
    what: &str,
    ctx: &mut ReadCtx<'_>,
) -> Result<ItemTime> {
    let value = value.trim();
    if is_date || (value.len() == 8 && tzid.is_none()) {
        return Ok(ItemTime::AllDay(parse_date(value, line, what)?));
    }
    if let Some(utc) = value.strip_suffix(['Z', 'z']) {
        return Ok(ItemTime::zoned(parse_local(utc, line, what)?, Tz::UTC));
    }
    let local = parse_local(value, line, what)?;
    let tz = match tzid {
        Some(tzid) => ctx.tz.resolve(tzid, line)?,
        None => ctx.floating,
    };
    Ok(ItemTime::zoned(local, tz))
}

fn is_date_param(p: &Property) -> bool {
    p.param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
}

fn parse_time(p: &Property, ctx: &mut ReadCtx<'_>) -> Result<ItemTime> {
    parse_time_value(
        &p.value,
        p.param("TZID"),
        is_date_param(p),
        p.line,
        &p.name,
        ctx,
    )
}

fn parse_time_list(p: &Property, ctx: &mut ReadCtx<'_>) -> Result<Vec<ItemTime>> {
    p.value
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse_time_value(v, p.param("TZID"), is_date_param(p), p.line, &p.name, ctx))
        .collect()
}

fn parse_utc(p: &Property) -> Result<DateTime<Utc>> {
    let v = p.value.trim();
    let local = parse_local(v.strip_suffix(['Z', 'z']).unwrap_or(v), p.line, &p.name)?;
    Ok(local.and_utc())
}

/// An RFC 5545 DURATION (`P1W`, `PT1H30M`, `P1DT12H`); negative ones are
/// rejected. Returns (nominal days, exact seconds).
fn parse_duration(p: &Property) -> Result<(i64, i64)> {
    let bad = || error_at(p.line, format!("DURATION: {:?} is not a duration", p.value));
    let v = p.value.trim();
    let v = v.strip_prefix('+').unwrap_or(v);
    if v.starts_with('-') {
        return Err(error_at(
            p.line,
            "DURATION: a negative duration is not allowed for an event",
        ));
    }
    let body = v.strip_prefix(['P', 'p']).ok_or_else(bad)?;
    let (mut days, mut secs) = (0_i64, 0_i64);
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in body.chars() {
        match c.to_ascii_uppercase() {
            'T' if !in_time && num.is_empty() => in_time = true,
            d if d.is_ascii_digit() => num.push(d),
            unit => {
                let n: i64 = num.parse().map_err(|_| bad())?;
                num.clear();
                any = true;
                let (total, factor) = match (unit, in_time) {
                    ('W', false) => (&mut days, 7),
                    ('D', false) => (&mut days, 1),
                    ('H', true) => (&mut secs, 3600),
                    ('M', true) => (&mut secs, 60),
                    ('S', true) => (&mut secs, 1),
                    _ => return Err(bad()),
                };
                *total = n
                    .checked_mul(factor)
                    .and_then(|v| total.checked_add(v))
                    .ok_or_else(bad)?;
            }
        }
    }
    if !num.is_empty() || !any || days > 3_660_000 || secs > 316_224_000_000 {
        return Err(bad());
    }
    Ok((days, secs))
}

fn add_duration(start: &ItemTime, (days, secs): (i64, i64), line: usize) -> Result<ItemTime> {
    let overflow = || error_at(line, "DURATION: the end is out of range");
    match start {
        ItemTime::AllDay(d) => {
            let extra = secs / 86_400;
            d.checked_add_signed(Duration::days(days + extra))
                .map(ItemTime::AllDay)
                .ok_or_else(overflow)
        }
        ItemTime::Zoned { local, tz } => {
            // Days are nominal (wall clock), the time part is exact.
            let day_shifted = local
                .checked_add_signed(Duration::days(days))
                .ok_or_else(overflow)?;
            if secs == 0 {
                return Ok(ItemTime::zoned(day_shifted, *tz));
            }
            let instant = ItemTime::zoned(day_shifted, *tz)
                .to_zoned()
                .checked_add_signed(Duration::seconds(secs))
                .ok_or_else(overflow)?;
            Ok(ItemTime::zoned(instant.naive_local(), *tz))
        }
    }
}

fn email_of(p: &Property) -> String {
    let v = p.value.trim();
    match v.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("mailto:") => v[7..].to_owned(),
        _ => v.to_owned(),
    }
}

fn parse_attendee(p: &Property) -> Attendee {
    let role = match p.param("ROLE").map(str::to_ascii_uppercase).as_deref() {
        Some("CHAIR") => Role::Chair,
        Some("OPT-PARTICIPANT") => Role::Optional,
        Some("NON-PARTICIPANT") => Role::NonParticipant,
        _ => Role::Required,
    };
    let participation_status = match p.param("PARTSTAT").map(str::to_ascii_uppercase).as_deref() {
        Some("ACCEPTED") => ParticipationStatus::Accepted,
        Some("DECLINED") => ParticipationStatus::Declined,
        Some("TENTATIVE") => ParticipationStatus::Tentative,
        Some("DELEGATED") => ParticipationStatus::Delegated,
        _ => ParticipationStatus::NeedsAction,
    };
    Attendee {
        email: email_of(p),
        name: p.param("CN").map(str::to_owned),
        role,
        participation_status,
    }
}

fn parse_status(p: &Property) -> Option<Status> {
    match p.value.trim().to_ascii_uppercase().as_str() {
        "CONFIRMED" => Some(Status::Confirmed),
        "TENTATIVE" => Some(Status::Tentative),
        "CANCELLED" => Some(Status::Cancelled),
        _ => None,
    }
}

fn parse_kind(p: &Property) -> Result<ItemKind> {
    serde_json::from_value(Value::String(p.text().trim().to_ascii_lowercase())).map_err(|_| {
        error_at(
            p.line,
            format!("X-FLEXTIME-KIND: unknown kind {:?}", p.value),
        )
    })
}

// ---------------------------------------------------------------------------
// One VEVENT
// ---------------------------------------------------------------------------

/// Everything read from one VEVENT.
#[derive(Default)]
struct Fields {
    line: usize,
    uid: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    location: Option<String>,
    start: Option<ItemTime>,
    end: Option<ItemTime>,
    duration: Option<((i64, i64), usize)>,
    rid: Option<(ItemTime, String)>,
    recurrence: Recurrence,
    status: Option<Status>,
    sequence: Option<u32>,
    last_modified: Option<DateTime<Utc>>,
    dtstamp: Option<(DateTime<Utc>, String)>,
    created: Option<DateTime<Utc>>,
    attendees: Vec<Attendee>,
    organizer: Option<Organizer>,
    /// ORGANIZER and ATTENDEE lines as read (for overrides).
    people_lines: Vec<String>,
    /// Parameters of ATTENDEEs beyond CN / ROLE / PARTSTAT, by address.
    attendee_params: Map<String, Value>,
    /// Parameters of the ORGANIZER beyond CN.
    organizer_params: Option<String>,
    /// Parameters of SUMMARY / DESCRIPTION / LOCATION (`LANGUAGE`, `ALTREP`).
    text_params: Map<String, Value>,
    kind: Option<ItemKind>,
    refs: BTreeMap<String, ExternalRef>,
    extensions: BTreeMap<String, Value>,
    /// Unmapped properties (content lines).
    other: Vec<String>,
    /// Sub-components (content lines each).
    components: Vec<Vec<String>>,
}

fn read_vevent(c: &Component, ctx: &mut ReadCtx<'_>) -> Result<Fields> {
    let mut f = Fields {
        line: c.line,
        ..Fields::default()
    };
    for p in &c.properties {
        match p.name.as_str() {
            "UID" => f.uid = Some(p.text().trim().to_owned()),
            "SUMMARY" | "DESCRIPTION" | "LOCATION" => {
                let text = Some(p.text());
                match p.name.as_str() {
                    "SUMMARY" => f.summary = text,
                    "DESCRIPTION" => f.description = text,
                    _ => f.location = text,
                }
                if let Some(params) = extra_params(p, &[]) {
                    f.text_params.insert(p.name.clone(), Value::String(params));
                }
            }
            "DTSTART" => f.start = Some(parse_time(p, ctx)?),
            "DTEND" => f.end = Some(parse_time(p, ctx)?),
            "DURATION" => f.duration = Some((parse_duration(p)?, p.line)),
            "RECURRENCE-ID" => f.rid = Some((parse_time(p, ctx)?, p.to_line())),
            "RRULE" => {
                if p.value.trim().is_empty() {
                    return Err(error_at(p.line, "RRULE is empty"));
                }
                f.recurrence.rrule.push(p.value.trim().to_owned());
            }
            "RDATE"
                if p.param("VALUE")
                    .is_some_and(|v| v.eq_ignore_ascii_case("PERIOD")) =>
            {
                f.other.push(p.to_line());
            }
            "RDATE" => f.recurrence.rdate.extend(parse_time_list(p, ctx)?),
            "EXDATE" => f.recurrence.exdate.extend(parse_time_list(p, ctx)?),
            "STATUS" => match parse_status(p) {
                Some(s) => f.status = Some(s),
                None => f.other.push(p.to_line()),
            },
            "SEQUENCE" => {
                f.sequence = Some(p.value.trim().parse().map_err(|_| {
                    error_at(
                        p.line,
                        format!("SEQUENCE: {:?} is not a non-negative integer", p.value),
                    )
                })?);
            }
            "LAST-MODIFIED" => f.last_modified = Some(parse_utc(p)?),
            "DTSTAMP" => f.dtstamp = Some((parse_utc(p)?, p.to_line())),
            "CREATED" => {
                f.created = Some(parse_utc(p)?);
                f.other.push(p.to_line());
            }
            "ATTENDEE" => {
                let a = parse_attendee(p);
                if let Some(params) = extra_params(p, &["CN", "ROLE", "PARTSTAT"]) {
                    f.attendee_params
                        .insert(a.email.clone(), Value::String(params));
                }
                f.attendees.push(a);
                f.people_lines.push(p.to_line());
            }
            "ORGANIZER" => {
                f.organizer = Some(Organizer {
                    email: email_of(p),
                    name: p.param("CN").map(str::to_owned),
                });
                f.organizer_params = extra_params(p, &["CN"]);
                f.people_lines.push(p.to_line());
            }
            "X-FLEXTIME-KIND" => f.kind = Some(parse_kind(p)?),
            "X-FLEXTIME-REF" => {
                let Some(system) = p.param("X-SYSTEM") else {
                    return Err(error_at(
                        p.line,
                        "X-FLEXTIME-REF needs an X-SYSTEM parameter",
                    ));
                };
                f.refs.insert(
                    system.to_owned(),
                    ExternalRef {
                        id: p.text(),
                        etag: p.param("X-ETAG").map(str::to_owned),
                    },
                );
            }
            "X-FLEXTIME-EXT" => {
                let Some(key) = p.param("X-KEY") else {
                    return Err(error_at(p.line, "X-FLEXTIME-EXT needs an X-KEY parameter"));
                };
                let value = serde_json::from_str(&p.text()).map_err(|e| {
                    error_at(
                        p.line,
                        format!("X-FLEXTIME-EXT: the value is not JSON ({e})"),
                    )
                })?;
                f.extensions.insert(key.to_owned(), value);
            }
            _ => f.other.push(p.to_line()),
        }
    }
    f.components = c.components.iter().map(Component::to_lines).collect();
    Ok(f)
}

impl Fields {
    fn start(&self) -> Result<ItemTime> {
        self.start
            .ok_or_else(|| error_at(self.line, "VEVENT has no DTSTART"))
    }

    /// DTEND, else DTSTART + DURATION, else one day (all-day) or zero.
    fn end(&self, start: &ItemTime) -> Result<ItemTime> {
        if let Some(end) = self.end {
            return Ok(end);
        }
        if let Some((d, line)) = self.duration {
            return add_duration(start, d, line);
        }
        Ok(match start {
            ItemTime::AllDay(d) => ItemTime::AllDay(d.succ_opt().unwrap_or(*d)),
            zoned @ ItemTime::Zoned { .. } => *zoned,
        })
    }

    fn extras(&self, keep_dtstamp: bool) -> Map<String, Value> {
        let mut props = self.other.clone();
        if keep_dtstamp {
            if let Some((_, line)) = &self.dtstamp {
                props.insert(0, line.clone());
            }
        }
        let mut m = Map::new();
        if !props.is_empty() {
            m.insert("properties".into(), json!(props));
        }
        if !self.components.is_empty() {
            m.insert("components".into(), json!(self.components));
        }
        m
    }
}

/// Builds one item from the VEVENTs of one UID: the master (if any) and the
/// overrides (VEVENTs with a RECURRENCE-ID).
fn build_item(
    master: Option<&Component>,
    overrides: &[&Component],
    ctx: &mut ReadCtx<'_>,
) -> Result<ScheduleItem> {
    // Without a master, the first instance stands for the item (its
    // RECURRENCE-ID is kept) and any further ones are its overrides.
    let (main, orphan, overrides) = match (master, overrides.split_first()) {
        (Some(m), _) => (read_vevent(m, ctx)?, false, overrides),
        (None, Some((first, rest))) => (read_vevent(first, ctx)?, true, rest),
        (None, None) => return Err(Error::internal("build_item without VEVENT")),
    };
    let uid = main
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| error_at(main.line, "VEVENT has no UID"))?;
    let start = main.start()?;
    let end = main.end(&start)?;
    let updated_at = main
        .last_modified
        .or(main.dtstamp.as_ref().map(|(t, _)| *t))
        .or(main.created)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    // DTSTAMP is kept verbatim only when LAST-MODIFIED gives `updated_at`
    // and says something else (the writer writes both from `updated_at`).
    let keep_dtstamp = matches!(
        (main.last_modified, &main.dtstamp),
        (Some(lm), Some((ts, _))) if lm != *ts
    );
    let mut ics = main.extras(keep_dtstamp);
    if !main.attendee_params.is_empty() {
        ics.insert(
            "attendee_params".into(),
            Value::Object(main.attendee_params.clone()),
        );
    }
    if !main.text_params.is_empty() {
        ics.insert("params".into(), Value::Object(main.text_params.clone()));
    }
    if let Some(params) = &main.organizer_params {
        ics.insert("organizer_params".into(), Value::String(params.clone()));
    }
    if orphan {
        if let Some((_, line)) = &main.rid {
            ics.insert("recurrence_id".into(), Value::String(line.clone()));
        }
    }
    let mut item = ScheduleItem::new(
        uid,
        main.kind.unwrap_or(ItemKind::Event),
        main.summary.clone().unwrap_or_default(),
        start,
        end,
        updated_at,
    );
    item.description.clone_from(&main.description);
    item.location.clone_from(&main.location);
    item.recurrence = main.recurrence.clone();
    item.attendees.clone_from(&main.attendees);
    item.organizer.clone_from(&main.organizer);
    item.status = main.status.unwrap_or_default();
    item.sequence = main.sequence.unwrap_or(0);
    item.external_refs.clone_from(&main.refs);
    item.extensions.clone_from(&main.extensions);

    let mut extra_overrides = Map::new();
    for o in overrides {
        let f = read_vevent(o, ctx)?;
        let Some((rid, _)) = f.rid else {
            return Err(Error::internal("override without RECURRENCE-ID"));
        };
        let ov = override_from(&item, rid, &f)?;
        item.recurrence.overrides.push(ov);
        if inherits_everything(&item, &f) {
            // Exactly what the writer produces for an override without
            // kept data: nothing to keep.
            continue;
        }
        // The writer gives an override the master's `updated_at` as
        // DTSTAMP unless one is kept: keep only a different one.
        let mut extras = f.extras(
            f.dtstamp
                .as_ref()
                .is_some_and(|(t, _)| *t != item.updated_at),
        );
        if !f.people_lines.is_empty() || f.sequence.is_some() {
            let mut props: Vec<Value> = Vec::new();
            if let Some(seq) = f.sequence {
                props.push(json!(format!("SEQUENCE:{seq}")));
            }
            props.extend(f.people_lines.iter().map(|l| json!(l)));
            if let Some(Value::Array(rest)) = extras.remove("properties") {
                props.extend(rest);
            }
            extras.insert("properties".into(), Value::Array(props));
        }
        if let Some(lm) = f.last_modified {
            let line = format!("LAST-MODIFIED:{}", lm.format("%Y%m%dT%H%M%SZ"));
            let props = extras
                .entry("properties")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = props {
                a.push(Value::String(line));
            }
        }
        // Keep a marker even when empty, so the writer knows the
        // override came from ICS and copies nothing from the master.
        extra_overrides.insert(rid.to_string(), Value::Object(extras));
    }
    if !extra_overrides.is_empty() {
        ics.insert("overrides".into(), Value::Object(extra_overrides));
    }
    if !ics.is_empty() {
        item.extensions
            .insert(ICS_EXTENSION.to_owned(), Value::Object(ics));
    }
    Ok(item)
}

/// Whether an override VEVENT has nothing beyond the [`Override`] fields
/// that the master does not give it: the master's attendees, organizer and
/// `SEQUENCE`, a `DTSTAMP` / `LAST-MODIFIED` equal to the master's
/// `updated_at` (or none), and no other property or sub-component.
fn inherits_everything(master: &ScheduleItem, f: &Fields) -> bool {
    let stamp_ok = |t: Option<DateTime<Utc>>| t.is_none_or(|t| t == master.updated_at);
    f.other.is_empty()
        && f.components.is_empty()
        && f.attendees == master.attendees
        && f.organizer == master.organizer
        && f.sequence.is_none_or(|s| s == master.sequence)
        && stamp_ok(f.dtstamp.as_ref().map(|(t, _)| *t))
        && stamp_ok(f.last_modified)
    // X-FLEXTIME-* and RRULE / RDATE / EXDATE on an override VEVENT have
    // no place in an Override and are ignored.
}

/// An override, with fields equal to what the master implies left out.
fn override_from(master: &ScheduleItem, rid: ItemTime, f: &Fields) -> Result<Override> {
    let mut ov = Override::new(rid);
    let start = f.start.unwrap_or(rid);
    let end = f.end(&start)?;
    let inherited_end = inherited_end(master, &start);
    if start != rid {
        ov.start = Some(start);
    }
    if Some(end) != inherited_end {
        ov.end = Some(end);
    }
    let title = f.summary.clone().unwrap_or_default();
    if title != master.title {
        ov.title = Some(title);
    }
    // An empty DESCRIPTION / LOCATION is the same as none (the writer
    // leaves empty ones out of overrides).
    let effective = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    if effective(&f.description) != effective(&master.description) {
        ov.description = Some(f.description.clone().unwrap_or_default());
    }
    if effective(&f.location) != effective(&master.location) {
        ov.location = Some(f.location.clone().unwrap_or_default());
    }
    let status = f.status.unwrap_or_default();
    if status != master.status {
        ov.status = Some(status);
    }
    Ok(ov)
}

/// The end an override starting at `start` gets when it sets none: the
/// master's duration after `start` (`None` when that cannot be computed).
fn inherited_end(master: &ScheduleItem, start: &ItemTime) -> Option<ItemTime> {
    match (&master.start, &master.end, start) {
        (ItemTime::AllDay(a), ItemTime::AllDay(b), ItemTime::AllDay(s)) => {
            s.checked_add_signed(*b - *a).map(ItemTime::AllDay)
        }
        (ItemTime::Zoned { .. }, ItemTime::Zoned { tz: end_tz, .. }, ItemTime::Zoned { .. }) => {
            let span = master.end.to_utc() - master.start.to_utc();
            let at = start.to_utc().checked_add_signed(span)?;
            Some(ItemTime::zoned(
                at.with_timezone(end_tz).naive_local(),
                *end_tz,
            ))
        }
        _ => None,
    }
}

/// Groups VEVENTs by UID (in order of first appearance) into (master,
/// overrides).
pub(crate) fn group_by_uid(components: &[Component]) -> Vec<(Option<&Component>, Vec<&Component>)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(Option<&Component>, Vec<&Component>)> = Vec::new();
    let mut no_uid = Vec::new();
    for c in components.iter().filter(|c| c.name == "VEVENT") {
        // The same form as the item id: unescaped and trimmed.
        let Some(uid) = c.property("UID").map(|p| p.text().trim().to_owned()) else {
            no_uid.push(c);
            continue;
        };
        let i = *index.entry(uid).or_insert_with(|| {
            groups.push((None, Vec::new()));
            groups.len() - 1
        });
        if c.property("RECURRENCE-ID").is_some() {
            groups[i].1.push(c);
        } else if groups[i].0.is_none() {
            groups[i].0 = Some(c);
        } else {
            // A second master: reported as its own group, which fails.
            groups.push((Some(c), vec![c]));
        }
    }
    // VEVENTs without UID become groups of their own (and fail with a
    // message naming their line).
    groups.extend(no_uid.into_iter().map(|c| (Some(c), Vec::new())));
    groups
}

/// Maps one group (see [`group_by_uid`]) to an item.
pub(crate) fn map_group(
    master: Option<&Component>,
    overrides: &[&Component],
    ctx: &mut ReadCtx<'_>,
) -> Result<ScheduleItem> {
    if let (Some(m), Some(o)) = (master, overrides.first()) {
        if std::ptr::eq(m, *o) {
            return Err(error_at(
                m.line,
                "a second VEVENT without RECURRENCE-ID for the same UID",
            ));
        }
    }
    build_item(master, overrides, ctx)
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

fn time_property(name: &str, t: &ItemTime) -> Property {
    match t {
        ItemTime::AllDay(d) => {
            Property::new(name, d.format("%Y%m%d").to_string()).with_param("VALUE", "DATE")
        }
        ItemTime::Zoned { local, tz } if *tz == Tz::UTC => {
            Property::new(name, local.format("%Y%m%dT%H%M%SZ").to_string())
        }
        ItemTime::Zoned { local, tz } => {
            Property::new(name, local.format("%Y%m%dT%H%M%S").to_string())
                .with_param("TZID", tz.name())
        }
    }
}

fn utc_property(name: &str, t: DateTime<Utc>) -> Property {
    Property::new(name, t.format("%Y%m%dT%H%M%SZ").to_string())
}

fn text_property(name: &str, v: &str) -> Property {
    Property::new(name, escape_text(v))
}

fn cal_address(email: &str) -> String {
    if email.contains(':') {
        email.to_owned()
    } else {
        format!("mailto:{email}")
    }
}

/// The parameters of `p` other than `mapped`, as `A=b;C=d` (`None` when
/// there are none).
fn extra_params(p: &Property, mapped: &[&str]) -> Option<String> {
    let params: Vec<_> = p
        .params
        .iter()
        .filter(|q| !mapped.contains(&q.name.as_str()))
        .cloned()
        .collect();
    if params.is_empty() {
        return None;
    }
    let line = Property {
        name: "X".into(),
        params,
        value: String::new(),
        line: 0,
    }
    .to_line();
    line.strip_prefix("X;")
        .and_then(|l| l.strip_suffix(':'))
        .map(str::to_owned)
}

/// `p` with the parameters kept for it under `"params"` (by property name).
fn with_text_params(p: Property, ics: Option<&Value>) -> Property {
    let kept = ics
        .and_then(|e| e.get("params"))
        .and_then(|m| m.get(&p.name));
    with_kept_params(p, kept)
}

/// Adds kept parameters (`A=b;C=d`) to `p`, skipping names it already has.
fn with_kept_params(mut p: Property, params: Option<&Value>) -> Property {
    let Some(params) = params.and_then(Value::as_str) else {
        return p;
    };
    if params.contains(['\r', '\n']) {
        return p;
    }
    if let Ok(parsed) = Property::parse(&format!("X;{params}:")) {
        for q in parsed.params {
            if p.param(&q.name).is_none() {
                p.params.push(q);
            }
        }
    }
    p
}

fn attendee_property(a: &Attendee) -> Property {
    let mut p = Property::new("ATTENDEE", cal_address(&a.email));
    if let Some(name) = &a.name {
        p = p.with_param("CN", name.clone());
    }
    let role = match a.role {
        Role::Chair => "CHAIR",
        Role::Required => "REQ-PARTICIPANT",
        Role::Optional => "OPT-PARTICIPANT",
        Role::NonParticipant => "NON-PARTICIPANT",
    };
    let partstat = match a.participation_status {
        ParticipationStatus::NeedsAction => "NEEDS-ACTION",
        ParticipationStatus::Accepted => "ACCEPTED",
        ParticipationStatus::Declined => "DECLINED",
        ParticipationStatus::Tentative => "TENTATIVE",
        ParticipationStatus::Delegated => "DELEGATED",
    };
    p.with_param("ROLE", role).with_param("PARTSTAT", partstat)
}

fn organizer_property(o: &Organizer) -> Property {
    let mut p = Property::new("ORGANIZER", cal_address(&o.email));
    if let Some(name) = &o.name {
        p = p.with_param("CN", name.clone());
    }
    p
}

fn status_value(s: Status) -> &'static str {
    match s {
        Status::Confirmed => "CONFIRMED",
        Status::Tentative => "TENTATIVE",
        Status::Cancelled => "CANCELLED",
    }
}

/// A kept content line, re-parsed so that nothing malformed (or with a line
/// break in it) is written.
fn kept_property(v: &Value) -> Option<Property> {
    let line = v.as_str()?;
    if line.contains(['\r', '\n']) {
        return None;
    }
    let p = Property::parse(line).ok()?;
    (p.name != "BEGIN" && p.name != "END").then_some(p)
}

/// A kept component (array of content lines), re-parsed.
fn kept_component(v: &Value) -> Option<Component> {
    let lines = v.as_array()?;
    let mut text = String::new();
    for l in lines {
        let l = l.as_str()?;
        if l.contains(['\r', '\n']) {
            return None;
        }
        text.push_str(l);
        text.push('\n');
    }
    let mut roots = super::parser::parse_components(&text).ok()?;
    (roots.len() == 1).then(|| roots.remove(0))
}

fn push_kept(c: &mut Component, extras: Option<&Value>) {
    let Some(extras) = extras else { return };
    if let Some(Value::Array(props)) = extras.get("properties") {
        c.properties.extend(props.iter().filter_map(kept_property));
    }
    if let Some(Value::Array(comps)) = extras.get("components") {
        c.components.extend(comps.iter().filter_map(kept_component));
    }
}

fn has_kept(extras: Option<&Value>, name: &str) -> bool {
    extras
        .and_then(|e| e.get("properties"))
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().filter_map(Value::as_str).any(|l| {
                l.get(..name.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(name))
                    && l[name.len()..].starts_with([':', ';'])
            })
        })
}

/// The VEVENTs of one item: the master, then one per override.
pub fn item_to_vevents(item: &ScheduleItem) -> Vec<Component> {
    let ics = item.extensions.get(ICS_EXTENSION);
    let mut out = Vec::with_capacity(1 + item.recurrence.overrides.len());
    let mut ev = Component::new("VEVENT");
    let props = &mut ev.properties;
    props.push(text_property("UID", &item.id));
    if !has_kept(ics, "DTSTAMP") {
        props.push(utc_property("DTSTAMP", item.updated_at));
    }
    if let Some(rid) = ics
        .and_then(|e| e.get("recurrence_id"))
        .and_then(kept_property)
    {
        props.push(rid);
    }
    props.push(time_property("DTSTART", &item.start));
    props.push(time_property("DTEND", &item.end));
    for r in &item.recurrence.rrule {
        let r = r.trim();
        let r = r.strip_prefix("RRULE:").unwrap_or(r);
        if !r.contains(['\r', '\n']) {
            props.push(Property::new("RRULE", r));
        }
    }
    props.extend(
        item.recurrence
            .rdate
            .iter()
            .map(|t| time_property("RDATE", t)),
    );
    props.extend(
        item.recurrence
            .exdate
            .iter()
            .map(|t| time_property("EXDATE", t)),
    );
    if !item.title.is_empty() {
        props.push(with_text_params(text_property("SUMMARY", &item.title), ics));
    }
    if let Some(d) = &item.description {
        props.push(with_text_params(text_property("DESCRIPTION", d), ics));
    }
    if let Some(l) = &item.location {
        props.push(with_text_params(text_property("LOCATION", l), ics));
    }
    props.push(Property::new("STATUS", status_value(item.status)));
    props.push(Property::new("SEQUENCE", item.sequence.to_string()));
    props.push(utc_property("LAST-MODIFIED", item.updated_at));
    if let Some(o) = &item.organizer {
        props.push(with_kept_params(
            organizer_property(o),
            ics.and_then(|e| e.get("organizer_params")),
        ));
    }
    let attendee_params = ics.and_then(|e| e.get("attendee_params"));
    props.extend(item.attendees.iter().map(|a| {
        with_kept_params(
            attendee_property(a),
            attendee_params.and_then(|m| m.get(&a.email)),
        )
    }));
    if item.kind != ItemKind::Event {
        let kind = serde_json::to_value(item.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        props.push(Property::new("X-FLEXTIME-KIND", kind));
    }
    for (system, r) in &item.external_refs {
        let mut p = text_property("X-FLEXTIME-REF", &r.id).with_param("X-SYSTEM", system.clone());
        if let Some(etag) = &r.etag {
            p = p.with_param("X-ETAG", etag.clone());
        }
        props.push(p);
    }
    for (key, value) in &item.extensions {
        if key == ICS_EXTENSION {
            continue;
        }
        props.push(
            text_property("X-FLEXTIME-EXT", &value.to_string()).with_param("X-KEY", key.clone()),
        );
    }
    push_kept(&mut ev, ics);
    out.push(ev);

    let kept_overrides = ics.and_then(|e| e.get("overrides"));
    for ov in &item.recurrence.overrides {
        let extras = kept_overrides.and_then(|m| m.get(ov.recurrence_id.to_string()));
        let mut c = Component::new("VEVENT");
        let start = ov.start.unwrap_or(ov.recurrence_id);
        let end = ov
            .end
            .or_else(|| inherited_end(item, &start))
            .unwrap_or(start);
        let p = &mut c.properties;
        p.push(text_property("UID", &item.id));
        if !has_kept(extras, "DTSTAMP") {
            p.push(utc_property("DTSTAMP", item.updated_at));
        }
        p.push(time_property("RECURRENCE-ID", &ov.recurrence_id));
        p.push(time_property("DTSTART", &start));
        p.push(time_property("DTEND", &end));
        let title = ov.title.as_deref().unwrap_or(&item.title);
        if !title.is_empty() {
            p.push(text_property("SUMMARY", title));
        }
        let description = ov.description.as_deref().or(item.description.as_deref());
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            p.push(text_property("DESCRIPTION", d));
        }
        let location = ov.location.as_deref().or(item.location.as_deref());
        if let Some(l) = location.filter(|l| !l.is_empty()) {
            p.push(text_property("LOCATION", l));
        }
        p.push(Property::new(
            "STATUS",
            status_value(ov.status.unwrap_or(item.status)),
        ));
        if extras.is_none() {
            // Not read from ICS: the instance carries the master's people.
            p.push(Property::new("SEQUENCE", item.sequence.to_string()));
            if let Some(o) = &item.organizer {
                p.push(with_kept_params(
                    organizer_property(o),
                    ics.and_then(|e| e.get("organizer_params")),
                ));
            }
            let attendee_params = ics.and_then(|e| e.get("attendee_params"));
            p.extend(item.attendees.iter().map(|a| {
                with_kept_params(
                    attendee_property(a),
                    attendee_params.and_then(|m| m.get(&a.email)),
                )
            }));
        }
        push_kept(&mut c, extras);
        out.push(c);
    }
    out
}

/// Every zone an item uses (UTC excluded) with the years it uses it in.
pub(crate) fn zones_used(item: &ScheduleItem, into: &mut BTreeMap<String, (Tz, i32, i32)>) {
    let mut add = |t: &ItemTime| {
        if let ItemTime::Zoned { local, tz } = t {
            if *tz != Tz::UTC {
                let y = chrono::Datelike::year(local);
                let e = into.entry(tz.name().to_owned()).or_insert((*tz, y, y));
                e.1 = e.1.min(y);
                e.2 = e.2.max(y);
            }
        }
    };
    add(&item.start);
    add(&item.end);
    item.recurrence.rdate.iter().for_each(&mut add);
    item.recurrence.exdate.iter().for_each(&mut add);
    for o in &item.recurrence.overrides {
        add(&o.recurrence_id);
        o.start.iter().for_each(&mut add);
        o.end.iter().for_each(&mut add);
    }
}

/// Names of the zones an item uses (for tests and callers that write their
/// own VTIMEZONEs).
pub fn zone_names(item: &ScheduleItem) -> BTreeSet<String> {
    let mut m = BTreeMap::new();
    zones_used(item, &mut m);
    m.into_keys().collect()
}
