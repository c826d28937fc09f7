//! One keep-alive HTTP/1.1 connection per worker (hyper's connection API directly, TCP_NODELAY),
//! reconnecting when the server closes it or a request fails midway.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::rpc::{ErrorKind, Message, match_response};
use crate::sse::SseParser;

type Body = Full<Bytes>;

/// Where to connect: the URL's address, `Host` header value and request path.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) authority: HeaderValue,
    pub(crate) path: Uri,
}

impl Target {
    /// Parses an `http://` URL and resolves its host once (the first address is used).
    pub(crate) async fn resolve(url: &str) -> Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("unsupported scheme {other:?}: only http:// URLs"),
            None => bail!("URL {url:?} needs a scheme (http://)"),
        }
        let authority = uri.authority().context("URL has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("cannot resolve {}", authority.host()))?
            .next()
            .with_context(|| format!("{} resolves to no address", authority.host()))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).parse().context("invalid URL path")?;
        Ok(Target {
            addr,
            authority: HeaderValue::from_str(authority.as_str()).context("invalid URL authority")?,
            path,
        })
    }
}

/// A response, read as far as the JSON-RPC message for the expected id.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) session: Option<HeaderValue>,
    /// The response to the expected id (only read for a 200 when an id is expected).
    pub(crate) message: Option<Result<Message, ErrorKind>>,
    /// When the message (or, without one, the whole response) had arrived.
    pub(crate) done: Instant,
}

/// A worker's connection.
#[derive(Debug)]
pub(crate) struct Client {
    addr: SocketAddr,
    path: Uri,
    sender: Option<SendRequest<Body>>,
    connects: u64,
}

impl Client {
    pub(crate) fn new(target: &Target) -> Self {
        Client { addr: target.addr, path: target.path.clone(), sender: None, connects: 0 }
    }

    /// Connections opened after the first one.
    pub(crate) fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }

    /// Sends one request and reads its response: a JSON body, or an SSE stream up to the
    /// event carrying the JSON-RPC response to `expect_id` (the rest of the stream is then
    /// drained so the connection can be reused). Every step is bounded by `deadline`.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        headers: &HeaderMap,
        body: Bytes,
        expect_id: Option<u64>,
        deadline: Instant,
    ) -> Result<Reply, ErrorKind> {
        let result = self.exchange(method, headers, body, expect_id, deadline).await;
        if result.is_err() {
            // The connection is in an unknown state: start afresh next time.
            self.sender = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: Method,
        headers: &HeaderMap,
        body: Bytes,
        expect_id: Option<u64>,
        deadline: Instant,
    ) -> Result<Reply, ErrorKind> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.path.clone();
        *request.headers_mut() = headers.clone();

        let sender = self.ready(deadline).await?;
        let response = within(deadline, sender.send_request(request)).await?.map_err(|_| ErrorKind::Io)?;
        let (parts, mut body) = response.into_parts();
        let session = parts.headers.get(crate::rpc::MCP_SESSION_ID).cloned();

        let (message, done) = match expect_id {
            Some(id) if parts.status == StatusCode::OK => {
                let is_sse = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
                let message = if is_sse {
                    read_sse(&mut body, id, deadline).await?
                } else {
                    let bytes = within(deadline, (&mut body).collect()).await?.map_err(|_| ErrorKind::Io)?.to_bytes();
                    let text = String::from_utf8_lossy(&bytes);
                    match_response(&text, id).unwrap_or(Err(ErrorKind::BadResponse))
                };
                (Some(message), Instant::now())
            }
            _ => {
                // Not a response to judge: read it to the end (so the connection stays usable).
                if !drain(&mut body, deadline).await {
                    self.sender = None;
                }
                (None, Instant::now())
            }
        };
        if !body.is_end_stream() && !drain(&mut body, deadline).await {
            self.sender = None;
        }
        Ok(Reply { status: parts.status, session, message, done })
    }

    /// Opens the connection now (so that connecting is not part of the first request).
    pub(crate) async fn open(&mut self, deadline: Instant) -> Result<(), ErrorKind> {
        self.ready(deadline).await.map(|_| ())
    }

    /// The connection, opened (again) if needed and ready for a request.
    async fn ready(&mut self, deadline: Instant) -> Result<&mut SendRequest<Body>, ErrorKind> {
        if let Some(sender) = self.sender.as_mut()
            && within(deadline, sender.ready()).await?.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            let mut sender = within(deadline, connect(self.addr)).await??;
            self.connects += 1;
            within(deadline, sender.ready()).await?.map_err(|_| ErrorKind::Connect)?;
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or(ErrorKind::Connect)
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Body>, ErrorKind> {
    let stream = TcpStream::connect(addr).await.map_err(|_| ErrorKind::Connect)?;
    stream.set_nodelay(true).map_err(|_| ErrorKind::Connect)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|_| ErrorKind::Connect)?;
    tokio::spawn(async move {
        // Ends when the connection closes; failures show up on the sender side.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Reads SSE events until the response to `id` arrives.
async fn read_sse(body: &mut Incoming, id: u64, deadline: Instant) -> Result<Result<Message, ErrorKind>, ErrorKind> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    loop {
        let Some(frame) = within(deadline, body.frame()).await? else {
            parser.finish(&mut events);
            let found = events.iter().find_map(|data| match_response(data, id));
            return Ok(found.unwrap_or(Err(ErrorKind::BadResponse)));
        };
        let frame = frame.map_err(|_| ErrorKind::Io)?;
        if let Some(data) = frame.data_ref() {
            parser.push(data, &mut events);
            if let Some(found) = events.iter().find_map(|data| match_response(data, id)) {
                return Ok(found);
            }
            events.clear();
        }
    }
}

/// Reads the rest of a body; false if it failed or the deadline passed.
async fn drain(body: &mut Incoming, deadline: Instant) -> bool {
    loop {
        match timeout_at(deadline, body.frame()).await {
            Ok(None) => return true,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

async fn within<F: Future>(deadline: Instant, future: F) -> Result<F::Output, ErrorKind> {
    timeout_at(deadline, future).await.map_err(|_| ErrorKind::Timeout)
}
