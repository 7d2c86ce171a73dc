//! Who a decision record names: the principal's person (as `agent` for
//! agency staff) and the target person, each with a keyed pseudonym, masked
//! ID, masked name and — for enterprise staff — identity type.
//!
//! The principal's entry is kept per store generation (served only at the
//! generation it was read at), like the decision cache: `/v1/authorize` asks about the same principals over and over, and
//! reading their person and staff records for every record cost a quarter
//! of its throughput (debug build; `benches/decision_path.sh`). Login state
//! (sessions, codes) does not bump the generation, so logins keep it warm.

use crate::audit::pseudonym::Pseudonyms;
use crate::audit::PersonRef;
use crate::domain::EntityKind;
use crate::store::{split_owned_key, PersonRecord, StaffRecord, Store, StoreReader};

/// Principals' entries kept at most (about 200 bytes each). Evicted when
/// full, not emptied: emptying made every principal a miss once more
/// distinct principals asked than it held (issue #13).
const MAX_CACHED: usize = 50_000;

/// Principal uid, as a record names it before masking (`Etax::Staff::"…"`)
/// → the store generation it was read at, and their entry.
type Entries = quick_cache::sync::Cache<String, (u64, PersonRef)>;

pub struct Persons {
    pseudonyms: Pseudonyms,
    cache: Entries,
}

impl Persons {
    pub fn new(pseudonyms: Pseudonyms) -> Self {
        Self {
            pseudonyms,
            cache: Entries::new(MAX_CACHED),
        }
    }

    pub fn pseudonyms(&self) -> &Pseudonyms {
        &self.pseudonyms
    }

    /// The persons named by a record whose principal is `principal` (its
    /// uid as the record names it, before masking) and whose target person
    /// is `target` (person key, name if known).
    pub fn of(
        &self,
        store: &Store,
        principal: &str,
        targets: &[(String, Option<String>)],
    ) -> Vec<PersonRef> {
        let mut out = Vec::new();
        if let Some(p) = self.principal(store, principal) {
            out.push(p);
        }
        if targets.is_empty() {
            return out;
        }
        if let Ok(reader) = store.read() {
            for (person, name) in targets {
                out.push(self.person(&reader, "target", person, name.clone(), None));
            }
        }
        out
    }

    fn principal(&self, store: &Store, uid: &str) -> Option<PersonRef> {
        // Read before the snapshot: an entry is never older than the
        // generation it is filed under.
        let generation = store.generation();
        // An entry of another generation is never served.
        if let Some((filed, hit)) = self.cache.get(uid) {
            if filed == generation {
                return Some(hit);
            }
        }
        let (ty, id) = super::decide::parse_uid(uid)?;
        let id = id.as_str();
        let kind = ty.parse::<EntityKind>().ok()?;
        // Any id a record names, checked or not: the person part as written.
        let person = match kind {
            EntityKind::Person => id,
            EntityKind::Staff | EntityKind::AgentStaff => split_owned_key(id)?.1,
            _ => return None,
        };
        let reader = store.read().ok()?;
        let role = if kind == EntityKind::AgentStaff {
            "agent"
        } else {
            "principal"
        };
        let identity_type = (kind == EntityKind::Staff)
            .then(|| reader.get::<StaffRecord>(id).ok().flatten())
            .flatten()
            .map(|s| s.identity_type.code().to_owned());
        let entry = self.person(&reader, role, person, None, identity_type);
        self.cache
            .insert(uid.to_owned(), (generation, entry.clone()));
        Some(entry)
    }

    fn person(
        &self,
        reader: &StoreReader,
        role: &str,
        person_key: &str,
        name: Option<String>,
        identity_type: Option<String>,
    ) -> PersonRef {
        let number = person_key.split_once(':').map_or(person_key, |(_, n)| n);
        let name = name.or_else(|| {
            reader
                .get::<PersonRecord>(person_key)
                .ok()
                .flatten()
                .map(|p| p.name)
        });
        PersonRef {
            pseudonym: self.pseudonyms.of(number),
            role: role.to_owned(),
            id: crate::ids::mask_text(person_key),
            name: name.as_deref().map(crate::ids::mask_name),
            identity_type,
        }
    }
}
