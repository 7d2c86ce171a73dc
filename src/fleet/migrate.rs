//! The fleet database's schema, as numbered SQL files compiled into the
//! binary and applied in order at start. Three sidecars starting at once
//! must not apply a migration twice: each migration runs in one transaction
//! under a transaction-scoped advisory lock, and re-reads the applied
//! version after taking it.

use tokio_postgres::Client;

use super::FleetError;

/// Every migration, in order; version = position + 1. Append only: an
/// applied migration is never edited (a fleet may already have run it).
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_fleet", include_str!("migrations/0001_fleet.sql")),
    ("0002_store", include_str!("migrations/0002_store.sql")),
    (
        "0003_decisions",
        include_str!("migrations/0003_decisions.sql"),
    ),
    ("0004_keys", include_str!("migrations/0004_keys.sql")),
    (
        "0005_writer_format",
        include_str!("migrations/0005_writer_format.sql"),
    ),
];

/// An arbitrary constant naming this lock among the database's advisory
/// locks ("etaxauth" in ASCII).
const LOCK_KEY: i64 = 0x6574_6178_6175_7468;

/// Applies the migrations the database has not seen. Fails when the
/// database is newer than this binary: an old host must not write into a
/// schema it does not know.
pub async fn apply(client: &mut Client) -> Result<(), FleetError> {
    // Under the lock too: `CREATE TABLE IF NOT EXISTS` is not safe against
    // a concurrent create (the loser fails with 42P07 or on the catalog's
    // unique index).
    let txn = client.transaction().await?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS fleet_migrations (
           version integer PRIMARY KEY,
           name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    txn.commit().await?;
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = index as i32 + 1;
        let txn = client.transaction().await?;
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        let applied: i32 = txn
            .query_one(
                "SELECT coalesce(max(version), 0) FROM fleet_migrations",
                &[],
            )
            .await?
            .get(0);
        if applied >= version {
            txn.commit().await?;
            continue;
        }
        txn.batch_execute(sql).await?;
        txn.execute(
            "INSERT INTO fleet_migrations (version, name) VALUES ($1, $2)",
            &[&version, name],
        )
        .await?;
        txn.commit().await?;
    }
    let found: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM fleet_migrations",
            &[],
        )
        .await?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if found > known {
        return Err(FleetError::SchemaTooNew { found, known });
    }
    Ok(())
}
