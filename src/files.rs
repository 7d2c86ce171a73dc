//! Reading the files an operator or a policy author names: policies, the
//! schema, properties, suites and their fixtures, the keys file, the
//! config file, a password deny-list, key files, a checkpoint file, an
//! import document.
//! Only regular files are read, looked at before they are opened, opened
//! without blocking and checked again before the first byte: a FIFO in
//! their place would hold a command, the server's start or a reload until
//! some writer came, and a device (`/dev/zero`) might never end. Each read
//! is bounded by its caller.

use std::fs::File;
use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `path` opened for reading if it is a regular file (through links).
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    // Looked at before it is opened, as opening some devices acts; and
    // again after, through the handle, should the entry have changed.
    if !std::fs::metadata(path)?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(Error::new(ErrorKind::InvalidInput, "not a regular file"))
    }
}

/// Whether `path` names a hidden entry (`.x.cedar`, an editor's
/// `.#x.cedar` lock): not a file any listing of ours reads, as the shell's
/// `*.cedar` does not name it.
pub fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
}

/// The text of the regular file `path`, refused past `max` bytes.
pub fn read_text(path: &Path, max: u64) -> std::io::Result<String> {
    let file = open_regular(path)?;
    // A file's stated length refuses it before any byte is read; the
    // bounded read holds should it grow meanwhile.
    let stated = file.metadata()?.len();
    let mut text = String::new();
    if stated <= max {
        file.take(max + 1).read_to_string(&mut text)?;
    }
    if stated > max || text.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {}", size(max)),
        ));
    }
    Ok(text)
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

/// The bound on a document an author or operator writes by hand or has a
/// tool write: suites, fixtures, config, deny-lists.
pub const MAX_DOCUMENT_BYTES: u64 = 64 << 20;

/// The bound on a key file: the pseudonym key, a PEM signing key.
pub const MAX_KEY_BYTES: u64 = 64 << 10;

/// Makes a FIFO at `path`, for the tests that hold readers to refusing
/// one.
#[cfg(test)]
pub(crate) fn make_fifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_the_bound_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "twelve bytes").unwrap();
        assert_eq!(read_text(&file, 12).unwrap(), "twelve bytes");
        let err = read_text(&file, 11).unwrap_err();
        assert!(err.to_string().contains("larger than 11 bytes"), "{err}");
        // Refused at once, not waited on for a writer.
        let fifo = dir.path().join("p");
        make_fifo(&fifo);
        assert!(read_text(&fifo, 12).is_err());
        assert!(read_text(dir.path(), 12).is_err());
        assert!(read_text(Path::new("/dev/zero"), 12).is_err());
    }
}
