//! Starts the real `etax-authz` binary on an ephemeral port over a temporary
//! data directory and speaks HTTP/1.1 to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_etax-authz");
pub const CRATE_ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Low argon2 cost for tests only (production default stays OWASP's).
const FAST_HASH: &[&str] = &["--argon2-memory-kib", "256", "--argon2-iterations", "1"];

pub struct Server {
    pub addr: SocketAddr,
    pub data: PathBuf,
    child: Child,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// `serve --demo` over a fresh temporary data directory.
    pub fn demo() -> Self {
        Self::start(&["--demo"])
    }

    /// `serve --demo` with extra flags.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut args = vec!["--demo"];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// Imports `doc` (an import document) into a fresh store first; the demo
    /// is then not seeded, since the store is not empty.
    pub fn start_with_document(doc: &Value) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let file = tmp.path().join("import.json");
        std::fs::write(&file, doc.to_string()).expect("write import file");
        let (code, out, err) = cli(&[
            "import",
            file.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "import failed: {out}{err}");
        let mut s = Self::start_in(&data, &["--demo"]);
        s._tmp = Some(tmp);
        s
    }

    pub fn start(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let mut s = Self::start_in(&data, extra);
        s._tmp = Some(tmp);
        s
    }

    /// `serve --demo` over an existing data directory (kept by the caller, so
    /// a test can stop the server and start another over the same files).
    pub fn demo_in(data: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--demo"];
        args.extend_from_slice(extra);
        Self::start_in(data, &args)
    }

    /// Starts over an existing data directory (kept by the caller).
    pub fn start_in(data: &Path, extra: &[&str]) -> Self {
        Self::launch(data, extra, "warn", Stdio::inherit())
    }

    /// Starts over `data` with the service's own log at info level written
    /// to `log` (to check what the log shows).
    pub fn start_logging(data: &Path, extra: &[&str], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        Self::launch(data, extra, "info", Stdio::from(file))
    }

    /// Starts over `data` with `env` added to the server's environment.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch_env(data, extra, "warn", Stdio::inherit(), env)
    }

    fn launch(data: &Path, extra: &[&str], level: &str, stderr: Stdio) -> Self {
        Self::launch_env(data, extra, level, stderr, &[])
    }

    fn launch_env(
        data: &Path,
        extra: &[&str],
        level: &str,
        stderr: Stdio,
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(BIN)
            .current_dir(CRATE_ROOT)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(FAST_HASH)
            .args(extra)
            .env("ETAX_LOG", level)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start etax-authz");
        let rx = listening_addr(&mut child);
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("etax-authz did not start listening within 60 s");
            }
        };
        Self {
            addr,
            data: data.to_owned(),
            child,
            _tmp: None,
        }
    }

    /// POSTs and requires 200; the answer.
    pub fn post_ok(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.post(path, body);
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(body.to_string().as_bytes()))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None)
    }

    /// Sends raw bytes as the body.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
        self.request_with(method, path, &[], body)
    }

    /// With extra headers.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let (status, text) = http_with(self.addr, method, path, headers, body);
        let json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON body ({e}): {text}"));
        (status, json)
    }

    /// As `request`, with `Authorization: Bearer {key}` when a key is given
    /// (servers started with `--api-keys`).
    pub fn request_as(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let body = body.map(Value::to_string);
        self.request_with(method, path, &headers, body.as_deref().map(str::as_bytes))
    }

    pub fn authorize(
        &self,
        principal: &str,
        action: &str,
        resource: &str,
        context: Value,
    ) -> Value {
        let (status, body) = self.post(
            "/v1/authorize",
            &serde_json::json!({ "principal": principal, "action": action, "resource": resource, "context": context }),
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The value of a sample in `/metrics`, by name and labels as printed
    /// (`etax_decision_cache_total{result="hit"}`).
    pub fn metric(&self, name: &str) -> u64 {
        let (status, text) = http(self.addr, "GET", "/metrics", None);
        assert_eq!(status, 200, "{text}");
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no sample {name} in {text}"))
            .trim()
            .parse()
            .expect("an integer sample")
    }

    /// The decision log's records as stored, decompressed (to check that no
    /// secret was logged), and every byte of its files besides.
    pub fn decision_log_bytes(&self) -> Vec<u8> {
        decision_log_contents(&self.data)
    }

    /// Sends a signal by name (`"TERM"`, `"HUP"`) to the server process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL: no flush, no clean shutdown (crash tests).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange with `Connection: close`; returns status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
    http_with(addr, method, path, &[], body)
}

pub fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, String) {
    try_http_with(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

/// As `http_with`, but a failed exchange (no connection, no complete HTTP
/// head) is an error rather than a panic: for clients racing a crash.
pub fn try_http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| std::io::Error::new(e.kind(), format!("connect: {e}")))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    // The server may answer (413) before reading a large body: ignore write errors.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = || std::io::Error::other(format!("bad response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

/// One exchange with a JSON answer, as an error rather than a panic when the
/// exchange fails or the body is not JSON (a server killed mid-answer).
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let body = body.map(Value::to_string);
    let (status, text) =
        try_http_with(addr, method, path, &[], body.as_deref().map(str::as_bytes))?;
    let json = serde_json::from_str(&text)
        .map_err(|e| std::io::Error::other(format!("non-JSON body ({e}): {text}")))?;
    Ok((status, json))
}

/// Runs the CLI from the crate root; returns exit code, stdout, stderr.
pub fn cli(args: &[&str]) -> (i32, String, String) {
    cli_with_env(args, &[])
}

// Demo identities (examples/demo.json).
pub const E_SYNCED: &str = "91210102MA0TAX001F";
pub const E_UNSYNCED: &str = "91210200MA0DAL003B";
pub const E_SOCIAL: &str = "91210106MA0BXH0022";
pub const AGENCY: &str = "91210100MA0AGT004B";
pub const P_LEGAL_REP: &str = "resident_id:210102198003124011";
pub const P_FINANCE_HEAD: &str = "resident_id:210102198507263023";
pub const P_CLERK: &str = "resident_id:210102199001015035";
pub const P_INVOICE_BUYER: &str = "resident_id:21010219921111404X";
pub const P_UNVERIFIED_CLERK: &str = "resident_id:210102199505052059";
pub const P_UNSYNCED_LEGAL_REP: &str = "resident_id:210203198808086069";
pub const P_AGENT: &str = "resident_id:210105199303031080";
pub const P_UNVERIFIED_AGENT: &str = "resident_id:210112198709172093";
pub const P_NATURAL: &str = "resident_id:210106199102140105";

pub fn staff(enterprise: &str, person: &str) -> String {
    format!("Staff::\"{enterprise}/{person}\"")
}

pub fn agent(person: &str) -> String {
    format!("AgentStaff::\"{AGENCY}/{person}\"")
}

pub fn enterprise(code: &str) -> String {
    format!("Enterprise::\"{code}\"")
}

pub fn action(name: &str) -> String {
    format!("Action::\"{name}\"")
}

/// Logs in to the synced demo enterprise as the staff member listed with
/// `masked_name` (as the bureau shows it), by SMS code: the session token
/// and the code that was used.
pub fn login_by_sms(server: &Server, masked_name: &str) -> (String, String) {
    let (s, r) = server.post(
        "/v1/login/enterprise",
        &serde_json::json!({ "account": E_SYNCED, "password": "Etax@2026" }),
    );
    assert_eq!(s, 200, "{r}");
    let flow = r["flow"].as_str().unwrap().to_owned();
    let staff = r["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == masked_name)
        .unwrap_or_else(|| panic!("{masked_name} not in {r}"));
    let staff_id = staff["staff_id"].as_str().unwrap().to_owned();
    let (s, c) = server.post(
        "/v1/login/enterprise/code",
        &serde_json::json!({ "flow": flow, "staff": staff_id }),
    );
    assert_eq!(s, 200, "{c}");
    let (s, done) = server.post(
        "/v1/login/enterprise/complete",
        &serde_json::json!({ "flow": flow, "staff": staff_id, "challenge": c["challenge"], "code": c["code"] }),
    );
    assert_eq!(s, 200, "{done}");
    (
        done["session"].as_str().unwrap().to_owned(),
        c["code"].as_str().unwrap().to_owned(),
    )
}

/// `examples/demo.json`, edited: an import document for
/// `Server::start_with_document` or the `import` command.
pub fn demo_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut doc: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{CRATE_ROOT}/examples/demo.json")).unwrap(),
    )
    .unwrap();
    edit(&mut doc);
    doc
}

/// Runs `import` of `doc` into `dir/data` (written to `dir/import.json`
/// first): exit code, stdout, stderr.
pub fn import_document(doc: &Value, dir: &Path) -> (i32, String, String) {
    let file = dir.join("import.json");
    std::fs::write(&file, doc.to_string()).expect("write import file");
    let data = dir.join("data");
    cli(&[
        "import",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ])
}

/// What became of a `serve` started with exactly the given arguments.
pub enum ServeAttempt {
    Listening(Server),
    /// The process ended before listening: exit code and stderr.
    Exited(i32, String),
}

/// The address a started `serve` prints once it listens, read from its
/// stdout on a thread of its own.
fn listening_addr(child: &mut Child) -> mpsc::Receiver<SocketAddr> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(addr) = line.strip_prefix("etax-authz listening on http://") {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
        }
    });
    rx
}

/// Starts `etax-authz serve ARGS` (no `--listen` or `--data` added) and
/// waits until it listens or exits. The caller keeps any directories the
/// arguments name.
pub fn try_serve(args: &[&str]) -> ServeAttempt {
    let mut child = Command::new(BIN)
        .current_dir(CRATE_ROOT)
        .arg("serve")
        .args(FAST_HASH)
        .args(args)
        .env("ETAX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start etax-authz");
    let rx = listening_addr(&mut child);
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => ServeAttempt::Listening(Server {
            addr,
            data: PathBuf::new(),
            child,
            _tmp: None,
        }),
        Err(_) => {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait for etax-authz");
            ServeAttempt::Exited(
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    }
}

/// Sends one complete request and closes the socket `after` that, without
/// reading the answer: a client that hangs up right after sending (spread
/// `after` over clients to hang up at every stage of the server's work).
pub fn send_and_hang_up(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    after: Duration,
) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).expect("send");
    std::thread::sleep(after);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Counts the decision records of `kind` (a prefix, as `audit query
/// --kind`) in a data directory no server holds open.
pub fn count_records(data: &Path, kind: &str) -> usize {
    let (code, out, err) = cli(&[
        "audit",
        "query",
        "--data",
        data.to_str().unwrap(),
        "--kind",
        kind,
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0, "audit query failed: {err}");
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

/// A request carrying a session in `X-Etax-Session`, as staff maintenance
/// takes it.
pub fn with_session(
    server: &Server,
    session: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    server.request_with(
        method,
        path,
        &[("X-Etax-Session", session)],
        body.as_deref().map(str::as_bytes),
    )
}

/// Copies the files (not the subdirectories) of `from` into `to`, creating
/// it: a test's own copy of the policies to edit under a running server.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Every record of the decision log in `data` as its stored JSON line, then
/// the raw bytes of every file of the log (blocks are compressed, so the
/// lines are what a search for a secret must look at). Reads without the
/// lock, so it works while a server runs.
pub fn decision_log_contents(data: &Path) -> Vec<u8> {
    use etax_authz::audit::{scan::Scan, segment, ChainHash, Snapshot};
    let dir = etax_authz::audit::decision_log_path(data);
    let mut out = Vec::new();
    let Ok(layout) = segment::read_layout(&dir) else {
        return out;
    };
    let snap = Snapshot::open(layout, ChainHash::default()).expect("open the log's files");
    for stored in Scan::new(std::sync::Arc::new(snap), 0, None).flatten() {
        out.extend(stored.line());
        out.push(b'\n');
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        out.extend(std::fs::read(entry.path()).unwrap_or_default());
    }
    out
}

/// Copies a data directory, the decision log's directory included.
pub fn copy_data(from: &Path) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(from, dir.path());
    dir
}

/// Rewrites the decision log of a stopped server's `data` as someone who
/// knows the format would: `edit` changes the stored records, which are
/// written back as blocks with valid checksums into one segment (the
/// clean-close head is left as it was).
pub fn rewrite_log(data: &Path, edit: impl FnOnce(&mut Vec<etax_authz::audit::Stored>)) {
    use etax_authz::audit::{scan::Scan, segment, snapshot_at, stored};
    let dir = etax_authz::audit::decision_log_path(data);
    let snap = snapshot_at(&dir).unwrap();
    let mut records: Vec<_> = Scan::new(std::sync::Arc::new(snap), 0, None)
        .map(Result::unwrap)
        .collect();
    edit(&mut records);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("seg-") || name.starts_with("journal-") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let blocks = stored::block_frames(&records);
    std::fs::write(segment::segment_path(&dir, 1), blocks).unwrap();
}

/// Edits one stored record (its hash is left as it was, so the edit shows
/// unless the caller re-hashes).
pub fn edit_record(
    r: &mut etax_authz::audit::Stored,
    edit: impl FnOnce(&mut etax_authz::audit::DecisionRecord),
) {
    let mut record: etax_authz::audit::DecisionRecord = serde_json::from_slice(&r.line()).unwrap();
    edit(&mut record);
    record.hash.clear();
    r.canonical = etax_authz::audit::chain::canonical_bytes(&record);
}

/// Writes an API keys file `dir/keys.json` of `(id, key, scopes)` entries
/// (each key stored as its SHA-256); its path, for `--api-keys`.
pub fn keys_file(dir: &Path, keys: &[(&str, &str, &[&str])]) -> PathBuf {
    use sha2::Digest;
    let entries: Vec<Value> = keys
        .iter()
        .map(|(id, key, scopes)| {
            serde_json::json!({
                "id": id,
                "key_sha256": hex::encode(sha2::Sha256::digest(key.as_bytes())),
                "scopes": scopes,
            })
        })
        .collect();
    let path = dir.join("keys.json");
    std::fs::write(&path, Value::from(entries).to_string()).expect("write keys file");
    path
}

/// A GET with `Authorization: Bearer {key}`: status, the response head (to
/// read headers such as `Retry-After`) and the body.
pub fn get_with_head(addr: SocketAddr, key: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// `audit prune --before 2999-01-01 --min-retention-days 0` on a stopped
/// server's data: every record so far, minutes old, which only an explicit
/// zero minimum retention allows.
pub fn prune_everything(data: &str) -> (i32, String, String) {
    cli(&[
        "audit",
        "prune",
        "--data",
        data,
        "--before",
        "2999-01-01",
        "--min-retention-days",
        "0",
    ])
}

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) on any
/// stream (TCP or a Unix socket) and reads the answer: status, head, body.
pub fn exchange(stream: &mut (impl Read + Write), request: &str) -> (u16, String, String) {
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {text:?}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// A header's value in a response head, by name in any case.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `METHOD path` over TCP with extra headers: status, head, body.
pub fn exchange_tcp(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    exchange(&mut stream, &raw_request(method, path, headers, body))
}

/// A whole HTTP/1.1 request with `Connection: close`.
pub fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status once the process has ended.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().expect("wait for etax-authz")
    }
}
/// `serve ARGS` with extra environment variables (the `--demo` store in a
/// temporary data directory), for tests of what the environment sets.
pub fn serve_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut child = Command::new(BIN)
        .current_dir(CRATE_ROOT)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .args(FAST_HASH)
        .args(args)
        .envs(env.iter().copied())
        .env("ETAX_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start etax-authz");
    let addr = listening_addr(&mut child)
        .recv_timeout(Duration::from_secs(60))
        .expect("etax-authz listens within 60 s");
    Server {
        addr,
        data,
        child,
        _tmp: Some(tmp),
    }
}

/// [`cli`] with extra environment variables.
pub fn cli_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .current_dir(CRATE_ROOT)
        .args(args)
        .envs(env.iter().copied())
        .env("ETAX_LOG", "warn")
        .output()
        .expect("run etax-authz");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `serve --demo` over copies of the bundled policies and schema in `tmp`
/// (which a test may then edit under the running server), with `extra`
/// flags.
pub fn demo_over_copied_policies(tmp: &Path, extra: &[&str]) -> Server {
    let root = Path::new(CRATE_ROOT);
    copy_dir(&root.join("policies"), &tmp.join("policies"));
    let schema = tmp.join("etax.cedarschema");
    std::fs::copy(root.join("schemas/etax.cedarschema"), &schema).unwrap();
    let policies = tmp.join("policies");
    let mut args = vec![
        "--policies",
        policies.to_str().unwrap(),
        "--schema",
        schema.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::demo_in(&tmp.join("data"), &args)
}

/// Polls `done` until it holds (20 s at most).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the cvc5 SMT solver (`CVC5`, else `cvc5` on the PATH) runs here.
/// When it does not, says so loudly: tests that need it skip, and CI
/// installs it so they run there.
pub fn cvc5_present() -> bool {
    let bin = std::env::var("CVC5").unwrap_or_else(|_| "cvc5".into());
    let ok = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "\n!!!!!!!! SKIPPED: the cvc5 SMT solver ({bin}) is not installed; \
             `apt-get install cvc5` or set CVC5 — CI runs this !!!!!!!!\n"
        );
    }
    ok
}
pub mod fleet;
pub mod postgres;

/// The body of `POST /v1/authorize` asking whether `principal` may use the
/// business function `function`.
pub fn use_function(principal: &str, function: &str) -> Value {
    serde_json::json!({
        "principal": principal,
        "action": "Action::\"useFunction\"",
        "resource": format!("Function::\"{function}\""),
    })
}

/// A GET whose answer may be streamed (`Transfer-Encoding: chunked`, as
/// exports are): status and the body put back together. `headers` as in
/// [`http_with`].
pub fn get_streamed(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = &raw[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (status, String::from_utf8_lossy(body).into_owned());
    }
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap().trim(), 16)
            .expect("a hex chunk size");
        if size == 0 {
            return (status, String::from_utf8(out).expect("UTF-8"));
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
}
