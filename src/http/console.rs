//! The auditor console: one page and its script and stylesheet, compiled
//! into the binary (nothing to deploy, no CDN, works offline). The page is
//! static and needs no key; everything it shows it reads from the public
//! audit endpoints (`/v1/audit/*`, scope `audit`) with the key the auditor
//! types, which the script keeps in `sessionStorage` and sends only as
//! `Authorization: Bearer`, never in a URL.
//!
//! The headers hold the page to itself: a Content-Security-Policy allowing
//! only its own script, stylesheet and fetches (no inline script or style,
//! no framing), `nosniff`, and no referrer.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::error::ApiError;

/// The path the console is served under.
pub const PREFIX: &str = "/console";

/// Only the page's own origin, for everything; no inline code, no plugin,
/// no `<base>`, no form posting elsewhere, never inside a frame.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `(name, media type, bytes)` of each file the console is made of.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("console/style.css"),
    ),
];

/// The media types the console's routes answer with (`/openapi.json`).
pub const PAGE_MEDIA: &[&str] = &["text/html; charset=utf-8"];
pub const ASSET_MEDIA: &[&str] = &[
    "text/javascript; charset=utf-8",
    "text/css; charset=utf-8",
    "text/html; charset=utf-8",
];

/// The files under `/console/`, for `/openapi.json`.
pub fn asset_names() -> Vec<&'static str> {
    ASSETS.iter().map(|(n, _, _)| *n).collect()
}

/// `GET /console/` (the page) or `GET /console/{asset}`.
pub fn serve(path: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let name = match path.strip_prefix(PREFIX) {
        Some("/") => "index.html",
        Some(rest) => rest.trim_start_matches('/'),
        None => "",
    };
    let (_, media, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the console has no such file",
        )
    })?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, *media)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        // A new binary may bring a new script: always ask again.
        .header(CACHE_CONTROL, "no-cache")
        .body(Full::new(Bytes::from_static(bytes)))
        .expect("static response parts are valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_page_and_its_files_with_strict_headers_and_nothing_else() {
        for (path, media) in [
            ("/console/", "text/html; charset=utf-8"),
            ("/console/app.js", "text/javascript; charset=utf-8"),
            ("/console/style.css", "text/css; charset=utf-8"),
        ] {
            let r = serve(path).unwrap();
            assert_eq!(r.headers()[CONTENT_TYPE], media, "{path}");
            assert_eq!(r.headers()["content-security-policy"], CSP);
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
            assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        }
        for path in ["/console/../Cargo.toml", "/console/x", "/console/app.js/"] {
            assert_eq!(serve(path).unwrap_err().status, StatusCode::NOT_FOUND);
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_loads_nothing_from_elsewhere() {
        let page = std::str::from_utf8(ASSETS[0].2).unwrap();
        assert!(!page.contains("<script>") && !page.contains("style="));
        assert!(!page.contains("<style"));
        for (_, _, bytes) in ASSETS {
            // The SVG namespace names no place the browser goes.
            let text = std::str::from_utf8(bytes)
                .unwrap()
                .replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        assert!(CSP.contains("frame-ancestors 'none'") && !CSP.contains("unsafe"));
    }
}
