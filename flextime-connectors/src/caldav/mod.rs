#![doc = include_str!("docs.md")]

pub mod xml;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use flextime_core::{Error, ErrorKind, ExternalRef, Result, ScheduleItem, Status};
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};
use url::Url;

use crate::calendar::{
    BusyPeriod, CalendarInfo, CalendarProvider, EventChange, EventRef, EventSync, RemoteEvent,
    SkippedEvent,
};
use crate::http::{Auth, HttpClient, Response};
use crate::{Capability, Connector, ics};
use xml::{APPLE_ICAL, CALDAV, CALENDARSERVER, DAV, DavResponse, MultiStatus};

/// The connector's name, also the key of its [`ExternalRef`] in
/// [`ScheduleItem::external_refs`].
pub const NAME: &str = "caldav";

/// How many hrefs one `calendar-multiget` asks for by default.
pub const DEFAULT_MULTIGET_CHUNK: usize = 100;

/// The most occurrences of one event expanded for a free/busy query.
pub const MAX_OCCURRENCES: usize = 10_000;

/// The most `sync-collection` rounds one sync follows (each truncated
/// answer costs one); more is an error rather than a loop without end.
const MAX_SYNC_ROUNDS: usize = 10_000;

const XML_CONTENT_TYPE: &str = "application/xml; charset=utf-8";
const ICS_CONTENT_TYPE: &str = "text/calendar; charset=utf-8";

const CAPABILITIES: &[Capability] = &[
    Capability::CalendarRead,
    Capability::CalendarWrite,
    Capability::FreeBusy,
];

/// A CalDAV server account: discovery, calendars, incremental sync, writes
/// with ETag preconditions and free/busy. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct CalDavConnector {
    http: HttpClient,
    multiget_chunk: usize,
    home: Mutex<Option<String>>,
}

/// What one sync-collection pass found for one member.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    Changed(Option<String>),
    Deleted,
}

/// The members a sync-collection listed, in first-seen order, and the token
/// to use next.
#[derive(Debug, Default)]
struct Listing {
    order: Vec<String>,
    members: HashMap<String, Member>,
    token: String,
}

impl Listing {
    fn record(&mut self, href: String, member: Member) {
        if !self.members.contains_key(&href) {
            self.order.push(href.clone());
        }
        self.members.insert(href, member);
    }
}

/// One fetched calendar object: its href, etag and iCalendar data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarObject {
    /// The object's href (a path).
    pub href: String,
    /// Its ETag, when the server sent one.
    pub etag: Option<String>,
    /// Its iCalendar text.
    pub data: String,
}

fn method(name: &'static str) -> Method {
    // The names used here are valid tokens; the fallback is never taken.
    Method::from_bytes(name.as_bytes()).unwrap_or(Method::GET)
}

/// The object name (last path segment, with `.ics`) a new event with this
/// UID is stored under: the UID itself when it is short and made of
/// `A-Z a-z 0-9 - _ . @` (not starting with a dot), otherwise the first 32
/// hex digits of its SHA-256.
///
/// ```
/// use flextime_connectors::caldav::object_name;
/// assert_eq!(object_name("evt-1@example.com"), "evt-1@example.com.ics");
/// assert_eq!(object_name("a/b").len(), 32 + 4);
/// ```
pub fn object_name(uid: &str) -> String {
    let safe = !uid.is_empty()
        && uid.len() <= 128
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if safe {
        format!("{uid}.ics")
    } else {
        let digest = Sha256::digest(uid.as_bytes());
        let mut name = String::with_capacity(36);
        for b in digest.iter().take(16) {
            let _ = write!(name, "{b:02x}");
        }
        name.push_str(".ics");
        name
    }
}

/// Percent-decodes a path for comparison (invalid escapes are kept as is).
fn decode_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether two hrefs (paths) name the same resource.
fn same_resource(a: &str, b: &str) -> bool {
    decode_path(a).trim_end_matches('/') == decode_path(b).trim_end_matches('/')
}

/// Whether an item is marked `TRANSP:TRANSPARENT` (kept by the ICS mapping
/// in `extensions["ics"]["properties"]`).
fn is_transparent(item: &ScheduleItem) -> bool {
    item.extensions
        .get(ics::ICS_EXTENSION)
        .and_then(|ext| ext.get("properties"))
        .and_then(serde_json::Value::as_array)
        .is_some_and(|props| {
            props
                .iter()
                .filter_map(serde_json::Value::as_str)
                .any(|line| {
                    let upper = line.to_ascii_uppercase();
                    upper.starts_with("TRANSP") && upper.trim_end().ends_with(":TRANSPARENT")
                })
        })
}

/// Sorts, merges overlapping or touching periods and clips them to the window.
fn merge_periods(
    mut periods: Vec<BusyPeriod>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<BusyPeriod> {
    periods.retain(|p| p.end > from && p.start < to && p.end > p.start);
    for p in &mut periods {
        p.start = p.start.max(from);
        p.end = p.end.min(to);
    }
    periods.sort_by_key(|p| (p.start, p.end));
    let mut out: Vec<BusyPeriod> = Vec::with_capacity(periods.len());
    for p in periods {
        match out.last_mut() {
            Some(last) if p.start <= last.end => last.end = last.end.max(p.end),
            _ => out.push(p),
        }
    }
    out
}

/// The iCalendar text stored for `item`: its own `caldav` reference is left
/// out (the href and etag are the server's, not part of the event).
fn ics_for(item: &ScheduleItem) -> Result<String> {
    if item.id.trim().is_empty() {
        return Err(Error::invalid_input(
            "caldav: an event needs an id (its iCalendar UID)",
        ));
    }
    if item.external_refs.contains_key(NAME) {
        let mut copy = item.clone();
        copy.external_refs.remove(NAME);
        Ok(ics::item_to_ics(&copy))
    } else {
        Ok(ics::item_to_ics(item))
    }
}

/// Maps one calendar object to a [`RemoteEvent`]; `Ok(None)` for an object
/// with no VEVENT (a VTODO in a mixed collection).
fn to_remote(object: CalendarObject) -> Result<Option<RemoteEvent>> {
    let cal = ics::parse_calendar(&object.data)?;
    if cal.vevents().next().is_none() {
        return Ok(None);
    }
    let mut items = cal.events()?;
    if items.len() != 1 {
        return Err(Error::invalid_input(format!(
            "caldav: {} holds {} UIDs; a calendar object holds one",
            object.href,
            items.len()
        )));
    }
    let mut item = items.remove(0);
    item.external_refs.insert(
        NAME.to_owned(),
        ExternalRef {
            id: object.href.clone(),
            etag: object.etag.clone(),
        },
    );
    Ok(Some(RemoteEvent {
        id: object.href,
        etag: object.etag,
        item,
        origin: None,
    }))
}

/// Maps objects to events, skipping (with a warning) any the mapping
/// refuses so one bad object does not hide the others.
fn to_remotes(objects: Vec<CalendarObject>) -> (Vec<RemoteEvent>, Vec<SkippedEvent>) {
    let mut out = Vec::with_capacity(objects.len());
    let mut skipped = Vec::new();
    for object in objects {
        let href = object.href.clone();
        match to_remote(object) {
            Ok(Some(event)) => out.push(event),
            Ok(None) => tracing::debug!(href, "caldav: not an event, skipped"),
            Err(e) => {
                tracing::warn!(href, error = %e, "caldav: unreadable calendar object skipped");
                skipped.push(SkippedEvent {
                    id: href,
                    reason: e.to_string(),
                });
            }
        }
    }
    (out, skipped)
}

impl CalDavConnector {
    /// A connector for the server at `url` (the server root, a principal or
    /// a calendar home: discovery starts there).
    pub fn new(url: &str, auth: Auth) -> Result<Self> {
        let http = HttpClient::builder(NAME)
            .base_url(url)?
            .auth(auth)
            .build()?;
        Ok(Self::with_client(http))
    }

    /// A connector over an [`HttpClient`] built by the caller (its own
    /// timeouts, rate limit or retry policy).
    pub fn with_client(http: HttpClient) -> Self {
        Self {
            http,
            multiget_chunk: DEFAULT_MULTIGET_CHUNK,
            home: Mutex::new(None),
        }
    }

    /// How many objects one `calendar-multiget` fetches (at least 1; default
    /// [`DEFAULT_MULTIGET_CHUNK`]).
    #[must_use]
    pub fn with_multiget_chunk(mut self, chunk: usize) -> Self {
        self.multiget_chunk = chunk.max(1);
        self
    }

    /// The HTTP client.
    pub fn client(&self) -> &HttpClient {
        &self.http
    }

    /// Resolves an href (an absolute path, a same-origin URL or a path
    /// relative to the base URL) to a URL.
    fn url_of(&self, href: &str) -> Result<Url> {
        if href.starts_with("http://") || href.starts_with("https://") {
            return self.http.url(href);
        }
        self.http
            .base_url()
            .join(href)
            .map_err(|e| Error::invalid_input(format!("caldav: {href:?} is not a valid href: {e}")))
    }

    /// The URL of a collection (with its trailing slash).
    fn collection_url(&self, calendar: &str) -> Result<Url> {
        let mut url = self.url_of(calendar)?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }

    /// The URL of event `id` of `calendar`: an absolute path or URL as is,
    /// a bare name inside the collection.
    fn object_url(&self, calendar: &str, id: &str) -> Result<Url> {
        if id.starts_with('/') || id.starts_with("http://") || id.starts_with("https://") {
            self.url_of(id)
        } else {
            self.collection_url(calendar)?
                .join(id)
                .map_err(|e| Error::invalid_input(format!("caldav: {id:?} is not a valid id: {e}")))
        }
    }

    /// The path of an href as the server wrote it (a full URL becomes its path).
    fn href_path(href: &str) -> String {
        match Url::parse(href) {
            Ok(url) if url.has_host() => url.path().to_owned(),
            _ => href.to_owned(),
        }
    }

    /// A REPORT; `depth` is left out where the report ignores it
    /// (calendar-multiget, RFC 4791 section 7.9).
    async fn report(&self, url: &Url, depth: Option<&str>, body: String) -> Result<Response> {
        let mut req = self.http.request(method("REPORT"), url.as_str());
        if let Some(depth) = depth {
            req = req.header("Depth", depth);
        }
        req.body(body, XML_CONTENT_TYPE)
            .idempotent(true)
            .send()
            .await
    }

    async fn propfind(&self, url: &Url, depth: &str, props: &[&str]) -> Result<MultiStatus> {
        let resp = self
            .http
            .request(method("PROPFIND"), url.as_str())
            .header("Depth", depth)
            .body(xml::propfind(props), XML_CONTENT_TYPE)
            .idempotent(true)
            .send()
            .await?;
        multistatus(&resp)
    }

    /// The principal URL of the authenticated user:
    /// `DAV:current-user-principal` on the base URL, or, when the base URL
    /// does not answer it (RFC 6764 section 5), on `/.well-known/caldav`
    /// after its redirects (same origin only, at most five).
    pub async fn principal(&self) -> Result<String> {
        let base = self.http.base_url().clone();
        match self.principal_at(&base).await {
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Permanent) => {
                match self.well_known().await {
                    Some(url) if url != base => self.principal_at(&url).await.map_err(|_| e),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    async fn principal_at(&self, url: &Url) -> Result<String> {
        let ms = self
            .propfind(url, "0", &["D:current-user-principal"])
            .await?;
        let prop = ms
            .responses
            .iter()
            .find_map(|r| r.prop(DAV, "current-user-principal"));
        match prop {
            Some(p) => match p.child(DAV, "href").map(xml::Element::trimmed) {
                Some(href) if !href.is_empty() => Ok(Self::href_path(href)),
                _ => Err(Error::unauthorized(
                    "caldav: the server knows no principal for these credentials",
                )),
            },
            None => Err(Error::permanent(format!(
                "caldav: {} does not report DAV:current-user-principal",
                url.path()
            ))),
        }
    }

    /// Where `/.well-known/caldav` leads (following same-origin redirects),
    /// if anywhere.
    async fn well_known(&self) -> Option<Url> {
        let mut url = self.url_of("/.well-known/caldav").ok()?;
        for _ in 0..5 {
            let mut req = self
                .http
                .request(method("PROPFIND"), url.as_str())
                .header("Depth", "0")
                .body(
                    xml::propfind(&["D:current-user-principal"]),
                    XML_CONTENT_TYPE,
                )
                .idempotent(true);
            for status in [
                StatusCode::MOVED_PERMANENTLY,
                StatusCode::FOUND,
                StatusCode::SEE_OTHER,
                StatusCode::TEMPORARY_REDIRECT,
                StatusCode::PERMANENT_REDIRECT,
            ] {
                req = req.allow_status(status);
            }
            let resp = req.send().await.ok()?;
            if !resp.status().is_redirection() {
                return Some(url);
            }
            let location = resp.header("location")?;
            url = url.join(location).ok()?;
            if url.origin() != self.http.base_url().origin() {
                tracing::debug!(
                    "caldav: /.well-known/caldav leads to another origin; not followed"
                );
                return None;
            }
        }
        None
    }

    /// The calendar home of the authenticated user (`C:calendar-home-set`
    /// of the principal; the principal itself when the server names none).
    /// Remembered after the first call.
    pub async fn calendar_home(&self) -> Result<String> {
        if let Some(home) = self
            .home
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(home);
        }
        let principal = self.principal().await?;
        let url = self.collection_url(&principal)?;
        let ms = self.propfind(&url, "0", &["C:calendar-home-set"]).await?;
        let home = ms
            .responses
            .iter()
            .find_map(|r| r.prop_href(CALDAV, "calendar-home-set"))
            .map_or(principal, |h| Self::href_path(&h));
        *self
            .home
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(home.clone());
        Ok(home)
    }

    /// Creates a calendar collection `name` (letters, digits, `-`, `_`, `.`)
    /// in the calendar home with `MKCALENDAR`, for VEVENTs; returns its id.
    pub async fn make_calendar(&self, name: &str, display_name: &str) -> Result<String> {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(Error::invalid_input(format!(
                "caldav: {name:?} is not a valid calendar name"
            )));
        }
        let home = self.calendar_home().await?;
        let url = self
            .collection_url(&home)?
            .join(&format!("{name}/"))
            .map_err(|e| Error::invalid_input(format!("caldav: bad calendar name: {e}")))?;
        self.http
            .request(method("MKCALENDAR"), url.as_str())
            .body(xml::mkcalendar(display_name, None), XML_CONTENT_TYPE)
            .idempotent(false)
            .send()
            .await?;
        Ok(url.path().to_owned())
    }

    /// Deletes a whole calendar collection; one already gone is not an error.
    pub async fn delete_calendar(&self, calendar: &str) -> Result<()> {
        let url = self.collection_url(calendar)?;
        match self.http.delete(url.as_str()).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn calendar_info(r: &DavResponse) -> Option<CalendarInfo> {
        let rt = r.prop(DAV, "resourcetype")?;
        rt.child(CALDAV, "calendar")?;
        if let Some(set) = r.prop(CALDAV, "supported-calendar-component-set") {
            let vevent = set.children_named(CALDAV, "comp").any(|c| {
                c.attr("name")
                    .is_some_and(|n| n.eq_ignore_ascii_case("VEVENT"))
            });
            if !vevent {
                return None;
            }
        }
        let id = Self::href_path(&r.href);
        let name = r.prop_text(DAV, "displayname").unwrap_or_else(|| {
            decode_path(id.trim_end_matches('/').rsplit('/').next().unwrap_or(&id))
        });
        let timezone = r
            .prop_text(CALDAV, "calendar-timezone")
            .and_then(|tz| timezone_name(&tz));
        let color = r
            .prop_text(APPLE_ICAL, "calendar-color")
            .map(|c| match c.get(..7) {
                // `#RRGGBBAA` as Apple writes it: the alpha is dropped
                Some(rgb) if c.len() == 9 && c.starts_with('#') => rgb.to_ascii_lowercase(),
                _ => c.to_ascii_lowercase(),
            });
        let change_tag = r
            .prop_text(CALENDARSERVER, "getctag")
            .or_else(|| r.prop_text(DAV, "sync-token"));
        let read_only = r
            .prop(DAV, "current-user-privilege-set")
            .is_some_and(|set| {
                !set.children_named(DAV, "privilege").any(|p| {
                    p.children.iter().any(|c| {
                        c.ns == DAV && matches!(c.name.as_str(), "write" | "write-content" | "all")
                    })
                })
            });
        Some(CalendarInfo {
            id,
            name,
            description: r.prop_text(CALDAV, "calendar-description"),
            timezone,
            color,
            change_tag,
            read_only,
        })
    }

    /// Lists the VEVENT calendars of the calendar home.
    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        let home = self.calendar_home().await?;
        let url = self.collection_url(&home)?;
        let ms = self
            .propfind(
                &url,
                "1",
                &[
                    "D:resourcetype",
                    "D:displayname",
                    "C:calendar-description",
                    "C:calendar-timezone",
                    "C:supported-calendar-component-set",
                    "A:calendar-color",
                    "CS:getctag",
                    "D:sync-token",
                    "D:current-user-privilege-set",
                ],
            )
            .await?;
        Ok(ms
            .responses
            .iter()
            .filter_map(Self::calendar_info)
            .collect())
    }

    /// One sync-collection pass from `token`, following truncated answers;
    /// `Ok(None)` when the server rejects the token.
    async fn sync_listing(&self, url: &Url, token: Option<&str>) -> Result<Option<Listing>> {
        let mut listing = Listing::default();
        let mut current = token.map(str::to_owned);
        for _ in 0..MAX_SYNC_ROUNDS {
            let resp = self
                .http
                .request(method("REPORT"), url.as_str())
                .header("Depth", "0")
                .body(xml::sync_collection(current.as_deref()), XML_CONTENT_TYPE)
                .idempotent(true)
                .allow_status(StatusCode::BAD_REQUEST)
                .allow_status(StatusCode::FORBIDDEN)
                .allow_status(StatusCode::CONFLICT)
                .send()
                .await?;
            let status = resp.status();
            if !status.is_success() {
                let body = String::from_utf8_lossy(resp.bytes());
                let invalid_token = current.is_some()
                    && (status == StatusCode::BAD_REQUEST
                        || xml::is_precondition(&body, DAV, "valid-sync-token"));
                if invalid_token {
                    tracing::debug!(status = status.as_u16(), "caldav: sync token rejected");
                    return Ok(None);
                }
                let message = format!(
                    "caldav: sync-collection on {} returned {status}",
                    url.path()
                );
                return Err(match status {
                    StatusCode::BAD_REQUEST => Error::invalid_input(message),
                    StatusCode::FORBIDDEN => Error::new(ErrorKind::Forbidden, message),
                    _ => Error::conflict(message),
                });
            }
            let ms = multistatus(&resp)?;
            let mut truncated = false;
            for r in &ms.responses {
                let path = Self::href_path(&r.href);
                if same_resource(&path, url.path()) {
                    truncated |= r.status == Some(507);
                    continue;
                }
                match r.status {
                    // RFC 6578 section 3.8: an initial listing holds no removed
                    // members, but some servers (Radicale) report them anyway.
                    Some(404 | 410) if current.is_none() => {}
                    Some(404 | 410) => listing.record(path, Member::Deleted),
                    _ if r.propstats.iter().any(|p| (200..300).contains(&p.status)) => {
                        let etag = r.prop_text(DAV, "getetag");
                        listing.record(path, Member::Changed(etag));
                    }
                    Some(s) if (200..300).contains(&s) => {
                        listing.record(path, Member::Changed(None));
                    }
                    other => {
                        tracing::warn!(href = %path, status = ?other, "caldav: sync member skipped");
                    }
                }
            }
            let next = ms.sync_token.ok_or_else(|| {
                Error::permanent(format!(
                    "caldav: sync-collection on {} answered without a DAV:sync-token",
                    url.path()
                ))
            })?;
            listing.token.clone_from(&next);
            if !truncated {
                return Ok(Some(listing));
            }
            current = Some(next);
        }
        Err(Error::permanent(format!(
            "caldav: sync-collection on {} was still truncated after {MAX_SYNC_ROUNDS} rounds",
            url.path()
        )))
    }

    /// Fetches objects of `calendar` by href with `calendar-multiget`, in
    /// chunks. Returns the objects found and the hrefs the server answered
    /// `404` for.
    pub async fn fetch_objects<S: AsRef<str>>(
        &self,
        calendar: &str,
        hrefs: &[S],
    ) -> Result<(Vec<CalendarObject>, Vec<String>)> {
        let url = self.collection_url(calendar)?;
        let mut found = Vec::with_capacity(hrefs.len());
        let mut missing = Vec::new();
        for chunk in hrefs.chunks(self.multiget_chunk) {
            let resp = self
                .report(&url, None, xml::calendar_multiget(chunk))
                .await?;
            let ms = multistatus(&resp)?;
            for r in ms.responses {
                let path = Self::href_path(&r.href);
                if matches!(r.status, Some(404 | 410)) {
                    missing.push(path);
                    continue;
                }
                match r.prop(CALDAV, "calendar-data") {
                    Some(data) => found.push(CalendarObject {
                        etag: r.prop_text(DAV, "getetag"),
                        data: data.text.clone(),
                        href: path,
                    }),
                    None if r.propstats.iter().any(|p| {
                        p.status == 404 && p.props.iter().any(|e| e.is(CALDAV, "calendar-data"))
                    }) =>
                    {
                        missing.push(path);
                    }
                    None => {
                        tracing::warn!(href = %path, "caldav: multiget answered without calendar-data");
                    }
                }
            }
        }
        Ok((found, missing))
    }

    /// The raw objects of `calendar` with a VEVENT overlapping
    /// `[from, to)` (a `calendar-query` REPORT with a time range; the
    /// server expands recurrences to decide, the objects come whole).
    pub async fn query_objects(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CalendarObject>> {
        if to <= from {
            return Err(Error::invalid_input(
                "caldav: a time range must end after it starts",
            ));
        }
        let url = self.collection_url(calendar)?;
        let fmt = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
        let resp = self
            .report(&url, Some("1"), xml::calendar_query(&fmt(from), &fmt(to)))
            .await?;
        let ms = multistatus(&resp)?;
        Ok(ms
            .responses
            .into_iter()
            .filter_map(|r| {
                let data = r.prop(CALDAV, "calendar-data")?.text.clone();
                Some(CalendarObject {
                    etag: r.prop_text(DAV, "getetag"),
                    data,
                    href: Self::href_path(&r.href),
                })
            })
            .collect())
    }

    /// The events of `calendar` with an instance overlapping `[from, to)`,
    /// whole (with their recurrence and overrides).
    pub async fn query_events(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RemoteEvent>> {
        Ok(to_remotes(self.query_objects(calendar, from, to).await?).0)
    }

    /// Reads one event with `GET`; `None` when it does not exist (or holds
    /// no VEVENT).
    pub async fn get_event(&self, calendar: &str, id: &str) -> Result<Option<RemoteEvent>> {
        let url = self.object_url(calendar, id)?;
        let resp = match self
            .http
            .get(url.as_str())
            .header("Accept", "text/calendar")
            .send()
            .await
        {
            Ok(resp) => resp,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        to_remote(CalendarObject {
            href: url.path().to_owned(),
            etag: resp.etag().map(str::to_owned),
            data: resp.text()?.to_owned(),
        })
    }

    /// Stores iCalendar text at `url` with the given precondition headers.
    async fn put(
        &self,
        url: &Url,
        ics: String,
        precondition: Option<(&str, &str)>,
    ) -> Result<EventRef> {
        let mut req = self.http.put(url.as_str());
        if let Some((name, value)) = precondition {
            req = req.header(name, value);
        }
        let resp = req.body(ics, ICS_CONTENT_TYPE).send().await?;
        Ok(EventRef {
            id: url.path().to_owned(),
            etag: resp.etag().map(str::to_owned),
        })
    }

    async fn sync(&self, calendar: &str, token: Option<&str>) -> Result<EventSync> {
        let url = self.collection_url(calendar)?;
        let token = token.filter(|t| !t.trim().is_empty());
        let (listing, full_resync) = if let Some(listing) = self.sync_listing(&url, token).await? {
            (listing, token.is_none())
        } else {
            let listing = self.sync_listing(&url, None).await?.ok_or_else(|| {
                Error::permanent("caldav: the server rejected a sync without a token")
            })?;
            (listing, true)
        };
        let changed: Vec<&str> = listing
            .order
            .iter()
            .filter(|h| matches!(listing.members.get(*h), Some(Member::Changed(_))))
            .map(String::as_str)
            .collect();
        let (objects, gone) = self.fetch_objects(url.as_str(), &changed).await?;
        let (readable, skipped) = to_remotes(objects);
        let mut events: HashMap<String, RemoteEvent> = readable
            .into_iter()
            .map(|e| (decode_path(&e.id), e))
            .collect();
        let gone: Vec<String> = gone.iter().map(|g| decode_path(g)).collect();
        let mut changes = Vec::with_capacity(listing.order.len());
        for href in &listing.order {
            let key = decode_path(href);
            match listing.members.get(href) {
                Some(Member::Deleted) => changes.push(EventChange::Delete { id: href.clone() }),
                Some(Member::Changed(listed_etag)) => {
                    if let Some(mut event) = events.remove(&key) {
                        // the multiget's etag is the data's; the listing's
                        // stands in when the multiget sent none
                        if event.etag.is_none() {
                            event.etag.clone_from(listed_etag);
                            if let Some(r) = event.item.external_refs.get_mut(NAME) {
                                r.etag.clone_from(listed_etag);
                            }
                        }
                        changes.push(EventChange::Upsert(Box::new(event)));
                    } else if gone.contains(&key) {
                        changes.push(EventChange::Delete { id: href.clone() });
                    } else {
                        // not an event (a VTODO), unreadable (warned about
                        // above) or not delivered by the multiget
                        tracing::debug!(href = %href, "caldav: changed object without an event");
                    }
                }
                None => {}
            }
        }
        Ok(EventSync {
            changes,
            next_token: listing.token,
            full_resync,
            skipped,
        })
    }

    async fn delete(&self, calendar: &str, id: &str, etag: Option<&str>) -> Result<()> {
        let url = self.object_url(calendar, id)?;
        let req = self.http.delete(url.as_str()).if_match(etag);
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                // A precondition on an object that is gone fails too: gone is fine.
                match self.propfind(&url, "0", &["D:getetag"]).await {
                    Err(n) if n.kind() == ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn busy(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyPeriod>> {
        let events = self.query_events(calendar, from, to).await?;
        let mut periods = Vec::new();
        for event in events {
            let item = &event.item;
            if item.status == Status::Cancelled || is_transparent(item) {
                continue;
            }
            let occurrences = match item.occurrences(from, to, MAX_OCCURRENCES) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(href = %event.id, error = %e, "caldav: cannot expand event");
                    continue;
                }
            };
            periods.extend(
                occurrences
                    .into_iter()
                    .filter(|o| !o.cancelled && o.status != Status::Cancelled)
                    .map(|o| BusyPeriod {
                        start: o.start_utc,
                        end: o.end_utc,
                    }),
            );
        }
        Ok(merge_periods(periods, from, to))
    }
}

/// Parses a response body as a multistatus.
fn multistatus(resp: &Response) -> Result<MultiStatus> {
    if resp.status() != StatusCode::MULTI_STATUS {
        return Err(Error::permanent(format!(
            "caldav: {} answered {} where a 207 Multi-Status was expected",
            resp.url().path(),
            resp.status()
        )));
    }
    xml::parse_multistatus(resp.text()?)
}

#[async_trait::async_trait]
impl Connector for CalDavConnector {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        CAPABILITIES
    }

    /// Asks the base URL for the current user's principal (one PROPFIND).
    async fn check(&self) -> Result<()> {
        self.principal().await.map(|_| ())
    }
}

#[async_trait::async_trait]
impl CalendarProvider for CalDavConnector {
    async fn list_calendars(&self) -> Result<Vec<CalendarInfo>> {
        self.calendars().await
    }

    async fn sync_events(&self, calendar: &str, token: Option<&str>) -> Result<EventSync> {
        self.sync(calendar, token).await
    }

    async fn create_event(&self, calendar: &str, item: &ScheduleItem) -> Result<EventRef> {
        let ics = ics_for(item)?;
        let url = self
            .collection_url(calendar)?
            .join(&object_name(&item.id))
            .map_err(|e| Error::invalid_input(format!("caldav: bad object name: {e}")))?;
        self.put(&url, ics, Some(("If-None-Match", "*"))).await
    }

    async fn update_event(
        &self,
        calendar: &str,
        id: &str,
        item: &ScheduleItem,
        etag: Option<&str>,
    ) -> Result<EventRef> {
        let ics = ics_for(item)?;
        let url = self.object_url(calendar, id)?;
        self.put(&url, ics, etag.map(|e| ("If-Match", e))).await
    }

    async fn delete_event(&self, calendar: &str, id: &str, etag: Option<&str>) -> Result<()> {
        self.delete(calendar, id, etag).await
    }

    async fn free_busy(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyPeriod>> {
        self.busy(calendar, from, to).await
    }
}

/// The zone of a `calendar-timezone` (a VCALENDAR with one VTIMEZONE): the
/// IANA name when its TZID resolves to one, else the TZID as written.
fn timezone_name(vcalendar: &str) -> Option<String> {
    let tzid = vcalendar
        .lines()
        .map(str::trim_end)
        .find_map(|l| l.strip_prefix("TZID:"))?
        .trim();
    if tzid.is_empty() {
        return None;
    }
    Some(ics::resolve_known(tzid).map_or_else(|| tzid.to_owned(), |tz| tz.name().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn object_names_are_safe() {
        assert_eq!(object_name("abc-1_2.x@y"), "abc-1_2.x@y.ics");
        for uid in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(200)] {
            let name = object_name(uid);
            assert_eq!(name.len(), 36, "{uid:?}");
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
        }
    }

    #[test]
    fn paths_compare_decoded() {
        assert!(same_resource("/u/c%20d/", "/u/c d"));
        assert!(!same_resource("/u/c/", "/u/c/x.ics"));
        assert_eq!(decode_path("%41%zz%"), "A%zz%");
    }

    #[test]
    fn periods_merge_and_clip() {
        let t = |h| Utc.with_ymd_and_hms(2024, 1, 1, h, 0, 0).unwrap();
        let p = |a, b| BusyPeriod {
            start: t(a),
            end: t(b),
        };
        let merged = merge_periods(
            vec![p(5, 7), p(1, 3), p(2, 4), p(4, 5), p(9, 12), p(20, 21)],
            t(2),
            t(10),
        );
        assert_eq!(merged, [p(2, 7), p(9, 10)]);
    }

    #[test]
    fn calendar_properties() {
        let xml = r#"<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/" xmlns:I="http://apple.com/ns/ical/">
<response><href>/ann/</href><propstat><prop><resourcetype><collection/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>http://h/ann/work%20cal/</href><propstat><prop>
  <resourcetype><collection/><C:calendar/></resourcetype>
  <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  <C:calendar-description>Team</C:calendar-description>
  <C:calendar-timezone>BEGIN:VCALENDAR
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
END:VTIMEZONE
END:VCALENDAR</C:calendar-timezone>
  <I:calendar-color>#FF0000CC</I:calendar-color>
  <CS:getctag>ctag-1</CS:getctag><sync-token>sync-1</sync-token>
  <current-user-privilege-set><privilege><read/></privilege><privilege><read-current-user-privilege-set/></privilege></current-user-privilege-set>
</prop><status>HTTP/1.1 200 OK</status></propstat>
<propstat><prop><displayname/></prop><status>HTTP/1.1 404 Not Found</status></propstat></response>
<response><href>/ann/tasks/</href><propstat><prop><resourcetype><collection/><C:calendar/></resourcetype>
  <C:supported-calendar-component-set><C:comp name="VTODO"/></C:supported-calendar-component-set></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>/ann/all/</href><propstat><prop><resourcetype><collection/><C:calendar/></resourcetype><displayname>All</displayname>
  <sync-token>s</sync-token><current-user-privilege-set><privilege><all/></privilege></current-user-privilege-set></prop><status>HTTP/1.1 200 OK</status></propstat></response>
</multistatus>"#;
        let ms = xml::parse_multistatus(xml).unwrap();
        let infos: Vec<CalendarInfo> = ms
            .responses
            .iter()
            .filter_map(CalDavConnector::calendar_info)
            .collect();
        assert_eq!(infos.len(), 2, "{infos:?}");
        let work = &infos[0];
        assert_eq!(work.id, "/ann/work%20cal/");
        assert_eq!(work.name, "work cal");
        assert_eq!(work.description.as_deref(), Some("Team"));
        assert_eq!(work.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(work.color.as_deref(), Some("#ff0000"));
        assert_eq!(work.change_tag.as_deref(), Some("ctag-1"));
        assert!(work.read_only);
        let all = &infos[1];
        assert_eq!((all.name.as_str(), all.read_only), ("All", false));
        assert_eq!(all.change_tag.as_deref(), Some("s"));
    }

    #[test]
    fn objects_map_to_one_event_each() {
        let vevent = |uid: &str| {
            format!(
                "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20300101T000000Z\r\n\
                 DTSTART:20300301T090000Z\r\nDTEND:20300301T100000Z\r\nSUMMARY:{uid}\r\n\
                 TRANSP:TRANSPARENT\r\nEND:VEVENT\r\n"
            )
        };
        let object = |body: String| CalendarObject {
            href: "/c/x.ics".into(),
            etag: Some("\"1\"".into()),
            data: format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n"),
        };
        let event = to_remote(object(vevent("a"))).unwrap().unwrap();
        assert_eq!(event.id, "/c/x.ics");
        assert_eq!(event.item.id, "a");
        assert_eq!(
            event.item.external_refs[NAME].etag.as_deref(),
            Some("\"1\"")
        );
        assert!(is_transparent(&event.item));
        // two UIDs in one object, garbage, and a VTODO
        let two = to_remote(object(vevent("a") + &vevent("b"))).unwrap_err();
        assert_eq!(two.kind(), ErrorKind::InvalidInput);
        assert!(to_remote(object("garbage\r\n".into())).is_err());
        let todo = "BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n".to_owned();
        assert!(to_remote(object(todo)).unwrap().is_none());
        // writing drops the item's own reference
        let ics = ics_for(&event.item).unwrap();
        assert!(!ics.contains("/c/x.ics"), "{ics}");
    }

    #[test]
    fn timezone_from_vtimezone() {
        let tz = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";
        assert_eq!(timezone_name(tz).as_deref(), Some("Europe/Berlin"));
        assert_eq!(timezone_name("garbage"), None);
    }
}
