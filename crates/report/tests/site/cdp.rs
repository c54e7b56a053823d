//! A minimal Chrome DevTools Protocol client over a WebSocket: enough to load
//! pages in headless Chromium, evaluate JavaScript, collect console errors and
//! take screenshots.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Debian's chromium, or `$CHROMIUM`.
pub fn chromium_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
    ws_path: String,
}

impl Browser {
    pub fn launch() -> Browser {
        let exe = chromium_path().expect(
            "chromium not found: scripts/test.sh setup installs Debian's chromium (or set CHROMIUM)",
        );
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--window-size=1400,900",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        // Chromium writes the port it chose into DevToolsActivePort.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, ws_path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let [p, path] = text.lines().collect::<Vec<_>>()[..]
                && let Ok(p) = p.trim().parse()
            {
                break (p, path.trim().to_string());
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Browser {
            child,
            _profile: profile,
            port,
            ws_path,
        }
    }

    /// Opens a new tab and attaches to it.
    pub fn new_page(&self) -> Page {
        let browser_ws = format!("ws://127.0.0.1:{}{}", self.port, self.ws_path);
        let mut b = Conn::connect(&browser_ws);
        let r = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = r["targetId"].as_str().expect("targetId").to_string();
        let mut conn = Conn::connect(&format!(
            "ws://127.0.0.1:{}/devtools/page/{target}",
            self.port
        ));
        conn.call("Runtime.enable", json!({}));
        conn.call("Log.enable", json!({}));
        conn.call("Page.enable", json!({}));
        conn.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        Page { conn }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: Vec<Value>,
}

impl Conn {
    fn connect(url: &str) -> Conn {
        let hostport = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = TcpStream::connect(&hostport).expect("connect devtools ws");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (ws, _) = tungstenite::client(url, stream).expect("websocket handshake");
        Conn {
            ws,
            next_id: 1,
            events: Vec::new(),
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, &params) {
            Ok(v) => v,
            Err(err) => panic!("{method} failed: {err}"),
        }
    }

    /// A call whose error reply is returned (e.g. while a page navigates).
    fn try_call(&mut self, method: &str, params: &Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).expect("send cdp");
        loop {
            let m = match self.ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    panic!("timed out waiting for {method}")
                }
                Err(e) => panic!("reading cdp reply to {method}: {e}"),
            };
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("cdp json");
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    return Err(err.clone());
                }
                return Ok(v["result"].clone());
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }
}

pub struct Page {
    conn: Conn,
}

impl Page {
    /// Navigates and waits for the load to complete.
    pub fn goto(&mut self, url: &str) {
        self.conn.call("Page.navigate", json!({"url": url}));
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'");
    }

    /// Evaluates an expression (promises are awaited) and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.conn.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating {expr}: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Runs a statement that navigates away (a click on a link) after this
    /// call has returned, so the navigation cannot cut the call short.
    pub fn navigate_by(&mut self, stmt: &str) {
        self.eval(&format!("setTimeout(() => {{ {stmt} }}, 0), true"));
    }

    /// Polls an expression until it is truthy (30 s at most).
    pub fn wait_for(&mut self, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Errors while a navigation replaces the page are retried.
            let v = self.conn.try_call(
                "Runtime.evaluate",
                &json!({"expression": format!("!!({expr})"), "returnByValue": true}),
            );
            if v.is_ok_and(|v| v["result"]["value"] == json!(true)) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {expr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Console errors, uncaught exceptions and failed loads seen so far.
    pub fn errors(&mut self) -> Vec<String> {
        // A round trip flushes pending events.
        self.conn
            .call("Runtime.evaluate", json!({"expression": "1"}));
        let mut out = Vec::new();
        for e in &self.conn.events {
            let p = &e["params"];
            match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    out.push(format!("exception: {}", p["exceptionDetails"]))
                }
                Some("Runtime.consoleAPICalled")
                    if matches!(p["type"].as_str(), Some("error" | "assert")) =>
                {
                    out.push(format!("console.{}: {}", p["type"], p["args"]))
                }
                Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                    out.push(format!("log: {}", p["entry"]["text"]))
                }
                _ => {}
            }
        }
        out
    }

    pub fn screenshot(&mut self, path: &Path) {
        let r = self
            .conn
            .call("Page.captureScreenshot", json!({"format": "png"}));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("png data"))
            .expect("base64 png");
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }
}
