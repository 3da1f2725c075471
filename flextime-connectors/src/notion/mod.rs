//! Notion (API version 2025-09-03, data sources) as a core [`Source`] and
//! [`Sink`] of [`ScheduleItem`]s.
//!
//! - Reads query a data source with a `last_edited_time` filter,
//!   `start_cursor` / `page_size` 100 pagination. Notion rounds
//!   `last_edited_time` to the minute, so each read overlaps the previous
//!   one by a minute and drops what it already delivered: the checkpoint
//!   remembers a content hash of every page inside the overlap, so a page
//!   edited twice within one minute is still delivered twice, and nothing
//!   unchanged is delivered again.
//! - Writes create pages (parent: the data source, or a database for
//!   workspaces that address it that way) and update them; a delete moves
//!   the page to the trash. An update whose item carries the
//!   `last_edited_time` it was read at fails with a `Conflict` when the page
//!   changed since (Notion has no conditional requests; the check reads the
//!   page first, so a write landing in between is not caught).
//! - About 3 requests per second (Notion's documented average), with 429
//!   `Retry-After` honoured by the client stack.
//! - A page whose mapped date is missing cannot be a schedule item: it is
//!   skipped with a warning and counted in `skipped()`.

pub mod mapping;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use flextime_core::resilience::RateLimit;
use flextime_core::{
    ApplyResult, Batch, BatchStream, Change, ChangeKey, Checkpoint, Error, Operation, Result,
    ScheduleItem, Sink, Source, Version,
};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{Auth, HttpClient, HttpClientBuilder, Page, collect_all, paginate};
use crate::{Capability, Connector};
pub use mapping::{NotionMapping, PeopleKind, StatusKind};

/// The connector's name, also the key of `ScheduleItem::external_refs`.
pub const NAME: &str = "notion";
/// Notion's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.notion.com";
/// The API version this connector speaks.
pub const NOTION_VERSION: &str = "2025-09-03";

/// Where new pages are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// `{"type": "data_source_id", "data_source_id": ...}` (2025-09-03).
    DataSource(String),
    /// `{"type": "database_id", "database_id": ...}`, for a database with a
    /// single data source.
    Database(String),
}

impl Parent {
    fn to_json(&self) -> Value {
        match self {
            Self::DataSource(id) => json!({"type": "data_source_id", "data_source_id": id}),
            Self::Database(id) => json!({"type": "database_id", "database_id": id}),
        }
    }
}

/// Builds a [`Notion`] connector.
#[must_use]
pub struct NotionBuilder {
    http: HttpClientBuilder,
    base_url: String,
    data_source: String,
    parent: Option<Parent>,
    mapping: NotionMapping,
    overlap: Duration,
}

impl NotionBuilder {
    /// Overrides the API base URL (tests, proxies).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Where new pages go (default: the data source).
    pub fn parent(mut self, parent: Parent) -> Self {
        self.parent = Some(parent);
        self
    }

    /// How far each read overlaps the previous one (default 1 minute, the
    /// rounding of `last_edited_time`).
    pub fn overlap(mut self, overlap: Duration) -> Self {
        self.overlap = overlap;
        self
    }

    /// Changes the underlying HTTP client.
    pub fn http(mut self, f: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder) -> Self {
        self.http = f(self.http);
        self
    }

    /// Builds the connector.
    pub fn build(self) -> Result<Notion> {
        if self.data_source.trim().is_empty() {
            return Err(Error::invalid_input("a Notion data source id is required"));
        }
        let http = self
            .http
            .base_url(&self.base_url)?
            .default_header("Notion-Version", NOTION_VERSION)?
            .build()?;
        Ok(Notion {
            http,
            parent: self
                .parent
                .unwrap_or_else(|| Parent::DataSource(self.data_source.clone())),
            data_source: self.data_source,
            mapping: self.mapping,
            overlap: TimeDelta::from_std(self.overlap).unwrap_or(TimeDelta::minutes(1)),
            skipped: AtomicU64::new(0),
        })
    }
}

/// The Notion connector for one data source.
#[derive(Debug)]
pub struct Notion {
    http: HttpClient,
    data_source: String,
    parent: Parent,
    mapping: NotionMapping,
    overlap: TimeDelta,
    skipped: AtomicU64,
}

#[derive(Deserialize)]
struct QueryResult {
    #[serde(default)]
    results: Vec<Value>,
    #[serde(default)]
    next_cursor: Option<String>,
    #[serde(default)]
    has_more: bool,
}

/// The checkpoint of a [`Notion`] source: the newest `last_edited_time`
/// seen, and a hash of every page inside the overlap window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    t: Option<DateTime<Utc>>,
    seen: BTreeMap<String, String>,
}

fn content_hash(page: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(page["last_edited_time"].to_string());
    hasher.update(page["in_trash"].to_string());
    hasher.update(page["archived"].to_string());
    hasher.update(page["properties"].to_string());
    let digest = hasher.finalize();
    hex::encode(&digest[..12])
}

fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap_or(t)
}

impl Notion {
    /// A builder for `data_source` with `token` (an integration secret or an
    /// OAuth access token) and `mapping`.
    pub fn builder(
        token: impl Into<String>,
        data_source: impl Into<String>,
        mapping: NotionMapping,
    ) -> NotionBuilder {
        Self::builder_with_auth(Auth::bearer(token), data_source, mapping)
    }

    /// A builder with any [`Auth`] (an OAuth2 session for public integrations).
    pub fn builder_with_auth(
        auth: Auth,
        data_source: impl Into<String>,
        mapping: NotionMapping,
    ) -> NotionBuilder {
        NotionBuilder {
            http: HttpClient::builder(NAME)
                .auth(auth)
                .rate_limit(RateLimit::per_second(3)),
            base_url: DEFAULT_BASE_URL.to_owned(),
            data_source: data_source.into(),
            parent: None,
            mapping,
            overlap: Duration::from_secs(60),
        }
    }

    /// The HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Pages skipped because they could not be mapped.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Every page of the data source edited at or after `since` (all pages
    /// when `None`), page by page.
    pub fn query_pages(&self, since: Option<DateTime<Utc>>) -> BoxStream<'_, Result<Page<Value>>> {
        let path = format!(
            "v1/data_sources/{}/query",
            crate::http::path_segment(&self.data_source)
        );
        paginate(None, move |cursor: Option<String>| {
            let mut body = json!({"page_size": 100});
            if let Some(since) = since {
                body["filter"] = json!({
                    "timestamp": "last_edited_time",
                    "last_edited_time": {"on_or_after": since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
                });
            }
            if let Some(cursor) = cursor {
                body["start_cursor"] = json!(cursor);
            }
            // A query changes nothing: safe to retry.
            let req = self.http.post(&path).idempotent(true).json(&body);
            async move {
                let result: QueryResult = req.send_json().await?;
                Ok(Page::new(
                    result.results,
                    result.next_cursor.filter(|_| result.has_more),
                ))
            }
        })
    }

    /// Every page edited at or after `since`.
    pub async fn query(&self, since: Option<DateTime<Utc>>) -> Result<Vec<Value>> {
        collect_all(self.query_pages(since))
            .await
            .map(|(pages, _)| pages)
    }

    /// One page.
    pub async fn retrieve_page(&self, page_id: &str) -> Result<Value> {
        self.http
            .get(&format!("v1/pages/{}", crate::http::path_segment(page_id)))
            .send_json()
            .await
    }

    /// Creates a page for `item`.
    pub async fn create_page(&self, item: &ScheduleItem) -> Result<Value> {
        let body = json!({
            "parent": self.parent.to_json(),
            "properties": mapping::item_to_properties(item, &self.mapping),
        });
        self.http.post("v1/pages").json(&body).send_json().await
    }

    /// Updates page `page_id` from `item`; with `expected_edit`, only if the
    /// page's `last_edited_time` is still that.
    pub async fn update_page(
        &self,
        page_id: &str,
        item: &ScheduleItem,
        expected_edit: Option<&str>,
    ) -> Result<Value> {
        if let Some(expected) = expected_edit {
            self.expect_unchanged(page_id, expected).await?;
        }
        let body = json!({"properties": mapping::item_to_properties(item, &self.mapping)});
        self.http
            .patch(&format!("v1/pages/{}", crate::http::path_segment(page_id)))
            .idempotent(true)
            .json(&body)
            .send_json()
            .await
    }

    /// Moves page `page_id` to the trash.
    pub async fn trash_page(&self, page_id: &str, expected_edit: Option<&str>) -> Result<()> {
        if let Some(expected) = expected_edit {
            self.expect_unchanged(page_id, expected).await?;
        }
        self.http
            .patch(&format!("v1/pages/{}", crate::http::path_segment(page_id)))
            .idempotent(true)
            .json(&json!({"in_trash": true}))
            .send()
            .await
            .map(|_| ())
    }

    async fn expect_unchanged(&self, page_id: &str, expected: &str) -> Result<()> {
        let current = self.retrieve_page(page_id).await?;
        let same = match (
            mapping::last_edited(&current),
            DateTime::parse_from_rfc3339(expected).ok(),
        ) {
            (Some(a), Some(b)) => a == b,
            _ => current["last_edited_time"].as_str() == Some(expected),
        };
        if same {
            Ok(())
        } else {
            Err(Error::conflict(format!(
                "Notion page {page_id} was edited since {expected} (now {})",
                current["last_edited_time"]
            )))
        }
    }

    fn key(&self, page_id: &str) -> ChangeKey {
        ChangeKey::new(NAME, self.data_source.clone(), page_id)
    }

    fn page_change(&self, page: &Value) -> Option<Change> {
        let page_id = page["id"].as_str()?;
        let trashed =
            page["in_trash"].as_bool() == Some(true) || page["archived"].as_bool() == Some(true);
        let mut change = if trashed {
            Change::delete(self.key(page_id))
        } else {
            match mapping::item_from_page(page, &self.mapping, NAME) {
                Ok(item) => match serde_json::to_value(&item) {
                    Ok(data) => Change::upsert(self.key(page_id), data),
                    Err(_) => return None,
                },
                Err(e) => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(page = page_id, error = %e, "skipping a Notion page that is not a schedule item");
                    return None;
                }
            }
        };
        if let Some(edited) = page["last_edited_time"].as_str() {
            change = change.with_version(Version::Etag(edited.to_owned()));
        }
        if let Some(t) = mapping::last_edited(page) {
            change = change.with_changed_at(t);
        }
        Some(change)
    }
}

#[async_trait::async_trait]
impl Connector for Notion {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &[Capability::RecordRead, Capability::RecordWrite]
    }

    async fn check(&self) -> Result<()> {
        self.http.get("v1/users/me").send().await.map(|_| ())
    }
}

#[async_trait::async_trait]
impl Source for Notion {
    fn name(&self) -> &str {
        NAME
    }

    async fn changes(&self, since: Option<Checkpoint>) -> Result<BatchStream<'_>> {
        let cursor: Cursor = match &since {
            Some(cp) => serde_json::from_str(cp.as_str())
                .map_err(|e| Error::invalid_input(format!("not a Notion checkpoint: {e}")))?,
            None => Cursor::default(),
        };
        let from = cursor.t.map(|t| minute_floor(t) - self.overlap);
        let mut pages = self.query(from).await?;
        pages.sort_by_key(|p| mapping::last_edited(p).unwrap_or(DateTime::UNIX_EPOCH));
        let newest = pages
            .iter()
            .filter_map(mapping::last_edited)
            .max()
            .max(cursor.t);
        let mut seen = BTreeMap::new();
        let mut changes = Vec::new();
        for page in &pages {
            let Some(id) = page["id"].as_str() else {
                continue;
            };
            let hash = content_hash(page);
            let edited = mapping::last_edited(page).unwrap_or(DateTime::UNIX_EPOCH);
            if newest.is_some_and(|n| edited >= minute_floor(n) - self.overlap) {
                seen.insert(id.to_owned(), hash.clone());
            }
            if cursor.seen.get(id) == Some(&hash) {
                continue;
            }
            if let Some(change) = self.page_change(page) {
                changes.push(change);
            }
        }
        let next = Cursor { t: newest, seen };
        let checkpoint = Checkpoint::new(
            serde_json::to_string(&next)
                .map_err(|e| Error::internal("checkpoint").with_source(e))?,
        );
        let batch = Batch {
            changes,
            checkpoint,
        };
        Ok(Box::pin(futures::stream::once(async move { Ok(batch) })))
    }
}

#[async_trait::async_trait]
impl Sink for Notion {
    fn name(&self) -> &str {
        NAME
    }

    async fn apply(&self, changes: &[Change]) -> Result<Vec<ApplyResult>> {
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            let written = match change.op {
                Operation::Upsert => {
                    let item: ScheduleItem = change.data_as()?;
                    match item.external_refs.get(NAME) {
                        Some(remote) => {
                            self.update_page(&remote.id, &item, remote.etag.as_deref())
                                .await
                        }
                        None => self.create_page(&item).await,
                    }
                    .map(|page| page["last_edited_time"].as_str().map(str::to_owned))
                }
                Operation::Delete => self
                    .trash_page(
                        &change.key.id,
                        change.metadata.get("etag").map(String::as_str),
                    )
                    .await
                    .map(|()| None),
            };
            let outcome = crate::write_outcome(written)?;
            results.push(ApplyResult {
                key: change.key.clone(),
                outcome,
            });
        }
        Ok(results)
    }
}
