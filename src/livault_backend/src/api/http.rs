//! `http_request`: `/health` and `/metrics` (Prometheus text format) for monitoring through
//! the IC HTTP gateway. Anonymous callers are welcome; the answers hold aggregates only (no
//! principal, vault id or user data). Responses are not certified: scrape through the raw
//! domain (`<canister>.raw.icp0.io`).

use crate::domain::{admin, maintenance};
use crate::model::types::{HttpRequest, HttpResponse};

use super::{rate_limited_principals, read, rt};

fn response(status_code: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse {
        status_code,
        headers: vec![
            ("Content-Type".to_string(), content_type.to_string()),
            ("Cache-Control".to_string(), "no-store".to_string()),
        ],
        body: serde_bytes::ByteBuf::from(body.into()),
    }
}

/// Answers a gateway request: `GET /health` → `ok`, `GET /metrics` → Prometheus text.
pub fn handle(req: &HttpRequest) -> HttpResponse {
    let path = req.url.split(['?', '#']).next().unwrap_or("");
    if req.method != "GET" && req.method != "HEAD" {
        return response(405, "text/plain; charset=utf-8", "method not allowed\n");
    }
    match path {
        "/health" => response(200, "text/plain; charset=utf-8", "ok\n"),
        "/metrics" => {
            let stats = maintenance::run_stats();
            let ops = crate::domain::ops::snapshot();
            let metrics =
                read(|s| admin::collect_metrics(s, &rt(), rate_limited_principals(), &stats, &ops));
            match admin::prometheus_text(&metrics) {
                Ok(text) => response(200, "text/plain; version=0.0.4; charset=utf-8", text),
                Err(e) => response(500, "text/plain; charset=utf-8", format!("{e}\n")),
            }
        }
        _ => response(404, "text/plain; charset=utf-8", "not found\n"),
    }
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn http_request(req: HttpRequest) -> HttpResponse {
    handle(&req)
}
