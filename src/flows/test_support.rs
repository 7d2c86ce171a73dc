//! The one fixture the flows' unit tests share: the demo bureau
//! (`examples/demo.json`) in a real redb store in a temporary directory, the
//! bundled Cedar policies, the decision log, and real argon2 on the hashing
//! threads (at a light cost: the tests verify passwords, they do not measure
//! them). Every part is the production one; only the directory is new.

use std::sync::Arc;

use super::decide::Decider;
use super::login::{Login, StaffSelection};
use super::maintenance::Maintenance;
use crate::audit::{AuditLog, Outcome};
use crate::authn::password::HashCost;
use crate::authn::sessions::Sessions;
use crate::authn::{Authn, AuthnConfig};
use crate::decision::{fixture, Engine};
use crate::store::Store;

/// 辽宁海韵: a synced enterprise with three real-named staff.
pub const ENT: &str = "91210102MA0TAX001F";
pub const ENT_PW: &str = "Etax@2026";
/// 大连: an enterprise whose staff never logged in normally (R3).
pub const DALIAN: &str = "91210200MA0DAL003B";
pub const DALIAN_PW: &str = "Haiyun@2026";
/// A social-security-only payer (R6).
pub const SOCIAL: &str = "91210106MA0BXH0022";
pub const SOCIAL_PW: &str = "Shebao@2026";
pub const AGENCY: &str = "91210100MA0AGT004B";
pub const AGENCY_PW: &str = "Agent@2026";
/// ENT's agreement password with AGENCY.
pub const AGREEMENT_PW: &str = "Xieyi@2026";
/// 王建国, ENT's legal representative: masked name and personal password.
pub const WANG: &str = "**国";
pub const WANG_PW: &str = "Wang@2026jg";
pub const WANG_ID: &str = "210102198003124011";
/// 孙明, AGENCY's agent staff member.
pub const SUN: &str = "*明";
pub const SUN_PW: &str = "Sunming@2026";
/// 赵丽, a natural person.
pub const ZHAO_ID: &str = "210106199102140105";
pub const ZHAO_PW: &str = "Zhaoli@2026";

/// A light argon2 cost: real hashing, quick enough for unit tests.
const LIGHT: HashCost = HashCost {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// The demo bureau behind the login flows, the session service and
/// maintenance.
pub struct Bureau {
    _dir: tempfile::TempDir,
    pub engine: Engine,
    pub audit: AuditLog,
    pub decider: Decider,
    pub authn: Arc<Authn>,
    pub sessions: Sessions,
    pub login: Login,
}

impl Bureau {
    /// The demo bureau with the default login settings.
    pub fn demo() -> Self {
        Self::with(AuthnConfig::default())
    }

    /// The demo bureau with `config` (its argon2 cost made light).
    pub fn with(config: AuthnConfig) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = AuthnConfig {
            cost: LIGHT,
            ..config
        };
        let authn = Arc::new(Authn::new(config.clone()).expect("hashing threads start"));
        let store = fixture::demo_store(dir.path(), authn.hasher(), &config.passwords);
        let engine = fixture::engine_over(store.clone());
        let audit =
            AuditLog::open(&crate::audit::decision_log_path(dir.path())).expect("log opens");
        let keys =
            crate::audit::pseudonym::Pseudonyms::load_or_create(&dir.path().join("pseudonym.key"))
                .expect("pseudonym key");
        let decider = Decider::new(engine.clone(), audit.clone(), keys);
        let sessions = Sessions::new(store, config);
        let login = Login::new(decider.clone(), authn.clone(), sessions.clone());
        Self {
            _dir: dir,
            engine,
            audit,
            decider,
            authn,
            sessions,
            login,
        }
    }

    /// Maintenance over the same store, policies and log.
    pub fn maintenance(&self) -> Maintenance<'_> {
        Maintenance {
            engine: &self.engine,
            decider: &self.decider,
            authn: &self.authn,
        }
    }

    /// The store the flows write.
    pub fn store(&self) -> &Store {
        self.engine.store()
    }

    /// Each committed decision record's kind and whether it allowed, in
    /// order.
    pub async fn log(&self) -> Vec<(String, bool)> {
        self.audit.flush().await.expect("log flushes");
        self.audit
            .all()
            .expect("log reads")
            .into_iter()
            .map(|(_, r)| (r.kind, r.decision == Outcome::Allow))
            .collect()
    }
}

/// The opaque id a staff selection gives the member with masked name `name`.
pub fn member_id(selection: &StaffSelection, name: &str) -> String {
    selection
        .staff
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} in {selection:?}"))
        .staff_id
        .clone()
}
