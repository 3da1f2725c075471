//! A configurable mapping between [`ScheduleItem`] and the properties of a
//! Notion page (API version 2025-09-03).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use flextime_core::schedule::{Attendee, ExternalRef, ItemKind, ItemTime, Status};
use flextime_core::{Error, Result, ScheduleItem};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How a status is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    /// A `select` property.
    Select,
    /// A `status` property.
    Status,
}

/// How attendees are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeopleKind {
    /// A `people` property (workspace users; written by user id, read by email).
    People,
    /// An `email` property (one attendee).
    Email,
}

/// Which Notion property holds which field. Only `title` and `date` are
/// required; the rest are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotionMapping {
    /// The `title` property.
    pub title: String,
    /// The `date` property (start, end, time zone).
    pub date: String,
    /// A select or status property with the item's status.
    #[serde(default)]
    pub status: Option<(String, StatusKind)>,
    /// Status value names: Flextime status -> Notion option name (default:
    /// `Confirmed`, `Tentative`, `Cancelled`).
    #[serde(default)]
    pub status_names: BTreeMap<String, String>,
    /// A people or email property with the attendees.
    #[serde(default)]
    pub attendees: Option<(String, PeopleKind)>,
    /// Notion user ids of attendees by email, needed to write a `people`
    /// property (Notion takes user ids, not emails).
    #[serde(default)]
    pub user_ids: BTreeMap<String, String>,
    /// A rich text property with the description.
    #[serde(default)]
    pub description: Option<String>,
    /// A rich text property with the location.
    #[serde(default)]
    pub location: Option<String>,
    /// A rich text property holding Flextime's item id (otherwise the page id
    /// is the item id).
    #[serde(default)]
    pub item_id: Option<String>,
}

impl NotionMapping {
    /// A mapping with a title and a date property.
    pub fn new(title: impl Into<String>, date: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            date: date.into(),
            status: None,
            status_names: BTreeMap::new(),
            attendees: None,
            user_ids: BTreeMap::new(),
            description: None,
            location: None,
            item_id: None,
        }
    }

    fn status_name(&self, status: Status) -> String {
        let key = match status {
            Status::Confirmed => "confirmed",
            Status::Tentative => "tentative",
            Status::Cancelled => "cancelled",
        };
        self.status_names.get(key).cloned().unwrap_or_else(|| {
            let mut s = key.to_owned();
            s[..1].make_ascii_uppercase();
            s
        })
    }

    fn status_from_name(&self, name: &str) -> Status {
        for (key, status) in [
            ("confirmed", Status::Confirmed),
            ("tentative", Status::Tentative),
            ("cancelled", Status::Cancelled),
        ] {
            if self.status_name(status).eq_ignore_ascii_case(name) || key.eq_ignore_ascii_case(name)
            {
                return status;
            }
        }
        Status::Confirmed
    }
}

fn plain_text(prop: &Value, kind: &str) -> Option<String> {
    let parts = prop[kind].as_array()?;
    let text: String = parts
        .iter()
        .filter_map(|p| {
            p["plain_text"]
                .as_str()
                .or_else(|| p["text"]["content"].as_str())
        })
        .collect();
    Some(text)
}

fn rich_text(s: &str) -> Value {
    // Notion limits one text object to 2000 characters: split longer text.
    let chunks: Vec<Value> = s
        .chars()
        .collect::<Vec<_>>()
        .chunks(2000)
        .map(|c| json!({"type": "text", "text": {"content": c.iter().collect::<String>()}}))
        .collect();
    Value::Array(chunks)
}

fn parse_notion_time(s: &str, tz: Option<Tz>) -> Option<ItemTime> {
    if s.len() == 10 {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(ItemTime::AllDay);
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(s) {
        let instant = instant.with_timezone(&Utc);
        return Some(match tz {
            Some(tz) => ItemTime::zoned(instant.with_timezone(&tz).naive_local(), tz),
            None => ItemTime::utc(instant),
        });
    }
    // With a time zone, Notion takes (and may return) local times without
    // an offset.
    let local = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(ItemTime::zoned(local, tz.unwrap_or(Tz::UTC)))
}

/// A page's `last_edited_time`.
pub fn last_edited(page: &Value) -> Option<DateTime<Utc>> {
    page["last_edited_time"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// Maps a page object to an item; a page without the mapped date is a typed
/// error naming the property.
pub fn item_from_page(
    page: &Value,
    mapping: &NotionMapping,
    provider: &str,
) -> Result<ScheduleItem> {
    let page_id = page["id"]
        .as_str()
        .ok_or_else(|| Error::permanent("a Notion page without an id"))?;
    let props = &page["properties"];
    let title = plain_text(&props[&mapping.title], "title").unwrap_or_default();
    let date = &props[&mapping.date]["date"];
    let tz = date["time_zone"]
        .as_str()
        .and_then(|z| z.parse::<Tz>().ok());
    let start = date["start"]
        .as_str()
        .and_then(|s| parse_notion_time(s, tz))
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "Notion page {page_id} has no usable date in property {:?}",
                mapping.date
            ))
        })?;
    let end = match (
        date["end"].as_str().and_then(|s| parse_notion_time(s, tz)),
        start,
    ) {
        // Notion's end date is inclusive; a schedule item's is exclusive.
        (Some(ItemTime::AllDay(d)), _) | (None, ItemTime::AllDay(d)) => {
            ItemTime::AllDay(d + Duration::days(1))
        }
        (Some(end), _) => end,
        (None, zoned @ ItemTime::Zoned { .. }) => zoned,
    };
    let id = mapping
        .item_id
        .as_ref()
        .and_then(|p| plain_text(&props[p], "rich_text"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| page_id.to_owned());
    let edited = last_edited(page).unwrap_or(DateTime::UNIX_EPOCH);
    let mut item = ScheduleItem::new(id, ItemKind::Event, title, start, end, edited);
    if let Some((name, kind)) = &mapping.status {
        let key = match kind {
            StatusKind::Select => "select",
            StatusKind::Status => "status",
        };
        if let Some(value) = props[name][key]["name"].as_str() {
            item.status = mapping.status_from_name(value);
        }
    }
    if let Some((name, kind)) = &mapping.attendees {
        match kind {
            PeopleKind::People => {
                for person in props[name]["people"].as_array().into_iter().flatten() {
                    if let Some(email) = person["person"]["email"].as_str() {
                        let mut a = Attendee::new(email);
                        a.name = person["name"].as_str().map(str::to_owned);
                        item.attendees.push(a);
                    }
                }
            }
            PeopleKind::Email => {
                if let Some(email) = props[name]["email"].as_str() {
                    item.attendees.push(Attendee::new(email));
                }
            }
        }
    }
    if let Some(p) = &mapping.description {
        item.description = plain_text(&props[p], "rich_text").filter(|s| !s.is_empty());
    }
    if let Some(p) = &mapping.location {
        item.location = plain_text(&props[p], "rich_text").filter(|s| !s.is_empty());
    }
    if page["in_trash"].as_bool() == Some(true) || page["archived"].as_bool() == Some(true) {
        item.status = Status::Cancelled;
    }
    item.external_refs.insert(
        provider.to_owned(),
        ExternalRef {
            id: page_id.to_owned(),
            etag: page["last_edited_time"].as_str().map(str::to_owned),
        },
    );
    Ok(item)
}

fn notion_time(t: &ItemTime) -> String {
    match t {
        ItemTime::AllDay(d) => d.format("%Y-%m-%d").to_string(),
        zoned @ ItemTime::Zoned { .. } => zoned
            .to_zoned()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// The `properties` object of a create or update for `item`.
pub fn item_to_properties(item: &ScheduleItem, mapping: &NotionMapping) -> Value {
    let end = match item.end {
        // Back to Notion's inclusive end date; a one-day event has no end.
        ItemTime::AllDay(d) => {
            let last = d - Duration::days(1);
            (ItemTime::AllDay(last) != item.start).then_some(ItemTime::AllDay(last))
        }
        end @ ItemTime::Zoned { .. } => (end != item.start).then_some(end),
    };
    let tz = item
        .start
        .tz()
        .filter(|tz| *tz != Tz::UTC)
        .map(|tz| tz.name().to_owned());
    let mut date = json!({"start": notion_time(&item.start), "end": end.map(|e| notion_time(&e))});
    if let Some(tz) = tz {
        // With a time zone Notion wants local times without an offset.
        date["start"] = json!(match item.start {
            ItemTime::Zoned { local, .. } => local.format("%Y-%m-%dT%H:%M:%S").to_string(),
            ItemTime::AllDay(_) => notion_time(&item.start),
        });
        if let Some(ItemTime::Zoned { local, .. }) = end {
            date["end"] = json!(local.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
        date["time_zone"] = json!(tz);
    }
    let mut props = json!({
        mapping.title.clone(): {"title": rich_text(&item.title)},
        mapping.date.clone(): {"date": date},
    });
    if let Some((name, kind)) = &mapping.status {
        let key = match kind {
            StatusKind::Select => "select",
            StatusKind::Status => "status",
        };
        props[name] = json!({key: {"name": mapping.status_name(item.status)}});
    }
    if let Some((name, kind)) = &mapping.attendees {
        props[name] = match kind {
            PeopleKind::People => {
                let people: Vec<Value> = item
                    .attendees
                    .iter()
                    .filter_map(|a| mapping.user_ids.get(&a.email))
                    .map(|id| json!({"object": "user", "id": id}))
                    .collect();
                json!({"people": people})
            }
            PeopleKind::Email => json!({"email": item.attendees.first().map(|a| a.email.clone())}),
        };
    }
    if let Some(p) = &mapping.description {
        props[p] = json!({"rich_text": rich_text(item.description.as_deref().unwrap_or_default())});
    }
    if let Some(p) = &mapping.location {
        props[p] = json!({"rich_text": rich_text(item.location.as_deref().unwrap_or_default())});
    }
    if let Some(p) = &mapping.item_id {
        props[p] = json!({"rich_text": rich_text(&item.id)});
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> NotionMapping {
        let mut m = NotionMapping::new("Name", "When");
        m.status = Some(("Status".into(), StatusKind::Status));
        m.attendees = Some(("Guests".into(), PeopleKind::People));
        m.description = Some("Notes".into());
        m.location = Some("Where".into());
        m.item_id = Some("Flextime ID".into());
        m.user_ids
            .insert("ann@example.com".into(), "9b1f-user".into());
        m
    }

    /// A page shaped like Notion's documented page object example.
    fn page() -> Value {
        json!({
            "object": "page",
            "id": "59833787-2cf9-4fdf-8782-e53db20768a5",
            "created_time": "2024-03-01T19:05:00.000Z",
            "last_edited_time": "2024-03-01T19:05:00.000Z",
            "in_trash": false,
            "properties": {
                "Name": {"id": "title", "type": "title", "title": [
                    {"type": "text", "text": {"content": "Team ", "link": null}, "plain_text": "Team "},
                    {"type": "text", "text": {"content": "sync", "link": null}, "plain_text": "sync"}]},
                "When": {"id": "%3AxQ%3E", "type": "date", "date": {
                    "start": "2024-03-04T09:00:00.000+01:00", "end": "2024-03-04T10:00:00.000+01:00", "time_zone": "Europe/Paris"}},
                "Status": {"id": "s", "type": "status", "status": {"id": "x", "name": "Tentative", "color": "yellow"}},
                "Guests": {"id": "g", "type": "people", "people": [
                    {"object": "user", "id": "9b1f-user", "name": "Ann", "type": "person", "person": {"email": "ann@example.com"}}]},
                "Notes": {"id": "n", "type": "rich_text", "rich_text": [{"type": "text", "text": {"content": "Bring slides"}, "plain_text": "Bring slides"}]},
                "Where": {"id": "w", "type": "rich_text", "rich_text": []},
                "Flextime ID": {"id": "f", "type": "rich_text", "rich_text": [{"type": "text", "text": {"content": "ev-1"}, "plain_text": "ev-1"}]}
            }
        })
    }

    #[test]
    fn a_documented_page_maps_to_an_item_and_back() {
        let item = item_from_page(&page(), &mapping(), "notion").unwrap();
        assert_eq!(item.id, "ev-1");
        assert_eq!(item.title, "Team sync");
        assert_eq!(item.status, Status::Tentative);
        assert_eq!(item.start.tz(), Some(chrono_tz::Europe::Paris));
        assert_eq!(
            item.start.to_utc(),
            Utc.with_ymd_and_hms(2024, 3, 4, 8, 0, 0).unwrap()
        );
        assert_eq!(item.attendees[0].email, "ann@example.com");
        assert_eq!(item.description.as_deref(), Some("Bring slides"));
        assert_eq!(item.location, None);
        assert_eq!(
            item.external_refs["notion"].id,
            "59833787-2cf9-4fdf-8782-e53db20768a5"
        );
        let props = item_to_properties(&item, &mapping());
        assert_eq!(
            props["When"]["date"],
            json!({"start": "2024-03-04T09:00:00", "end": "2024-03-04T10:00:00", "time_zone": "Europe/Paris"})
        );
        assert_eq!(props["Status"], json!({"status": {"name": "Tentative"}}));
        assert_eq!(
            props["Guests"],
            json!({"people": [{"object": "user", "id": "9b1f-user"}]})
        );
        let mut again = page();
        again["properties"]["Name"] = json!({"title": [{"plain_text": "Team sync"}]});
        again["properties"]["When"] = props["When"].clone();
        again["properties"]["When"]["date"]["start"] = json!("2024-03-04T09:00:00.000+01:00");
        again["properties"]["When"]["date"]["end"] = json!("2024-03-04T10:00:00.000+01:00");
        let back = item_from_page(&again, &mapping(), "notion").unwrap();
        assert_eq!((back.start, back.end), (item.start, item.end));
    }

    #[test]
    fn all_day_end_dates_are_inclusive_in_notion_and_exclusive_in_flextime() {
        let mut p = page();
        p["properties"]["When"]["date"] =
            json!({"start": "2024-03-04", "end": "2024-03-05", "time_zone": null});
        let item = item_from_page(&p, &mapping(), "notion").unwrap();
        assert_eq!(
            item.end,
            ItemTime::AllDay(NaiveDate::from_ymd_opt(2024, 3, 6).unwrap())
        );
        let props = item_to_properties(&item, &mapping());
        assert_eq!(
            props["When"]["date"],
            json!({"start": "2024-03-04", "end": "2024-03-05"})
        );
        p["properties"]["When"]["date"] = json!({"start": "2024-03-04", "end": null});
        let one_day = item_from_page(&p, &mapping(), "notion").unwrap();
        assert_eq!(
            one_day.end,
            ItemTime::AllDay(NaiveDate::from_ymd_opt(2024, 3, 5).unwrap())
        );
        assert_eq!(
            item_to_properties(&one_day, &mapping())["When"]["date"]["end"],
            Value::Null
        );
    }

    #[test]
    fn a_page_without_the_date_is_a_typed_error() {
        let mut p = page();
        p["properties"]["When"]["date"] = Value::Null;
        let err = item_from_page(&p, &mapping(), "notion").unwrap_err();
        assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("When"), "{err}");
    }

    #[test]
    fn long_text_is_split_into_2000_character_objects() {
        let v = rich_text(&"é".repeat(4500));
        assert_eq!(v.as_array().unwrap().len(), 3);
    }

    use chrono::TimeZone;
}
