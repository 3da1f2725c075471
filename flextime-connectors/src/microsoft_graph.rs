//! Microsoft Graph (Outlook calendars) as a [`CalendarProvider`].
//!
//! - Incremental reads use `calendarView/delta` over a time window: the first
//!   call follows `@odata.nextLink` pages to the `@odata.deltaLink`, which is
//!   the checkpoint; later calls start from it. Items carrying `@removed` are
//!   deletions. An expired delta token (`410 Gone`, `SyncStateNotFound`) runs
//!   the window again from scratch ([`EventSync::full_resync`]).
//! - `calendarView` returns occurrences, not series: each instance is its own
//!   [`RemoteEvent`], with `seriesMasterId` and `type` kept in the item's
//!   extensions.
//! - Times are asked for in one zone with `Prefer: outlook.timezone` (UTC
//!   unless configured; IANA names are accepted by Graph).
//! - Writes: create with a `transactionId` derived from the Flextime id (Graph
//!   drops a repeated create with the same id), update and delete with
//!   `If-Match` on `@odata.etag` (a stale one is a 412 `Conflict`).
//! - Free/busy reads `calendarView` for the range and keeps events not shown
//!   as free and not cancelled.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use flextime_core::resilience::RateLimit;
use flextime_core::schedule::{
    Attendee, ExternalRef, ItemTime, Organizer, ParticipationStatus, Role, Status,
};
use flextime_core::{Error, ItemKind, Result, ScheduleItem};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::calendar::{
    BusyPeriod, CalendarInfo, CalendarProvider, EventChange, EventRef, EventSync, RemoteEvent,
};
use crate::http::{Auth, HttpClient, HttpClientBuilder, Page, collect_all, collect_sync, paginate};
use crate::{Capability, Connector};

/// The connector's name, also the key of `ScheduleItem::external_refs`.
pub const NAME: &str = "microsoft-graph";
/// Graph's v1.0 base URL.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com/v1.0";

/// Builds a [`MicrosoftGraph`].
#[must_use]
pub struct MicrosoftGraphBuilder {
    http: HttpClientBuilder,
    base_url: String,
    timezone: String,
    window_past: ChronoDuration,
    window_future: ChronoDuration,
    page_size: u32,
}

impl MicrosoftGraphBuilder {
    /// Overrides the API base URL (tests, proxies, national clouds).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The zone Graph reports times in (`Prefer: outlook.timezone`), an IANA
    /// name (default `UTC`).
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = tz.into();
        self
    }

    /// The sync window: from `past` before now to `future` after now
    /// (default 30 days back, 365 ahead).
    pub fn window(mut self, past: ChronoDuration, future: ChronoDuration) -> Self {
        self.window_past = past;
        self.window_future = future;
        self
    }

    /// `Prefer: odata.maxpagesize` (default 100).
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// Changes the underlying HTTP client.
    pub fn http(mut self, f: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder) -> Self {
        self.http = f(self.http);
        self
    }

    /// Builds the connector.
    pub fn build(self) -> Result<MicrosoftGraph> {
        let tz: Tz = self.timezone.parse().map_err(|_| {
            Error::invalid_input(format!("{:?} is not an IANA time zone", self.timezone))
        })?;
        let http = self.http.base_url(&self.base_url)?.build()?;
        Ok(MicrosoftGraph {
            http,
            tz,
            window_past: self.window_past,
            window_future: self.window_future,
            page_size: self.page_size,
        })
    }
}

/// The Microsoft Graph calendar connector.
#[derive(Debug, Clone)]
pub struct MicrosoftGraph {
    http: HttpClient,
    tz: Tz,
    window_past: ChronoDuration,
    window_future: ChronoDuration,
    page_size: u32,
}

#[derive(Deserialize)]
struct Collection {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    delta_link: Option<String>,
}

const GRAPH_TIME: &str = "%Y-%m-%dT%H:%M:%S%.f";

fn parse_graph_time(v: &Value, fallback_tz: Tz, all_day: bool) -> Option<ItemTime> {
    let local = NaiveDateTime::parse_from_str(v["dateTime"].as_str()?, GRAPH_TIME).ok()?;
    if all_day {
        return Some(ItemTime::AllDay(local.date()));
    }
    let tz = v["timeZone"]
        .as_str()
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or(fallback_tz);
    Some(ItemTime::zoned(local, tz))
}

fn graph_time(t: &ItemTime) -> Value {
    match t {
        ItemTime::AllDay(d) => json!({
            "dateTime": d.and_hms_opt(0, 0, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "timeZone": "UTC",
        }),
        ItemTime::Zoned { local, tz } => json!({
            "dateTime": local.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "timeZone": tz.name(),
        }),
    }
}

fn response_from(s: Option<&str>) -> ParticipationStatus {
    match s {
        Some("accepted" | "organizer") => ParticipationStatus::Accepted,
        Some("declined") => ParticipationStatus::Declined,
        Some("tentativelyAccepted") => ParticipationStatus::Tentative,
        _ => ParticipationStatus::NeedsAction,
    }
}

/// Maps a Graph event to an item.
pub fn item_from_graph(v: &Value, tz: Tz) -> Option<ScheduleItem> {
    let id = v["id"].as_str()?;
    let all_day = v["isAllDay"].as_bool().unwrap_or(false);
    let start = parse_graph_time(&v["start"], tz, all_day)?;
    let end = parse_graph_time(&v["end"], tz, all_day).unwrap_or(start);
    let updated = v["lastModifiedDateTime"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(DateTime::UNIX_EPOCH, |d| d.with_timezone(&Utc));
    let item_id = v["transactionId"]
        .as_str()
        .and_then(|t| t.strip_prefix("flextime:"))
        .or_else(|| v["iCalUId"].as_str())
        .unwrap_or(id);
    let mut item = ScheduleItem::new(
        item_id,
        ItemKind::Event,
        v["subject"].as_str().unwrap_or_default(),
        start,
        end,
        updated,
    );
    item.description = v["body"]["content"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    item.location = v["location"]["displayName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    item.status = if v["isCancelled"].as_bool() == Some(true) {
        Status::Cancelled
    } else if v["showAs"].as_str() == Some("tentative") {
        Status::Tentative
    } else {
        Status::Confirmed
    };
    for a in v["attendees"].as_array().into_iter().flatten() {
        let Some(email) = a["emailAddress"]["address"].as_str() else {
            continue;
        };
        let mut attendee = Attendee::new(email);
        attendee.name = a["emailAddress"]["name"].as_str().map(str::to_owned);
        attendee.role = match a["type"].as_str() {
            Some("optional") => Role::Optional,
            Some("resource") => Role::NonParticipant,
            _ => Role::Required,
        };
        attendee.participation_status = response_from(a["status"]["response"].as_str());
        item.attendees.push(attendee);
    }
    item.organizer = v["organizer"]["emailAddress"]["address"]
        .as_str()
        .map(|email| Organizer {
            email: email.to_owned(),
            name: v["organizer"]["emailAddress"]["name"]
                .as_str()
                .map(str::to_owned),
        });
    for key in ["seriesMasterId", "type", "iCalUId", "showAs"] {
        if let Some(s) = v[key].as_str() {
            item.extensions
                .insert(format!("graph_{key}"), Value::String(s.to_owned()));
        }
    }
    item.external_refs.insert(
        NAME.to_owned(),
        ExternalRef {
            id: id.to_owned(),
            etag: v["@odata.etag"].as_str().map(str::to_owned),
        },
    );
    Some(item)
}

/// The request body of a create or update.
pub fn item_to_graph(item: &ScheduleItem) -> Value {
    let attendees: Vec<Value> = item
        .attendees
        .iter()
        .map(|a| {
            json!({
                "emailAddress": {"address": a.email, "name": a.name.clone().unwrap_or_default()},
                "type": match a.role {
                    Role::Optional => "optional",
                    Role::NonParticipant => "resource",
                    Role::Required | Role::Chair => "required",
                },
            })
        })
        .collect();
    let mut body = json!({
        "subject": item.title,
        "start": graph_time(&item.start),
        "end": graph_time(&item.end),
        "isAllDay": item.is_all_day(),
        "showAs": if item.status == Status::Tentative { "tentative" } else { "busy" },
        "attendees": attendees,
    });
    if let Some(d) = &item.description {
        body["body"] = json!({"contentType": "text", "content": d});
    }
    if let Some(l) = &item.location {
        body["location"] = json!({"displayName": l});
    }
    body
}

impl MicrosoftGraph {
    /// A builder authenticating with `auth` (normally [`Auth::OAuth2`]).
    pub fn builder(auth: Auth) -> MicrosoftGraphBuilder {
        MicrosoftGraphBuilder {
            http: HttpClient::builder(NAME)
                .auth(auth)
                .rate_limit(RateLimit::per_second(4)),
            base_url: DEFAULT_BASE_URL.to_owned(),
            timezone: "UTC".to_owned(),
            window_past: ChronoDuration::days(30),
            window_future: ChronoDuration::days(365),
            page_size: 100,
        }
    }

    fn prefer(&self) -> String {
        format!(
            "outlook.timezone=\"{}\", odata.maxpagesize={}",
            self.tz.name(),
            self.page_size
        )
    }

    /// Follows pages from `first` to the delta link; `Ok(None)` when the
    /// delta token has expired.
    async fn delta(&self, first: String) -> Result<Option<(Vec<Value>, String)>> {
        let prefer = self.prefer();
        let listed = collect_sync(Some(first), move |link: Option<String>| {
            let req = self
                .http
                .get(link.as_deref().unwrap_or_default())
                .header("Prefer", &prefer)
                .allow_status(StatusCode::GONE);
            async move {
                let resp = req.send().await?;
                if resp.status() == StatusCode::GONE {
                    return Ok(None);
                }
                let page: Collection = resp.json()?;
                Ok(Some(Page {
                    items: page.value,
                    next: page.next_link,
                    token: page.delta_link,
                }))
            }
        })
        .await?;
        match listed {
            Some((items, Some(delta))) => Ok(Some((items, delta))),
            Some((_, None)) => Err(Error::permanent(
                "calendarView/delta ended without an @odata.deltaLink",
            )),
            None => Ok(None),
        }
    }

    fn window_query(&self, calendar: &str, now: DateTime<Utc>) -> String {
        let from = (now - self.window_past).format("%Y-%m-%dT%H:%M:%SZ");
        let to = (now + self.window_future).format("%Y-%m-%dT%H:%M:%SZ");
        format!(
            "me/calendars/{}/calendarView/delta?startDateTime={from}&endDateTime={to}",
            crate::http::path_segment(calendar)
        )
    }

    fn to_change(&self, v: &Value) -> Option<EventChange> {
        let id = v["id"].as_str()?;
        if v.get("@removed").is_some() {
            return Some(EventChange::Delete { id: id.to_owned() });
        }
        let item = item_from_graph(v, self.tz)?;
        Some(EventChange::Upsert(Box::new(RemoteEvent {
            id: id.to_owned(),
            etag: v["@odata.etag"].as_str().map(str::to_owned),
            item,
            origin: None,
        })))
    }
}

#[async_trait::async_trait]
impl Connector for MicrosoftGraph {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &[
            Capability::CalendarRead,
            Capability::CalendarWrite,
            Capability::FreeBusy,
        ]
    }

    async fn check(&self) -> Result<()> {
        self.http
            .get("me/calendars?$top=1")
            .send()
            .await
            .map(|_| ())
    }
}

#[async_trait::async_trait]
impl CalendarProvider for MicrosoftGraph {
    async fn list_calendars(&self) -> Result<Vec<CalendarInfo>> {
        let pages = paginate(Some("me/calendars".to_owned()), |link: Option<String>| {
            let req = self.http.get(link.as_deref().unwrap_or_default());
            async move {
                let page: Collection = req.send_json().await?;
                Ok(Page::new(page.value, page.next_link))
            }
        });
        let (values, _) = collect_all(pages).await?;
        Ok(values
            .iter()
            .filter_map(|v| {
                Some(CalendarInfo {
                    id: v["id"].as_str()?.to_owned(),
                    name: v["name"].as_str().unwrap_or_default().to_owned(),
                    description: None,
                    timezone: None,
                    color: v["hexColor"]
                        .as_str()
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                    change_tag: v["changeKey"].as_str().map(str::to_owned),
                    read_only: v["canEdit"].as_bool() == Some(false),
                })
            })
            .collect())
    }

    async fn sync_events(&self, calendar: &str, token: Option<&str>) -> Result<EventSync> {
        let resumed = match token {
            Some(link) => self.delta(link.to_owned()).await?,
            None => None,
        };
        let (items, delta, full_resync) = if let Some((items, delta)) = resumed {
            (items, delta, false)
        } else {
            if token.is_some() {
                tracing::info!(
                    calendar,
                    "graph delta token expired; syncing the window again"
                );
            }
            let (items, delta) = self
                .delta(self.window_query(calendar, Utc::now()))
                .await?
                .ok_or_else(|| {
                    Error::unavailable("calendarView/delta answered 410 to a fresh query")
                })?;
            (items, delta, true)
        };
        let mut changes: Vec<EventChange> =
            items.iter().filter_map(|v| self.to_change(v)).collect();
        if full_resync {
            changes.retain(|c| matches!(c, EventChange::Upsert(_)));
        }
        Ok(EventSync {
            changes,
            next_token: delta,
            full_resync,
            skipped: Vec::new(),
        })
    }

    async fn create_event(&self, calendar: &str, item: &ScheduleItem) -> Result<EventRef> {
        let mut body = item_to_graph(item);
        body["transactionId"] = json!(format!("flextime:{}", item.id));
        let created: Value = self
            .http
            .post(&format!(
                "me/calendars/{}/events",
                crate::http::path_segment(calendar)
            ))
            .idempotent(true)
            .json(&body)
            .send_json()
            .await?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| Error::permanent("Graph created an event without an id"))?;
        Ok(EventRef {
            id: id.to_owned(),
            etag: created["@odata.etag"].as_str().map(str::to_owned),
        })
    }

    async fn update_event(
        &self,
        _calendar: &str,
        id: &str,
        item: &ScheduleItem,
        etag: Option<&str>,
    ) -> Result<EventRef> {
        let req = self
            .http
            .patch(&format!("me/events/{}", crate::http::path_segment(id)))
            .idempotent(true)
            .json(&item_to_graph(item))
            .if_match(etag);
        let updated: Value = req.send_json().await?;
        Ok(EventRef {
            id: id.to_owned(),
            etag: updated["@odata.etag"].as_str().map(str::to_owned),
        })
    }

    async fn delete_event(&self, _calendar: &str, id: &str, etag: Option<&str>) -> Result<()> {
        let req = self
            .http
            .delete(&format!("me/events/{}", crate::http::path_segment(id)))
            .allow_status(StatusCode::NOT_FOUND)
            .if_match(etag);
        req.send().await.map(|_| ())
    }

    async fn free_busy(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyPeriod>> {
        let first = format!(
            "me/calendars/{}/calendarView?startDateTime={}&endDateTime={}",
            crate::http::path_segment(calendar),
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ"),
        );
        let prefer = "outlook.timezone=\"UTC\"".to_owned();
        let pages = paginate(Some(first), |link: Option<String>| {
            let req = self
                .http
                .get(link.as_deref().unwrap_or_default())
                .header("Prefer", &prefer);
            async move {
                let page: Collection = req.send_json().await?;
                Ok(Page::new(page.value, page.next_link))
            }
        });
        let (values, _) = collect_all(pages).await?;
        let mut busy: Vec<BusyPeriod> = values
            .iter()
            .filter(|v| {
                v["isCancelled"].as_bool() != Some(true) && v["showAs"].as_str() != Some("free")
            })
            .filter_map(|v| {
                let all_day = v["isAllDay"].as_bool().unwrap_or(false);
                let start = parse_graph_time(&v["start"], Tz::UTC, all_day)?.to_utc();
                let end = parse_graph_time(&v["end"], Tz::UTC, all_day)?.to_utc();
                Some(BusyPeriod {
                    start: start.max(from),
                    end: end.min(to),
                })
            })
            .collect();
        busy.sort_by_key(|b| b.start);
        Ok(busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn graph_events_map_with_attendees_all_day_and_etag() {
        let v = json!({
            "@odata.etag": "W/\"DwAAABYAAAA\"",
            "id": "AAMkAGI2TGuLAAA=",
            "subject": "Planning",
            "body": {"contentType": "html", "content": "Agenda"},
            "start": {"dateTime": "2024-05-06T09:00:00.0000000", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2024-05-06T10:00:00.0000000", "timeZone": "Europe/Berlin"},
            "isAllDay": false,
            "location": {"displayName": "Room 7"},
            "showAs": "busy",
            "type": "occurrence",
            "seriesMasterId": "AAMkAGI2master",
            "attendees": [{"type": "optional", "status": {"response": "tentativelyAccepted"},
                           "emailAddress": {"name": "Ann", "address": "ann@contoso.com"}}],
            "organizer": {"emailAddress": {"name": "Bob", "address": "bob@contoso.com"}},
            "lastModifiedDateTime": "2024-05-01T12:00:00Z"
        });
        let item = item_from_graph(&v, Tz::UTC).unwrap();
        assert_eq!(item.title, "Planning");
        assert_eq!(
            item.start,
            ItemTime::zoned(
                NaiveDate::from_ymd_opt(2024, 5, 6)
                    .unwrap()
                    .and_hms_opt(9, 0, 0)
                    .unwrap(),
                chrono_tz::Europe::Berlin,
            )
        );
        assert_eq!(item.attendees[0].role, Role::Optional);
        assert_eq!(
            item.attendees[0].participation_status,
            ParticipationStatus::Tentative
        );
        assert_eq!(item.organizer.as_ref().unwrap().email, "bob@contoso.com");
        assert_eq!(item.extensions["graph_seriesMasterId"], "AAMkAGI2master");
        assert_eq!(
            item.external_refs[NAME].etag.as_deref(),
            Some("W/\"DwAAABYAAAA\"")
        );
        let body = item_to_graph(&item);
        assert_eq!(body["start"]["timeZone"], "Europe/Berlin");
        assert_eq!(body["start"]["dateTime"], "2024-05-06T09:00:00");
        let all_day = json!({"id": "x", "isAllDay": true,
            "start": {"dateTime": "2024-12-24T00:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2024-12-25T00:00:00.0000000", "timeZone": "UTC"}});
        let item = item_from_graph(&all_day, Tz::UTC).unwrap();
        assert_eq!(
            item.start,
            ItemTime::AllDay(NaiveDate::from_ymd_opt(2024, 12, 24).unwrap())
        );
    }
}
