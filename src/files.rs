//! Reading files this program did not write (a token, certificates, the resolver's
//! configuration) without letting them stall or swamp it: regular files only, opened without
//! blocking (a FIFO would wait for a writer forever, with the stop signals unread), and read up to
//! a bound (`/dev/zero` never ends; `/proc/self/pagemap` is gigabytes).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What the first read of a file that states no size (in /proc) is offered.
const MIN_ROOM: usize = 4096;

/// Why a file was not read, for a message naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// It does not exist.
    Missing,
    /// It is a directory.
    Directory,
    /// It holds more than the bound.
    TooLong(usize),
    /// What is wrong with it: not a regular file, unreadable.
    Refused(String),
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Missing => f.write_str("does not exist"),
            Unread::Directory => f.write_str("is a directory, not a file"),
            Unread::TooLong(limit) => write!(f, "is longer than {limit} bytes"),
            Unread::Refused(why) => f.write_str(why),
        }
    }
}

/// A regular file from outside, open, with what the system says of it (one `fstat`).
pub struct Opened {
    file: std::fs::File,
    pub meta: std::fs::Metadata,
}

/// The regular file at `path`, opened without blocking.
pub fn open(path: &Path) -> Result<Opened, Unread> {
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
        return Err(Unread::Directory);
    }
    if !meta.is_file() {
        return Err(Unread::Refused("is not a regular file".to_owned()));
    }
    Ok(Opened { file, meta })
}

impl Opened {
    /// Its bytes, at most `limit` of them; a longer file is refused. A file that states its
    /// size is read in one `read` of that size (what it grows by meanwhile is not waited for);
    /// one that states none (as those of /proc) until its end, a page at a time at first.
    pub fn read(mut self, limit: usize) -> Result<Vec<u8>, Unread> {
        let failed =
            |e: std::io::Error| Unread::Refused(format!("cannot be read: {}", os_reason(&e)));
        let size = usize::try_from(self.meta.len()).unwrap_or(usize::MAX);
        if size > limit {
            return Err(Unread::TooLong(limit));
        }
        if size > 0 {
            let mut bytes = vec![0; size];
            let mut filled = 0;
            while filled < size {
                match self.file.read(&mut bytes[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(failed(e)),
                }
            }
            bytes.truncate(filled);
            return Ok(bytes);
        }
        let mut bytes = Vec::with_capacity(MIN_ROOM.min(limit).saturating_add(1));
        let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        self.file
            .take(bound)
            .read_to_end(&mut bytes)
            .map_err(failed)?;
        if bytes.len() > limit {
            return Err(Unread::TooLong(limit));
        }
        Ok(bytes)
    }
}

/// The bytes of the regular file at `path`, at most `limit` of them; a longer file is refused.
pub fn read(path: &Path, limit: usize) -> Result<Vec<u8>, Unread> {
    open(path)?.read(limit)
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

/// What tells a changed file from the same one, from its metadata: a rotation swaps the inode
/// (Kubernetes swaps a volume's `..data` link), an edit in place changes the size or the times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What unit tests that need files share.
#[cfg(test)]
pub mod testing {
    use std::path::{Path, PathBuf};

    /// A fresh directory of its own, made (never reused: `mkdir` fails on a name that exists,
    /// and another random name is tried) and removed with everything in it when dropped, also
    /// when the test fails. Two runs at once, or a failed one before, cannot meet in it.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(name: &str) -> TempDir {
            loop {
                let mut random = [0u8; 8];
                getrandom::getrandom(&mut random).expect("randomness");
                let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
                let path = std::env::temp_dir().join(format!("heartbeats-{name}-{suffix}"));
                match std::fs::create_dir(&path) {
                    Ok(()) => return TempDir(path),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => panic!("cannot make {}: {e}", path.display()),
                }
            }
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        /// `name` inside the directory.
        pub fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read_and_only_up_to_the_bound() {
        let temp = testing::TempDir::new("files");
        let dir = temp.path();
        let path = dir.join("small");
        std::fs::write(&path, "12345").unwrap();
        assert_eq!(read(&path, 5), Ok(b"12345".to_vec()));
        assert_eq!(read(&path, 4), Err(Unread::TooLong(4)));
        // A file of /proc states no size: read to its end, and bounded all the same.
        let stat = read(Path::new("/proc/self/stat"), 4096).unwrap();
        assert!(stat.ends_with(b"\n") && stat.len() > 50, "{}", stat.len());
        assert_eq!(
            read(Path::new("/proc/self/stat"), 10),
            Err(Unread::TooLong(10))
        );
        assert_eq!(
            read(&path, 4).unwrap_err().to_string(),
            "is longer than 4 bytes"
        );
        assert_eq!(read(&dir.join("none"), 5), Err(Unread::Missing));
        assert_eq!(read(dir, 5), Err(Unread::Directory));
        assert_eq!(Unread::Directory.to_string(), "is a directory, not a file");
        assert_eq!(
            read(Path::new("/dev/zero"), 5),
            Err(Unread::Refused("is not a regular file".into()))
        );
    }
}
