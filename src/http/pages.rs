//! The page routes: the room list, a room, and the static files (their views are in
//! `views.rs`).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::{PageError, Refusal, Wants};
use super::extract::{MaybeSession, OverHttps};
use super::security::csrf_token;
use super::views::{asset, render, RoomPage, RoomRow, RoomsPage, ASSETS};
use super::AppState;
use crate::domain::User;

/// Where to send a visitor who must sign in first; `next` is the decoded path they asked for.
pub fn login_redirect(next: &str) -> Response {
    // `next` goes back into a URL path, so it is encoded as one first (controls, spaces,
    // non-ASCII, `%`, `?`, `#` escaped): what comes back is printable ASCII and passes
    // [`safe_next`]. Then it is encoded as a query value. Slashes stay readable:
    // `/login?next=/rooms/general`.
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'\\')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    const NEXT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let path = percent_encoding::utf8_percent_encode(next, PATH).to_string();
    let mut target = String::from("/login?next=");
    target.extend(percent_encoding::utf8_percent_encode(&path, NEXT));
    Redirect::to(&target).into_response()
}

/// `next` is followed only to a path on this site (CONTRACT §7a): printable ASCII (`!`–`~`),
/// one leading `/`, never `//` or `/\` (a browser reads both as another host). Anything
/// else — a TAB or newline a browser would strip to make `//`, a byte no header may hold —
/// goes to `/`. So what this returns is always a valid `Location`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub(super) fn router() -> Router<AppState> {
    // Built now, so that a module importing one that is not there stops the start, not the
    // first page.
    std::sync::LazyLock::force(&ASSETS);
    Router::new()
        .route("/", get(room_list))
        .route("/rooms/{slug}", get(room))
        .route("/static/{*name}", get(static_file))
}

pub async fn room_list_page(
    state: &AppState,
    headers: &HeaderMap,
    over_https: bool,
    user: User,
    status: StatusCode,
    room_name: String,
    error: Option<String>,
) -> Result<Response, PageError> {
    let list = state.chat.rooms().list(&user, false, None).await?;
    let csrf = csrf_token(&state.secret_key, headers, over_https);
    let page = RoomsPage {
        signed_in_as: Some(user.username),
        csrf: csrf.token,
        truncated: list.truncated,
        rooms: list.rooms.into_iter().map(RoomRow::from).collect(),
        room_name,
        error,
    };
    Ok(render(status, &page, csrf.set_cookie))
}

async fn room_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    OverHttps(over_https): OverHttps,
    MaybeSession(session): MaybeSession,
) -> Result<Response, PageError> {
    let Some(session) = session else {
        return Ok(login_redirect("/"));
    };
    room_list_page(
        &state,
        &headers,
        over_https,
        session.user,
        StatusCode::OK,
        String::new(),
        None,
    )
    .await
}

async fn room(
    State(state): State<AppState>,
    headers: HeaderMap,
    OverHttps(over_https): OverHttps,
    Path(slug): Path<String>,
    MaybeSession(session): MaybeSession,
) -> Result<Response, PageError> {
    let Some(session) = session else {
        return Ok(login_redirect(&format!("/rooms/{slug}")));
    };
    let room = state.chat.rooms().visible(&session.user, &slug).await?.room;
    let csrf = csrf_token(&state.secret_key, &headers, over_https);
    let page = RoomPage {
        signed_in_as: Some(session.user.username.clone()),
        csrf: csrf.token,
        slug: room.slug,
        name: room.name,
        username: session.user.username,
    };
    Ok(render(StatusCode::OK, &page, csrf.set_cookie))
}

#[derive(Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

pub fn next_from(
    query: &Result<Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> String {
    safe_next(query.as_ref().ok().and_then(|Query(q)| q.next.as_deref()))
}

#[derive(Deserialize)]
struct VersionQuery {
    v: Option<String>,
}

type VersionParam = Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>;

/// A URL with the current version never changes content, so it is cached for a year; any
/// other (no `v`, or a page from before a deploy) is cached briefly and revalidated by ETag.
async fn static_file(
    Path(name): Path<String>,
    headers: HeaderMap,
    query: VersionParam,
) -> Response {
    let Some(asset) = asset(&name) else {
        return Refusal::not_found(Wants::Html).into_response();
    };
    let current = query.is_ok_and(|Query(q)| q.v.as_deref() == Some(asset.version.as_str()));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    let etag = format!("\"{}\"", asset.version);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == etag)
        });
    let headers = [
        (header::CONTENT_TYPE, asset.content_type.to_owned()),
        (header::CACHE_CONTROL, cache.to_owned()),
        (header::ETAG, etag),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.body.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_path_of_printable_ascii_on_this_site() {
        for good in [
            "/",
            "/rooms/general",
            "/rooms/a?x=1&y=%20#top",
            "/~user/!$'()*+,;=:@",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "",
            "rooms",
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\x0b/evil.example",
            "/\x0c",
            "/\r\n",
            "/a b",
            "/\x7f",
            "/école",
            "/\u{202e}",
            "\t//evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn whatever_next_is_the_redirect_holds_a_valid_location() {
        for byte in 0u8..=255 {
            let next = format!("/{}", char::from(byte));
            let target = safe_next(Some(&next));
            assert!(
                axum::http::HeaderValue::from_str(&target).is_ok(),
                "{byte:#x}"
            );
        }
    }

    #[test]
    fn the_login_redirect_carries_a_next_that_comes_back_safe() {
        for (path, query) in [
            ("/rooms/general", "/login?next=/rooms/general"),
            ("/rooms/a b", "/login?next=/rooms/a%2520b"),
            ("/rooms/\tx?y#z", "/login?next=/rooms/%2509x%253Fy%2523z"),
        ] {
            let response = login_redirect(path);
            let location = response.headers()[header::LOCATION].to_str().unwrap();
            assert_eq!(location, query);
            let next = location.strip_prefix("/login?next=").unwrap();
            let decoded = percent_encoding::percent_decode_str(next)
                .decode_utf8()
                .unwrap();
            assert_eq!(safe_next(Some(&decoded)), decoded, "{path:?}");
        }
    }
}
