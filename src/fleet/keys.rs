//! The fleet's API keys: the table `fleet_api_keys`, which every sidecar
//! started with `--fleet` and without `--api-keys` takes its callers from,
//! so a key created or revoked once counts on every host.
//!
//! The fields are the keys file's ([`KeyEntry`]: id, SHA-256 of the key,
//! scopes, creation time) plus `revoked_ms`. A revoked key stays a row (a
//! trigger refuses deletes): its id is never handed to another caller, and
//! a table that once held keys never looks empty again (an empty table is
//! what lets a sidecar on loopback run open). Only the hash is stored;
//! the key is returned once by [`create`] and kept nowhere.
//!
//! Every change sends `NOTIFY fleet_api_keys` in its own transaction, so
//! sidecars listening ([`super::keys_watch`]) read the table again as soon
//! as it commits.

use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;

use super::FleetError;
use crate::http::callers::Scope;
use crate::http::keys_file::{self, KeyEntry, KeysFileError, Stamp};

/// The channel sidecars listen on for key changes.
pub const CHANNEL: &str = "fleet_api_keys";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Keys(#[from] KeysFileError),
    #[error(
        "key id {0:?} belonged to a revoked key; a fleet never reuses an id (decision records \
         name callers by it): choose another"
    )]
    RevokedId(String),
    #[error("key {0:?} is already revoked")]
    AlreadyRevoked(String),
    /// A row this binary cannot serve (written by hand or by a newer
    /// version): it is skipped, so it grants nothing.
    #[error("row {id:?}: {message}")]
    BadRow { id: String, message: String },
    #[error("more than {} keys", keys_file::MAX_KEYS)]
    TooMany,
    #[error(transparent)]
    Served(#[from] crate::http::callers::CallersError),
}

impl From<tokio_postgres::Error> for KeysError {
    fn from(e: tokio_postgres::Error) -> Self {
        KeysError::Fleet(e.into())
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct FleetKey {
    pub entry: KeyEntry,
    pub revoked_ms: Option<u64>,
}

/// The table as one sidecar serves it.
pub struct Table {
    /// Every row this binary can serve, revoked ones included, by id.
    pub rows: Vec<FleetKey>,
    /// Rows it cannot serve (an unknown scope, a NULL): skipped, so they
    /// grant nothing, while every other row — a revocation above all —
    /// still counts. (Refusing the whole table instead kept revoked keys
    /// working on every host for as long as one bad row stayed.)
    pub skipped: Vec<KeysError>,
    /// What the rows hold, to tell a change from a look that found none.
    pub stamp: Stamp,
}

impl Table {
    /// The keys that are served: those not revoked.
    pub fn live(&self) -> Vec<KeyEntry> {
        self.rows
            .iter()
            .filter(|k| k.revoked_ms.is_none())
            .map(|k| k.entry.clone())
            .collect()
    }
}

/// Adds a new random key `id` with `scopes`; returns the key, which is
/// stored nowhere.
pub async fn create(
    client: &mut tokio_postgres::Client,
    id: &str,
    scopes: &[Scope],
) -> Result<String, KeysError> {
    if !keys_file::id_ok(id) {
        return Err(KeysFileError::BadId.into());
    }
    let (key, key_sha256) = keys_file::new_key();
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let created_ms = crate::now_ms() as i64;
    let txn = client.transaction().await?;
    let added = txn
        .execute(
            "INSERT INTO fleet_api_keys (id, key_sha256, scopes, created_ms)
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            &[&id, &key_sha256, &scopes, &created_ms],
        )
        .await?;
    if added == 0 {
        let revoked: Option<i64> = txn
            .query_one(
                "SELECT revoked_ms FROM fleet_api_keys WHERE id = $1",
                &[&id],
            )
            .await?
            .get(0);
        return Err(match revoked {
            Some(_) => KeysError::RevokedId(id.to_owned()),
            None => KeysFileError::DuplicateId(id.to_owned()).into(),
        });
    }
    notify(&txn).await?;
    txn.commit().await?;
    Ok(key)
}

/// Revokes key `id`: every sidecar refuses it once it has read the table
/// again (at once when it is listening).
pub async fn revoke(client: &mut tokio_postgres::Client, id: &str) -> Result<(), KeysError> {
    let txn = client.transaction().await?;
    let now = crate::now_ms() as i64;
    let revoked = txn
        .execute(
            "UPDATE fleet_api_keys SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
            &[&id, &now],
        )
        .await?;
    if revoked == 0 {
        let exists = txn
            .query_opt("SELECT 1 FROM fleet_api_keys WHERE id = $1", &[&id])
            .await?
            .is_some();
        return Err(match exists {
            true => KeysError::AlreadyRevoked(id.to_owned()),
            false => KeysFileError::UnknownId(id.to_owned()).into(),
        });
    }
    notify(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Delivered when the transaction commits, not before.
async fn notify(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .await
        .map(|_| ())
}

/// Every row, checked: a row whose hash, id or scopes this binary cannot
/// serve is skipped (see [`Table::skipped`]).
pub async fn read(client: &impl GenericClient) -> Result<Table, KeysError> {
    let rows = client
        .query(
            "SELECT id, key_sha256, scopes, created_ms, revoked_ms FROM fleet_api_keys
             ORDER BY id LIMIT $1",
            &[&(keys_file::MAX_KEYS as i64 + 1)],
        )
        .await?;
    if rows.len() > keys_file::MAX_KEYS {
        return Err(KeysError::TooMany);
    }
    let mut digest = Sha256::new();
    let mut keys = Vec::with_capacity(rows.len());
    let mut skipped = Vec::new();
    for row in &rows {
        let key = match row_key(row) {
            Ok(key) => key,
            Err(e) => {
                digest.update(format!("skipped {e}\n").as_bytes());
                skipped.push(e);
                continue;
            }
        };
        // Every field that changes what is served goes into the stamp.
        let line = (
            &key.entry.id,
            &key.entry.key_sha256,
            &key.entry.scopes,
            key.revoked_ms.is_some(),
        );
        digest.update(serde_json::to_vec(&line).expect("key rows serialize"));
        digest.update(b"\n");
        keys.push(key);
    }
    Ok(Table {
        rows: keys,
        skipped,
        stamp: Stamp::Bytes(digest.finalize().into()),
    })
}

fn row_key(row: &tokio_postgres::Row) -> Result<FleetKey, KeysError> {
    // Read with try_get: a NULL where none belongs (an array element of
    // `scopes`, say) is a bad row, not a panic of the watcher.
    let id: String = row.try_get(0).unwrap_or_else(|_| "(unreadable id)".into());
    let bad = |message: String| KeysError::BadRow {
        id: id.clone(),
        message,
    };
    let names: Vec<Option<String>> = row.try_get(2).map_err(|e| bad(e.to_string()))?;
    let names: Vec<String> = names
        .into_iter()
        .map(|n| n.ok_or_else(|| bad("a NULL scope".into())))
        .collect::<Result<_, _>>()?;
    let scopes = keys_file::parse_scopes(&names.join(",")).map_err(|e| bad(e.to_string()))?;
    let key_sha256: String = row.try_get(1).map_err(|e| bad(e.to_string()))?;
    let created_ms: i64 = row.try_get(3).map_err(|e| bad(e.to_string()))?;
    let revoked_ms: Option<i64> = row.try_get(4).map_err(|e| bad(e.to_string()))?;
    Ok(FleetKey {
        entry: KeyEntry {
            id,
            key_sha256,
            scopes,
            created_ms: Some(created_ms as u64),
        },
        revoked_ms: revoked_ms.map(|ms| ms as u64),
    })
}
