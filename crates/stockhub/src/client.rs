//! A small client of a running stockhub's `/v1` API, for the commands that talk to a server
//! (`discover`, `replay`) and for the demo's set-up. A refusal keeps the server's
//! problem+json (`type`, `title`, `detail`) so that the command can show it as it is.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// Where a command finds the server unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Why a request to stockhub did not succeed.
#[derive(Debug)]
pub enum ApiError {
    /// The server answered with an error (problem+json, RFC 9457).
    Refused {
        status: u16,
        kind: String,
        title: String,
        detail: String,
    },
    /// No answer: the server is not running there, or the connection failed.
    Unreachable { url: String, source: reqwest::Error },
    /// An answer that is not what the API promises.
    Unexpected { status: u16, body: String },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused {
                status,
                kind,
                title,
                detail,
            } => write!(f, "{title} ({status}): {detail} [{kind}]"),
            Self::Unreachable { url, source } => {
                // reqwest's own message names the URL again and hides the cause in its sources.
                let mut cause = source.to_string();
                let mut inner = std::error::Error::source(source);
                while let Some(e) = inner {
                    cause = e.to_string();
                    inner = e.source();
                }
                write!(
                    f,
                    "could not reach stockhub at {url}: {cause} (is `stockhub serve` running? \
                     give its address with --server or STOCKHUB_SERVER)"
                )
            }
            Self::Unexpected { status, body } => {
                write!(f, "unexpected answer from stockhub ({status}): {body}")
            }
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreachable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A stockhub server's API.
#[derive(Clone)]
pub struct Api {
    base_url: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Discovery pages through a whole catalog; give it time, but not forever.
            .timeout(Duration::from_secs(300))
            .build()?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// Sends one request; a 2xx answer's JSON body (`Null` when empty), or why not.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |source| ApiError::Unreachable {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        let json: Option<Value> = if text.trim().is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_str(&text).ok()
        };
        match json {
            Some(value) if (200..300).contains(&status) => Ok(value),
            Some(problem) if problem.get("detail").is_some() => Err(refused(status, &problem)),
            _ => Err(ApiError::Unexpected {
                status,
                body: text.chars().take(500).collect(),
            }),
        }
    }
}

fn refused(status: u16, problem: &Value) -> ApiError {
    let field = |name: &str| {
        problem
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    ApiError::Refused {
        status,
        kind: field("type"),
        title: field("title"),
        detail: field("detail"),
    }
}

/// A path segment, percent-encoded (channel codes and SKUs are mostly plain, but not always).
pub fn segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
