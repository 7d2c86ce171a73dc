//! Starts the real `etax-authz serve --demo` on an ephemeral port with a
//! temporary data directory, and speaks HTTP/1.1 to it over a plain TCP
//! stream. The child is killed when the [`Server`] is dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data: tempfile::TempDir,
}

/// Low argon2 cost for tests only (production default stays OWASP's).
const FAST_HASH: &[&str] = &["--argon2-memory-kib", "256", "--argon2-iterations", "1"];

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().expect("temp dir"), extra)
    }

    /// Imports `doc` (an import document) into a fresh store first; the demo
    /// is then not seeded, since the store is not empty.
    pub fn start_with_document(doc: &Value) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let file = data.path().join("import.json");
        std::fs::write(&file, doc.to_string()).expect("write import file");
        let status = Command::new(env!("CARGO_BIN_EXE_etax-authz"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("import")
            .arg(&file)
            .arg("--data")
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run import");
        assert!(status.success(), "import failed");
        Self::start_in(data, &[])
    }

    fn start_in(data: tempfile::TempDir, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etax-authz"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args(FAST_HASH)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etax-authz");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("etax-authz listening on http://") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!("etax-authz did not report its address in time");
            }
        };
        Server { child, addr, data }
    }

    /// POSTs `body` as JSON; the status and the parsed JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(body))
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut s =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("response");
        let text = String::from_utf8(raw).expect("utf-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let json = serde_json::from_str(body).unwrap_or(Value::Null);
        (status, json)
    }

    /// The decision log file's bytes (to check that no secret was logged).
    pub fn decision_log_bytes(&self) -> Vec<u8> {
        std::fs::read(self.data.path().join("decisions.redb")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
