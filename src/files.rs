//! Reading files this program did not write (a token, certificates, the resolver's
//! configuration) without letting them stall or swamp it: regular files only, opened without
//! blocking (a FIFO would wait for a writer forever, with the stop signals unread), and read up to
//! a bound (`/dev/zero` never ends; `/proc/self/pagemap` is gigabytes).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file was not read, for a message naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// It does not exist.
    Missing,
    /// It holds more than the bound.
    TooLong(usize),
    /// What is wrong with it: not a regular file, unreadable.
    Refused(String),
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Missing => f.write_str("does not exist"),
            Unread::TooLong(limit) => write!(f, "is longer than {limit} bytes"),
            Unread::Refused(why) => f.write_str(why),
        }
    }
}

/// The bytes of the regular file at `path`, at most `limit` of them; a longer file is refused.
pub fn read(path: &Path, limit: usize) -> Result<Vec<u8>, Unread> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Unread::Missing,
            _ => Unread::Refused(format!("cannot be opened: {}", os_reason(&e))),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Unread::Refused(format!("cannot be examined: {}", os_reason(&e))))?;
    if meta.is_dir() {
        return Err(Unread::Refused("is a directory, not a file".to_owned()));
    }
    if !meta.is_file() {
        return Err(Unread::Refused("is not a regular file".to_owned()));
    }
    let mut bytes = Vec::new();
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(bound)
        .read_to_end(&mut bytes)
        .map_err(|e| Unread::Refused(format!("cannot be read: {}", os_reason(&e))))?;
    if bytes.len() > limit {
        return Err(Unread::TooLong(limit));
    }
    Ok(bytes)
}

/// What the system said, without the error number: `Input/output error`.
fn os_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// [`read`] as text; bytes that are not UTF-8 are replaced.
pub fn read_text(path: &Path, limit: usize) -> Result<String, Unread> {
    read(path, limit).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read_and_only_up_to_the_bound() {
        let dir = std::env::temp_dir().join(format!("heartbeats-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("small");
        std::fs::write(&path, "12345").unwrap();
        assert_eq!(read(&path, 5), Ok(b"12345".to_vec()));
        assert_eq!(read(&path, 4), Err(Unread::TooLong(4)));
        assert_eq!(
            read(&path, 4).unwrap_err().to_string(),
            "is longer than 4 bytes"
        );
        assert_eq!(read(&dir.join("none"), 5), Err(Unread::Missing));
        assert_eq!(
            read(&dir, 5),
            Err(Unread::Refused("is a directory, not a file".into()))
        );
        assert_eq!(
            read(Path::new("/dev/zero"), 5),
            Err(Unread::Refused("is not a regular file".into()))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
