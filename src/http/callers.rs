//! Who is calling: scoped API keys, checked in this one place.
//!
//! With `--api-keys FILE` (a JSON list of
//! `{"id": "...", "key_sha256": "<hex>", "scopes": ["authorize", ...]}`)
//! every request but `/healthz`, `/readyz` and `/openapi.json` must send
//! `Authorization: Bearer KEY` (scheme in any case) with a key holding the route's scope (its
//! row of `routes::ROUTES`): 401 when the key is missing or unknown, 403
//! when it lacks the scope. The key id becomes the decision record's
//! `caller`. Only SHA-256 digests of keys are stored; keys are never logged.
//!
//! The file is written by `etax-authz keys` ([`super::keys_file`]) and read
//! again when it changes ([`LiveKeys`]: the server looks on a short poll and
//! on SIGHUP), so a key created or revoked counts without a restart.
//!
//! In fleet mode without a file (`serve --fleet URL`), the keys are the
//! fleet's table `fleet_api_keys` instead ([`crate::fleet::keys`]): the same
//! entries, swapped in the same way when the table changes.
//!
//! Without a file the service runs open (development on loopback): every
//! request is allowed and the caller is `null`. In fleet mode, open only
//! while the fleet's table has no row at all (revoked keys stay rows).
//!
//! One scope is not a route's: `audit_person`, which an audit read needs on
//! top of `audit` to filter by a full ID number (an exact lookup by the
//! person's pseudonym). A mask hides only region and birth date, so exact
//! lookups could enumerate a person's ID number in a few dozen guesses;
//! they are a separate grant, and limited per caller ([`PersonLookups`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::keys_file::{self, KeyEntry, KeysFileError, Stamp};

/// What a key may do; each route needs one (its row of `routes::ROUTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `/v1/authorize`, `/v1/authorize/batch`.
    Authorize,
    /// Login steps.
    Login,
    /// Staff maintenance and agency recognition.
    Maintain,
    /// Service administration: status, reloads.
    Admin,
    /// The decision log: queries, verify, checkpoint.
    Audit,
    /// On top of `audit`: filters by a full ID number (`person=`,
    /// `principal=`, `target=`), which find one person exactly.
    #[serde(rename = "audit_person")]
    AuditPerson,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Authorize => "authorize",
            Scope::Login => "login",
            Scope::Maintain => "maintain",
            Scope::Admin => "admin",
            Scope::Audit => "audit",
            Scope::AuditPerson => "audit_person",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallersError {
    #[error("API keys file {path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Read(#[from] KeysFileError),
    #[error("the fleet's API keys (fleet_api_keys): {0}")]
    Table(String),
}

struct Caller {
    id: String,
    scopes: Vec<Scope>,
}

/// SHA-256 of the key → caller.
type KeyMap = HashMap<[u8; 32], Caller>;

/// The known callers, or open mode.
#[derive(Default)]
pub struct Callers {
    /// The keys file as last read. `None`: open mode.
    keys: Option<Arc<LiveKeys>>,
    /// Exact person lookups per caller and minute.
    lookups: PersonLookups,
}

/// The keys served, swapped whole: a request sees the old set or the new
/// one.
#[derive(Default)]
struct KeySet {
    keys: KeyMap,
    /// Every request allowed (fleet mode, an empty table on loopback).
    open: bool,
}

/// Where the keys come from.
enum Origin {
    File(PathBuf),
    /// The fleet's table; `open_when_empty`: open mode is allowed here
    /// (loopback, or `--insecure-open`) while the table has no row.
    Fleet {
        open_when_empty: bool,
    },
}

/// The keys of a file or of the fleet's table, swapped whole when their
/// source changes. A source that does not read or check keeps the old set
/// serving.
pub struct LiveKeys {
    origin: Origin,
    current: ArcSwap<KeySet>,
    /// The version of the source `current` was read from.
    seen: Mutex<Option<Stamp>>,
    /// Fleet keys: whether any read found a row. From then on an empty
    /// table never opens open mode again: rows are never deleted, so an
    /// empty table later means someone removed them around the trigger
    /// (red team: the table's owner can disable it, and every loopback
    /// sidecar trusted every caller).
    ever_keyed: std::sync::atomic::AtomicBool,
}

impl LiveKeys {
    /// Reads the file again if its bytes changed since it was last read;
    /// whether the keys were replaced. Fleet keys are offered by their
    /// watcher instead ([`Self::offer`]): `Ok(false)`.
    pub fn reload_if_changed(&self) -> Result<bool, CallersError> {
        self.load(false)
    }

    /// Reads the file and, if every entry checks, serves its keys.
    pub fn reload(&self) -> Result<(), CallersError> {
        self.load(true).map(|_| ())
    }

    fn load(&self, always: bool) -> Result<bool, CallersError> {
        let Origin::File(path) = &self.origin else {
            return Ok(false);
        };
        let read = keys_file::read_bytes(path);
        if !self.first_look(Stamp::of(&read), always) {
            return Ok(false);
        }
        let entries = keys_file::parse(path, &read?)?;
        let keys = key_map(entries).map_err(|message| CallersError::File {
            path: path.display().to_string(),
            message,
        })?;
        self.current.store(Arc::new(KeySet { keys, open: false }));
        Ok(true)
    }

    /// Whether `stamp` is a version not looked at yet (or `always`). The
    /// version is remembered even when it then fails to check, so a broken
    /// source is reported once, not at every look, until it changes.
    fn first_look(&self, stamp: Stamp, always: bool) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !always && seen.as_ref() == Some(&stamp) {
            return false;
        }
        *seen = Some(stamp);
        true
    }

    /// Fleet mode: serves the live (unrevoked) `entries` of the fleet's
    /// table, whose rows (revoked ones included) are `rows` and whose
    /// contents are `stamp`; whether the keys were replaced.
    pub fn offer(
        &self,
        stamp: Stamp,
        entries: Vec<KeyEntry>,
        rows: usize,
    ) -> Result<bool, CallersError> {
        let Origin::Fleet { open_when_empty } = self.origin else {
            return Ok(false);
        };
        if !self.first_look(stamp, false) {
            return Ok(false);
        }
        let keys = key_map(entries).map_err(CallersError::Table)?;
        use std::sync::atomic::Ordering;
        if rows > 0 {
            self.ever_keyed.store(true, Ordering::Release);
        }
        let open = open_when_empty && rows == 0 && !self.ever_keyed.load(Ordering::Acquire);
        self.current.store(Arc::new(KeySet { keys, open }));
        Ok(true)
    }

    /// The file watched; `None` for the fleet's table.
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::File(path) => Some(path),
            Origin::Fleet { .. } => None,
        }
    }

    /// Whether every request is allowed now (an empty fleet table).
    pub fn is_open(&self) -> bool {
        self.current.load().open
    }
}

/// The entries by hash; every id follows [`keys_file::id_ok`] and names one
/// entry, every hash is 64 hex digits, no key is listed twice. An id is
/// echoed in a message only once it is known to be sane.
fn key_map(entries: Vec<KeyEntry>) -> Result<KeyMap, String> {
    let mut keys = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for (i, e) in entries.into_iter().enumerate() {
        if !keys_file::id_ok(&e.id) {
            return Err(format!(
                "[{i}]: id must be 1 to 64 characters of letters, digits, '-', '_' or '.', \
                 with fewer than 11 digits"
            ));
        }
        if !ids.insert(e.id.clone()) {
            return Err(format!("[{i}] ({}): the id is listed twice", e.id));
        }
        let digest: [u8; 32] = hex::decode(e.key_sha256.trim())
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| format!("[{i}] ({}): key_sha256 is not 64 hex digits", e.id))?;
        let caller = Caller {
            id: e.id,
            scopes: e.scopes,
        };
        if let Some(c) = keys.insert(digest, caller) {
            return Err(format!("[{i}] ({}): the same key is listed twice", c.id));
        }
    }
    Ok(keys)
}

/// Exact person lookups a caller may make per minute unless
/// `--person-lookups-per-minute` says otherwise: enough for an auditor
/// following up cases by hand, far too few to walk the ~370 birth dates
/// (times regions) a mask leaves open.
pub const DEFAULT_PERSON_LOOKUPS_PER_MINUTE: u32 = 30;

/// The fixed window exact person lookups are counted in.
const LOOKUP_WINDOW: Duration = Duration::from_secs(60);

/// Exact person lookups per caller in a fixed one-minute window: a small
/// fixed window rather than a token bucket, since the aim is only to make
/// enumeration slow and the count easy to state (N per minute).
pub struct PersonLookups {
    per_minute: u32,
    /// Caller id (`""` for open mode) → the window's start and its count.
    /// At most one entry per configured key, plus open mode's.
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Default for PersonLookups {
    fn default() -> Self {
        Self::new(DEFAULT_PERSON_LOOKUPS_PER_MINUTE)
    }
}

impl PersonLookups {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::default(),
        }
    }

    /// Counts one lookup by `caller` at `now`; past the limit, the seconds
    /// until the window ends (at least 1), and the lookup is not counted.
    fn take(&self, caller: Option<&str>, now: Instant) -> Result<(), u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count) = windows
            .entry(caller.unwrap_or_default().to_owned())
            .or_insert((now, 0));
        if now.duration_since(*start) >= LOOKUP_WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_minute {
            let left = LOOKUP_WINDOW.saturating_sub(now.duration_since(*start));
            return Err(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        *count += 1;
        Ok(())
    }
}

impl Callers {
    /// Open mode: no keys, every request allowed, caller `null`.
    pub fn open() -> Self {
        Self {
            keys: None,
            lookups: PersonLookups::default(),
        }
    }

    /// Sets how many exact person lookups each caller may make a minute.
    pub fn with_person_lookups_per_minute(mut self, per_minute: u32) -> Self {
        self.lookups = PersonLookups::new(per_minute);
        self
    }

    /// Allows one exact person lookup (a filter by a full ID number) by
    /// `caller`: it needs the `audit_person` scope (any caller in open
    /// mode) and a lookup left in the caller's minute. 403 or 429.
    pub fn person_lookup(&self, caller: Option<&str>) -> Result<(), ApiError> {
        if let Some(keys) = self.keyed() {
            let id = caller.unwrap_or_default();
            let granted = keys
                .keys
                .values()
                .any(|c| c.id == id && c.scopes.contains(&Scope::AuditPerson));
            if !granted {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "API key {id} lacks the `{}` scope a filter by a full ID number needs \
                         (filter by a mask or part of it with `audit`)",
                        Scope::AuditPerson.as_str()
                    ),
                ));
            }
        }
        self.lookups
            .take(caller, Instant::now())
            .map_err(|retry_after_secs| ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_person_lookups",
                    format!(
                        "at most {} lookups by a full ID number a minute",
                        self.lookups.per_minute
                    ),
                )
            })
    }

    /// Loads the keys file; [`Self::key_file`] then reloads it.
    pub fn load(path: &Path) -> Result<Self, CallersError> {
        let live = Self::live(Origin::File(path.to_owned()));
        live.reload()?;
        Ok(Self::keyed_by(live))
    }

    /// Fleet mode: keys from the fleet's table, none until its watcher
    /// offers them ([`LiveKeys::offer`], which the server does before it
    /// listens). `open_when_empty`: whether a table without rows may run
    /// open (on loopback, or with `--insecure-open`).
    pub fn fleet(open_when_empty: bool) -> Self {
        Self::keyed_by(Self::live(Origin::Fleet { open_when_empty }))
    }

    fn live(origin: Origin) -> LiveKeys {
        LiveKeys {
            origin,
            current: ArcSwap::from_pointee(KeySet::default()),
            seen: Mutex::new(None),
            ever_keyed: Default::default(),
        }
    }

    fn keyed_by(live: LiveKeys) -> Self {
        Self {
            keys: Some(Arc::new(live)),
            lookups: PersonLookups::default(),
        }
    }

    /// The keys being served, to reload them; `None` in open mode.
    pub fn key_file(&self) -> Option<Arc<LiveKeys>> {
        self.keys.clone()
    }

    #[cfg(test)]
    fn parse(text: &str) -> Result<Self, String> {
        let entries: Vec<KeyEntry> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let live = Self::live(Origin::File(PathBuf::new()));
        live.current.store(Arc::new(KeySet {
            keys: key_map(entries)?,
            open: false,
        }));
        Ok(Self::keyed_by(live))
    }

    /// The keys requests are checked against; `None` while open.
    fn keyed(&self) -> Option<arc_swap::Guard<Arc<KeySet>>> {
        let set = self.keys.as_ref()?.current.load();
        (!set.open).then_some(set)
    }

    /// Checks the request's key against `scope`; returns the caller's id
    /// (`None` in open mode, or for a route without a scope).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        scope: Option<Scope>,
    ) -> Result<Option<String>, ApiError> {
        let (Some(keys), Some(scope)) = (self.keyed(), scope) else {
            return Ok(None);
        };
        let key = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_key)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "send an API key as `Authorization: Bearer KEY`",
                )
            })?;
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let caller = keys.keys.get(&digest).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "unknown API key",
            )
        })?;
        if !caller.scopes.contains(&scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "API key {} lacks the `{}` scope this route needs",
                    caller.id,
                    scope.as_str()
                ),
            ));
        }
        Ok(Some(caller.id.clone()))
    }
}

/// The key of an `Authorization: Bearer KEY` value. The scheme is
/// case-insensitive (RFC 7235 §2.1), so `bearer KEY` is the same header.
fn bearer_key(value: &str) -> Option<&str> {
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn checks_keys_and_scopes() {
        let digest = hex::encode(Sha256::digest(b"s3cret-key"));
        let callers = Callers::parse(&format!(
            r#"[{{"id":"tax-core","key_sha256":"{digest}","scopes":["authorize"]}}]"#
        ))
        .unwrap();
        let ok = callers
            .authenticate(&headers(Some("Bearer s3cret-key")), Some(Scope::Authorize))
            .unwrap();
        assert_eq!(ok.as_deref(), Some("tax-core"));
        let status = |h, s| callers.authenticate(&h, Some(s)).unwrap_err().status;
        assert_eq!(
            status(headers(None), Scope::Authorize),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(headers(Some("Bearer wrong")), Scope::Authorize),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(headers(Some("Bearer s3cret-key")), Scope::Audit),
            StatusCode::FORBIDDEN
        );
        // The key never appears in an error.
        let e = callers
            .authenticate(&headers(Some("Bearer s3cret-key")), Some(Scope::Audit))
            .unwrap_err();
        assert!(!e.message.contains("s3cret"));
        assert!(Callers::open()
            .authenticate(&headers(None), Some(Scope::Audit))
            .unwrap()
            .is_none());
    }

    #[test]
    fn person_lookups_need_their_scope_and_are_counted_per_minute() {
        let digest = |k: &str| hex::encode(Sha256::digest(k.as_bytes()));
        let callers = Callers::parse(&format!(
            r#"[{{"id":"a","key_sha256":"{}","scopes":["audit"]}},
                {{"id":"p","key_sha256":"{}","scopes":["audit","audit_person"]}}]"#,
            digest("ka"),
            digest("kp")
        ))
        .unwrap()
        .with_person_lookups_per_minute(2);
        let e = callers.person_lookup(Some("a")).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("audit_person"));
        assert!(callers.person_lookup(Some("p")).is_ok());
        assert!(callers.person_lookup(Some("p")).is_ok());
        let e = callers.person_lookup(Some("p")).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(e.retry_after_secs, Some(1..=60)));
        assert!(Callers::open().person_lookup(None).is_ok());

        let lookups = PersonLookups::new(1);
        let t = Instant::now();
        assert!(lookups.take(Some("p"), t).is_ok());
        assert_eq!(
            lookups.take(Some("p"), t + Duration::from_secs(15)),
            Err(45)
        );
        assert!(lookups.take(Some("q"), t).is_ok(), "per caller");
        assert!(
            lookups.take(Some("p"), t + LOOKUP_WINDOW).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn fleet_keys_run_open_only_while_the_table_has_no_row_and_keep_the_last_good_set() {
        let entry = |id: &str, key: &str| KeyEntry {
            id: id.into(),
            key_sha256: hex::encode(Sha256::digest(key.as_bytes())),
            scopes: vec![Scope::Authorize],
            created_ms: None,
        };
        let stamp = |n: u8| Stamp::Bytes([n; 32]);
        let ask = |c: &Callers, h| c.authenticate(&headers(h), Some(Scope::Authorize));
        let callers = Callers::fleet(true);
        let live = callers.key_file().unwrap();
        assert!(live.offer(stamp(0), vec![], 0).unwrap());
        assert!(ask(&callers, None).unwrap().is_none(), "open: no rows");
        assert!(live.offer(stamp(1), vec![entry("a", "ka")], 1).unwrap());
        assert!(!live.offer(stamp(1), vec![], 0).unwrap(), "same stamp");
        assert_eq!(
            ask(&callers, Some("Bearer ka")).unwrap().as_deref(),
            Some("a")
        );
        // Every key revoked: rows remain, so the sidecar stays closed.
        assert!(live.offer(stamp(2), vec![], 1).unwrap());
        assert_eq!(
            ask(&callers, None).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        // Rows removed around the trigger: once keyed, never open again.
        assert!(live.offer(stamp(5), vec![], 0).unwrap());
        assert_eq!(
            ask(&callers, None).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        // A set that does not check is refused whole; the last good one serves.
        assert!(live.offer(stamp(3), vec![entry("a", "ka")], 1).unwrap());
        let twice = vec![entry("a", "ka"), entry("a", "kb")];
        assert!(matches!(
            live.offer(stamp(4), twice, 2),
            Err(CallersError::Table(_))
        ));
        assert!(ask(&callers, Some("Bearer ka")).is_ok());
        // Off loopback (without --insecure-open) an empty table is never open.
        let closed = Callers::fleet(false);
        closed
            .key_file()
            .unwrap()
            .offer(stamp(0), vec![], 0)
            .unwrap();
        assert!(ask(&closed, None).is_err());
    }

    #[test]
    fn rejects_bad_files() {
        assert!(Callers::parse(r#"[{"id":"a","key_sha256":"zz","scopes":[]}]"#).is_err());
        assert!(Callers::parse(r#"[{"id":"a","key_sha256":"00","scopes":["root"]}]"#).is_err());
    }
}
