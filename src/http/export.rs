//! Exports of the decision log: `GET /v1/audit/export` (this host's log)
//! here, and the slots every export holds while it streams, the fleet's
//! (`/v1/fleet/decisions/export`) included.
//!
//! An export lasts as long as its client takes to read it, so a few
//! clients that read slowly (or never) could otherwise hold as many
//! readers, buffers and (for the fleet's) database round trips as they
//! like: past `--max-exports` at once, an export is refused 503 with
//! `Retry-After` before it reads or records anything.

use std::sync::Arc;
use std::time::Instant;

use hyper::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::audit::{exact_persons, record_read, EXPORT_PARAMS};
use super::error::ApiError;
use super::query_params::{filter_params, flag, number, unknown, Params};
use super::{stream, AppState, Body};
use crate::audit::query::{self, Output};
use crate::audit::Format;

/// Exports streaming at once by default.
pub const DEFAULT_MAX_EXPORTS: u32 = 4;

/// The export slots of one server.
#[derive(Debug, Clone)]
pub struct ExportSlots {
    slots: Arc<Semaphore>,
    max: usize,
}

/// Held by an export until its body is written or abandoned.
pub struct ExportSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Every export slot is taken.
#[derive(Debug, thiserror::Error)]
#[error(
    "{max} decision-log exports and fleet reads are under way already (--max-exports); \
     retry when one has finished"
)]
pub struct ExportsBusy {
    pub max: usize,
}

impl ExportSlots {
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot now, or [`ExportsBusy`]: an export is never queued, since
    /// its client would wait with no answer at all.
    pub fn take(&self) -> Result<ExportSlot, ExportsBusy> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map(ExportSlot)
            .map_err(|_| ExportsBusy { max: self.max })
    }
}

/// `GET /v1/audit/export`: every matching record, streamed from one read
/// snapshot by a blocking reader through a bounded channel, holding an
/// export slot until the last byte. The read is recorded before the first
/// byte is sent.
pub async fn local(
    state: &AppState,
    query: Option<&str>,
    caller: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let Params {
        filter,
        offset,
        rest,
    } = filter_params(state, query, EXPORT_PARAMS)?;
    let mut output = Output {
        format: Format::Jsonl,
        offset,
        bom: false,
    };
    let mut after = 0;
    for (k, v) in rest {
        match k.as_str() {
            "format" => {
                output.format = match v.as_str() {
                    "jsonl" => Format::Jsonl,
                    "csv" => Format::Csv,
                    _ => return Err(ApiError::invalid("format", "must be jsonl or csv")),
                }
            }
            "bom" => output.bom = flag("bom", &v)?,
            // As for pages: resume after the last record already read.
            "after" => after = number("after", &v)?,
            _ => return Err(unknown(k, EXPORT_PARAMS)),
        }
    }
    let (filter, searched) = exact_persons(state, filter, caller)?;
    let slot = state.limits.exports.take()?;
    record_read(state, caller, "audit.export", query, searched, started).await?;
    let (mut writer, body) = stream::channel();
    let log = state.audit.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let written = query::write_after(&log, &filter, after, &output, &mut writer)
            .and_then(|_| std::io::Write::flush(&mut writer).map_err(Into::into));
        match written {
            Ok(()) => {}
            Err(query::QueryError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                tracing::error!(error = %e, "decision log export failed");
                writer.abort(e.to_string());
            }
        }
    });
    let (content_type, file) = match output.format {
        Format::Csv => ("text/csv; charset=utf-8", "decisions.csv"),
        _ => ("application/x-ndjson", "decisions.jsonl"),
    };
    Ok(stream::attachment(content_type, file, body))
}
