//! CONTRACT §9: private rooms, DMs, members and roles, removals, bans, the room-creation
//! limit, and the invisibility of a room to those not in it.

use reqwest::Method;
use serde_json::{json, Value};

use natter_test_support::{TestApp, TestUser};

/// The `error.code` of an answer, or `""`.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn private_room(owner: &TestUser, name: &str) -> String {
    let (status, body) = owner
        .post_json("/api/rooms", &json!({"name": name, "private": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["room"]["slug"].as_str().unwrap().to_owned()
}

async fn add(actor: &TestUser, slug: &str, username: &str) -> (u16, Value) {
    let path = format!("/api/rooms/{slug}/members");
    actor
        .post_json(&path, &json!({ "username": username }))
        .await
}

async fn set_role(actor: &TestUser, slug: &str, username: &str, role: &str) -> (u16, Value) {
    let path = format!("/api/rooms/{slug}/members/{username}");
    let body = json!({ "role": role });
    actor.call(Method::PUT, &path, Some(&body)).await
}

async fn remove(actor: &TestUser, slug: &str, username: &str) -> (u16, Value) {
    let path = format!("/api/rooms/{slug}/members/{username}");
    actor.call(Method::DELETE, &path, None).await
}

async fn ban(actor: &TestUser, slug: &str, username: &str) -> (u16, Value) {
    let path = format!("/api/rooms/{slug}/bans/{username}");
    actor.call(Method::PUT, &path, None).await
}

async fn members(user: &TestUser, slug: &str) -> Vec<(String, String)> {
    let (status, body) = user
        .call(Method::GET, &format!("/api/rooms/{slug}/members"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The caller's entry for `slug` in `GET /api/rooms` (with `query`), if listed.
async fn listed(user: &TestUser, query: &str, slug: &str) -> Option<Value> {
    let list = user.get_json(&format!("/api/rooms{query}")).await;
    list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|room| room["slug"] == slug)
        .cloned()
}

/// Every way in to a room, for someone it must not exist for: each answers 404.
async fn assert_invisible(user: &TestUser, slug: &str) {
    for path in [
        format!("/api/rooms/{slug}/messages"),
        format!("/api/rooms/{slug}/members"),
        format!("/api/rooms/{slug}/bans"),
    ] {
        let (status, body) = user.call(Method::GET, &path, None).await;
        assert_eq!((status, code(&body)), (404, "room_not_found"), "{path}");
    }
    let (status, body) = add(user, slug, "nobody").await;
    assert_eq!((status, code(&body)), (404, "room_not_found"));
    let page = user
        .client
        .get(user.url(&format!("/rooms/{slug}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let upgrade = user.open(&format!("/ws/rooms/{slug}"), None).await;
    assert_eq!(upgrade.err(), Some(404));
    assert_eq!(listed(user, "", slug).await, None);
}

async fn a_private_room_exists_only_for_its_members() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = private_room(&alice, "Secret plans").await;
    assert!(
        slug.starts_with("p--") && !slug.contains("secret"),
        "{slug}"
    );
    let mut alice_ws = alice.connect(&slug).await;
    let said = alice_ws.say("before bob was added", "c1").await;
    assert_eq!(said["type"], "ack", "{said}");

    assert_invisible(&bob, &slug).await;
    // The same name made public is another room, which reveals nothing.
    let (status, made) = bob
        .post_json("/api/rooms", &json!({"name": "Secret plans"}))
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["room"]["slug"], "secret-plans");

    assert_eq!(add(&alice, &slug, "bob").await.0, 204);
    assert_eq!(add(&alice, &slug, "BOB").await.0, 204, "already a member");
    let entry = listed(&bob, "", &slug)
        .await
        .expect("bob now sees the room");
    assert_eq!(
        (&entry["kind"], &entry["member"], &entry["role"]),
        (&json!("private"), &json!(true), &json!("member"))
    );
    // A member sees what was said before they came.
    let history = bob.get_json(&format!("/api/rooms/{slug}/messages")).await;
    assert_eq!(history["messages"][0]["body"], "before bob was added");
    let online = |list: Value| -> Vec<(String, bool)> {
        list["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["username"].as_str().unwrap().to_owned(),
                    m["online"] == true,
                )
            })
            .collect()
    };
    let members_path = format!("/api/rooms/{slug}/members");
    assert_eq!(
        online(bob.get_json(&members_path).await),
        [("alice".into(), true), ("bob".into(), false)]
    );
    let mut bob_ws = bob.connect(&slug).await;
    assert_eq!(
        online(bob.get_json(&members_path).await),
        [("alice".into(), true), ("bob".into(), true)]
    );
    assert_eq!(
        bob_ws.history.as_ref().unwrap()["messages"][0]["body"],
        "before bob was added"
    );
    assert_eq!(
        members(&bob, &slug).await,
        [
            ("alice".into(), "owner".into()),
            ("bob".into(), "member".into())
        ]
    );
    let said = bob_ws.say("hi", "b1").await;
    assert_eq!(said["type"], "ack", "{said}");
}

async fn the_room_list_says_what_the_caller_is_and_can_list_only_their_rooms() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mine = alice.create_room("Mine").await;
    let theirs = bob.create_room("Theirs").await;
    let secret = private_room(&alice, "Hidden").await;

    let entry = listed(&alice, "", &mine).await.unwrap();
    assert_eq!(
        (&entry["kind"], &entry["member"], &entry["role"]),
        (&json!("public"), &json!(true), &json!("owner"))
    );
    let entry = listed(&alice, "", &theirs).await.unwrap();
    assert_eq!(
        (&entry["member"], &entry["role"]),
        (&json!(false), &Value::Null)
    );
    assert!(listed(&alice, "", &secret).await.is_some());

    let only_mine = alice.get_json("/api/rooms?member=true").await;
    let mut slugs: Vec<&str> = only_mine["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| room["slug"].as_str().unwrap())
        .collect();
    slugs.sort_unstable();
    let mut expected = [mine.as_str(), secret.as_str()];
    expected.sort_unstable();
    assert_eq!(slugs, expected);

    // The browse page's list: public rooms only, with the caller's role.
    let public = alice.get_json("/api/rooms?kind=public").await;
    let mut slugs: Vec<(&str, &Value)> = public["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| (room["slug"].as_str().unwrap(), &room["role"]))
        .collect();
    slugs.sort_unstable_by_key(|(slug, _)| *slug);
    let mut expected = [
        (mine.as_str(), &json!("owner")),
        (theirs.as_str(), &Value::Null),
    ];
    expected.sort_unstable_by_key(|(slug, _)| *slug);
    assert_eq!(slugs, expected);

    // Opening a public room's socket makes one a member.
    bob.connect(&mine).await;
    assert!(listed(&bob, "?member=true", &mine).await.is_some());

    for refused in [
        "/api/rooms?member=maybe",
        "/api/rooms?kind=private",
        "/api/rooms?member=true&kind=public",
    ] {
        let (status, body) = alice.call(Method::GET, refused, None).await;
        assert_eq!((status, code(&body)), (400, "invalid_request"), "{refused}");
    }
}

async fn a_dm_is_one_room_for_the_pair_whoever_opens_it() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("carol").await;

    let (status, first) = alice
        .post_json("/api/dms", &json!({"username": "bob"}))
        .await;
    assert_eq!(status, 201, "{first}");
    let slug = first["room"]["slug"].as_str().unwrap().to_owned();
    assert_eq!(
        (&first["room"]["kind"], &first["room"]["name"]),
        (&json!("dm"), &json!("Bob, alice"))
    );
    let (status, again) = bob
        .post_json("/api/dms", &json!({"username": "ALICE"}))
        .await;
    assert_eq!((status, &again["room"]), (200, &first["room"]));
    let (status, again) = alice
        .post_json("/api/dms", &json!({"username": "bob"}))
        .await;
    assert_eq!((status, &again["room"]), (200, &first["room"]));

    let entry = listed(&bob, "?member=true", &slug).await.unwrap();
    assert_eq!(
        (&entry["kind"], &entry["member"]),
        (&json!("dm"), &json!(true))
    );
    assert_eq!(
        members(&alice, &slug).await,
        [
            ("Bob".into(), "member".into()),
            ("alice".into(), "member".into())
        ]
    );
    assert_invisible(&carol, &slug).await;

    let (status, body) = alice
        .post_json("/api/dms", &json!({"username": "Alice"}))
        .await;
    assert_eq!((status, code(&body)), (400, "invalid_target"));
    let (status, body) = alice
        .post_json("/api/dms", &json!({"username": "nobody"}))
        .await;
    assert_eq!((status, code(&body)), (404, "unknown_user"));
    let (status, body) = alice.post_json("/api/dms", &json!({"user": "bob"})).await;
    assert_eq!((status, code(&body)), (400, "invalid_request"));

    // A DM keeps exactly its two members.
    for (status, body) in [
        add(&alice, &slug, "carol").await,
        set_role(&alice, &slug, "bob", "moderator").await,
        remove(&alice, &slug, "bob").await,
        remove(&alice, &slug, "alice").await,
        ban(&alice, &slug, "bob").await,
    ] {
        assert_eq!((status, code(&body)), (400, "not_allowed_in_dm"), "{body}");
    }
    assert_eq!(members(&bob, &slug).await.len(), 2);
}

async fn roles_decide_who_manages_members() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    app.user("dave").await;
    let slug = private_room(&alice, "Team").await;
    assert_eq!(add(&alice, &slug, "bob").await.0, 204);

    // A member of a private room adds no one and gives no roles.
    let (status, body) = add(&bob, &slug, "carol").await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = set_role(&bob, &slug, "bob", "moderator").await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = remove(&bob, &slug, "alice").await;
    assert_eq!((status, code(&body)), (403, "forbidden"));

    assert_eq!(set_role(&alice, &slug, "bob", "moderator").await.0, 204);
    assert_eq!(add(&bob, &slug, "carol").await.0, 204);
    assert_eq!(add(&bob, &slug, "dave").await.0, 204);
    assert_eq!(
        members(&carol, &slug).await,
        [
            ("alice".into(), "owner".into()),
            ("bob".into(), "moderator".into()),
            ("carol".into(), "member".into()),
            ("dave".into(), "member".into()),
        ]
    );
    // Roles are the owner's to give, and only these two.
    let (status, body) = set_role(&bob, &slug, "carol", "moderator").await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    for role in ["owner", "admin", ""] {
        let (status, body) = set_role(&alice, &slug, "carol", role).await;
        assert_eq!((status, code(&body)), (400, "invalid_role"), "{role}");
    }
    let (status, body) = set_role(&alice, &slug, "nobody", "member").await;
    assert_eq!((status, code(&body)), (404, "unknown_user"));
    let (status, body) = set_role(&alice, &slug, "alice", "member").await;
    assert_eq!((status, code(&body)), (400, "invalid_target"));

    // A moderator removes members, not another moderator, never the owner.
    assert_eq!(set_role(&alice, &slug, "dave", "moderator").await.0, 204);
    let (status, body) = remove(&bob, &slug, "dave").await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = remove(&bob, &slug, "alice").await;
    assert_eq!((status, code(&body)), (400, "invalid_target"));
    let (status, body) = remove(&bob, &slug, "nobody").await;
    assert_eq!((status, code(&body)), (404, "unknown_user"));
    assert_eq!(remove(&bob, &slug, "carol").await.0, 204);
    assert_invisible(&carol, &slug).await;
    assert_eq!(
        remove(&alice, &slug, "dave").await.0,
        204,
        "the owner removes a moderator"
    );

    // The owner stays while others remain; a member leaves.
    let (status, body) = remove(&alice, &slug, "alice").await;
    assert_eq!((status, code(&body)), (400, "owner_cannot_leave"));
    assert_eq!(remove(&bob, &slug, "bob").await.0, 204);
    assert_invisible(&bob, &slug).await;
    assert_eq!(
        remove(&alice, &slug, "alice").await.0,
        204,
        "alone, the owner may go"
    );
    assert_invisible(&alice, &slug).await;
}

async fn in_a_public_room_any_member_adds_and_bans_keep_people_out() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let slug = alice.create_room("Lobby").await;
    let (status, body) = add(&bob, &slug, "carol").await;
    assert_eq!(
        (status, code(&body)),
        (403, "forbidden"),
        "not a member yet"
    );
    bob.connect(&slug).await;
    assert_eq!(add(&bob, &slug, "carol").await.0, 204);
    assert!(listed(&carol, "?member=true", &slug).await.is_some());

    let (status, body) = ban(&bob, &slug, "carol").await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = ban(&alice, &slug, "alice").await;
    assert_eq!((status, code(&body)), (400, "invalid_target"));
    assert_eq!(ban(&alice, &slug, "carol").await.0, 204);
    assert_eq!(
        ban(&alice, &slug, "carol").await.0,
        204,
        "banning twice is fine"
    );

    // Banned: the page and socket answer 403, joining and adding answer `banned`.
    let page = carol
        .client
        .get(carol.url(&format!("/rooms/{slug}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    assert_eq!(
        carol.open(&format!("/ws/rooms/{slug}"), None).await.err(),
        Some(403)
    );
    let (status, body) = carol
        .post_json("/api/rooms", &json!({"name": "lobby"}))
        .await;
    assert_eq!((status, code(&body)), (403, "banned"));
    let (status, body) = add(&bob, &slug, "carol").await;
    assert_eq!((status, code(&body)), (403, "banned"));
    let (status, body) = carol
        .call(Method::GET, &format!("/api/rooms/{slug}/messages"), None)
        .await;
    assert_eq!((status, code(&body)), (403, "banned"));
    assert_eq!(listed(&carol, "?member=true", &slug).await, None);

    let (status, body) = bob
        .call(Method::GET, &format!("/api/rooms/{slug}/bans"), None)
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, bans) = alice
        .call(Method::GET, &format!("/api/rooms/{slug}/bans"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&bans["bans"][0]["username"], &bans["bans"][0]["by"]),
        (&json!("carol"), &json!("alice"))
    );
    assert!(
        bans["bans"][0]["at"].as_str().unwrap().ends_with('Z'),
        "{bans}"
    );

    let unban = format!("/api/rooms/{slug}/bans/carol");
    assert_eq!(alice.call(Method::DELETE, &unban, None).await.0, 204);
    assert_eq!(alice.call(Method::DELETE, &unban, None).await.0, 204);
    carol.connect(&slug).await;
}

async fn removal_and_ban_close_the_members_sockets_with_4403() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("Watched").await;
    let other = alice.create_room("Elsewhere").await;
    let mut bob_here = bob.connect(&slug).await;
    let mut bob_again = bob.connect(&slug).await;
    let mut bob_elsewhere = bob.connect(&other).await;
    let mut alice_ws = alice.connect(&slug).await;

    assert_eq!(remove(&alice, &slug, "bob").await.0, 204);
    assert_eq!(bob_here.closed().await, Some(4403));
    assert_eq!(bob_again.closed().await, Some(4403));
    // Nothing else closed: bob's other room, alice's socket.
    assert_eq!(alice_ws.say("still here", "a1").await["type"], "ack");
    assert_eq!(bob_elsewhere.say("me too", "b1").await["type"], "ack");

    // Removed from a public room, one may come back; banned, one may not.
    let mut bob_back = bob.connect(&slug).await;
    assert_eq!(ban(&alice, &slug, "bob").await.0, 204);
    assert_eq!(bob_back.closed().await, Some(4403));
    assert_eq!(
        bob.open(&format!("/ws/rooms/{slug}"), None).await.err(),
        Some(403)
    );

    // Leaving closes one's own sockets too.
    let mut alice_elsewhere = alice.connect(&other).await;
    assert_eq!(remove(&alice, &other, "alice").await.0, 204);
    assert_eq!(alice_elsewhere.closed().await, Some(4403));
}

async fn in_a_private_room_a_banned_user_finds_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = private_room(&alice, "Inner circle").await;
    assert_eq!(add(&alice, &slug, "bob").await.0, 204);
    let mut bob_ws = bob.connect(&slug).await;
    assert_eq!(ban(&alice, &slug, "bob").await.0, 204);
    assert_eq!(bob_ws.closed().await, Some(4403));
    assert_invisible(&bob, &slug).await;
    let (status, body) = add(&alice, &slug, "bob").await;
    assert_eq!((status, code(&body)), (403, "banned"));
}

async fn admins_act_as_owners_where_they_may_see() {
    let app = TestApp::spawn_with(&[("ADMIN_USERNAMES", "Root, other")]).await;
    let root = app.user("root").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let public = alice.create_room("Open").await;
    bob.connect(&public).await;
    // In a public room, without being a member.
    assert_eq!(ban(&root, &public, "bob").await.0, 204);
    let (status, body) = root
        .call(Method::GET, &format!("/api/rooms/{public}/bans"), None)
        .await;
    assert_eq!(
        (status, body["bans"][0]["username"].clone()),
        (200, json!("bob"))
    );
    // Not acted on by owners.
    let (status, body) = ban(&alice, &public, "root").await;
    assert_eq!((status, code(&body)), (400, "invalid_target"));
    // A private room they are not in does not exist for them either.
    let private = private_room(&alice, "Private").await;
    assert_invisible(&root, &private).await;
    assert_eq!(add(&alice, &private, "root").await.0, 204);
    assert_eq!(add(&root, &private, "bob").await.0, 204);
    assert_eq!(set_role(&root, &private, "bob", "moderator").await.0, 204);
    let (status, body) = remove(&alice, &private, "root").await;
    assert_eq!((status, code(&body)), (400, "invalid_target"));
}

async fn room_creation_is_limited_and_joining_is_not() {
    let app = TestApp::spawn_with(&[("ROOM_CREATE_LIMIT", "3")]).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let existing = bob.create_room("Existing").await;
    alice.create_room("One").await;
    private_room(&alice, "Two").await;
    let (status, _) = alice
        .post_json("/api/dms", &json!({"username": "bob"}))
        .await;
    assert_eq!(status, 201);

    for (path, body) in [
        ("/api/rooms", json!({"name": "Four"})),
        ("/api/rooms", json!({"name": "Four", "private": true})),
    ] {
        let response = alice
            .client
            .post(alice.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "{body}");
        assert!(response.headers().contains_key("retry-after"));
        let refused: Value = response.json().await.unwrap();
        assert_eq!(code(&refused), "rate_limited");
        assert!(refused["error"]["retry_after_ms"].as_u64().unwrap() > 0);
    }
    let carol = app.user("carol").await;
    let (status, body) = alice
        .post_json("/api/dms", &json!({"username": "carol"}))
        .await;
    assert_eq!((status, code(&body)), (429, "rate_limited"));
    // Nothing was made by the refusals.
    assert_eq!(listed(&alice, "", "four").await, None);

    // Joining is never limited: an existing room, an open DM.
    let (status, _) = alice
        .post_json("/api/rooms", &json!({"name": "existing"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        listed(&alice, "?member=true", &existing).await.unwrap()["role"],
        "member"
    );
    let (status, _) = bob
        .post_json("/api/dms", &json!({"username": "alice"}))
        .await;
    assert_eq!(status, 200);
    // The form says so too, and makes nothing.
    let refused = alice.post_form("/rooms", &[("name", "Five")]).await;
    assert_eq!(refused.status(), 429);
    let (status, _) = carol
        .post_json("/api/rooms", &json!({"name": "Four"}))
        .await;
    assert_eq!(status, 201, "the limit is per user");
}

/// Opening a public room's socket makes one a member, but only a socket that opens.
async fn a_refused_upgrade_makes_no_one_a_member() {
    let app = TestApp::spawn_with(&[("MAX_SOCKETS_PER_USER", "1")]).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = alice.create_room("First").await;
    let second = alice.create_room("Second").await;
    let _open = bob.connect(&first).await;
    assert_eq!(
        bob.open(&format!("/ws/rooms/{second}"), None).await.err(),
        Some(429)
    );
    assert!(listed(&bob, "?member=true", &first).await.is_some());
    assert_eq!(listed(&bob, "?member=true", &second).await, None);
}

async fn bad_input_gets_the_contracts_error_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = private_room(&alice, "Careful").await;
    for ((status, body), expected) in [
        (add(&alice, &slug, "nobody").await, "unknown_user"),
        (add(&alice, &slug, "not a name!").await, "unknown_user"),
        (
            alice
                .post_json(&format!("/api/rooms/{slug}/members"), &json!({"user": "x"}))
                .await,
            "invalid_request",
        ),
        (
            alice
                .post_json(
                    "/api/rooms",
                    &json!({"name": "x".repeat(65), "private": true}),
                )
                .await,
            "invalid_room_name",
        ),
        (
            alice
                .post_json("/api/rooms", &json!({"name": "ok", "private": "yes"}))
                .await,
            "invalid_request",
        ),
    ] {
        assert_eq!(code(&body), expected, "{body}");
        assert!(status == 400 || status == 404, "{status} {body}");
    }
    assert_eq!(
        members(&alice, &slug).await,
        [("alice".into(), "owner".into())]
    );
    let list = alice.get_json("/api/rooms?member=true").await;
    assert_eq!(list["rooms"].as_array().unwrap().len(), 1, "{list}");
}

api_tests!(
    a_private_room_exists_only_for_its_members,
    the_room_list_says_what_the_caller_is_and_can_list_only_their_rooms,
    a_dm_is_one_room_for_the_pair_whoever_opens_it,
    roles_decide_who_manages_members,
    in_a_public_room_any_member_adds_and_bans_keep_people_out,
    removal_and_ban_close_the_members_sockets_with_4403,
    in_a_private_room_a_banned_user_finds_nothing,
    admins_act_as_owners_where_they_may_see,
    room_creation_is_limited_and_joining_is_not,
    a_refused_upgrade_makes_no_one_a_member,
    bad_input_gets_the_contracts_error_and_changes_nothing,
);
