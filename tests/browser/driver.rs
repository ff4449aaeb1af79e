//! A headless Chromium driven over WebDriver: one `chromedriver` per test (started on a
//! free port, in a process group of its own so that it and every browser it started die
//! with the test, even one that panics), and one browser per [`Browser`] session, each
//! with its own profile (cookies), so two sessions are two independent people. Profiles
//! and the browsers' temporary files live in one directory, deleted with the driver.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use natter_test_support::{missing_service, TestApp, PASSWORD};

/// How long a condition on the page may take. Polled, never slept: most take milliseconds;
/// the bound is generous because browsers share two CPUs with the servers in CI.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

const WINDOW: (u32, u32) = (1200, 800);

pub struct Driver {
    process: Child,
    url: String,
    /// `TMPDIR` of chromedriver and its browsers, and their profiles.
    scratch: tempfile::TempDir,
    profiles: std::sync::atomic::AtomicUsize,
}

impl Driver {
    /// A chromedriver for `CHROME` (browser tests are `#[ignore = "needs CHROME"]`,
    /// which CI runs with `--include-ignored`).
    pub async fn start() -> Driver {
        Driver::start_with(&[]).await
    }

    /// As [`Driver::start`], with environment variables for the browsers (e.g. `TZ`).
    pub async fn start_with(env: &[(&str, &str)]) -> Driver {
        if std::env::var_os("CHROME").is_none() {
            missing_service("Chromium (CHROME)");
        }
        let program =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        // The port is free when we look; if something takes it first, try another.
        for _ in 0..5 {
            let scratch = tempfile::tempdir().expect("scratch dir");
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let process = Command::new(&program)
                .arg(format!("--port={port}"))
                .env("TMPDIR", scratch.path())
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {program}: {e}"));
            let mut driver = Driver {
                process,
                url: format!("http://127.0.0.1:{port}"),
                scratch,
                profiles: Default::default(),
            };
            if driver.ready().await {
                return driver;
            }
        }
        panic!("{program} did not start");
    }

    /// Waits for `/status` to answer; false if the process exited (port taken).
    async fn ready(&mut self) -> bool {
        let deadline = Instant::now() + PAGE_WAIT;
        while Instant::now() < deadline {
            if self.process.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Ok(response) = reqwest::get(format!("{}/status", self.url)).await {
                if response.status().is_success() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// A new browser, with a fresh profile.
    pub async fn browser(&self) -> Browser {
        let n = self
            .profiles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = self.scratch.path().join(format!("profile-{n}"));
        let chrome = std::env::var("CHROME").expect("CHROME");
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chrome, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a browser session");
        Browser { client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the browsers it started share its process group.
        let group = self.process.id() as libc::pid_t;
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.process.wait();
        // `scratch` is deleted next, now that nothing writes to it.
    }
}

pub struct Browser {
    pub client: Client,
}

impl Browser {
    pub async fn goto(&self, app: &TestApp, path: &str) {
        self.client.goto(&app.url(path)).await.expect("navigate");
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something other than null/false/""/0 and
    /// returns that; fails after [`PAGE_WAIT`] with what the page showed.
    pub async fn wait_for(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let value = self.js(script, args.clone()).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let text = self.js("return document.body.innerText", vec![]).await;
                panic!(
                    "waited {PAGE_WAIT:?} for {what}; last value {value}; the page said:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn fill(&self, selector: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Presses keys as a keyboard would, into whatever has the focus. `Key::Shift` etc. are
    /// held until the end of `keys`.
    pub async fn press(&self, keys: &[char]) {
        let modifiers = [
            char::from(Key::Shift),
            char::from(Key::Control),
            char::from(Key::Alt),
        ];
        let mut actions = KeyActions::new("keyboard".into());
        let mut held = Vec::new();
        for &key in keys {
            actions = actions.then(KeyAction::Down { value: key });
            if modifiers.contains(&key) {
                held.push(key);
            } else {
                actions = actions.then(KeyAction::Up { value: key });
            }
        }
        for key in held.into_iter().rev() {
            actions = actions.then(KeyAction::Up { value: key });
        }
        self.client.perform_actions(actions).await.expect("keys");
    }

    /// Types `text` and presses Enter, with the keyboard, into what has the focus.
    pub async fn type_line(&self, text: &str) {
        let mut keys: Vec<char> = text.chars().collect();
        keys.push(Key::Enter.into());
        self.press(&keys).await;
    }

    /// Registers `name` through the form; the browser is then signed in, on the room list.
    pub async fn register(&self, app: &TestApp, name: &str) {
        self.goto(app, "/register").await;
        self.fill("input[name=username]", name).await;
        self.fill("input[name=password]", PASSWORD).await;
        self.fill("input[name=password_confirm]", PASSWORD).await;
        self.click("form[action='/register'] button[type=submit]")
            .await;
        self.wait_for(
            "the room list after registering",
            "return location.pathname === '/' && document.getElementById('room-list') !== null",
            vec![],
        )
        .await;
    }

    /// Creates or joins `name` through the room list's form; waits until the room is live.
    pub async fn enter_room(&self, name: &str) {
        self.fill("#room-name", name).await;
        self.click("#create-room button[type=submit]").await;
        self.wait_connected().await;
    }

    pub async fn wait_connected(&self) {
        self.wait_for(
            "the room to be connected",
            "const s = document.getElementById('conn-state'); \
             return s !== null && s.classList.contains('ok')",
            vec![],
        )
        .await;
    }

    /// The stored messages on the page, in page order: `(seq, user, body)`.
    pub async fn messages(&self) -> Vec<(i64, String, String)> {
        let value = self
            .js(
                "return [...document.querySelectorAll('#messages > li')].map(li => \
                 [Number(li.dataset.seq), li.dataset.user, li.querySelector('.body').textContent])",
                vec![],
            )
            .await;
        serde_json::from_value(value).expect("messages")
    }

    /// Waits until the page shows a stored message with this body (and nothing pending).
    pub async fn wait_message(&self, body: &str) {
        self.wait_for(
            &format!("the message {body:?}"),
            "return [...document.querySelectorAll('#messages .body')] \
                 .some(b => b.textContent === arguments[0]) \
             && document.querySelectorAll('#outbox > li').length === 0",
            vec![json!(body)],
        )
        .await;
    }

    /// Sends a message with the keyboard (the message box has the focus) and waits until
    /// it is stored and shown.
    pub async fn say(&self, body: &str) {
        self.js("document.getElementById('body').focus()", vec![])
            .await;
        self.type_line(body).await;
        self.wait_message(body).await;
    }

    /// Saves a screenshot of the window to `docs/screenshots/{name}`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
