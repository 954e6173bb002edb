//! The pages' stylesheet, scripts and icon, compiled into the binary (no build step, nothing
//! to deploy beside it) and served with an `ETag`, so browsers revalidate cheaply and never run
//! a stale script after an upgrade.

use std::sync::OnceLock;

use poem::http::{header, StatusCode};
use poem::web::Path;
use poem::{handler, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    asset(
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    asset("common.js", JS, include_str!("../assets/common.js")),
    asset("cart.js", JS, include_str!("../assets/cart.js")),
    asset("menu.js", JS, include_str!("../assets/menu.js")),
    asset("checkout.js", JS, include_str!("../assets/checkout.js")),
    asset("order.js", JS, include_str!("../assets/order.js")),
    asset("history.js", JS, include_str!("../assets/history.js")),
    asset("kitchen.js", JS, include_str!("../assets/kitchen.js")),
    asset("courier.js", JS, include_str!("../assets/courier.js")),
    asset("manager.js", JS, include_str!("../assets/manager.js")),
    asset(
        "favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

const fn asset(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
    Asset {
        name,
        content_type,
        body,
    }
}

/// Each file's `ETag`, computed once.
fn etags() -> &'static Vec<String> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body.as_bytes());
                let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// `GET /assets/{file}`.
#[handler]
pub fn serve(request: &Request, Path(file): Path<String>) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (asset, etag) = (&ASSETS[index], &etags()[index]);
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let builder = Response::builder()
        .header(header::ETAG, etag.as_str())
        .header(header::CACHE_CONTROL, "no-cache");
    if fresh {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    builder
        .header(header::CONTENT_TYPE, asset.content_type)
        .body(asset.body)
}
