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
use super::views::{
    asset, dm_partner, render, RoomPage, RoomRow, RoomsPage, SideForm, Sidebar, ASSETS,
};
use super::AppState;
use crate::chat::ChatError;
use crate::domain::{RoomKind, RoomScope, User};

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

/// What the browse page's forms show after a refusal: what was typed and why it was
/// refused, in the form it came from.
#[derive(Default)]
pub struct BrowseForms {
    /// The create-or-join form.
    pub room_name: String,
    pub error: Option<String>,
    /// The sidebar's New room form.
    pub new_room: SideForm,
    /// The sidebar's New message form.
    pub new_message: SideForm,
}

/// The sidebar of a signed-in page; `current`: the room the page shows.
async fn sidebar(
    state: &AppState,
    user: &User,
    current: Option<&str>,
) -> Result<Sidebar, ChatError> {
    let mine = state.chat.rooms().joined(user).await?;
    Ok(Sidebar::new(&user.username, mine, current))
}

/// The browse page (`/`): the public rooms with who is online, and the sidebar.
pub async fn room_list_page(
    state: &AppState,
    headers: &HeaderMap,
    over_https: bool,
    user: User,
    status: StatusCode,
    forms: BrowseForms,
) -> Result<Response, PageError> {
    let (list, sidebar) = tokio::join!(
        // The browse page shows no counts (the sidebar's script fetches them).
        state
            .chat
            .rooms()
            .list(&user, RoomScope::Public, None, false),
        sidebar(state, &user, None)
    );
    let (list, mut sidebar) = (list?, sidebar?);
    sidebar.browsing = true;
    sidebar.new_room = forms.new_room;
    sidebar.new_message = forms.new_message;
    let csrf = csrf_token(&state.secret_key, headers, over_https);
    let page = RoomsPage {
        signed_in_as: Some(user.username),
        csrf: csrf.token,
        sidebar,
        truncated: list.truncated,
        rooms: list.rooms.into_iter().map(RoomRow::from).collect(),
        room_name: forms.room_name,
        error: forms.error,
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
        BrowseForms::default(),
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
    let user = session.user;
    let access = state.chat.rooms().visible(&user, &slug).await?;
    let sidebar = sidebar(&state, &user, Some(&access.room.slug)).await?;
    let csrf = csrf_token(&state.secret_key, &headers, over_https);
    let room = &access.room;
    let dm = room.kind == RoomKind::Dm;
    let attention = state.chat.reading().attention(&user, room).await?;
    let page = RoomPage {
        signed_in_as: Some(user.username.clone()),
        csrf: csrf.token,
        sidebar,
        slug: room.slug.clone(),
        name: if dm {
            dm_partner(&user.username, &room.name)
        } else {
            room.name.clone()
        },
        kind: room.kind.as_str(),
        // A DM has no members to manage (CONTRACT §9); the server refuses it anyway.
        moderates: !dm && access.moderates(),
        owns: !dm && access.owns(),
        read_seq: attention.map(|a| a.read_seq.get()),
        username: user.username,
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
