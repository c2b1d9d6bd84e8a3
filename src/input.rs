//! Reading the text files a run is given (suites, manifests, delete lists): regular files only,
//! at most [`MAX_INPUT_BYTES`], UTF-8. Each refusal is its own plain message: a directory, a
//! FIFO, a socket or a device is named as such, and a byte that is not UTF-8 is named with its
//! line and column.
//!
//! What it does not do: decide which paths may be read (that is `crate::suite::confine`), or
//! parse what it read.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest input read: the Kubernetes API server's limit on a request body (3 MiB), so a
/// manifest `kubectl apply` could not send is not read either.
pub(crate) const MAX_INPUT_BYTES: u64 = 3 * 1024 * 1024;

/// What kind of file a path is, when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotRegular {
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl fmt::Display for NotRegular {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotRegular::Directory => "a directory",
            NotRegular::Fifo => "a FIFO (named pipe)",
            NotRegular::Socket => "a socket",
            NotRegular::CharDevice => "a character device",
            NotRegular::BlockDevice => "a block device",
            NotRegular::Other => "not a regular file",
        })
    }
}

impl NotRegular {
    fn of(file_type: std::fs::FileType) -> Option<NotRegular> {
        Some(if file_type.is_file() {
            return None;
        } else if file_type.is_dir() {
            NotRegular::Directory
        } else if file_type.is_fifo() {
            NotRegular::Fifo
        } else if file_type.is_socket() {
            NotRegular::Socket
        } else if file_type.is_char_device() {
            NotRegular::CharDevice
        } else if file_type.is_block_device() {
            NotRegular::BlockDevice
        } else {
            NotRegular::Other
        })
    }
}

/// Why a file could not be read as text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("{}: does not exist", .file.display())]
    Missing { file: PathBuf },
    #[error("{}: is {kind}, not a file", .file.display())]
    NotRegular { file: PathBuf, kind: NotRegular },
    #[error(
        "{}: is {size} bytes, more than the {} bytes the Kubernetes API server takes in one request",
        .file.display(), MAX_INPUT_BYTES
    )]
    TooLarge { file: PathBuf, size: u64 },
    #[error(
        "{}:{line}:{column}: not UTF-8 text: byte 0x{byte:02x} cannot start or continue a UTF-8 character (YAML files must be UTF-8)",
        .file.display()
    )]
    NotUtf8 {
        file: PathBuf,
        line: usize,
        column: usize,
        byte: u8,
    },
    #[error("{}: cannot read: {source}", .file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReadError {
    fn io(file: &Path, source: std::io::Error) -> ReadError {
        match source.kind() {
            std::io::ErrorKind::NotFound => ReadError::Missing {
                file: file.to_path_buf(),
            },
            _ => ReadError::Io {
                file: file.to_path_buf(),
                source,
            },
        }
    }
}

/// The kind of `path` when it exists and is not a regular file (symlinks followed).
pub(crate) fn not_regular(path: &Path) -> Option<NotRegular> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| NotRegular::of(m.file_type()))
}

/// Read `open` as UTF-8 text; `shown` is the name errors give it. The file is opened without
/// blocking (a FIFO is refused, never waited on) and checked after it is opened, so what is read
/// is what was checked.
pub(crate) fn read_text(open: &Path, shown: &Path) -> Result<String, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(open)
        .map_err(|e| ReadError::io(shown, e))?;
    read_open(file, shown)
}

/// Like [`read_text`], refusing a symlink as the last component (the caller has resolved the
/// path and checked where it points).
pub(crate) fn read_resolved(open: &Path, shown: &Path) -> Result<String, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(open)
        .map_err(|e| ReadError::io(shown, e))?;
    read_open(file, shown)
}

fn read_open(file: File, shown: &Path) -> Result<String, ReadError> {
    let metadata = file.metadata().map_err(|e| ReadError::io(shown, e))?;
    if let Some(kind) = NotRegular::of(metadata.file_type()) {
        return Err(ReadError::NotRegular {
            file: shown.to_path_buf(),
            kind,
        });
    }
    if metadata.len() > MAX_INPUT_BYTES {
        return Err(ReadError::TooLarge {
            file: shown.to_path_buf(),
            size: metadata.len(),
        });
    }
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file that grew after the check.
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::io(shown, e))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(ReadError::TooLarge {
            file: shown.to_path_buf(),
            size: bytes.len() as u64,
        });
    }
    utf8(shown, bytes)
}

/// `bytes` as text, or where the first byte that is not UTF-8 is.
pub(crate) fn utf8(shown: &Path, bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|error| {
        let bytes = error.as_bytes();
        let at = error.utf8_error().valid_up_to();
        let before = &bytes[..at];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        // Valid UTF-8 up to `at`: count characters, not bytes, as an editor does.
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        ReadError::NotUtf8 {
            file: shown.to_path_buf(),
            line,
            column,
            byte: bytes[at],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_that_is_not_utf8_is_named_with_its_line_and_column() {
        let error = utf8(Path::new("m.yaml"), b"a: 1\nname: x\xffy\n".to_vec()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "m.yaml:2:8: not UTF-8 text: byte 0xff cannot start or continue a UTF-8 character (YAML files must be UTF-8)"
        );
        // Columns count characters.
        let error = utf8(
            Path::new("m.yaml"),
            "é\u{e9}".bytes().chain([0xc3]).collect(),
        )
        .unwrap_err();
        assert!(error.to_string().starts_with("m.yaml:1:3:"), "{error}");
    }

    #[test]
    fn directories_fifos_and_missing_files_each_have_their_own_message() {
        let dir = tempfile::tempdir().unwrap();
        let shown = |name: &str| dir.path().join(name);
        let message = |name: &str| {
            read_text(&shown(name), &shown(name))
                .unwrap_err()
                .to_string()
        };
        std::fs::create_dir(shown("sub")).unwrap();
        assert!(message("sub").ends_with("sub: is a directory, not a file"));
        let fifo = std::ffi::CString::new(shown("pipe").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        // Refused at once, never waited on for a writer.
        assert!(message("pipe").ends_with("pipe: is a FIFO (named pipe), not a file"));
        assert!(message("none").ends_with("none: does not exist"));
        std::fs::write(shown("ok"), "a: b\n").unwrap();
        assert_eq!(read_text(&shown("ok"), &shown("ok")).unwrap(), "a: b\n");
        assert!(message_resolved(&shown("ok")).is_none());
        std::os::unix::fs::symlink(shown("ok"), shown("link")).unwrap();
        assert!(message_resolved(&shown("link")).is_some());
    }

    fn message_resolved(path: &Path) -> Option<String> {
        read_resolved(path, path).err().map(|e| e.to_string())
    }

    #[test]
    fn a_file_larger_than_the_api_server_takes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_INPUT_BYTES + 1).unwrap();
        let error = read_text(&path, &path).unwrap_err();
        assert!(matches!(error, ReadError::TooLarge { size, .. } if size == MAX_INPUT_BYTES + 1));
    }
}
