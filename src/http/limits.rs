//! What one connection, and one peer, may hold: the `serve` flags for
//! connection limits and the per-peer count they enforce.
//!
//! A connection costs a file descriptor, buffers and a slot of
//! `--max-connections`. Without a per-peer cap one client holding thousands
//! of half-open connections starves everyone else until the idle timeout
//! frees them; without a write timeout a client that pipelines requests and
//! never reads holds its connection (and the handler's buffers) forever.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;
/// Connections one peer address may hold by default: enough for a calling
/// system's connection pool, a sixteenth of the whole.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: u32 = 256;
/// Requests served on one connection by default before it is closed.
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u32 = 1000;
/// Default idle and write timeouts, in milliseconds.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_WRITE_TIMEOUT_MS: u64 = 10_000;

/// The connection flags of `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Connections served at once; further ones wait in the accept
    /// queue until one closes.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..), env = "ETAX_MAX_CONNECTIONS")]
    pub max_connections: u32,
    /// Connections one peer IP address may hold at once; its further
    /// connections are closed as soon as they are accepted.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS_PER_PEER, value_parser = clap::value_parser!(u32).range(1..), env = "ETAX_MAX_CONNECTIONS_PER_PEER")]
    pub max_connections_per_peer: u32,
    /// A connection waiting for a request's headers longer than this (idle
    /// between keep-alive requests, or sending its headers slowly) is closed,
    /// in milliseconds.
    #[arg(long, default_value_t = DEFAULT_IDLE_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..), env = "ETAX_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: u64,
    /// A connection whose client accepts no bytes of an answer for this long
    /// is closed, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_WRITE_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..), env = "ETAX_WRITE_TIMEOUT_MS")]
    pub write_timeout_ms: u64,
    /// Requests (pipelined or one after another) served on one connection;
    /// the last answer says `Connection: close`.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUESTS_PER_CONNECTION, value_parser = clap::value_parser!(u32).range(1..), env = "ETAX_MAX_REQUESTS_PER_CONNECTION")]
    pub max_requests_per_connection: u32,
    /// Decision-log exports (local and fleet) and reads of the fleet's
    /// decision table (pages, verify) under way at once; past it such a
    /// read is refused 503 with Retry-After.
    #[arg(long, default_value_t = super::export::DEFAULT_MAX_EXPORTS, value_parser = clap::value_parser!(u32).range(1..), env = "ETAX_MAX_EXPORTS")]
    pub max_exports: u32,
}

impl LimitArgs {
    pub fn into_limits(self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections as usize,
            max_per_peer: self.max_connections_per_peer as usize,
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            max_requests: self.max_requests_per_connection as u64,
            exports: super::export::ExportSlots::new(self.max_exports as usize),
        }
    }
}

/// Connection limits, as configured.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_per_peer: usize,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_requests: u64,
    /// The export slots (`--max-exports`), shared by every clone.
    pub exports: super::export::ExportSlots,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
            max_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER as usize,
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            write_timeout: Duration::from_millis(DEFAULT_WRITE_TIMEOUT_MS),
            max_requests: DEFAULT_MAX_REQUESTS_PER_CONNECTION as u64,
            exports: super::export::ExportSlots::new(super::export::DEFAULT_MAX_EXPORTS as usize),
        }
    }
}

/// Open connections per peer address.
pub struct Peers {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Peers {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::default(),
        })
    }

    /// Connections open now, from every peer.
    pub fn total(&self) -> usize {
        let open = self.open.lock().expect("peer counts are never poisoned");
        open.values().sum()
    }

    /// A slot for one more connection from `ip`, or `None` when the peer
    /// already holds its cap. The slot is given back when dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        // An IPv4 client of an IPv6 listener is the same peer as over IPv4.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().expect("peer counts are never poisoned");
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

/// One connection's place in its peer's count.
pub struct PeerSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self
            .peers
            .open
            .lock()
            .expect("peer counts are never poisoned");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            // Forget quiet peers, so the map holds only connected ones.
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_peer_and_gives_slots_back() {
        let peers = Peers::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = peers.admit(a).unwrap();
        let _s2 = peers.admit(a).unwrap();
        assert!(peers.admit(a).is_none());
        // A mapped address is the same peer.
        assert!(peers.admit("::ffff:10.0.0.1".parse().unwrap()).is_none());
        assert!(peers.admit(b).is_some());
        // `b`'s slot was given back at once.
        assert_eq!(peers.total(), 2);
        drop(s1);
        assert_eq!(peers.total(), 1);
        assert!(peers.admit(a).is_some());
    }
}
