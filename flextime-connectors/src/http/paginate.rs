//! Pagination as async streams: cursors and page tokens ([`paginate`]),
//! `Link: <...>; rel="next"` headers ([`next_link`]), and delta links or
//! sync tokens handed out by the last page ([`Page::token`]).

use std::future::Future;

use flextime_core::{Error, Result};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use http::header::{HeaderMap, LINK};

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// The cursor, page token or next link of the following page; `None` on
    /// the last page.
    pub next: Option<String>,
    /// What the last page hands out for next time (Google `nextSyncToken`,
    /// Graph `@odata.deltaLink`), when there is one.
    pub token: Option<String>,
}

impl<T> Page<T> {
    /// A page with a next cursor.
    pub fn new(items: Vec<T>, next: Option<String>) -> Self {
        Self {
            items,
            next,
            token: None,
        }
    }
}

/// Fetches pages one after the other: `fetch(None)` (or `fetch(first)`) for
/// the first, then `fetch(Some(next))` until a page has no `next`. A peer
/// that returns the same cursor twice in a row is an error rather than an
/// endless loop.
pub fn paginate<'a, T, F, Fut>(first: Option<String>, fetch: F) -> BoxStream<'a, Result<Page<T>>>
where
    T: Send + 'a,
    F: FnMut(Option<String>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Page<T>>> + Send + 'a,
{
    enum State {
        Start(Option<String>),
        Next(String),
        Done,
    }
    stream::unfold(
        (State::Start(first), fetch),
        |(state, mut fetch)| async move {
            let cursor = match state {
                State::Done => return None,
                State::Start(c) => c,
                State::Next(c) => Some(c),
            };
            match fetch(cursor.clone()).await {
                Ok(page) => {
                    let next = match &page.next {
                        Some(n) if Some(n) == cursor.as_ref() => {
                            return Some((
                                Err(Error::permanent(format!(
                                    "the peer returned the same page cursor twice ({n})"
                                ))),
                                (State::Done, fetch),
                            ));
                        }
                        Some(n) if !n.is_empty() => State::Next(n.clone()),
                        _ => State::Done,
                    };
                    Some((Ok(page), (next, fetch)))
                }
                Err(e) => Some((Err(e), (State::Done, fetch))),
            }
        },
    )
    .boxed()
}

/// The items of every page, in order.
pub fn items<'a, T: Send + 'a>(pages: BoxStream<'a, Result<Page<T>>>) -> BoxStream<'a, Result<T>> {
    pages
        .map_ok(|page| stream::iter(page.items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// Collects every page; returns the items and the last page's token.
pub async fn collect_all<T: Send>(
    mut pages: BoxStream<'_, Result<Page<T>>>,
) -> Result<(Vec<T>, Option<String>)> {
    let mut all = Vec::new();
    let mut token = None;
    while let Some(page) = pages.next().await {
        let page = page?;
        all.extend(page.items);
        if page.token.is_some() {
            token = page.token;
        }
    }
    Ok((all, token))
}

/// Collects an incremental listing whose pages may say that the sync token
/// or delta link the listing started from has expired (Google's and
/// Graph's `410 Gone`): `fetch` returns `Ok(None)` for such a page. The
/// result is `Ok(None)` when that happened, so the caller can start over
/// with a full listing, and otherwise the items and the last page's token.
pub async fn collect_sync<T, F, Fut>(
    first: Option<String>,
    mut fetch: F,
) -> Result<Option<(Vec<T>, Option<String>)>>
where
    T: Send,
    F: FnMut(Option<String>) -> Fut + Send,
    Fut: Future<Output = Result<Option<Page<T>>>> + Send,
{
    let expired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = expired.clone();
    let pages = paginate(first, move |cursor| {
        let page = fetch(cursor);
        let flag = flag.clone();
        async move {
            page.await?.ok_or_else(|| {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Error::permanent("the sync token expired")
            })
        }
    });
    match collect_all(pages).await {
        Ok(done) => Ok(Some(done)),
        Err(_) if expired.load(std::sync::atomic::Ordering::SeqCst) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_links)
        .find_map(|(target, params)| {
            params
                .split(';')
                .filter_map(|p| p.split_once('='))
                .any(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
                .then(|| target.to_owned())
        })
}

/// Splits a Link header value into `(target, params)` pairs, respecting the
/// `<...>` brackets (targets may contain commas).
fn split_links(value: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = &rest[open + 1..open + close];
        let after = &rest[open + close + 1..];
        // A comma outside quotes ends the link (targets are bracketed).
        let mut in_quotes = false;
        let end = after
            .char_indices()
            .find(|&(_, ch)| {
                if ch == '"' {
                    in_quotes = !in_quotes;
                }
                ch == ',' && !in_quotes
            })
            .map_or(after.len(), |(idx, _)| idx);
        out.push((target, &after[..end]));
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_among_several() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            r#"<https://api.example.com/items?page=1>; rel="prev", <https://api.example.com/items?a=1,2&page=3>; rel="next", <https://api.example.com/items?page=9>; rel="last""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.example.com/items?a=1,2&page=3")
        );
        let mut h = HeaderMap::new();
        h.insert(LINK, r#"<https://x/1>; rel="prev""#.parse().unwrap());
        assert_eq!(next_link(&h), None);
    }

    #[tokio::test]
    async fn paginate_follows_cursors_and_keeps_the_last_token() {
        let pages = paginate(None, |cursor: Option<String>| async move {
            Ok(match cursor.as_deref() {
                None => Page::new(vec![1, 2], Some("b".into())),
                Some("b") => Page::new(vec![3], Some("c".into())),
                Some("c") => Page {
                    items: vec![4],
                    next: None,
                    token: Some("sync-1".into()),
                },
                Some(other) => return Err(Error::invalid_input(other.to_owned())),
            })
        });
        let (all, token) = collect_all(pages).await.unwrap();
        assert_eq!(all, vec![1, 2, 3, 4]);
        assert_eq!(token.as_deref(), Some("sync-1"));
    }

    #[tokio::test]
    async fn a_repeated_cursor_is_an_error_not_a_loop() {
        let pages = paginate(Some("a".into()), |_c: Option<String>| async move {
            Ok(Page::new(vec![0], Some("a".into())))
        });
        let err = collect_all(pages).await.unwrap_err();
        assert!(err.to_string().contains("same page cursor"), "{err}");
    }
}
