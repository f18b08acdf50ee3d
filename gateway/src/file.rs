//! Bounded reads of regular files: the one way vnetsim reads a file that a topology names or a
//! user passes (fixtures, Azure inputs, parameters files, service tag files, PEM files).
//!
//! A path can name anything: `/dev/zero` never ends, a FIFO blocks the reader until someone
//! writes (and a blocked reader holds up shutdown), a huge file exhausts memory. [`read_to_string`]
//! refuses all three before reading a byte it does not need: the path must be a regular file
//! (checked on the path, then again on the opened handle, which is opened non-blocking so a FIFO
//! swapped in between cannot block), and at most `max` bytes are read. What the file *means* is
//! the caller's business; this module leaves parsing, and naming the file in messages, to them.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// Default cap on one file read on a topology's behalf: 64 MiB. The largest file vnetsim reads
/// in practice is Microsoft's weekly `ServiceTags_Public_*.json` (about 4 MB in 2025); 64 MiB
/// leaves more than ten times that as margin while keeping a mistaken or hostile path (a disk
/// image, a log) from filling memory. Callers let users raise it (`--max-file-bytes`,
/// `VNETSIM_MAX_FILE_BYTES` in the root crate).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a regular file of at most `max` bytes as UTF-8 text.
///
/// # Errors
/// An [`io::Error`] whose kind says why, so callers can tell bad input from an unreadable
/// disk without reading the message:
/// - [`io::ErrorKind::InvalidInput`]: the path is not a regular file (a directory, FIFO,
///   socket or device such as `/dev/zero`);
/// - [`io::ErrorKind::FileTooLarge`]: the file holds more than `max` bytes;
/// - [`io::ErrorKind::InvalidData`]: the content is not UTF-8;
/// - any other kind: the file could not be opened or read (missing, permissions, ...).
///
/// ```
/// use std::io::ErrorKind;
/// let dir = std::env::temp_dir().join(format!("vnetsim-file-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let p = dir.join("a.txt");
/// std::fs::write(&p, "hello").unwrap();
/// assert_eq!(gateway::file::read_to_string(&p, 5).unwrap(), "hello");
/// assert_eq!(gateway::file::read_to_string(&p, 4).unwrap_err().kind(), ErrorKind::FileTooLarge);
/// assert_eq!(gateway::file::read_to_string(&dir, 5).unwrap_err().kind(), ErrorKind::InvalidInput);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_to_string(path: &Path, max: u64) -> io::Result<String> {
    let bytes = read(path, max)?;
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8 text"))
}

/// Reads a regular file of at most `max` bytes.
///
/// # Errors
/// As [`read_to_string`], less the UTF-8 check.
pub fn read(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    // Checked on the path first, so a FIFO or device is never opened at all.
    regular(&std::fs::metadata(path)?, max)?;
    let file = open_nonblocking(path)?;
    // Checked again on the handle: the path may have been replaced since.
    let size = regular(&file.metadata()?, max)?;
    let cap = usize::try_from(size.min(max)).unwrap_or(usize::MAX);
    let mut buf = Vec::with_capacity(cap.saturating_add(1));
    // One byte past the cap tells "exactly max" from "more" (the file may grow while read).
    file.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(buf)
}

/// The file's size when it is a regular file within `max` bytes.
fn regular(meta: &Metadata, max: u64) -> io::Result<u64> {
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file (it is {})", kind(meta)),
        ));
    }
    if meta.len() > max {
        return Err(too_large(max));
    }
    Ok(meta.len())
}

fn too_large(max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("the file is larger than the {max}-byte limit on files read for a topology"),
    )
}

fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    "not a regular file"
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer;
    // reads of a regular file ignore the flag.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn temp() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "vnetsim-file-{}-{}",
            std::process::id(),
            crate::tls::random_hex(6).expect("random bytes")
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    }

    #[test]
    fn regular_files_within_the_cap_are_read() {
        let dir = temp();
        let p = dir.join("t.json");
        std::fs::write(&p, "{}").unwrap();
        assert_eq!(read_to_string(&p, 2).unwrap(), "{}");
        // One byte over the cap is refused, and says so by kind.
        assert_eq!(
            read_to_string(&p, 1).unwrap_err().kind(),
            io::ErrorKind::FileTooLarge
        );
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_to_string(&p, 10).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        let t = Instant::now();
        // `/dev/zero` never ends: refused as a device, not read up to the cap.
        let e = read(Path::new("/dev/zero"), DEFAULT_MAX_FILE_BYTES).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("device"), "{e}");
        // A FIFO with no writer would block a plain open forever.
        let dir = temp();
        let fifo = dir.join("tags.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let e = read_to_string(&fifo, DEFAULT_MAX_FILE_BYTES).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
