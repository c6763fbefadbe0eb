//! Driving the real desktop app in a real WebKit window: tauri-driver + WebKitWebDriver under
//! the X display the tests run on (xvfb-run in CI). Missing prerequisites fail the test.

use super::free_port;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Panics unless a display, tauri-driver and WebKitWebDriver are there.
pub fn require_e2e_prerequisites() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "end-to-end tests need an X display: run them under xvfb-run (scripts/test.sh does)"
    );
    for tool in ["tauri-driver", "WebKitWebDriver", "xdotool"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(found, "end-to-end tests need {tool} on PATH (see .ci/run)");
    }
}

/// The app binary built for these tests.
pub fn app_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tusker"))
}

/// Hands paths to the running app the way the system does (a drop, a file manager): a
/// second launch with the paths, which the running app takes (the window itself cannot name
/// paths).
pub fn hand_over(data_dir: &Path, home: &Path, paths: &[&Path]) {
    let mut second = Command::new(app_bin())
        .args(paths)
        .env("TUSKER_DATA_DIR", data_dir)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = super::wait_for(&mut second, Duration::from_secs(15))
        .expect("the second launch did not hand over and exit");
    assert!(status.success(), "second launch exits cleanly: {status}");
}

/// The processes `pid` started (its threads' children).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether `pid` still runs: not gone, and not a zombie its parent (WebKitWebDriver) has not
/// reaped yet.
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// One launch of the app: tauri-driver (stopped with SIGTERM so it takes WebKitWebDriver
/// down with it) and a WebDriver session on the app's window.
pub struct App {
    driver: Child,
    pub client: Client,
    pub data_dir: PathBuf,
}

impl App {
    /// Launches the app on `data_dir` with a private XDG home (window state, config).
    pub async fn launch(data_dir: &Path, home: &Path, args: &[String]) -> App {
        Self::launch_with_env(data_dir, home, args, &[]).await
    }

    /// [`App::launch`] with more environment for the app (a failpoint, say).
    pub async fn launch_with_env(
        data_dir: &Path,
        home: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> App {
        require_e2e_prerequisites();
        // tauri-driver takes a port of its own (0), found among its sockets. WebKitWebDriver,
        // which it starts at once, needs a port named in advance: if another process took
        // that one in between, WebKitWebDriver does not listen there, and the pair is
        // started again on another.
        let mut tries = 0;
        let (driver, port) = loop {
            tries += 1;
            let native = free_port();
            let mut driver = Command::new("tauri-driver")
                .args(["--port", "0", "--native-port", &native.to_string()])
                .env("TUSKER_DATA_DIR", data_dir)
                .env("XDG_CONFIG_HOME", home.join("config"))
                .env("XDG_DATA_HOME", home.join("data"))
                .env("XDG_CACHE_HOME", home.join("cache"))
                // Benchmarks measure the app as shipped (info); tests want the details.
                .env(
                    "TUSKER_LOG",
                    std::env::var("TUSKER_E2E_LOG").unwrap_or_else(|_| "debug".into()),
                )
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting tauri-driver");
            let port = super::listening_port(&mut driver, "tauri-driver", Duration::from_secs(30));
            let deadline = Instant::now() + Duration::from_secs(10);
            let native_up = loop {
                if children(driver.id())
                    .into_iter()
                    .any(|c| super::listening_ports(c).contains(&native))
                {
                    break true;
                }
                if Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            if native_up {
                break (driver, port);
            }
            super::terminate(&mut driver, Duration::from_secs(5));
            assert!(
                tries < 5,
                "WebKitWebDriver never listened on the port tauri-driver named for it"
            );
        };
        let mut caps = serde_json::Map::new();
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": app_bin(), "args": args }),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            match ClientBuilder::native()
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        App {
            driver,
            client,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Waits for an element matching `css`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> fantoccini::elements::Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return e;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("timed out waiting for {css}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element `locator` finds (it must be there now).
    pub async fn click(&self, locator: Locator<'_>) {
        self.client
            .find(locator)
            .await
            .expect("the element to click")
            .click()
            .await
            .expect("a click");
    }

    /// Does `action` from the menu of the row `row_css` finds, the way a person does: its
    /// actions button, then the menu item.
    pub async fn row_action(&self, row_css: &str, action: &str) {
        self.click(Locator::Css(&format!(
            "{row_css} button[data-action='menu']"
        )))
        .await;
        let item = format!(".menu [role='menuitem'][data-action='{action}']");
        self.wait_for(&item, Duration::from_secs(5)).await;
        self.click(Locator::Css(&item)).await;
    }

    /// Waits until `probe` (a JS expression) is truthy; returns its value.
    pub async fn wait_js(&self, what: &str, expr: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self
                .client
                .execute(&format!("return ({expr});"), vec![])
                .await
                .unwrap_or(serde_json::Value::Null);
            let truthy = match &v {
                serde_json::Value::Null | serde_json::Value::Bool(false) => false,
                serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
                serde_json::Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({expr}): last {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the queue row of the file named `name` satisfies `what` (a JS expression
    /// on the row `r`); returns its value.
    pub async fn wait_row(
        &self,
        what: &str,
        name: &str,
        expr: &str,
        timeout: Duration,
    ) -> serde_json::Value {
        self.wait_js(what, &row_js(name, expr), timeout).await
    }

    /// A PNG of the window. The app paints without GL compositing, and then WebKitWebDriver's
    /// screenshot waits for the next paint, which an idle page never makes: the page repaints a
    /// corner pixel for two seconds meanwhile. Bounded, so a stuck screenshot fails the test.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client
            .execute(
                "const d = document.createElement('div');
                 d.style.cssText = 'position:fixed;right:0;bottom:0;width:1px;height:1px;pointer-events:none';
                 document.body.appendChild(d);
                 let n = 0;
                 const t = setInterval(() => {
                   d.style.opacity = n++ % 2 ? '0.01' : '0.02';
                   if (n > 40) { clearInterval(t); d.remove(); }
                 }, 50);",
                vec![],
            )
            .await
            .expect("nudging the page to paint");
        tokio::time::timeout(Duration::from_secs(20), self.client.screenshot())
            .await
            .expect("WebDriver's screenshot did not come within 20 s")
            .expect("screenshot")
    }

    /// Panics with what the window shows (text, and a screenshot under target/).
    pub async fn fail(&self, msg: &str) -> ! {
        let text = self
            .client
            .execute("return document.body.innerText", vec![])
            .await
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("<no page text: {e}>"));
        let shot = super::target_dir().join("e2e-failure.png");
        if let Ok(Ok(png)) =
            tokio::time::timeout(Duration::from_secs(20), self.client.screenshot()).await
        {
            let _ = std::fs::write(&shot, png);
        }
        panic!("{msg}\nwindow text: {text}\nscreenshot: {}", shot.display());
    }

    /// Calls a shell command the way the UI does (for adding files without a dialog).
    pub async fn invoke(&self, cmd: &str, args: serde_json::Value) -> serde_json::Value {
        self.client
            .execute_async(
                "const [cmd, args, done] = arguments; window.__TAURI_INTERNALS__.invoke(cmd, args).then(r => done({ok: r}), e => done({err: typeof e === 'string' ? e : JSON.stringify(e)}));",
                vec![cmd.into(), args],
            )
            .await
            .expect("invoke")
    }

    /// The pid of this launch's app process (found by its data dir in the environment).
    pub fn app_pid(&self) -> Option<i32> {
        let want = format!("TUSKER_DATA_DIR={}", self.data_dir.display());
        let bin = std::fs::canonicalize(app_bin()).ok()?;
        for entry in std::fs::read_dir("/proc").ok()? {
            let entry = entry.ok()?;
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let exe = std::fs::read_link(entry.path().join("exe")).ok();
            if exe.as_deref() != Some(bin.as_path()) {
                continue;
            }
            let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()) {
                return Some(pid);
            }
        }
        None
    }

    /// Ends the session and stops the driver (WebKitWebDriver kills the app: no quit path
    /// runs; see [`App::quit`] for that).
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.stop_driver();
    }

    /// Quits the app the way a logout or `kill` does (SIGTERM) and waits for it to exit by
    /// itself; fails the test if it is still running after `timeout`.
    pub async fn quit(mut self, timeout: Duration) {
        let pid = self.app_pid().expect("the app is running");
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + timeout;
        while running(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "the app did not quit within {timeout:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.client.clone().close().await;
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        super::terminate(&mut self.driver, Duration::from_secs(10));
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(None) = self.driver.try_wait() {
            self.stop_driver();
        }
        // A test that failed never closed its session: the app may still run, and as the
        // single instance it would swallow the next test's launch. Make sure it is gone.
        if let Some(pid) = self.app_pid() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A JS expression: `what` on the queue row of the file named `name` (`r`), or null.
pub fn row_js(name: &str, what: &str) -> String {
    format!(
        "(() => {{ const r = [...document.querySelectorAll('.row')].find(r => r.querySelector('.name').textContent === {name:?}); return r ? {what} : null; }})()"
    )
}
