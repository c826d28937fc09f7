//! Modules' REST routes (OFREP for OpenFeature SDKs, and the like): each
//! request becomes one tool call through the whole pipeline, translated at
//! both ends by the route's own functions (see
//! [`plexus_core::spec::RouteSpec`]). The edge authenticates exactly as it
//! does for `/mcp` (see `http::authenticated`), caps the body, and maps
//! nothing itself: the route decides every status and body.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use plexus_core::context::{CallContext, Era};
use plexus_core::pipeline::{Call, Operation, Reply};
use plexus_core::spec::{RestRequest, RestResponse, RouteMethod, RouteSpec};
use tower::ServiceExt;

use crate::handler::{Shared, apply_http};
use crate::peer::{self, RmcpPeer};

/// Headers a route never sees: credentials stay at the edge.
const HIDDEN: [&str; 3] = ["authorization", "x-api-key", "cookie"];

/// One axum router with every module route.
pub(crate) fn router(shared: &Arc<Shared>, max_body: usize) -> axum::Router {
    let mut app = axum::Router::new();
    for route in shared.registry.routes() {
        let (method, path) = (route.method, route.path.clone());
        let (route, shared) = (Arc::clone(route), Arc::clone(shared));
        let handler = move |req: Request| {
            let (route, shared) = (Arc::clone(&route), Arc::clone(&shared));
            async move { handle(&shared, &route, req, max_body).await }
        };
        app = match method {
            RouteMethod::Get => app.route(&path, axum::routing::get(handler)),
            RouteMethod::Post => app.route(&path, axum::routing::post(handler)),
            RouteMethod::Put => app.route(&path, axum::routing::put(handler)),
        };
    }
    app
}

async fn handle(shared: &Arc<Shared>, route: &RouteSpec, req: Request, max_body: usize) -> Response {
    let (mut parts, body) = req.into_parts();
    let params = match Path::<BTreeMap<String, String>>::from_request_parts(&mut parts, &()).await {
        Ok(Path(p)) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    let query = match Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
        Ok(Query(q)) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    let body = match Limited::new(body, max_body).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            let msg = format!("the body exceeds the limit of {max_body} bytes");
            return (StatusCode::PAYLOAD_TOO_LARGE, [("connection", "close")], msg).into_response();
        }
        Err(_) => return (StatusCode::BAD_REQUEST, "could not read the request body").into_response(),
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(n, _)| !HIDDEN.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let rest = RestRequest { params, query, headers, body };
    let args = match (route.args)(&rest) {
        Ok(a) => a,
        Err(resp) => return into_response(resp),
    };
    let rpeer = RmcpPeer::stateless(peer::capabilities(None), shared.bus.clone());
    let id = format!("rest-{}", uuid::Uuid::new_v4().simple());
    let mut cx = CallContext::new(id, Era::Stateless, Arc::new(rpeer));
    apply_http(&mut cx, &parts);
    let op = Operation::CallTool { name: route.tool.clone(), args };
    let result = {
        let _in_flight = shared.in_flight_guard();
        shared.pipeline.clone().oneshot(Call { cx, op }).await
    };
    let outcome = match result {
        Ok(Reply::Tool(out)) => Ok(out),
        Ok(_) => Err(plexus_core::ToolError::internal("the pipeline answered a tool call with something else")),
        Err(e) => Err(e),
    };
    into_response((route.reply)(&rest, outcome))
}

fn into_response(r: RestResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, r.body).into_response();
    for (name, value) in r.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}
