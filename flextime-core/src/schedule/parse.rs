//! [`ScheduleItem::parse_json`]: JSON in, an item or violations with paths out.

use serde_json::Value;
use serde_path_to_error::Segment;

use super::ScheduleItem;
use super::time::UNKNOWN_TZ_MARKER;
use super::validate::codes;
use crate::validate::{Violation, join_path};

/// At most this many unknown zones are reported (and patched over) per parse.
const MAX_ZONE_ERRORS: usize = 64;

/// Codes whose checks compare instants; skipped when a zone was unknown,
/// since the instants are then guesses.
const INSTANT_CODES: [&str; 3] = [
    codes::END_BEFORE_START,
    codes::UNKNOWN_RECURRENCE_ID,
    codes::DUPLICATE_OVERRIDE,
];

impl ScheduleItem {
    /// Parse the JSON shape (see the [module documentation](super)) and
    /// validate the result.
    ///
    /// Errors come back as [`Violation`]s with the field path:
    /// - every unknown time zone (`start.tz`, `recurrence.rdate[3].tz` ...,
    ///   code `unknown_time_zone`);
    /// - otherwise the first structural problem: `unknown_field` (the path
    ///   names the field), `required` for a missing field, `invalid_value`
    ///   for a wrong type or format, `invalid_json` when it is not JSON;
    /// - then everything [`validate`](Self::validate) finds. When a zone was
    ///   unknown, checks that compare instants (`end_before_start`,
    ///   `unknown_recurrence_id`, `duplicate_override`) are skipped.
    ///
    /// ```
    /// use flextime_core::schedule::ScheduleItem;
    ///
    /// let json = br#"{"id": "x", "kind": "event", "title": "Demo",
    ///   "start": {"date_time": "2024-01-01T10:00:00", "tz": "Europe/Atlantis"},
    ///   "end": {"date_time": "2024-01-01T11:00:00", "tz": "Mars/Olympus"},
    ///   "attendees": [{"email": "not-an-email"}],
    ///   "updated_at": "2024-01-01T00:00:00Z"}"#;
    /// let found = ScheduleItem::parse_json(json).unwrap_err();
    /// let at: Vec<(&str, &str)> = found.iter().map(|v| (v.path.as_str(), v.code.as_str())).collect();
    /// assert_eq!(at, [
    ///     ("start.tz", "unknown_time_zone"),
    ///     ("end.tz", "unknown_time_zone"),
    ///     ("attendees[0].email", "invalid_email"),
    /// ]);
    /// ```
    pub fn parse_json(bytes: &[u8]) -> Result<ScheduleItem, Vec<Violation>> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| vec![Violation::new("", codes::INVALID_JSON, e.to_string())])?;
        Self::from_json_value(value)
    }

    /// [`parse_json`](Self::parse_json) for an already parsed JSON value.
    pub fn from_json_value(mut value: Value) -> Result<ScheduleItem, Vec<Violation>> {
        let mut found = Vec::new();
        let mut zones_patched = 0usize;
        loop {
            let err = match serde_path_to_error::deserialize::<_, ScheduleItem>(&value) {
                Ok(item) => {
                    order_zone_violations(&mut found);
                    let checks = item.validate();
                    if zones_patched > 0 {
                        found.extend(
                            checks
                                .into_iter()
                                .filter(|v| !INSTANT_CODES.contains(&v.code.as_str())),
                        );
                    } else {
                        found.extend(checks);
                    }
                    return if found.is_empty() {
                        Ok(item)
                    } else {
                        Err(found)
                    };
                }
                Err(err) => err,
            };
            let segments: Vec<Segment> = err.path().iter().cloned().collect();
            let path = render(&segments);
            let message = err.into_inner().to_string();
            if message.starts_with(UNKNOWN_TZ_MARKER) {
                found.push(Violation::new(path, codes::UNKNOWN_TIME_ZONE, message));
                zones_patched += 1;
                // Patch the zone so the rest of the document is still checked.
                if zones_patched >= MAX_ZONE_ERRORS
                    || !replace_at(&mut value, &segments, Value::String("UTC".to_owned()))
                {
                    order_zone_violations(&mut found);
                    return Err(found);
                }
                continue;
            }
            order_zone_violations(&mut found);
            found.push(classify(path, message));
            return Err(found);
        }
    }
}

/// Top-level fields in declaration order, to report zone errors in a stable
/// order whatever the JSON map's key order is.
const FIELD_ORDER: [&str; 15] = [
    "id",
    "kind",
    "title",
    "description",
    "location",
    "start",
    "end",
    "recurrence",
    "attendees",
    "organizer",
    "status",
    "external_refs",
    "updated_at",
    "sequence",
    "extensions",
];

fn field_rank(path: &str) -> usize {
    let top = path.split(['.', '[']).next().unwrap_or_default();
    FIELD_ORDER
        .iter()
        .position(|f| *f == top)
        .unwrap_or(FIELD_ORDER.len())
}

/// Sort the leading zone violations by field order (stable for the rest).
fn order_zone_violations(found: &mut [Violation]) {
    let zones = found
        .iter()
        .take_while(|v| v.code == codes::UNKNOWN_TIME_ZONE)
        .count();
    if let Some(head) = found.get_mut(..zones) {
        head.sort_by(|a, b| (field_rank(&a.path), &a.path).cmp(&(field_rank(&b.path), &b.path)));
    }
}

/// `a.b[2].c` from serde_path_to_error segments.
fn render(segments: &[Segment]) -> String {
    segments.iter().fold(String::new(), |acc, seg| match seg {
        Segment::Seq { index } => format!("{acc}[{index}]"),
        Segment::Map { key } => join_path(&acc, key),
        Segment::Enum { .. } | Segment::Unknown => acc,
    })
}

/// The first back-quoted word of a serde message (`missing field `id``).
fn quoted(message: &str) -> Option<&str> {
    let rest = message.split_once('`')?.1;
    Some(rest.split_once('`')?.0)
}

fn classify(path: String, message: String) -> Violation {
    if message.starts_with("missing field") {
        let path = match quoted(&message) {
            Some(field) => join_path(&path, field),
            None => path,
        };
        return Violation::new(path, codes::REQUIRED, message);
    }
    if message.starts_with("unknown field") {
        let path = match quoted(&message) {
            Some(field) if !path.ends_with(field) => join_path(&path, field),
            _ => path,
        };
        return Violation::new(path, codes::UNKNOWN_FIELD, message);
    }
    Violation::new(path, codes::INVALID_VALUE, message)
}

/// Replace the value at `segments`; false if the path does not lead anywhere.
fn replace_at(root: &mut Value, segments: &[Segment], new: Value) -> bool {
    let mut here = root;
    for seg in segments {
        let next = match seg {
            Segment::Seq { index } => here.get_mut(*index),
            Segment::Map { key } => here.get_mut(key.as_str()),
            Segment::Enum { .. } | Segment::Unknown => return false,
        };
        match next {
            Some(v) => here = v,
            None => return false,
        }
    }
    *here = new;
    true
}
