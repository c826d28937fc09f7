//! Outbound HTTP: core's [`HttpClient`] port over reqwest (rustls), the one
//! client every module's calls to outside services go through.

use std::time::Duration;

use plexus_core::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};

/// Connection pool and TLS shared by every outbound call.
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    /// A client with a 10 s connect timeout and `plexus/<version>` as
    /// user agent (GitHub refuses requests without one).
    pub fn new() -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("plexus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError(format!("http client: {e}")))?;
        Ok(Self { client })
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut b = self.client.request(method, &req.url).timeout(req.timeout);
        for (n, v) in &req.headers {
            b = b.header(n, v);
        }
        if let Some(body) = req.body {
            b = b.body(body);
        }
        // The error's text names the URL, never the headers.
        let r = b.send().await.map_err(|e| TransportError(e.without_url().to_string()))?;
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = r.bytes().await.map_err(|e| TransportError(e.without_url().to_string()))?.to_vec();
        Ok(HttpResponse { status, headers, body })
    }
}
