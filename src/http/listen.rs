//! Where connections come from: TCP, and a Unix domain socket for callers
//! on the same host (sidecars are often reached over one).

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
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
/// exit; after a crash the next start replaces it) if it is still a socket.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if is_socket(&self.0) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
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
    #[error("cannot listen on unix:{0}: it exists and is not a socket (only a socket left by a crash is replaced)")]
    NotASocket(String),
}

/// Binds `path` with mode 0660 (owner and group: the calling service's
/// group is how access is granted). Only a socket nobody answers on (left
/// by a crash) is replaced; a live one, a file, a directory or a symlink
/// is refused.
pub fn bind_unix(path: &Path) -> Result<Listener, ListenError> {
    let shown = path.display().to_string();
    let err = |source| ListenError::Unix {
        path: shown.clone(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
        Ok(m) if !m.file_type().is_socket() => return Err(ListenError::NotASocket(shown)),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(ListenError::InUse(shown)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(err)?
            }
            Err(e) => return Err(err(e)),
        },
    }
    let listener = bind_private(path).map_err(err)?;
    Ok(Listener::Unix(listener, SocketFile(path.to_owned())))
}

/// Binds in a fresh directory only the owner can enter, sets 0660, then
/// hard-links the socket to `path`: it is never reachable with the
/// umask's mode, and the link fails rather than replace anything created
/// at `path` meanwhile. (A umask would be process-wide.)
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    let parent = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let private = parent.join(format!(".etax-authz-bind.{}", crate::random_id()));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let inner = private.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o660))?;
        std::fs::hard_link(&inner, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&private);
    bound
}
