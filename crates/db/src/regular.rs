//! Reading files of a collection or checkout that anyone may have put there:
//! only regular files, never more than a limit. A FIFO would block an
//! ordinary `read` forever and a device (`/dev/zero`, through a symlink)
//! would never end.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Reads `path` (following symlinks) when it is a regular file of at most
/// `limit` bytes. Errors name the file: not a regular file (FIFO, device,
/// socket, directory), larger than `limit`, or the I/O error.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    // stat first: a device is never opened (opening some has effects).
    let md = std::fs::metadata(path).map_err(named)?;
    if !md.is_file() {
        return Err(not_regular(path));
    }
    // O_NONBLOCK: should a FIFO replace the file after the stat, the open
    // returns at once instead of waiting for a writer; fstat then refuses it.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(named)?;
    let md = f.metadata().map_err(named)?;
    if !md.is_file() {
        return Err(not_regular(path));
    }
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: larger than {limit} bytes, not read", path.display()),
        )
    };
    if md.len() > limit {
        return Err(too_big());
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(named)?;
    if buf.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(buf)
}

fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: not a regular file, not read", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13 #13: a FIFO and a symlink to /dev/zero are refused at once.
    #[test]
    fn issue13_13_fifos_and_devices_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        let zero = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        let ok = d.path().join("ok");
        std::fs::write(&ok, b"hello").unwrap();
        let e = read_regular(&fifo, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_regular(&zero, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_regular(&big, 99).unwrap_err();
        assert!(e.to_string().contains("larger than 99 bytes"), "{e}");
        assert_eq!(read_regular(&ok, 5).unwrap(), b"hello");
        assert!(
            read_regular(&d.path().join("missing"), 5)
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
    }
}
