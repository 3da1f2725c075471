//! Time zones: resolving a `TZID` to an IANA zone, and writing a
//! `VTIMEZONE` for a zone.
//!
//! A `TZID` is resolved, in this order, as:
//!
//! 1. an IANA name known to chrono-tz (`Europe/Berlin`, `UTC`);
//! 2. an IANA name at the end of a path-style TZID
//!    (`/mozilla.org/20050126_1/Europe/Berlin`,
//!    `/freeassociation.sourceforge.net/Tzfile/Europe/Berlin`);
//! 3. a Windows zone name as Outlook and Exchange write them
//!    (`W. Europe Standard Time`, `Pacific Standard Time`), through the
//!    CLDR `windowsZones` mapping for the common zones (territory `001`),
//!    or one of a few Outlook display names
//!    (`(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna`);
//! 4. the calendar's `VTIMEZONE` with that TZID, when it carries an
//!    `X-LIC-LOCATION` (Lightning, Evolution) or a `TZID-ALIAS-OF`
//!    naming a zone resolvable by 1-3;
//! 5. otherwise, for a `VTIMEZONE` whose ongoing observances are yearly
//!    `BYMONTH` + `BYDAY` rules or a fixed offset (Outlook's
//!    `Customized Time Zone`, say), the first zone whose offsets and
//!    transition rules in [`RULE_MATCH_YEAR`] are the same: the zones of
//!    [`WINDOWS_ZONES`] first, in order, then every other chrono-tz zone.
//!
//! Anything else is an `InvalidInput` error naming the TZID. Once a zone is
//! found, chrono-tz's data is used, not the rules inside the `VTIMEZONE`.
//!
//! When writing, [`vtimezone`] computes `STANDARD` / `DAYLIGHT` observances
//! from chrono-tz's offsets for the years the events use: one observance
//! with a yearly `RRULE` per transition when the zone follows the same rule
//! in every one of those years, one observance per transition otherwise.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use flextime_core::Result;

use super::parser::{Component, Property, error_at};

/// Windows zone names (as in Outlook / Exchange TZIDs) and the IANA zone
/// CLDR's `windowsZones.xml` maps each to for territory `001`, plus a few
/// Outlook display names.
pub const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Aleutian Standard Time", "America/Adak"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Marquesas Standard Time", "Pacific/Marquesas"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("UTC-09", "Etc/GMT+9"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("UTC-08", "Etc/GMT+8"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Yukon Standard Time", "America/Whitehorse"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Easter Island Standard Time", "Pacific/Easter"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("Eastern Standard Time", "America/New_York"),
    ("Haiti Standard Time", "America/Port-au-Prince"),
    ("Cuba Standard Time", "America/Havana"),
    ("US Eastern Standard Time", "America/Indiana/Indianapolis"),
    ("Turks And Caicos Standard Time", "America/Grand_Turk"),
    ("Paraguay Standard Time", "America/Asuncion"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Central Brazilian Standard Time", "America/Cuiaba"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("Tocantins Standard Time", "America/Araguaina"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
    ("Greenland Standard Time", "America/Nuuk"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("Magallanes Standard Time", "America/Punta_Arenas"),
    ("Saint Pierre Standard Time", "America/Miquelon"),
    ("Bahia Standard Time", "America/Bahia"),
    ("UTC-02", "Etc/GMT+2"),
    ("Mid-Atlantic Standard Time", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "UTC"),
    ("Coordinated Universal Time", "UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Sao Tome Standard Time", "Africa/Sao_Tome"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("Jordan Standard Time", "Asia/Amman"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("West Bank Standard Time", "Asia/Hebron"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("FLE Standard Time", "Europe/Kyiv"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Sudan Standard Time", "Africa/Juba"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("Sudan Standard Time", "Africa/Khartoum"),
    ("Libya Standard Time", "Africa/Tripoli"),
    ("Namibia Standard Time", "Africa/Windhoek"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Volgograd Standard Time", "Europe/Volgograd"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Astrakhan Standard Time", "Europe/Astrakhan"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Russia Time Zone 3", "Europe/Samara"),
    ("Mauritius Standard Time", "Indian/Mauritius"),
    ("Saratov Standard Time", "Europe/Saratov"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("Qyzylorda Standard Time", "Asia/Qyzylorda"),
    ("India Standard Time", "Asia/Kolkata"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Kathmandu"),
    ("Central Asia Standard Time", "Asia/Bishkek"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Omsk Standard Time", "Asia/Omsk"),
    ("Myanmar Standard Time", "Asia/Yangon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("Altai Standard Time", "Asia/Barnaul"),
    ("W. Mongolia Standard Time", "Asia/Hovd"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk"),
    ("N. Central Asia Standard Time", "Asia/Novosibirsk"),
    ("Tomsk Standard Time", "Asia/Tomsk"),
    ("China Standard Time", "Asia/Shanghai"),
    ("North Asia East Standard Time", "Asia/Irkutsk"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar"),
    ("Aus Central W. Standard Time", "Australia/Eucla"),
    ("Transbaikal Standard Time", "Asia/Chita"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("North Korea Standard Time", "Asia/Pyongyang"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("Vladivostok Standard Time", "Asia/Vladivostok"),
    ("Lord Howe Standard Time", "Australia/Lord_Howe"),
    ("Bougainville Standard Time", "Pacific/Bougainville"),
    ("Russia Time Zone 10", "Asia/Srednekolymsk"),
    ("Magadan Standard Time", "Asia/Magadan"),
    ("Norfolk Standard Time", "Pacific/Norfolk"),
    ("Sakhalin Standard Time", "Asia/Sakhalin"),
    ("Central Pacific Standard Time", "Pacific/Guadalcanal"),
    ("Russia Time Zone 11", "Asia/Kamchatka"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("UTC+12", "Etc/GMT-12"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Chatham Islands Standard Time", "Pacific/Chatham"),
    ("UTC+13", "Etc/GMT-13"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
    ("Line Islands Standard Time", "Pacific/Kiritimati"),
    // Outlook display names, seen as TZIDs in exported files.
    (
        "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
        "Europe/Berlin",
    ),
    (
        "(UTC+01:00) Brussels, Copenhagen, Madrid, Paris",
        "Europe/Paris",
    ),
    (
        "(UTC+00:00) Dublin, Edinburgh, Lisbon, London",
        "Europe/London",
    ),
    ("(UTC) Dublin, Edinburgh, Lisbon, London", "Europe/London"),
    ("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York"),
    ("(UTC-06:00) Central Time (US & Canada)", "America/Chicago"),
    ("(UTC-07:00) Mountain Time (US & Canada)", "America/Denver"),
    (
        "(UTC-08:00) Pacific Time (US & Canada)",
        "America/Los_Angeles",
    ),
];

/// The IANA zone for a Windows zone name or Outlook display name
/// (case-insensitive), from [`WINDOWS_ZONES`].
pub fn windows_zone(name: &str) -> Option<Tz> {
    let name = name.trim();
    WINDOWS_ZONES
        .iter()
        .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
        .and_then(|(_, iana)| iana.parse().ok())
}

/// Resolves a TZID without any VTIMEZONE: steps 1-3 of the module
/// documentation.
pub fn resolve_known(tzid: &str) -> Option<Tz> {
    let tzid = tzid.trim().trim_matches('"');
    if let Ok(tz) = tzid.parse::<Tz>() {
        return Some(tz);
    }
    if let Some(tz) = windows_zone(tzid) {
        return Some(tz);
    }
    // Path-style: try every suffix after a `/`.
    let mut rest = tzid;
    while let Some(i) = rest.find('/') {
        rest = &rest[i + 1..];
        if let Ok(tz) = rest.parse::<Tz>() {
            return Some(tz);
        }
    }
    None
}

/// Resolves the TZIDs of one calendar, using its VTIMEZONE components, with
/// a cache.
#[derive(Debug, Default, Clone)]
pub struct TzResolver {
    /// VTIMEZONE hints: TZID -> the zone names found in it
    /// (`X-LIC-LOCATION`, `TZID-ALIAS-OF`).
    hints: HashMap<String, Vec<String>>,
    /// VTIMEZONE rule signatures, for step 5.
    rules: HashMap<String, Signature>,
    cache: HashMap<String, Tz>,
}

impl TzResolver {
    /// A resolver that knows the VTIMEZONEs among `components`.
    pub fn new<'a>(components: impl IntoIterator<Item = &'a Component>) -> Self {
        let mut hints = HashMap::new();
        let mut rules = HashMap::new();
        for c in components {
            if c.name != "VTIMEZONE" {
                continue;
            }
            let Some(tzid) = c.property("TZID") else {
                continue;
            };
            let names = c
                .properties
                .iter()
                .filter(|p| p.name == "X-LIC-LOCATION" || p.name == "TZID-ALIAS-OF")
                .map(Property::text)
                .collect();
            let tzid = tzid.text().trim().to_owned();
            if let Some(sig) = vtimezone_signature(c) {
                rules.insert(tzid.clone(), sig);
            }
            hints.insert(tzid, names);
        }
        Self {
            hints,
            rules,
            cache: HashMap::new(),
        }
    }

    /// The zone for `tzid`; `line` is used in the error.
    pub fn resolve(&mut self, tzid: &str, line: usize) -> Result<Tz> {
        if let Some(tz) = self.cache.get(tzid) {
            return Ok(*tz);
        }
        let found = resolve_known(tzid)
            .or_else(|| {
                self.hints
                    .get(tzid.trim())
                    .and_then(|names| names.iter().find_map(|n| resolve_known(n)))
            })
            .or_else(|| self.rules.get(tzid.trim()).and_then(zone_with_signature));
        let Some(tz) = found else {
            let why = if self.hints.contains_key(tzid.trim()) {
                "its VTIMEZONE has no X-LIC-LOCATION naming a known zone and its rules match no zone"
            } else {
                "and the calendar has no VTIMEZONE for it"
            };
            return Err(error_at(
                line,
                format!(
                    "unknown TZID {tzid:?}: not an IANA zone nor a known Windows zone name, {why}"
                ),
            ));
        };
        self.cache.insert(tzid.to_owned(), tz);
        Ok(tz)
    }
}

/// The year whose transitions [`TzResolver`] compares with a VTIMEZONE's
/// rules (step 5 of the module documentation).
pub const RULE_MATCH_YEAR: i32 = 2025;

/// A zone's yearly behaviour: per transition (sorted) whether it starts
/// daylight time, the offset it changes to, the month and the `BYDAY`;
/// a single `(false, offset, 0, "")` for a zone without transitions.
type Signature = Vec<(bool, i32, u32, String)>;

fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|d| d.parse::<i32>().ok());
    let secs = n(0..2)? * 3600 + n(2..4)? * 60 + if digits.len() == 6 { n(4..6)? } else { 0 };
    Some(sign * secs)
}

/// The signature of a VTIMEZONE's ongoing observances (those whose RRULE
/// has no UNTIL); `None` when they are not plain yearly BYMONTH/BYDAY rules.
fn vtimezone_signature(vtz: &Component) -> Option<Signature> {
    let mut ongoing = Vec::new();
    let mut fixed = Vec::new();
    for obs in &vtz.components {
        let dst = match obs.name.as_str() {
            "DAYLIGHT" => true,
            "STANDARD" => false,
            _ => continue,
        };
        let to = parse_offset(&obs.property("TZOFFSETTO")?.value)?;
        let start = obs
            .property("DTSTART")
            .map(|p| p.value.clone())
            .unwrap_or_default();
        let Some(rrule) = obs.property("RRULE") else {
            fixed.push((start, dst, to));
            continue;
        };
        let mut month = None;
        let mut byday = None;
        let mut yearly = false;
        let mut ended = false;
        for part in rrule.value.split(';') {
            let (k, v) = part.split_once('=')?;
            match k.to_ascii_uppercase().as_str() {
                "FREQ" => yearly = v.eq_ignore_ascii_case("YEARLY"),
                "BYMONTH" => month = v.parse::<u32>().ok(),
                "BYDAY" => byday = Some(v.trim_start_matches('+').to_ascii_uppercase()),
                "UNTIL" | "COUNT" => ended = true,
                "WKST" => {}
                "INTERVAL" if v == "1" => {}
                _ => return None,
            }
        }
        match (yearly, ended, month, byday) {
            (true, true, ..) => {} // historical
            (true, false, Some(m), Some(d)) => ongoing.push((dst, to, m, d)),
            _ => return None,
        }
    }
    if ongoing.is_empty() {
        // A fixed offset: the latest observance without a rule.
        fixed.sort();
        let (_, _, to) = fixed.last()?;
        return Some(vec![(false, *to, 0, String::new())]);
    }
    ongoing.sort();
    Some(ongoing)
}

fn zone_signature(tz: Tz) -> Signature {
    let transitions = transitions_in_year(tz, RULE_MATCH_YEAR);
    if transitions.is_empty() {
        let at = NaiveDate::from_ymd_opt(RULE_MATCH_YEAR, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(DateTime::<Utc>::UNIX_EPOCH, |d| d.and_utc());
        return vec![(false, offset_at(tz, at).0, 0, String::new())];
    }
    let mut sig: Signature = transitions
        .iter()
        .map(|t| {
            let (month, byday, _, _, to, dst) = rule_key(t);
            (dst, to, month, byday)
        })
        .collect();
    sig.sort();
    sig
}

/// Every candidate zone's signature, computed once per process: the
/// [`WINDOWS_ZONES`] zones first, then all of chrono-tz.
fn candidate_signatures() -> &'static [(Tz, Signature)] {
    static ALL: std::sync::OnceLock<Vec<(Tz, Signature)>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut seen = std::collections::HashSet::new();
        WINDOWS_ZONES
            .iter()
            .filter_map(|(_, iana)| iana.parse::<Tz>().ok())
            .chain(chrono_tz::TZ_VARIANTS.iter().copied())
            .filter(|tz| seen.insert(tz.name()))
            .map(|tz| (tz, zone_signature(tz)))
            .collect()
    })
}

fn zone_with_signature(sig: &Signature) -> Option<Tz> {
    candidate_signatures()
        .iter()
        .find(|(_, s)| s == sig)
        .map(|(tz, _)| *tz)
}

/// One UTC offset change of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transition {
    at: DateTime<Utc>,
    from: i32,
    to: i32,
    dst: bool,
}

fn offset_at(tz: Tz, at: DateTime<Utc>) -> (i32, bool, String) {
    let o = tz.offset_from_utc_datetime(&at.naive_utc());
    let name = o.abbreviation().unwrap_or("").to_owned();
    (o.fix().local_minus_utc(), !o.dst_offset().is_zero(), name)
}

fn transitions_in_year(tz: Tz, year: i32) -> Vec<Transition> {
    let mut out = Vec::new();
    let Some(start) = NaiveDate::from_ymd_opt(year, 1, 1) else {
        return out;
    };
    let Some(mut day) = start.and_hms_opt(0, 0, 0).map(|d| d.and_utc()) else {
        return out;
    };
    let mut prev = offset_at(tz, day).0;
    while day.year() == year {
        let next = day + Duration::days(1);
        let off = offset_at(tz, next).0;
        if off != prev {
            // Binary search the second of change in (day, next].
            let (mut lo, mut hi) = (day.timestamp(), next.timestamp());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let at = DateTime::from_timestamp(mid, 0).unwrap_or(day);
                if offset_at(tz, at).0 == prev {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let at = DateTime::from_timestamp(hi, 0).unwrap_or(next);
            let (to, dst, _) = offset_at(tz, at);
            out.push(Transition {
                at,
                from: prev,
                to,
                dst,
            });
        }
        prev = off;
        day = next;
    }
    out
}

/// The yearly rule a transition follows: month, `BYDAY` (`-1SU`, `2SU` ...),
/// local onset time, offsets and kind.
fn rule_key(t: &Transition) -> (u32, String, NaiveDateTime, i32, i32, bool) {
    let local = t.at.naive_utc() + Duration::seconds(i64::from(t.from));
    let date = local.date();
    let last_day = last_day_of_month(date.year(), date.month());
    let nth = if date.day() + 7 > last_day {
        "-1".to_owned()
    } else {
        ((date.day() - 1) / 7 + 1).to_string()
    };
    let wd = match date.weekday() {
        chrono::Weekday::Mon => "MO",
        chrono::Weekday::Tue => "TU",
        chrono::Weekday::Wed => "WE",
        chrono::Weekday::Thu => "TH",
        chrono::Weekday::Fri => "FR",
        chrono::Weekday::Sat => "SA",
        chrono::Weekday::Sun => "SU",
    };
    (
        date.month(),
        format!("{nth}{wd}"),
        local,
        t.from,
        t.to,
        t.dst,
    )
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

pub(crate) fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    if sec == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{sec:02}")
    }
}

fn observance(t: &Transition, name: &str, rrule: Option<String>) -> Component {
    let local = t.at.naive_utc() + Duration::seconds(i64::from(t.from));
    let mut c = Component::new(if t.dst { "DAYLIGHT" } else { "STANDARD" });
    c.properties.push(Property::new(
        "DTSTART",
        local.format("%Y%m%dT%H%M%S").to_string(),
    ));
    if let Some(rule) = rrule {
        c.properties.push(Property::new("RRULE", rule));
    }
    c.properties
        .push(Property::new("TZOFFSETFROM", format_offset(t.from)));
    c.properties
        .push(Property::new("TZOFFSETTO", format_offset(t.to)));
    if !name.is_empty() {
        c.properties.push(Property::new("TZNAME", name));
    }
    c
}

/// The most years [`vtimezone`] computes transitions for.
pub const MAX_VTIMEZONE_YEARS: i32 = 50;

/// A VTIMEZONE for `tz` valid for the years `first..=last` (the observance
/// in force on 1 January of `first` included), computed from chrono-tz.
/// UTC needs none; callers write `Z` times for it.
pub fn vtimezone(tz: Tz, first: i32, last: i32) -> Component {
    let first = first.clamp(1, 9999);
    // At most MAX_VTIMEZONE_YEARS years of transitions are computed; the
    // yearly rules found (or the last observance) carry on after them.
    let last = last.clamp(first, (first + MAX_VTIMEZONE_YEARS).min(9999));
    let mut vtz = Component::new("VTIMEZONE");
    vtz.properties.push(Property::new("TZID", tz.name()));
    // The year before `first` gives the observance in force at its start.
    let years: Vec<(i32, Vec<Transition>)> = ((first - 1).max(1)..=last)
        .map(|y| (y, transitions_in_year(tz, y)))
        .collect();
    let all: Vec<&Transition> = years.iter().flat_map(|(_, ts)| ts).collect();
    if all.is_empty() {
        let at = NaiveDate::from_ymd_opt(first, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or_else(Utc::now, |d| d.and_utc());
        let (off, _, name) = offset_at(tz, at);
        let t = Transition {
            at: DateTime::<Utc>::UNIX_EPOCH - Duration::seconds(i64::from(off)),
            from: off,
            to: off,
            dst: false,
        };
        vtz.components.push(observance(&t, &name, None));
        return vtz;
    }
    // Same rules every year (and the same number of transitions)?
    let keys_of = |ts: &[Transition]| {
        let mut k: Vec<_> = ts
            .iter()
            .map(|t| {
                let (m, byday, local, from, to, dst) = rule_key(t);
                (m, byday, local.time(), from, to, dst)
            })
            .collect();
        k.sort();
        k
    };
    let first_keys = keys_of(&years[0].1);
    let regular = !first_keys.is_empty() && years.iter().all(|(_, ts)| keys_of(ts) == first_keys);
    if regular {
        for t in &years[0].1 {
            let (month, byday, ..) = rule_key(t);
            let name = offset_at(tz, t.at).2;
            let rule = format!("FREQ=YEARLY;BYMONTH={month};BYDAY={byday}");
            vtz.components.push(observance(t, &name, Some(rule)));
        }
    } else {
        for t in all {
            let name = offset_at(tz, t.at).2;
            vtz.components.push(observance(t, &name, None));
        }
    }
    vtz
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_is_a_chrono_tz_zone() {
        for (windows, iana) in WINDOWS_ZONES {
            assert!(iana.parse::<Tz>().is_ok(), "{windows} -> {iana}");
        }
    }

    #[test]
    fn resolves_iana_windows_paths_and_hints() {
        assert_eq!(
            resolve_known("Europe/Berlin"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(
            resolve_known("W. Europe Standard Time"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(
            resolve_known("pacific standard time"),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(
            resolve_known("/mozilla.org/20050126_1/America/New_York"),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(resolve_known("Mars/Olympus"), None);
        let mut vtz = Component::new("VTIMEZONE");
        vtz.properties.push(Property::new("TZID", "Custom Zone 1"));
        vtz.properties
            .push(Property::new("X-LIC-LOCATION", "Asia/Tokyo"));
        let mut r = TzResolver::new([&vtz]);
        assert_eq!(
            r.resolve("Custom Zone 1", 5).unwrap(),
            chrono_tz::Asia::Tokyo
        );
        let err = r.resolve("Nowhere", 7).unwrap_err();
        assert!(err.message().contains("line 7"), "{err}");
        assert!(err.message().contains("Nowhere"), "{err}");
    }

    #[test]
    fn custom_vtimezones_match_by_rules() {
        let parse = |text: &str| {
            crate::ics::parser::parse_components(text)
                .unwrap()
                .remove(0)
        };
        // Outlook's "Customized Time Zone" with Central European rules.
        let cet = parse(
            "BEGIN:VTIMEZONE\nTZID:Customized Time Zone\nBEGIN:STANDARD\nDTSTART:16010101T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\nEND:DAYLIGHT\nEND:VTIMEZONE\n",
        );
        let us = parse(
            "BEGIN:VTIMEZONE\nTZID:Customized Time Zone 1\nBEGIN:STANDARD\nDTSTART:16010101T020000\nTZOFFSETFROM:-0400\nTZOFFSETTO:-0500\nRRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:-0500\nTZOFFSETTO:-0400\nRRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\nEND:DAYLIGHT\nEND:VTIMEZONE\n",
        );
        let india = parse(
            "BEGIN:VTIMEZONE\nTZID:My Zone\nBEGIN:STANDARD\nDTSTART:16010101T000000\nTZOFFSETFROM:+0530\nTZOFFSETTO:+0530\nEND:STANDARD\nEND:VTIMEZONE\n",
        );
        let nowhere = parse(
            "BEGIN:VTIMEZONE\nTZID:Odd\nBEGIN:STANDARD\nDTSTART:16010101T000000\nTZOFFSETFROM:+0317\nTZOFFSETTO:+0317\nEND:STANDARD\nEND:VTIMEZONE\n",
        );
        let mut r = TzResolver::new([&cet, &us, &india, &nowhere]);
        assert_eq!(
            r.resolve("Customized Time Zone", 1).unwrap(),
            chrono_tz::Europe::Berlin
        );
        assert_eq!(
            r.resolve("Customized Time Zone 1", 1).unwrap(),
            chrono_tz::America::New_York
        );
        assert_eq!(r.resolve("My Zone", 1).unwrap(), chrono_tz::Asia::Kolkata);
        let err = r.resolve("Odd", 9).unwrap_err();
        assert!(err.message().contains("rules match no zone"), "{err}");
    }

    #[test]
    fn berlin_vtimezone_has_yearly_rules() {
        let vtz = vtimezone(chrono_tz::Europe::Berlin, 2024, 2025);
        let lines = vtz.to_lines();
        assert!(
            lines.contains(&"RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"DTSTART:20230326T020000".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"DTSTART:20231029T030000".to_owned()),
            "{lines:?}"
        );
        assert!(lines.contains(&"TZOFFSETFROM:+0100".to_owned()));
        assert!(lines.contains(&"TZNAME:CEST".to_owned()));
        let ny = vtimezone(chrono_tz::America::New_York, 2024, 2024).to_lines();
        assert!(
            ny.contains(&"RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU".to_owned()),
            "{ny:?}"
        );
        assert!(
            ny.contains(&"RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU".to_owned()),
            "{ny:?}"
        );
        // Southern hemisphere: daylight time over the new year.
        let sydney = vtimezone(chrono_tz::Australia::Sydney, 2024, 2026).to_lines();
        assert!(
            sydney.contains(&"RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU".to_owned()),
            "{sydney:?}"
        );
        assert!(
            sydney.contains(&"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU".to_owned()),
            "{sydney:?}"
        );
        assert!(sydney.contains(&"TZOFFSETTO:+1100".to_owned()));
        // Rules that change within the years: one observance per transition
        // (Sao Paulo dropped daylight time in 2019).
        let sp = vtimezone(chrono_tz::America::Sao_Paulo, 2018, 2020).to_lines();
        assert!(!sp.iter().any(|l| l.starts_with("RRULE")), "{sp:?}");
        assert!(sp.contains(&"DTSTART:20190217T000000".to_owned()), "{sp:?}");
        let tokyo = vtimezone(chrono_tz::Asia::Tokyo, 2024, 2024).to_lines();
        assert!(tokyo.contains(&"TZOFFSETTO:+0900".to_owned()), "{tokyo:?}");
        assert!(tokyo.contains(&"BEGIN:STANDARD".to_owned()));
        assert!(!tokyo.iter().any(|l| l == "BEGIN:DAYLIGHT"));
    }
}
