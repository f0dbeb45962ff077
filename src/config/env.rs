//! Where configuration comes from, and the one rule for reading it: a variable that is unset or
//! empty is absent, and one that is not UTF-8 is an error naming it, wherever it is read. The
//! caller decides what an error means: a refusal for what a person wrote, a warning for what
//! Knative generates.

use std::ffi::OsString;

use crate::error::Error;

/// Where configuration comes from, so that tests and the demo never touch the process.
pub trait Host {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<OsString>;
    /// A small file's text (the namespace file), `None` when unreadable.
    fn read_file(&self, path: &str) -> Option<String>;
}

/// The real process environment and file system.
pub struct Process;

impl Host for Process {
    fn var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
    fn read_file(&self, path: &str) -> Option<String> {
        // A namespace name is at most 253 bytes.
        crate::files::read_text(path.as_ref(), 4096).ok()
    }
}

/// The environment as text.
#[derive(Clone, Copy)]
pub struct Env<'a>(pub &'a dyn Host);

impl Env<'_> {
    /// Variable `name`: `None` when unset or empty, an error naming it when not UTF-8.
    pub fn get(&self, name: &str) -> Result<Option<String>, Error> {
        match self.0.var(name) {
            Some(value) if !value.is_empty() => utf8(name, value).map(Some),
            _ => Ok(None),
        }
    }

    /// The first of `names` that is set, with its name.
    pub fn first<'n>(&self, names: &[&'n str]) -> Result<Option<(&'n str, String)>, Error> {
        for name in names {
            if let Some(value) = self.get(name)? {
                return Ok(Some((name, value)));
            }
        }
        Ok(None)
    }

    pub fn read_file(&self, path: &str) -> Option<String> {
        self.0.read_file(path)
    }
}

/// `value` of flag or variable `name` as text; not UTF-8 is an error naming it.
pub fn utf8(name: &str, value: OsString) -> Result<String, Error> {
    value
        .into_string()
        .map_err(|raw| Error::invalid(name, &raw.to_string_lossy(), "expected UTF-8 text"))
}
