//! Google Calendar v3 as a [`CalendarProvider`].
//!
//! - Incremental reads use `events.list` with `syncToken` and `pageToken`,
//!   `showDeleted=true` and `singleEvents=false`; `nextSyncToken` arrives only
//!   on the last page, and a `410 Gone` drops the token and runs a full sync
//!   ([`EventSync::full_resync`]).
//! - A recurring event's changed and cancelled instances are folded into the
//!   master's overrides. When only an instance changed, the master and all
//!   its instances are read again (`events.list?iCalUID=`) so the item is
//!   whole.
//! - Writes: `events.insert` with an id derived from the Flextime id (a second
//!   insert of the same item is a 409 `Conflict`), `events.patch` and
//!   `events.delete` with `If-Match` (a stale etag is a 412 `Conflict`).
//!   `extendedProperties.private` carries the origin marker, so a pipeline can
//!   drop the echo of its own writes ([`RemoteEvent::origin`]).
//! - `freeBusy` answers free/busy.
//!
//! The base URL defaults to `https://www.googleapis.com/calendar/v3`; point it
//! at a proxy or a test peer with [`GoogleCalendarBuilder::base_url`].

pub mod mapping;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use flextime_core::resilience::RateLimit;
use flextime_core::{Error, Result, ScheduleItem};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::calendar::{
    BusyPeriod, CalendarInfo, CalendarProvider, EventChange, EventRef, EventSync, RemoteEvent,
};
use crate::http::{Auth, HttpClient, HttpClientBuilder, Page, collect_all, collect_sync, paginate};
use crate::{Capability, Connector};
use mapping::{
    GEvent, event_id_for, instance_id, item_from_google, item_to_google, override_to_google,
};

/// The connector's name, also the key of `ScheduleItem::external_refs`.
pub const NAME: &str = "google-calendar";
/// Google's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://www.googleapis.com/calendar/v3";

/// Builds a [`GoogleCalendar`].
#[must_use]
pub struct GoogleCalendarBuilder {
    http: HttpClientBuilder,
    base_url: String,
    origin: String,
    page_size: u32,
}

impl GoogleCalendarBuilder {
    /// Overrides the API base URL (tests, proxies).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The origin marker written into `extendedProperties.private` (default
    /// `flextime`).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Events per `events.list` page (1-2500, default 250).
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = size.clamp(1, 2500);
        self
    }

    /// Changes the underlying HTTP client (retries, timeouts, observers ...).
    pub fn http(mut self, f: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder) -> Self {
        self.http = f(self.http);
        self
    }

    /// Builds the connector.
    pub fn build(self) -> Result<GoogleCalendar> {
        let http = self.http.base_url(&self.base_url)?.build()?;
        Ok(GoogleCalendar {
            http,
            origin: self.origin,
            page_size: self.page_size,
        })
    }
}

/// The Google Calendar connector.
#[derive(Debug, Clone)]
pub struct GoogleCalendar {
    http: HttpClient,
    origin: String,
    page_size: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventList {
    #[serde(default)]
    items: Vec<GEvent>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    next_sync_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalendarListEntry {
    id: String,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    summary_override: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    background_color: Option<String>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    access_role: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalendarList {
    #[serde(default)]
    items: Vec<CalendarListEntry>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Written {
    id: String,
    #[serde(default)]
    etag: Option<String>,
}

/// Why `events.list` failed.
enum ListError {
    /// 410 Gone: the sync token expired.
    TokenGone,
    /// Anything else.
    Failed(Error),
}

impl ListError {
    fn into_error(self) -> Error {
        match self {
            Self::TokenGone => {
                Error::unavailable("events.list answered 410 Gone without a sync token")
            }
            Self::Failed(e) => e,
        }
    }
}

impl GoogleCalendar {
    /// A builder authenticating with `auth` (normally
    /// [`Auth::OAuth2`]); requests are limited to 10 per second by default.
    pub fn builder(auth: Auth) -> GoogleCalendarBuilder {
        GoogleCalendarBuilder {
            http: HttpClient::builder(NAME)
                .auth(auth)
                .rate_limit(RateLimit::per_second(10)),
            base_url: DEFAULT_BASE_URL.to_owned(),
            origin: "flextime".to_owned(),
            page_size: 250,
        }
    }

    /// The HTTP client (for requests this connector does not wrap).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The origin marker this connector writes.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn events_path(calendar: &str) -> String {
        format!("calendars/{}/events", crate::http::path_segment(calendar))
    }

    fn event_path(calendar: &str, id: &str) -> String {
        format!(
            "calendars/{}/events/{}",
            crate::http::path_segment(calendar),
            crate::http::path_segment(id)
        )
    }

    /// Every page of `events.list` for `params`; `ListError::TokenGone` when a
    /// sync token was refused.
    async fn list_events(
        &self,
        calendar: &str,
        params: Vec<(&'static str, String)>,
    ) -> std::result::Result<(Vec<GEvent>, Option<String>), ListError> {
        let path = Self::events_path(calendar);
        let page_size = self.page_size.to_string();
        let listed = collect_sync(None, move |page_token: Option<String>| {
            let mut query = params.clone();
            query.push(("showDeleted", "true".to_owned()));
            query.push(("maxResults", page_size.clone()));
            if let Some(token) = page_token {
                query.push(("pageToken", token));
            }
            let req = self
                .http
                .get(&path)
                .query(&query)
                .allow_status(StatusCode::GONE);
            async move {
                let resp = req.send().await?;
                if resp.status() == StatusCode::GONE {
                    return Ok(None);
                }
                let list: EventList = resp.json()?;
                Ok(Some(Page {
                    items: list.items,
                    next: list.next_page_token,
                    token: list.next_sync_token,
                }))
            }
        })
        .await;
        match listed {
            Ok(Some(done)) => Ok(done),
            Ok(None) => Err(ListError::TokenGone),
            Err(e) => Err(ListError::Failed(e)),
        }
    }

    /// A master and all its instances, by iCalUID.
    async fn object(
        &self,
        calendar: &str,
        master_id: &str,
    ) -> Result<Option<(GEvent, Vec<GEvent>)>> {
        let master: GEvent = match self
            .http
            .get(&Self::event_path(calendar, master_id))
            .send_json()
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == flextime_core::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(uid) = master.ical_uid.clone() else {
            return Ok(Some((master, Vec::new())));
        };
        let (all, _) = self
            .list_events(calendar, vec![("iCalUID", uid)])
            .await
            .map_err(ListError::into_error)?;
        let instances = all
            .into_iter()
            .filter(|e| e.recurring_event_id.as_deref() == Some(master.id.as_str()))
            .collect();
        Ok(Some((master, instances)))
    }

    fn remote(master: &GEvent, instances: &[GEvent]) -> RemoteEvent {
        RemoteEvent {
            id: master.id.clone(),
            etag: master.etag.clone(),
            item: item_from_google(master, instances, NAME),
            origin: master.origin(),
        }
    }

    /// Groups listed events into changes: masters with their instances,
    /// deletions, and instances whose master must be read again.
    async fn to_changes(&self, calendar: &str, events: Vec<GEvent>) -> Result<Vec<EventChange>> {
        let mut masters: Vec<GEvent> = Vec::new();
        let mut instances: BTreeMap<String, Vec<GEvent>> = BTreeMap::new();
        for event in events {
            match event.recurring_event_id.clone() {
                Some(master) => instances.entry(master).or_default().push(event),
                None => masters.push(event),
            }
        }
        let mut changes = Vec::with_capacity(masters.len());
        for master in &masters {
            let own = instances.remove(&master.id).unwrap_or_default();
            if master.is_cancelled() {
                changes.push(EventChange::Delete {
                    id: master.id.clone(),
                });
            } else {
                changes.push(EventChange::Upsert(Box::new(Self::remote(master, &own))));
            }
        }
        // Instances changed without their master: read the whole object.
        for master_id in instances.into_keys() {
            if let Some((master, all)) = self.object(calendar, &master_id).await? {
                if master.is_cancelled() {
                    changes.push(EventChange::Delete { id: master.id });
                } else {
                    changes.push(EventChange::Upsert(Box::new(Self::remote(&master, &all))));
                }
            }
        }
        Ok(changes)
    }

    async fn patch_overrides(
        &self,
        calendar: &str,
        event_id: &str,
        item: &ScheduleItem,
    ) -> Result<()> {
        for o in item
            .recurrence
            .overrides
            .iter()
            .filter(|o| !o.is_cancellation())
        {
            let id = instance_id(event_id, &o.recurrence_id);
            self.http
                .patch(&Self::event_path(calendar, &id))
                .idempotent(true)
                .json(&override_to_google(o, &self.origin))
                .send()
                .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Connector for GoogleCalendar {
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
            .get("users/me/calendarList")
            .query(&[("maxResults", "1")])
            .send()
            .await
            .map(|_| ())
    }
}

#[async_trait::async_trait]
impl CalendarProvider for GoogleCalendar {
    async fn list_calendars(&self) -> Result<Vec<CalendarInfo>> {
        let pages = paginate(None, |token: Option<String>| {
            let mut req = self
                .http
                .get("users/me/calendarList")
                .query(&[("maxResults", "250")]);
            if let Some(token) = &token {
                req = req.query(&[("pageToken", token.as_str())]);
            }
            async move {
                let list: CalendarList = req.send_json().await?;
                Ok(Page::new(list.items, list.next_page_token))
            }
        });
        let (entries, _) = collect_all(pages).await?;
        Ok(entries
            .into_iter()
            .map(|e| CalendarInfo {
                name: e
                    .summary_override
                    .or(e.summary)
                    .unwrap_or_else(|| e.id.clone()),
                id: e.id,
                description: e.description,
                timezone: e.time_zone,
                color: e.background_color,
                change_tag: e.etag,
                read_only: matches!(e.access_role.as_deref(), Some("reader" | "freeBusyReader")),
            })
            .collect())
    }

    async fn sync_events(&self, calendar: &str, token: Option<&str>) -> Result<EventSync> {
        let mut full_resync = token.is_none();
        let params = token
            .map(|t| vec![("syncToken", t.to_owned())])
            .unwrap_or_default();
        let (events, next) = match self.list_events(calendar, params).await {
            Ok(done) => done,
            Err(ListError::TokenGone) => {
                tracing::info!(calendar, "google sync token expired; running a full sync");
                full_resync = true;
                self.list_events(calendar, Vec::new())
                    .await
                    .map_err(ListError::into_error)?
            }
            Err(ListError::Failed(e)) => return Err(e),
        };
        let next_token = next.ok_or_else(|| {
            Error::permanent("events.list ended without a nextSyncToken on its last page")
        })?;
        let mut changes = self.to_changes(calendar, events).await?;
        if full_resync {
            // A full listing reports deleted events too; they are not news.
            changes.retain(|c| matches!(c, EventChange::Upsert(_)));
        }
        Ok(EventSync {
            changes,
            next_token,
            full_resync,
            skipped: Vec::new(),
        })
    }

    async fn create_event(&self, calendar: &str, item: &ScheduleItem) -> Result<EventRef> {
        let mut body = item_to_google(item, &self.origin);
        let id = event_id_for(&item.id);
        body["id"] = json!(id);
        let written: Written = self
            .http
            .post(&Self::events_path(calendar))
            .idempotent(true)
            .json(&body)
            .send_json()
            .await?;
        if item
            .recurrence
            .overrides
            .iter()
            .any(|o| !o.is_cancellation())
        {
            self.patch_overrides(calendar, &written.id, item).await?;
        }
        Ok(EventRef {
            id: written.id,
            etag: written.etag,
        })
    }

    async fn update_event(
        &self,
        calendar: &str,
        id: &str,
        item: &ScheduleItem,
        etag: Option<&str>,
    ) -> Result<EventRef> {
        let req = self
            .http
            .patch(&Self::event_path(calendar, id))
            .idempotent(true)
            .json(&item_to_google(item, &self.origin))
            .if_match(etag);
        let written: Written = req.send_json().await?;
        if item
            .recurrence
            .overrides
            .iter()
            .any(|o| !o.is_cancellation())
        {
            self.patch_overrides(calendar, &written.id, item).await?;
        }
        Ok(EventRef {
            id: written.id,
            etag: written.etag,
        })
    }

    async fn delete_event(&self, calendar: &str, id: &str, etag: Option<&str>) -> Result<()> {
        let req = self
            .http
            .delete(&Self::event_path(calendar, id))
            .allow_status(StatusCode::NOT_FOUND)
            .allow_status(StatusCode::GONE)
            .if_match(etag);
        req.send().await.map(|_| ())
    }

    async fn free_busy(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyPeriod>> {
        #[derive(Deserialize)]
        struct Period {
            start: DateTime<Utc>,
            end: DateTime<Utc>,
        }
        #[derive(Deserialize, Default)]
        struct Cal {
            #[serde(default)]
            busy: Vec<Period>,
            #[serde(default)]
            errors: Vec<serde_json::Value>,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            calendars: BTreeMap<String, Cal>,
        }
        let answer: Answer = self
            .http
            .post("freeBusy")
            .idempotent(true)
            .json(&json!({
                "timeMin": from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "timeMax": to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "items": [{"id": calendar}],
            }))
            .send_json()
            .await?;
        let cal = answer
            .calendars
            .into_iter()
            .find(|(k, _)| k == calendar)
            .map(|(_, v)| v);
        let cal = cal.unwrap_or_default();
        if let Some(err) = cal.errors.first() {
            return Err(Error::permanent(format!(
                "freeBusy for {calendar} failed: {err}"
            )));
        }
        Ok(cal
            .busy
            .into_iter()
            .map(|p| BusyPeriod {
                start: p.start,
                end: p.end,
            })
            .collect())
    }
}
