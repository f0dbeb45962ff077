//! The OIDC token: read before every send (Knative rotates it about every 30 minutes; Go reads
//! it once), trimmed, and never logged. Reading costs as little as the contract allows: one
//! `stat` per send while the file is unchanged (same device, inode, size and times), and nothing
//! at all while its directory does not exist (a Kubernetes volume is mounted before the
//! container starts, so the directory is looked for again only every [`DIR_RECHECK`]). The file
//! is read as every file from outside is ([`crate::files`]: without blocking, regular files only,
//! bounded). Why no token is sent is logged once per change, never every beat.

use crate::files::{Identity, Unread};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The longest OIDC token sent; Knative's are about 1 KiB.
pub const MAX_TOKEN: usize = 16 * 1024;
/// How often a missing token directory is looked for again.
pub const DIR_RECHECK: Duration = Duration::from_secs(10);

/// What the token file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Present(String),
    /// No token: why, for the log (`None` when the file does not exist or is empty).
    Absent(Option<String>),
}

/// The token file at one path, with what it held when last read.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    /// The file's identity and what reading it gave, while that identity holds.
    cached: Option<(Identity, Result<Token, String>)>,
    /// The directory was missing when last looked for, at this time.
    dir_missing_since: Option<Instant>,
    /// What became of the token at the last read, as last logged (empty before the first).
    state: String,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> TokenFile {
        TokenFile {
            path,
            cached: None,
            dir_missing_since: None,
            state: String::new(),
        }
    }

    /// The token to send now. `Err` is a token that must not be sent (too long, or characters a
    /// header cannot carry): the event fails, and the message does not include the token.
    pub fn read(&mut self) -> Result<Token, String> {
        let token = self.look();
        self.note(&token);
        token
    }

    fn look(&mut self) -> Result<Token, String> {
        if self
            .dir_missing_since
            .is_some_and(|since| since.elapsed() < DIR_RECHECK)
        {
            return Ok(Token::Absent(None));
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty());
                let dir_missing = dir.is_some_and(|d| !d.exists());
                self.dir_missing_since = dir_missing.then(Instant::now);
                self.cached = None;
                return Ok(Token::Absent(None));
            }
            Err(e) => return absent(&format!("cannot be examined: {}", e.kind())),
        };
        self.dir_missing_since = None;
        let identity = Identity::of(&meta);
        if let Some((known, token)) = &self.cached {
            if *known == identity {
                return token.clone();
            }
        }
        let token = read_token(&self.path);
        self.cached = Some((identity, token.clone()));
        token
    }

    /// Logs why no token is sent, or that one is, once per change. A token file that does not
    /// exist (or is empty) is OIDC switched off: silent until a token has been sent.
    fn note(&mut self, token: &Result<Token, String>) {
        let state = match token {
            Ok(Token::Present(_)) => "sent",
            Ok(Token::Absent(None)) => "does not exist or is empty",
            Ok(Token::Absent(Some(why))) => why.as_str(),
            // Refused tokens fail the event, which logs why.
            Err(_) => return,
        };
        if self.state == state {
            return;
        }
        let path = self.path.display();
        match token {
            Ok(Token::Present(_)) => crate::log::line(format_args!("OIDC token: sending {path}")),
            Ok(Token::Absent(None)) if self.state.is_empty() => {}
            _ => crate::log::line(format_args!("no OIDC token sent: {path} {state}")),
        }
        state.clone_into(&mut self.state);
    }
}

fn absent(why: &str) -> Result<Token, String> {
    Ok(Token::Absent(Some(why.to_owned())))
}

/// Reads the token from `path` (without blocking, from a regular file only, bounded: see
/// [`crate::files`]), whitespace trimmed.
fn read_token(path: &std::path::Path) -> Result<Token, String> {
    let too_long = || {
        format!(
            "the OIDC token in {} is longer than {MAX_TOKEN} bytes",
            path.display()
        )
    };
    // Room for whitespace around a token of the longest length.
    let bytes = match crate::files::read(path, 2 * MAX_TOKEN) {
        Ok(bytes) => bytes,
        Err(Unread::Missing) => return Ok(Token::Absent(None)),
        Err(Unread::TooLong(_)) => return Err(too_long()),
        Err(unread @ (Unread::Refused(_) | Unread::Directory)) => {
            return absent(&unread.to_string());
        }
    };
    let token = bytes.trim_ascii();
    if token.is_empty() {
        return Ok(Token::Absent(None));
    }
    if token.len() > MAX_TOKEN {
        return Err(too_long());
    }
    if !token.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(format!(
            "the OIDC token in {} holds characters a header cannot carry",
            path.display()
        ));
    }
    Ok(Token::Present(String::from_utf8_lossy(token).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testing::TempDir;
    use std::path::Path;

    #[test]
    fn token_is_trimmed_and_refused_when_a_header_cannot_carry_it() {
        let dir = TempDir::new("token");
        let path = dir.join("token");
        assert_eq!(read_token(&path), Ok(Token::Absent(None)));
        std::fs::write(&path, " \n").unwrap();
        assert_eq!(read_token(&path), Ok(Token::Absent(None)));
        std::fs::write(&path, "abc.def\n").unwrap();
        assert_eq!(read_token(&path), Ok(Token::Present("abc.def".to_owned())));
        std::fs::write(&path, "abc\r\nX-Injected: 1").unwrap();
        let error = read_token(&path).unwrap_err();
        assert!(!error.contains("abc"), "{error}");
    }

    #[test]
    fn token_paths_that_are_not_regular_files_give_no_token_and_say_why() {
        let absent = |path: &str| match TokenFile::new(path.into()).read() {
            Ok(Token::Absent(Some(why))) => why,
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(absent("/"), "is a directory, not a file");
        // Endless: refused by type before anything is read.
        assert_eq!(absent("/dev/zero"), "is not a regular file");
    }

    #[test]
    fn a_changed_file_is_read_again_and_an_unchanged_one_is_not() {
        let dir = TempDir::new("token-id");
        let path = dir.join("token");
        let mut file = TokenFile::new(path.clone());
        std::fs::write(&path, "one").unwrap();
        assert_eq!(file.read(), Ok(Token::Present("one".into())));
        // Same size, new contents: the times tell.
        std::fs::write(&path, "two").unwrap();
        assert_eq!(file.read(), Ok(Token::Present("two".into())));
        // Rotated as Kubernetes does: a new file renamed over the old one (a new inode).
        std::fs::write(dir.join("next"), "three").unwrap();
        std::fs::rename(dir.join("next"), &path).unwrap();
        assert_eq!(file.read(), Ok(Token::Present("three".into())));
        // Unchanged: served from what was read, without opening the file.
        let cached = file.cached.clone();
        assert_eq!(file.read(), Ok(Token::Present("three".into())));
        assert_eq!(file.cached, cached);
    }

    #[test]
    fn a_missing_directory_is_looked_for_again_only_after_a_while() {
        let mut file = TokenFile::new(Path::new("/nonexistent/heartbeats/token").into());
        assert_eq!(file.read(), Ok(Token::Absent(None)));
        assert!(file.dir_missing_since.is_some());
        file.dir_missing_since = Some(Instant::now() - DIR_RECHECK);
        assert_eq!(file.read(), Ok(Token::Absent(None)));
        assert!(file.dir_missing_since.unwrap().elapsed() < DIR_RECHECK);
    }
}
