//! Real headless Chromium, driven over WebDriver (Debian's `chromium` and `chromium-driver`):
//! one `chromedriver` per test, one browser session (its own profile, so its own cookies and
//! storage) per person in the story, and screenshots at phone and desktop sizes under
//! `target/screenshots/`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use brigade_platform::testing::free_port;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

pub const PHONE: (u32, u32) = (360, 780);
pub const DESKTOP: (u32, u32) = (1366, 900);

/// A running `chromedriver`.
pub struct Driver {
    _process: Child,
    pub url: String,
}

impl Driver {
    /// Starts `chromedriver` on a free port; `None` (and a loud message) when it is not
    /// installed (`apt-get install -y chromium chromium-driver`).
    pub async fn start() -> Option<Self> {
        let port = free_port();
        let process = match Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(process) => process,
            Err(error) => {
                eprintln!("SKIPPED: chromedriver cannot be started ({error}); install chromium and chromium-driver");
                return None;
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Self {
            _process: process,
            url,
        })
    }
}

/// One person's browser.
pub struct Browser {
    pub client: Client,
    base: String,
    size: (u32, u32),
}

pub fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// A new browser window of `size` (phone or desktop), on the gateway at `base`.
    pub async fn open(driver: &Driver, base: &str, size: (u32, u32)) -> Self {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-dev-shm-usage", "--hide-scrollbars", "--autoplay-policy=no-user-gesture-required",
                    format!("--window-size={},{}", size.0, size.1),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        client.set_window_size(size.0, size.1).await.unwrap();
        Self {
            client,
            base: base.to_owned(),
            size,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        url.path().to_owned()
    }

    /// Waits for an element (the page's scripts may still be drawing it).
    pub async fn wait_for(&self, css: &str, within: Duration) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(within)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {within:?}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css, Duration::from_secs(20)).await;
        self.click_element(&element).await;
    }

    /// Clicks as a person would: scrolled to the middle of the screen first, clear of any
    /// fixed bar.
    pub async fn click_element(&self, element: &fantoccini::elements::Element) {
        let arg = serde_json::to_value(element).unwrap();
        self.client
            .execute(
                "arguments[0].scrollIntoView({ block: 'center' });",
                vec![arg],
            )
            .await
            .unwrap();
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click: {e}"));
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css, Duration::from_secs(20)).await;
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    /// The text of the element at `css`. Live pages redraw their fragments: an element found
    /// just before a redraw is gone when read, so it is looked up again (within 20 s).
    pub async fn text(&self, css: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let element = self.wait_for(css, Duration::from_secs(20)).await;
            match element.text().await {
                Ok(text) => return text,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference
                        && std::time::Instant::now() < deadline => {}
                Err(e) => panic!("cannot read the text of {css}: {e}"),
            }
        }
    }

    /// Runs a script in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits until a JavaScript expression is true in the page.
    pub async fn wait_until(&self, expression: &str, within: Duration) {
        let started = Instant::now();
        loop {
            if self.eval(&format!("return Boolean({expression});")).await == Value::Bool(true) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "not true within {within:?}: {expression}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Screenshots the page at phone and desktop widths (`{name}-phone.png`,
    /// `{name}-desktop.png`), then puts the window back as it was.
    pub async fn screenshots(&self, name: &str) {
        for (label, (width, height)) in [("phone", PHONE), ("desktop", DESKTOP)] {
            self.client.set_window_size(width, height).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            self.save(&format!("{name}-{label}")).await;
        }
        self.client
            .set_window_size(self.size.0, self.size.1)
            .await
            .unwrap();
    }

    /// Screenshots the page as it is now (`{name}.png`).
    pub async fn save(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
