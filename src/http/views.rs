//! The pages' views: one struct per askama template (auto-escaped), how a page is rendered
//! into a response, and the static files the pages link (the stylesheet and the client's ES
//! modules), each with a content hash. The routes that fill the views are in `pages.rs` and
//! `accounts.rs`; `error.rs` renders its error page here.

use std::ops::Range;
use std::sync::LazyLock;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::SecondsFormat;
use sha2::{Digest, Sha256};

use crate::chat::RoomListing;
use crate::domain::{Room, RoomKind};

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
    pub sidebar: Sidebar,
    /// The public rooms.
    pub rooms: Vec<RoomRow>,
    /// More rooms exist than the list shows.
    pub truncated: bool,
    pub room_name: String,
    pub error: Option<String>,
}

/// The signed-in pages' sidebar: the user's rooms, then their DMs, and the forms that make
/// new ones (with what was typed and the error, when one of them was refused).
pub struct Sidebar {
    /// The page is the browse page (its link is the current one).
    pub browsing: bool,
    pub rooms: Vec<SideLink>,
    pub dms: Vec<SideLink>,
    pub new_room: SideForm,
    pub new_message: SideForm,
}

/// A sidebar form's field and error, after a refusal; empty otherwise.
#[derive(Default)]
pub struct SideForm {
    pub value: String,
    pub private: bool,
    pub error: Option<String>,
}

/// One link in the sidebar.
pub struct SideLink {
    pub slug: String,
    /// For a DM, the other person's name.
    pub name: String,
    pub private: bool,
    /// The page shows this room.
    pub current: bool,
}

impl Sidebar {
    /// `mine`: the viewer's rooms (`Rooms::joined`); `current`: the slug of the room the
    /// page shows. Rooms and DMs each sorted by name, case-insensitively.
    pub fn new(me: &str, mine: Vec<Room>, current: Option<&str>) -> Sidebar {
        let (mut rooms, mut dms) = (Vec::new(), Vec::new());
        for room in mine {
            let link = |name: String| SideLink {
                current: current == Some(room.slug.as_str()),
                private: room.kind == RoomKind::Private,
                slug: room.slug.clone(),
                name,
            };
            if room.kind == RoomKind::Dm {
                dms.push(link(dm_partner(me, &room.name)));
            } else {
                rooms.push(link(room.name.clone()));
            }
        }
        for list in [&mut rooms, &mut dms] {
            list.sort_by_cached_key(|link| (link.name.to_lowercase(), link.slug.clone()));
        }
        Sidebar {
            browsing: false,
            rooms,
            dms,
            new_room: SideForm::default(),
            new_message: SideForm::default(),
        }
    }
}

/// Who a DM is with, seen by `me`: its name is both usernames, sorted, joined by `", "`
/// (a username never holds a comma), so it is the one that is not `me`.
pub fn dm_partner(me: &str, dm_name: &str) -> String {
    dm_name
        .split(", ")
        .find(|name| !name.eq_ignore_ascii_case(me))
        .unwrap_or(dm_name)
        .to_owned()
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
    pub sidebar: Sidebar,
    pub slug: String,
    /// The room's name; for a DM, the other person's.
    pub name: String,
    /// `public`, `private` or `dm`.
    pub kind: &'static str,
    pub username: String,
    /// Owner or moderator: add, remove and ban members.
    pub moderates: bool,
    /// Owner: change roles too.
    pub owns: bool,
    /// The user's read marker when the page was made (CONTRACT §11), for the "new
    /// messages" line; `None` when they are not a member yet.
    pub read_seq: Option<i64>,
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
    /// Its path under `static/`: `style.css`, `js/room-page.js`.
    pub(super) name: String,
    pub(super) content_type: &'static str,
    /// What is served: for a module, its source with its imports' URLs put in.
    pub(super) body: String,
    /// The first 10 hex digits of the SHA-256 of `body`.
    pub(super) version: String,
    /// `/static/{name}?v={version}`: what pages (and modules) link to.
    url: String,
}

impl Asset {
    fn new(name: String, content_type: &'static str, body: String) -> Asset {
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

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

// `CLIENT_MODULES`: every `static/js/*.js` as (file name, source), listed by build.rs.
include!(concat!(env!("OUT_DIR"), "/static_js.rs"));

/// Every static file: the stylesheet and the client's modules.
pub(super) static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let mut assets = vec![Asset::new(
        "style.css".to_owned(),
        "text/css; charset=utf-8",
        include_str!("../../static/style.css").to_owned(),
    )];
    assets.extend(link_modules(CLIENT_MODULES));
    assets
});

/// The static file at `static/{name}`, if there is one.
pub(super) fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// The versioned URL of a static file, for templates: `asset_url("js/room-page.js")`.
pub fn asset_url(name: &str) -> &'static str {
    asset(name)
        .map(|asset| asset.url.as_str())
        .unwrap_or_else(|| panic!("no static file {name}"))
}

// Cache busting for the client's ES modules (no build step). A browser caches a module by
// its URL, and a module names its imports' URLs. A plain `./dom.js` could only be cached
// briefly (it changes at a deploy), so every page would revalidate every module and could
// run a new one with an old one; and a versioned URL would not do either if a module's
// version hashed its own text only: after `dom.js` changed, its unchanged importers would
// go on naming the old version. So each module's `"./x.js"` specifiers are rewritten here,
// once at startup, to the imported module's versioned URL `/static/js/x.js?v=HASH`, and a
// module's version is the hash of that rewritten text: a change to any module changes the
// URL of every module that imports it, directly or not, up to the pages' entries. Hence
// modules are linked imports first, and an import cycle is refused (its hashes would have
// no fixed point).
//
// Not an import map: that is an inline script, which the CSP refuses unless its hash joins
// `script-src` (one more thing to keep in step), and the page would list every module.
// Rewriting keeps the policy at `script-src 'self'` and each module a file of its own.

/// Links the client's modules (file name, source): see above. In dependency order.
fn link_modules(sources: &[(&str, &str)]) -> Vec<Asset> {
    let mut linked = Vec::with_capacity(sources.len());
    for (name, _) in sources {
        link(name, sources, &mut linked, &mut Vec::new());
    }
    linked
}

/// The versioned URL of module `name`, linking it first (its imports before it) unless it
/// is linked already. `importers` is the chain of imports that led here, for cycles.
fn link(
    name: &str,
    sources: &[(&str, &str)],
    linked: &mut Vec<Asset>,
    importers: &mut Vec<String>,
) -> String {
    let path = format!("js/{name}");
    if let Some(asset) = linked.iter().find(|asset| asset.name == path) {
        return asset.url.clone();
    }
    assert!(
        !importers.iter().any(|importer| importer == name),
        "static/js: an import cycle, {} → {name}",
        importers.join(" → ")
    );
    let Some((_, source)) = sources.iter().find(|(file, _)| *file == name) else {
        panic!(
            "static/js/{}: imports ./{name}, which is not in static/js",
            importers.last().map_or("?", String::as_str)
        );
    };
    importers.push(name.to_owned());
    let mut body = String::with_capacity(source.len());
    let mut copied = 0;
    for specifier in relative_imports(source) {
        body += &source[copied..specifier.start];
        // "./x.js" is file x.js.
        body += &link(
            &source[specifier.start + 2..specifier.end],
            sources,
            linked,
            importers,
        );
        copied = specifier.end;
    }
    body += &source[copied..];
    importers.pop();
    let asset = Asset::new(path, JAVASCRIPT, body);
    let url = asset.url.clone();
    linked.push(asset);
    url
}

/// Where `source` names another module as `"./x.js"`: in `from "./x.js"` (an import or a
/// re-export), `import "./x.js"` or `import("./x.js")`, with either quote. The byte ranges
/// of those specifiers, without their quotes, in order. Other specifiers are left as they
/// are (a browser refuses bare ones; the tests refuse any that is not served).
fn relative_imports(source: &str) -> Vec<Range<usize>> {
    let bytes = source.as_bytes();
    let skip_space = |mut at: usize| {
        while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        at
    };
    let mut found = Vec::new();
    for keyword in ["from", "import"] {
        for (at, _) in source.match_indices(keyword) {
            // A word of its own: not `Array.fromAsync`, not `reimport`.
            let identifier = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$';
            if at > 0 && identifier(&bytes[at - 1]) {
                continue;
            }
            let mut quote_at = skip_space(at + keyword.len());
            if keyword == "import" && bytes.get(quote_at) == Some(&b'(') {
                quote_at = skip_space(quote_at + 1);
            }
            let Some(&quote @ (b'"' | b'\'')) = bytes.get(quote_at) else {
                continue;
            };
            let start = quote_at + 1;
            let Some(len) = source[start..].find(char::from(quote)) else {
                continue;
            };
            if source[start..start + len].starts_with("./") {
                found.push(start..start + len);
            }
        }
    }
    found.sort_by_key(|specifier| specifier.start);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linked<'a>(modules: &'a [Asset], name: &str) -> &'a Asset {
        let path = format!("js/{name}");
        modules.iter().find(|m| m.name == path).unwrap()
    }

    #[test]
    fn a_dm_is_shown_by_the_other_persons_name() {
        assert_eq!(dm_partner("alice", "alice, bob"), "bob");
        assert_eq!(dm_partner("bob", "alice, bob"), "alice");
        assert_eq!(dm_partner("Bob", "alice, bob"), "alice");
    }

    #[test]
    fn a_module_imports_the_versioned_urls_of_the_modules_it_names() {
        let modules = link_modules(&[
            ("page.js", "import { el } from \"./dom.js\";\nel();\n"),
            ("dom.js", "export function el() {}\n"),
        ]);
        let dom = linked(&modules, "dom.js");
        assert_eq!(dom.body, "export function el() {}\n");
        assert_eq!(dom.url, format!("/static/js/dom.js?v={}", dom.version));
        assert_eq!(
            linked(&modules, "page.js").body,
            format!("import {{ el }} from \"{}\";\nel();\n", dom.url)
        );
    }

    #[test]
    fn changing_a_module_changes_the_url_of_everything_that_imports_it() {
        let graph = |leaf: &'static str| {
            link_modules(&[
                ("page.js", "import \"./list.js\";\nimport \"./other.js\";\n"),
                ("list.js", "export * from './leaf.js';\n"),
                ("leaf.js", leaf),
                ("other.js", "export const other = 1;\n"),
            ])
        };
        let before = graph("export const x = 1;\n");
        let after = graph("export const x = 2;\n");
        for name in ["leaf.js", "list.js", "page.js"] {
            assert_ne!(
                linked(&before, name).url,
                linked(&after, name).url,
                "{name}"
            );
        }
        assert_eq!(
            linked(&before, "other.js").url,
            linked(&after, "other.js").url
        );
    }

    #[test]
    fn every_form_of_relative_import_is_found() {
        let source = "import a from \"./a.js\";\nimport { b,\n  c } from './b.js';\n\
            import \"./c.js\";\nexport { d } from \"./d.js\";\nimport(\"./e.js\");\n\
            import( './f.js' );\nimport x from\"./g.js\";\n\
            // A comment is not told apart: this from \"./h.js\" is taken as an import.\n\
            Array.from(\"./i.js\"); reimport \"./j.js\"; fromage \"./k.js\";\n\
            import bare from \"lib\";\n";
        let found: Vec<&str> = relative_imports(source)
            .into_iter()
            .map(|specifier| &source[specifier])
            .collect();
        assert_eq!(
            found,
            ["./a.js", "./b.js", "./c.js", "./d.js", "./e.js", "./f.js", "./g.js", "./h.js"]
        );
    }

    #[test]
    #[should_panic(expected = "static/js/page.js: imports ./gone.js, which is not in static/js")]
    fn importing_a_module_that_is_not_there_is_refused() {
        link_modules(&[("page.js", "import \"./gone.js\";\n")]);
    }

    #[test]
    #[should_panic(expected = "an import cycle, a.js → b.js → a.js")]
    fn an_import_cycle_is_refused() {
        link_modules(&[
            ("a.js", "import \"./b.js\";\n"),
            ("b.js", "import \"./a.js\";\n"),
        ]);
    }

    #[test]
    fn every_client_module_is_served_as_javascript_importing_only_served_urls() {
        assert!(!CLIENT_MODULES.is_empty());
        for (file, _) in CLIENT_MODULES {
            let module = asset(&format!("js/{file}")).unwrap();
            assert_eq!(module.content_type, "text/javascript; charset=utf-8");
            assert_eq!(asset_url(&module.name), module.url);
            let digest: String = Sha256::digest(module.body.as_bytes())[..5]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(module.version, digest, "{file}");
            assert!(relative_imports(&module.body).is_empty(), "{file}");
            for import in module.body.split("\"/static/").skip(1) {
                let url = format!("/static/{}", import.split('"').next().unwrap());
                assert!(ASSETS.iter().any(|a| a.url == url), "{file}: {url}");
            }
        }
    }
}
