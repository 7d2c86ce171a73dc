//! A throwaway PostgreSQL cluster for the fleet tests: `initdb` into a
//! temporary directory, one server on a free loopback port, stopped (and its
//! files removed) on drop. PostgreSQL refuses to run as root, so as root the
//! cluster belongs to the `postgres` user.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The server binaries' directory (Debian installs them off the PATH), or
/// `None` with a loud skip notice when PostgreSQL is not installed. CI
/// installs it (`.ci/run`).
pub fn binaries() -> Option<PathBuf> {
    let from_env = std::env::var_os("PG_BIN").map(PathBuf::from);
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| {
            let mut versions: Vec<PathBuf> = dirs.flatten().map(|d| d.path().join("bin")).collect();
            versions.sort();
            versions.pop()
        });
    let found = from_env
        .or(debian)
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file());
    if found.is_none() {
        eprintln!(
            "\n!!!!!!!! SKIPPED: the PostgreSQL server binaries are not installed; \
             `apt-get install postgresql` or set PG_BIN — CI runs this !!!!!!!!\n"
        );
    }
    found
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `bin/name args…`, as the `postgres` user when we are root.
fn pg_command(bin: &Path, name: &str) -> Command {
    let exe = bin.join(name);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(mut c: Command, what: &str) {
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// A new cluster, running; `None` when PostgreSQL is not installed.
    pub fn start() -> Option<Self> {
        let bin = binaries()?;
        let dir = tempfile::Builder::new()
            .prefix("etax-pg")
            .tempdir()
            .unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["postgres:postgres"]).arg(dir.path());
                    c
                },
                "chown",
            );
        }
        let data = dir.path().join("data");
        let mut initdb = pg_command(&bin, "initdb");
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data);
        run(initdb, "initdb");
        let pg = Self {
            bin,
            port: free_port(),
            dir,
        };
        pg.pg_ctl("start");
        Some(pg)
    }

    fn pg_ctl(&self, verb: &str) {
        let data = self.dir.path().join("data");
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.args(["-D"]).arg(&data).args(["-w", "-t", "60", "-l"]);
        c.arg(self.dir.path().join("server.log"));
        if verb == "start" {
            // Loopback only, its socket in the cluster's own directory, and
            // no fsync: a test cluster needs no durability across crashes.
            c.args([
                "-o",
                &format!(
                    "-h 127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
                    self.port,
                    self.dir.path().display()
                ),
            ]);
        } else {
            c.args(["-m", "fast"]);
        }
        c.arg(verb);
        run(c, &format!("pg_ctl {verb}"));
    }

    /// Stops the server (its data kept), for outage tests.
    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Starts it again on the same port after [`Self::stop`].
    pub fn restart(&self) {
        self.pg_ctl("start");
    }

    /// A URL to a new, empty database of this cluster: one per test keeps
    /// tests of one cluster apart.
    pub fn database(&self, name: &str) -> String {
        let mut c = self.client("createdb");
        c.arg(name);
        run(c, "createdb");
        self.url(name)
    }

    /// A client program (`createdb`, `psql`) pointed at this cluster as
    /// its superuser.
    fn client(&self, name: &str) -> Command {
        let mut c = pg_command(&self.bin, name);
        let port = self.port.to_string();
        c.args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"]);
        c
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// `psql -tA -c sql` against `database`: rows as text, for assertions
    /// that read the fleet's tables directly.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut c = self.client("psql");
        c.args(["-d", database, "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let out = c.stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = pg_command(&self.bin, "pg_ctl")
            .args(["-D"])
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Postgres {
    /// `psql -c sql` against `database`, left running (for a statement
    /// that holds a lock while a test looks at what waits on it).
    pub fn spawn_psql(&self, database: &str, sql: &str) -> std::process::Child {
        let mut c = self.client("psql");
        c.args(["-d", database, "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}
