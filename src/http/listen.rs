//! Where connections come from: TCP, and a Unix domain socket for callers
//! on the same host (sidecars are often reached over one).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    /// The socket file is removed when the listener is dropped.
    Unix(UnixListener, SocketFile),
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A Unix socket's peer: on this host, so loopback for open mode and
    /// one loopback peer for the per-peer connection cap.
    Unix,
}

impl Peer {
    pub fn ip(self) -> std::net::IpAddr {
        match self {
            Peer::Tcp(a) => a.ip(),
            Peer::Unix => std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => a.fmt(f),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

/// A connection from either kind of listener.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

impl Listener {
    pub async fn accept(&self) -> std::io::Result<(Box<dyn Stream>, Peer)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), Peer::Tcp(peer)))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((Box::new(s), Peer::Unix))
            }
        }
    }
}

/// The socket file of a Unix listener, removed when dropped (at a clean
/// exit; after a crash the next start replaces it).
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on unix:{path}: {source}")]
    Unix {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on unix:{0}: another server answers on it")]
    InUse(String),
}

/// Binds `path` with mode 0660 (owner and group: the calling service's
/// group is how access is granted). A socket file left by a crash is
/// replaced; one a live server answers on is not.
pub fn bind_unix(path: &Path) -> Result<Listener, ListenError> {
    let shown = path.display().to_string();
    let err = |source| ListenError::Unix {
        path: shown.clone(),
        source,
    };
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ListenError::InUse(shown));
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    let file = SocketFile(path.to_owned());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(Listener::Unix(listener, file))
}
