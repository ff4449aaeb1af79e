//! The pages' views: one struct per askama template (auto-escaped), how a page is rendered
//! into a response, and the static files the layout links, each with a content hash. The
//! routes that fill the views are in `pages.rs` and `accounts.rs`; `error.rs` renders its
//! error page here.

use std::sync::LazyLock;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::SecondsFormat;
use sha2::{Digest, Sha256};

use crate::chat::RoomListing;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub signed_in_as: Option<String>,
    pub csrf: String,
    pub next: String,
    pub username: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    pub signed_in_as: Option<String>,
    pub csrf: String,
    pub username: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "rooms.html")]
pub struct RoomsPage {
    pub signed_in_as: Option<String>,
    pub csrf: String,
    pub rooms: Vec<RoomRow>,
    /// More rooms exist than the list shows.
    pub truncated: bool,
    pub room_name: String,
    pub error: Option<String>,
}

pub struct RoomRow {
    pub slug: String,
    pub name: String,
    pub online: usize,
    pub last_message_at: Option<Moment>,
}

/// A time as the page shows it before the script puts it in the reader's time zone.
pub struct Moment {
    pub iso: String,
    pub utc: String,
}

impl From<RoomListing> for RoomRow {
    fn from(listing: RoomListing) -> Self {
        RoomRow {
            slug: listing.room.slug,
            name: listing.room.name,
            online: listing.online,
            last_message_at: listing.last_message_at.map(|t| Moment {
                iso: t.to_rfc3339_opts(SecondsFormat::Millis, true),
                utc: t.format("%Y-%m-%d %H:%M UTC").to_string(),
            }),
        }
    }
}

#[derive(Template)]
#[template(path = "room.html")]
pub struct RoomPage {
    pub signed_in_as: Option<String>,
    pub csrf: String,
    pub slug: String,
    pub name: String,
    pub username: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub signed_in_as: Option<String>,
    pub csrf: String,
    pub title: String,
    pub message: String,
}

/// Renders a page; a template that fails to render is a bug, answered with a plain 500.
pub fn render(
    status: StatusCode,
    page: &impl Template,
    set_cookie: Option<HeaderValue>,
) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            if let Some(cookie) = set_cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

pub fn render_error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        signed_in_as: None,
        csrf: String::new(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: message.to_owned(),
    };
    render(status, &page, None)
}

/// A file under `static/`, built into the binary, with a hash of its content.
pub(super) struct Asset {
    pub(super) name: &'static str,
    pub(super) content_type: &'static str,
    pub(super) body: &'static str,
    /// The first 10 hex digits of the SHA-256 of `body`.
    pub(super) version: String,
    /// `/static/{name}?v={version}`: what pages link to.
    url: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        let version: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
        let url = format!("/static/{name}?v={version}");
        Asset {
            name,
            content_type,
            body,
            version,
            url,
        }
    }
}

pub(super) static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        Asset::new(
            "app.js",
            "text/javascript; charset=utf-8",
            include_str!("../../static/app.js"),
        ),
        Asset::new(
            "style.css",
            "text/css; charset=utf-8",
            include_str!("../../static/style.css"),
        ),
    ]
});

/// The versioned URL of a static file, for templates: `asset_url("app.js")`.
pub fn asset_url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map(|asset| asset.url.as_str())
        .unwrap_or_else(|| panic!("no static file {name}"))
}
