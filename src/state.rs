//! `--state-file`: what a run keeps for the next one, on a volume the manifest mounts (the root
//! filesystem stays read-only): the last fire time delivered (to the sink or the dead-letter
//! sink), for `--catch-up`, and the last sequence number given, for `--sequence`. It is read
//! as every file from outside is (regular only, without blocking, bounded) and written
//! atomically: a temporary file beside it, written, synced, renamed over it, the directory
//! synced. A state that cannot be read (missing, unreadable, corrupt, not a regular file) is a
//! warning, and the run starts afresh: a state file never stops a source. A write that fails is
//! a warning once, and again when writes work again.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::files::{self, Unread};
use crate::log;
use crate::time::{parse_rfc3339, rfc3339_nano};

/// The most of a state file read: it holds two values.
const MAX_STATE: usize = 4096;

/// What is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// The scheduled time of the last fire delivered.
    pub last_fire: Option<SystemTime>,
    /// The last sequence number given (0: none yet).
    pub sequence: u64,
}

/// The file's text: JSON, times in RFC 3339.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_fire: Option<String>,
    #[serde(default)]
    sequence: u64,
}

/// A state file: where it is, what it holds, and whether writing it last failed.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// Beside it: written, then renamed over it.
    temporary: PathBuf,
    pub state: State,
    failing: bool,
}

impl StateFile {
    /// The state at `path`: what it holds, or a fresh one with a warning saying why.
    pub fn open(path: &Path) -> StateFile {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let state = match read(path) {
            Ok(state) => state,
            Err(why) => {
                log::line(format_args!(
                    "warning: --state-file {} {why}; starting afresh",
                    path.display()
                ));
                State::default()
            }
        };
        StateFile {
            path: path.to_owned(),
            temporary: PathBuf::from(temporary),
            state,
            failing: false,
        }
    }

    /// Keeps `state`, written atomically; a failure is a warning (once while it lasts).
    pub fn save(&mut self, state: State) {
        self.state = state;
        match self.write() {
            Ok(()) if self.failing => {
                self.failing = false;
                log::line(format_args!(
                    "--state-file {} is written again",
                    self.path.display()
                ));
            }
            Ok(()) => {}
            Err(error) if !self.failing => {
                self.failing = true;
                log::line(format_args!(
                    "warning: cannot write --state-file {}: {}; the next run may catch up \
                     fires that were delivered",
                    self.path.display(),
                    error.kind()
                ));
            }
            Err(_) => {}
        }
    }

    fn write(&self) -> std::io::Result<()> {
        let stored = Stored {
            last_fire: self.state.last_fire.map(rfc3339_nano),
            sequence: self.state.sequence,
        };
        let mut text = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        text.push(b'\n');
        // Never through a link, and never waiting for a reader (a FIFO put there fails).
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.temporary)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&self.temporary, &self.path)?;
        // The rename itself lasts once the directory is synced (best effort: not every
        // filesystem lets a directory be opened to sync).
        let directory = self.path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Ok(directory) = std::fs::File::open(directory.unwrap_or(Path::new("."))) {
            let _ = directory.sync_all();
        }
        Ok(())
    }
}

/// The state at `path`; a missing file is a fresh state without a word (the first run).
fn read(path: &Path) -> Result<State, String> {
    let bytes = match files::read(path, MAX_STATE) {
        Ok(bytes) => bytes,
        Err(Unread::Missing) => return Ok(State::default()),
        Err(unread) => return Err(unread.to_string()),
    };
    let stored: Stored = serde_json::from_slice(&bytes)
        .map_err(|_| "is not a state this program wrote".to_owned())?;
    let last_fire = match stored.last_fire {
        Some(text) => {
            let (secs, nanos) = parse_rfc3339(&text)
                .filter(|(secs, _)| *secs >= 0)
                .ok_or_else(|| "holds a fire time that is not one".to_owned())?;
            UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
        }
        None => None,
    };
    Ok(State {
        last_fire,
        sequence: stored.sequence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testing::TempDir;

    #[test]
    fn a_state_is_written_atomically_and_read_back() {
        let dir = TempDir::new("state");
        let path = dir.join("state.json");
        let mut file = StateFile::open(&path);
        assert_eq!(file.state, State::default());
        let state = State {
            last_fire: Some(UNIX_EPOCH + Duration::from_millis(1_790_000_000_500)),
            sequence: 41,
        };
        file.save(state);
        assert!(!file.temporary.exists(), "renamed, not left beside it");
        assert_eq!(StateFile::open(&path).state, state);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"last_fire\":\"2026-09-21T14:13:20.5Z\",\"sequence\":41}\n"
        );
    }

    #[test]
    fn a_state_that_cannot_be_used_is_a_fresh_start() {
        let dir = TempDir::new("state-bad");
        for (text, why) in [
            ("not json", "is not a state this program wrote"),
            (
                "{\"last_fire\":\"yesterday\"}",
                "holds a fire time that is not one",
            ),
            ("{\"sequence\":-1}", "is not a state this program wrote"),
        ] {
            let path = dir.join("state");
            std::fs::write(&path, text).unwrap();
            assert_eq!(read(&path), Err(why.to_owned()), "{text}");
            assert_eq!(StateFile::open(&path).state, State::default());
        }
        assert_eq!(
            read(dir.path()),
            Err("is a directory, not a file".to_owned())
        );
        assert_eq!(read(&dir.join("none")), Ok(State::default()));
    }

    #[test]
    fn a_write_that_fails_keeps_the_state_in_memory() {
        let mut file = StateFile::open(Path::new("/nonexistent/heartbeats/state"));
        let state = State {
            last_fire: None,
            sequence: 3,
        };
        file.save(state);
        assert!(file.failing);
        assert_eq!(file.state, state);
    }
}
