use natter_test_support::{TestApp, WAIT};

const FROM_STORE: &str = "natter_history_loads_total{source=\"store\"}";
const FROM_CACHE: &str = "natter_history_loads_total{source=\"cache\"}";

async fn the_first_joiner_fills_the_cache_later_joiners_read_it_and_the_last_leaver_empties_it() {
    let app = TestApp::spawn_with(&[("HISTORY_ON_JOIN", "3"), ("CACHE_MESSAGES", "5")]).await;
    let slug = app.user("owner").await.create_room("general").await;
    for i in 0..6 {
        let author = app.user(&format!("author{i}")).await;
        assert_eq!(
            author.connect(&slug).await.say(&format!("m{i}"), "c").await["type"],
            "ack"
        );
    }
    let (store_before, cache_before) = (app.metric(FROM_STORE).await, app.metric(FROM_CACHE).await);

    let alice = app.user("alice").await;
    let first = alice.connect(&slug).await;
    assert_eq!(first.history_seqs(), vec![4, 5, 6]);
    assert_eq!(app.metric(FROM_STORE).await, store_before + 1.0);

    let bob = app.user("bob").await;
    let mut second = bob.connect(&slug).await;
    assert_eq!(second.history_seqs(), vec![4, 5, 6]);
    assert_eq!(app.metric(FROM_CACHE).await, cache_before + 1.0);

    // A message sent while the room is active goes into the cache too.
    assert_eq!(second.say("live", "l").await["type"], "ack");
    let third = app.user("carol").await.connect(&slug).await;
    assert_eq!(third.history_seqs(), vec![5, 6, 7]);
    assert_eq!(app.metric(FROM_CACHE).await, cache_before + 2.0);

    drop((first, second, third));
    // Once everyone has left, the cache is gone: the next joiner reads the store again.
    let store_now = app.metric(FROM_STORE).await;
    let mut rejoined = None;
    for _ in 0..50 {
        let ws = alice.connect(&slug).await;
        if app.metric(FROM_STORE).await == store_now + 1.0 {
            rejoined = Some(ws);
            break;
        }
        // The leaves are still being processed; try again.
        drop(ws);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        rejoined
            .expect("a join after the last leave reads the store")
            .history_seqs(),
        vec![5, 6, 7]
    );
}

async fn simultaneous_joiners_of_a_cold_room_all_get_complete_history() {
    let app = TestApp::spawn_with(&[("HISTORY_ON_JOIN", "4"), ("CACHE_MESSAGES", "8")]).await;
    let owner = app.user("owner").await;
    let slug = owner.create_room("storm").await;
    for i in 0..6 {
        let author = app.user(&format!("author{i}")).await;
        assert_eq!(
            author.connect(&slug).await.say(&format!("m{i}"), "c").await["type"],
            "ack"
        );
    }
    let mut joiners = Vec::new();
    for i in 0..20 {
        joiners.push(app.user(&format!("joiner{i}")).await);
    }
    // The authors' leaves finish in the background; the storm must meet a cold room.
    let started = std::time::Instant::now();
    loop {
        let list = owner.get_json("/api/rooms").await;
        let online = list["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["slug"] == slug.as_str())
            .map(|r| r["online"].as_u64().unwrap());
        if online == Some(0) {
            break;
        }
        assert!(started.elapsed() < WAIT, "the authors never left");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (store_before, cache_before) = (app.metric(FROM_STORE).await, app.metric(FROM_CACHE).await);

    let joins = joiners.iter().map(|user| user.connect(&slug));
    let sockets = futures_util::future::join_all(joins).await;
    for ws in &sockets {
        assert_eq!(ws.history_seqs(), vec![3, 4, 5, 6]);
    }
    // One joiner filled the cache from the store; the other 19 waited and read the cache.
    assert_eq!(app.metric(FROM_STORE).await, store_before + 1.0);
    assert_eq!(app.metric(FROM_CACHE).await, cache_before + 19.0);
}

api_tests!(
    the_first_joiner_fills_the_cache_later_joiners_read_it_and_the_last_leaver_empties_it,
    simultaneous_joiners_of_a_cold_room_all_get_complete_history,
);
