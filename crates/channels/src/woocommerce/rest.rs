//! WooCommerce REST API v3 calls: HTTP Basic auth with the consumer key and secret, collections
//! paged 100 at a time (`X-WP-TotalPages`, else the `Link` header's `next`), the batch endpoints,
//! and failures classified for the push engine.
//!
//! Basic auth is what WooCommerce accepts over HTTPS; a real store reached over plain HTTP wants
//! OAuth 1.0a instead, so production base URLs must be `https://`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, LINK};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::connection::{CallCounter, ChannelConnection, Secret};
use crate::error::{self, ChannelError};
use crate::pace::Paced;

/// WordPress's largest page.
pub const PAGE_SIZE: usize = 100;
/// A bound on the pages one listing reads (a million items), should a store's headers lie.
const PAGES_MAX: u32 = 10_000;

/// A WooCommerce store's REST API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `{base_url}/wp-json/wc/v3/`
    base: String,
    consumer_key: Secret,
    consumer_secret: Secret,
    calls: CallCounter,
    /// Until when the store asked us to hold off (its last 429's `Retry-After`).
    paused_until: Arc<Mutex<Option<Instant>>>,
}

impl Api {
    pub fn new(connection: &ChannelConnection, http: reqwest::Client) -> Self {
        Self {
            http,
            base: format!(
                "{}/wp-json/wc/v3/",
                connection.base_url.trim_end_matches('/')
            ),
            consumer_key: connection.access_token.clone(),
            consumer_secret: connection.consumer_secret.clone(),
            calls: connection.calls.clone(),
            paused_until: Arc::default(),
        }
    }

    /// The pause the store asked for that is still running, if any.
    pub fn backpressure(&self) -> Option<Duration> {
        let until = (*self.paused_until.lock().unwrap_or_else(|e| e.into_inner()))?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(
                self.consumer_key.expose(),
                Some(self.consumer_secret.expose()),
            )
    }

    /// Sends a request; a non-success status becomes a classified error, with the status kept.
    async fn send(&self, request: RequestBuilder) -> Result<Response, Failure> {
        self.calls.add_one();
        let response = request
            .send()
            .await
            .map_err(|e| Failure::from(ChannelError::from_transport(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = error::retry_after(response.headers());
        if status.as_u16() == 429 {
            let until = Instant::now() + retry_after.unwrap_or(Duration::from_secs(1));
            *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
        }
        let body = response.text().await.unwrap_or_default();
        Err(Failure {
            status: Some(status.as_u16()),
            error: ChannelError::from_status(status.as_u16(), retry_after, &body),
        })
    }

    /// Reads a success's JSON body.
    async fn json(response: Response) -> Result<Value, ChannelError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ChannelError::from_transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let start: String = String::from_utf8_lossy(&bytes).chars().take(120).collect();
            ChannelError::Transient(format!("unreadable JSON from WooCommerce ({e}): {start}"))
        })
    }

    /// `POST path` with a JSON body; a failure keeps its HTTP status.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let response = self
            .send(self.request(Method::POST, path).json(body))
            .await?;
        Ok(Self::json(response).await?)
    }

    /// Every item of a collection. The first page says how many there are (`X-WP-TotalPages`);
    /// the others are then read up to `PAGES_IN_FLIGHT` at once, and any pages the collection
    /// grew by meanwhile one after another. A store that does not say reads page after page.
    pub async fn get_all(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, ChannelError> {
        let (items, first) = self.page(path, query, 1).await?;
        match first.total {
            Some(total) => self.pages_at_once(path, query, items, total).await,
            None => {
                self.pages_one_by_one(path, query, 2, items, first, None)
                    .await
            }
        }
    }

    /// Every item of a collection, for a read that is not urgent (an order backfill): as
    /// `get_all` if it has at most `pace::FREE_PAGES` pages, else page after page, past those
    /// at a quarter of the pace it could go (`crate::pace`).
    pub async fn get_all_in_background(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, ChannelError> {
        let mut paced = Paced::start();
        let (items, first) = self.page(path, query, 1).await?;
        match first.total {
            Some(total) if total <= crate::pace::FREE_PAGES => {
                self.pages_at_once(path, query, items, total).await
            }
            _ => {
                self.pages_one_by_one(path, query, 2, items, first, Some(&mut paced))
                    .await
            }
        }
    }

    /// The pages after the first (its `items`) of a collection of `total` pages, up to
    /// `PAGES_IN_FLIGHT` at once, then any it grew by meanwhile.
    async fn pages_at_once(
        &self,
        path: &str,
        query: &[(&str, String)],
        mut items: Vec<Value>,
        mut total: u32,
    ) -> Result<Vec<Value>, ChannelError> {
        let owned_query: Arc<Vec<(String, String)>> = Arc::new(
            query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        );
        let mut next = 2;
        while next <= total.min(PAGES_MAX) {
            let last = total.min(PAGES_MAX);
            let mut in_flight = tokio::task::JoinSet::new();
            let mut pages: Vec<(u32, Vec<Value>)> = Vec::new();
            let mut page = next;
            loop {
                while in_flight.len() < PAGES_IN_FLIGHT && page <= last {
                    let (api, path, query) = (self.clone(), path.to_owned(), owned_query.clone());
                    in_flight.spawn(async move { (page, api.page(&path, &*query, page).await) });
                    page += 1;
                }
                let Some(joined) = in_flight.join_next().await else {
                    break;
                };
                let (number, read) = joined.map_err(|e| {
                    ChannelError::Transient(format!("reading WooCommerce {path} stopped: {e}"))
                })?;
                let (got, shape) = read?;
                // Items the store added meanwhile make more pages: read them after.
                total = total.max(shape.total.unwrap_or(total));
                pages.push((number, got));
            }
            pages.sort_by_key(|(number, _)| *number);
            items.extend(pages.into_iter().flat_map(|(_, got)| got));
            next = last + 1;
        }
        Ok(items)
    }

    /// The rest of a collection whose store does not say how many pages it has (or read in the
    /// background, `paced` from its first page): page after page from `page`, while the last
    /// one says there is more (or, saying nothing, was full).
    async fn pages_one_by_one(
        &self,
        path: &str,
        query: &[(&str, String)],
        mut page: u32,
        mut items: Vec<Value>,
        mut last: PageShape,
        mut paced: Option<&mut Paced>,
    ) -> Result<Vec<Value>, ChannelError> {
        while last.more.unwrap_or(last.full) && !last.empty && page <= PAGES_MAX {
            if let Some(paced) = paced.as_deref_mut() {
                paced.after_page().await;
            }
            let (got, shape) = self.page(path, query, page).await?;
            items.extend(got);
            last = shape;
            page += 1;
        }
        Ok(items)
    }

    /// One page of a collection (`query`: its parameters, as name and value pairs), and what it
    /// says of the others.
    async fn page<Q: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        page: u32,
    ) -> Result<(Vec<Value>, PageShape), ChannelError> {
        let request = self.request(Method::GET, path).query(query).query(&[
            ("per_page", PAGE_SIZE.to_string()),
            ("page", page.to_string()),
        ]);
        let response = self.send(request).await.map_err(|f| f.error)?;
        let total = total_pages(response.headers());
        let more = more_pages(response.headers(), page);
        let got = match Self::json(response).await? {
            Value::Array(got) => got,
            other => {
                let start: String = other.to_string().chars().take(120).collect();
                return Err(ChannelError::Transient(format!(
                    "WooCommerce {path} is not a list: {start}"
                )));
            }
        };
        let shape = PageShape {
            total,
            more,
            full: got.len() >= PAGE_SIZE,
            empty: got.is_empty(),
        };
        Ok((got, shape))
    }
}

/// Pages of one collection read at once.
const PAGES_IN_FLIGHT: usize = 4;

/// What a page says of the collection it belongs to.
#[derive(Debug, Clone, Copy)]
struct PageShape {
    /// `X-WP-TotalPages`, when the store sends it.
    total: Option<u32>,
    /// Whether a later page exists (see `more_pages`).
    more: Option<bool>,
    full: bool,
    empty: bool,
}

/// A failed call: its classification, and the HTTP status when the store answered one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: Option<u16>,
    pub error: ChannelError,
}

impl From<ChannelError> for Failure {
    fn from(error: ChannelError) -> Self {
        Self {
            status: None,
            error,
        }
    }
}

/// The collection's number of pages (`X-WP-TotalPages`), when the store says.
fn total_pages(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("x-wp-totalpages")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
}

/// Whether a page after `page` exists, by `X-WP-TotalPages`, else by a `Link: <…>; rel="next"`;
/// `None` when the store sends neither.
fn more_pages(headers: &HeaderMap, page: u32) -> Option<bool> {
    if let Some(total) = total_pages(headers) {
        return Some(page < total);
    }
    let links: Vec<&str> = headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if links.is_empty() {
        return None;
    }
    Some(links.iter().flat_map(|l| l.split(',')).any(|link| {
        link.split(';').skip(1).any(|param| {
            let param = param.trim().replace(' ', "");
            param.eq_ignore_ascii_case("rel=\"next\"") || param.eq_ignore_ascii_case("rel=next")
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn pages_follow_total_pages_then_link() {
        let mut h = HeaderMap::new();
        assert_eq!(more_pages(&h, 1), None);
        h.insert(
            LINK,
            HeaderValue::from_static("<https://s/wp-json/wc/v3/products?page=2>; rel=\"next\""),
        );
        assert_eq!(more_pages(&h, 1), Some(true));
        h.insert(
            LINK,
            HeaderValue::from_static("<https://s/wp-json/wc/v3/products?page=1>; rel=\"prev\""),
        );
        assert_eq!(more_pages(&h, 2), Some(false));
        h.insert("X-WP-TotalPages", HeaderValue::from_static("3"));
        assert_eq!(more_pages(&h, 2), Some(true));
        assert_eq!(more_pages(&h, 3), Some(false));
    }
}
