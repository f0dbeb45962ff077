//! Where https trusts certificates: Mozilla's roots compiled in (the image has no CA store),
//! `K_CA_CERTS`/`--cacerts`, `SSL_CERT_FILE`, `SSL_CERT_DIR`, and every PEM file of Knative's
//! trust bundles. PEM text is never quoted in a message: it may be a private key pasted by
//! mistake.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::Named;
use crate::config::tls::{SSL_CERT_DIR, SSL_CERT_FILE, Trust};
use crate::error::Error;
use crate::files::Unread;

/// Directory depth searched below the trust bundle directory.
const MAX_BUNDLE_DEPTH: usize = 8;
/// The longest file of certificates read (a system bundle is a few hundred KiB).
const MAX_TRUST_FILE: usize = 1024 * 1024;

/// Mozilla's roots, then `extra`, `SSL_CERT_FILE`, `SSL_CERT_DIR`, and every PEM file below the
/// bundle directory.
pub fn root_store(
    trust: &Trust,
    extra: Option<&Named>,
    warnings: &mut Vec<String>,
) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(extra) = extra {
        add_extra(&mut roots, extra)?;
    }
    let mut walk = BundleWalk {
        roots: &mut roots,
        warnings,
        visited: Vec::new(),
        read: Vec::new(),
    };
    if let Some(file) = &trust.cert_file {
        walk.file(SSL_CERT_FILE, file);
    }
    for dir in &trust.cert_dirs {
        walk.cert_dir(dir);
    }
    walk.dir(&trust.bundle_dir, 0);
    Ok(roots)
}

/// Adds the certificates of `extra`, which must hold at least one and nothing broken.
fn add_extra(roots: &mut RootCertStore, extra: &Named) -> Result<(), Error> {
    let Named { name, value } = extra;
    let added = add_pem(roots, value.as_bytes()).map_err(|e| Error::unusable(name, e))?;
    if added == 0 {
        return Err(Error::unusable(name, "no PEM certificate found"));
    }
    Ok(())
}

/// Whether `extra` holds usable certificates (see [`add_extra`]), into a store of its own.
pub fn check_extra(extra: &Named) -> Result<(), Error> {
    add_extra(&mut RootCertStore::empty(), extra)
}

/// PEM labels shown by name in messages; any other label is shown as "unknown type", since
/// the text of a PEM is never quoted (it may be a private key pasted by mistake).
const KNOWN_LABELS: [&str; 10] = [
    "CERTIFICATE",
    "TRUSTED CERTIFICATE",
    "X509 CRL",
    "CERTIFICATE REQUEST",
    "PUBLIC KEY",
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "OPENSSH PRIVATE KEY",
];

/// Adds every `CERTIFICATE` block of `pem` (other blocks are skipped) and returns how many. On
/// a block that cannot be used, says which (by position and type) and why, without quoting it.
fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<usize, String> {
    let mut added = 0;
    for (index, block) in pem_blocks(pem).enumerate() {
        let n = index + 1;
        let (label, text) =
            block.map_err(|label| format!("PEM block {n} ({label}) has no END line"))?;
        if label != "CERTIFICATE" {
            continue;
        }
        let bad = |why: &str| format!("PEM block {n} (CERTIFICATE): {why}");
        let cert = CertificateDer::from_pem_slice(text).map_err(|_| bad("not valid base64"))?;
        roots
            .add(cert)
            .map_err(|e| bad(&format!("not a usable CA certificate ({e})")))?;
        added += 1;
    }
    Ok(added)
}

/// The `-----BEGIN X-----` … `-----END X-----` blocks of `pem`, in order, each as its label
/// (one of [`KNOWN_LABELS`] or "unknown type") and its text, markers included; a block without
/// its END line is an error carrying the label, and ends the iteration.
fn pem_blocks(pem: &[u8]) -> impl Iterator<Item = Result<(&'static str, &[u8]), &'static str>> {
    let mut rest = pem;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let begin = find(rest, b"-----BEGIN ")?;
        let line_end = memchr::memchr(b'\n', &rest[begin..]).map_or(rest.len(), |i| begin + i);
        let line = rest[begin..line_end].trim_ascii();
        let label = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|l| l.strip_suffix(b"-----"))
            .unwrap_or_default();
        let shown = KNOWN_LABELS
            .iter()
            .find(|k| k.as_bytes() == label)
            .copied()
            .unwrap_or("unknown type");
        let end_marker = [b"-----END ", label, b"-----"].concat();
        let Some(end) = find(&rest[line_end..], &end_marker).map(|i| line_end + i) else {
            failed = true;
            return Some(Err(shown));
        };
        let block_end = end + end_marker.len();
        let text = &rest[begin..block_end];
        rest = &rest[block_end..];
        Some(Ok((shown, text)))
    })
}

/// Where `needle` (not empty) first occurs in `haystack`: candidates found by their first byte
/// with memchr (memchr's own `memmem` would add its searchers, kilobytes, for a few PEM files).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = memchr::memchr(first, &haystack[from..]) {
        let at = from + offset;
        if haystack[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Whether the name of the file at `path` says it holds certificates (`.pem`, `.crt`, `.cer`).
fn named_as_certificates(path: &Path) -> bool {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    ["pem", "crt", "cer"]
        .iter()
        .any(|known| extension.eq_ignore_ascii_case(known))
}

/// The walk of a trust bundle directory: every PEM file below it, recursively. Kubernetes'
/// `..data`-style entries are skipped (the visible names link to the same files), and each
/// directory is entered once however many symlinks lead to it, so a link loop cannot make the
/// walk exponential. A file that cannot be used is skipped with a warning: Knative copies every
/// bundle into every namespace, and one bad file must not stop every source in the cluster.
struct BundleWalk<'a> {
    roots: &'a mut RootCertStore,
    warnings: &'a mut Vec<String>,
    /// (device, inode) of every directory entered.
    visited: Vec<(u64, u64)>,
    /// (device, inode) of every file read: a certificate linked under two names (a c_rehash
    /// directory such as /etc/ssl/certs, or SSL_CERT_FILE inside SSL_CERT_DIR) is parsed once.
    read: Vec<(u64, u64)>,
}

impl BundleWalk<'_> {
    /// A directory of `SSL_CERT_DIR`: its files, not what is below it (as Go and OpenSSL).
    fn cert_dir(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.warnings.push(format!(
                    "{SSL_CERT_DIR} directory {} skipped: {}",
                    dir.display(),
                    e.kind()
                ));
                return;
            }
        };
        for entry in entries.flatten() {
            // The entry's type comes with the listing; a link is opened and told by its target.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.file(&format!("{SSL_CERT_DIR} file"), &entry.path());
            }
        }
    }

    fn dir(&mut self, dir: &Path, depth: usize) {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        let id = (meta.dev(), meta.ino());
        if self.visited.contains(&id) {
            return;
        }
        self.visited.push(id);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().as_encoded_bytes().starts_with(b"..") {
                continue;
            }
            let path = entry.path();
            let is_dir = match entry.file_type() {
                Ok(t) if t.is_symlink() => std::fs::metadata(&path).is_ok_and(|m| m.is_dir()),
                Ok(t) => t.is_dir(),
                Err(_) => continue,
            };
            if is_dir && depth < MAX_BUNDLE_DEPTH {
                self.dir(&path, depth + 1);
            } else if !is_dir {
                self.file("trust bundle file", &path);
            }
        }
    }

    /// Adds the certificates of the file at `path` (`what` names it in a warning), once: it
    /// is opened, told by its device and inode, and read, in as few system calls as that takes.
    /// A directory reached through a link is passed over; anything else that cannot be used is
    /// a warning.
    fn file(&mut self, what: &str, path: &Path) {
        use std::os::unix::fs::MetadataExt;
        let added = match crate::files::open(path) {
            Err(Unread::Directory) => return,
            Err(unread) => Err(unread.to_string()),
            Ok(opened) => {
                let id = (opened.meta.dev(), opened.meta.ino());
                if self.read.contains(&id) {
                    return;
                }
                self.read.push(id);
                opened
                    .read(MAX_TRUST_FILE)
                    .map_err(|unread| unread.to_string())
                    .and_then(|pem| {
                        if find(&pem, b"-----BEGIN ").is_some() {
                            add_pem(self.roots, &pem)
                        } else if named_as_certificates(path) {
                            Err("no PEM block found".to_owned())
                        } else {
                            // Not a file of certificates (a README): nothing to say.
                            Ok(0)
                        }
                    })
            }
        };
        if let Err(why) = added {
            self.warnings
                .push(format!("{what} {} skipped: {why}", path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testing::TempDir;

    fn trust(dir: &Path) -> Trust {
        Trust {
            extra: None,
            bundle_dir: dir.to_owned(),
            cert_file: None,
            cert_dirs: Vec::new(),
        }
    }

    fn roots(extra: Option<(&str, &str)>, dir: &Path) -> (Result<usize, Error>, Vec<String>) {
        let mut warnings = Vec::new();
        let extra = extra.map(|(name, value)| Named {
            name: name.into(),
            value: value.into(),
        });
        let store = root_store(&trust(dir), extra.as_ref(), &mut warnings).map(|r| r.len());
        (store, warnings)
    }

    #[test]
    fn missing_bundle_dir_and_no_extra_give_the_bundled_roots() {
        let (store, warnings) = roots(None, Path::new("/nonexistent/heartbeats"));
        assert_eq!(store, Ok(webpki_roots::TLS_SERVER_ROOTS.len()));
        assert!(warnings.is_empty());
    }

    /// A PKCS#8 EC private key as someone might paste by mistake; its text must never be shown.
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRETSECRE\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn extra_text_without_a_usable_certificate_is_refused_by_name_without_quoting_it() {
        let broken =
            format!("{KEY}-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
        let cases = [
            (
                "hello SECRET",
                "invalid K_CA_CERTS: no PEM certificate found",
            ),
            (KEY, "invalid K_CA_CERTS: no PEM certificate found"),
            (
                &broken,
                "invalid K_CA_CERTS: PEM block 2 (CERTIFICATE): not valid base64",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nSECRET",
                "invalid K_CA_CERTS: PEM block 1 (EC PRIVATE KEY) has no END line",
            ),
            (
                "-----BEGIN SECRET STUFF-----\nx\n",
                "invalid K_CA_CERTS: PEM block 1 (unknown type) has no END line",
            ),
        ];
        for (pem, expected) in cases {
            let line = roots(Some(("K_CA_CERTS", pem)), Path::new("/nonexistent"))
                .0
                .unwrap_err()
                .to_string();
            assert_eq!(line, expected);
            assert!(!line.contains("SECRET") && !line.contains("MIG"), "{line}");
        }
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn bundle_files_are_found_recursively_and_kubernetes_data_links_skipped() {
        let bundled = webpki_roots::TLS_SERVER_ROOTS.len();
        let dir = TempDir::new("tls-bundle");
        std::fs::create_dir_all(dir.join("team/..2026_11_25/")).unwrap();
        std::fs::write(dir.join("team/ca.pem"), ca_pem()).unwrap();
        std::fs::write(dir.join("team/..2026_11_25/ca.pem"), ca_pem()).unwrap();
        std::fs::write(dir.join("notes.txt"), "no certificate here").unwrap();
        assert_eq!(roots(None, dir.path()), (Ok(bundled + 1), vec![]));
        let two = format!("{}{KEY}{}", ca_pem(), ca_pem());
        assert_eq!(
            roots(Some(("K_CA_CERTS", &two)), dir.path()),
            (Ok(bundled + 3), vec![])
        );
    }

    #[test]
    fn a_broken_pem_file_in_the_bundle_dir_is_skipped_with_a_warning_naming_it() {
        let dir = TempDir::new("tls-broken");
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        std::fs::write(
            dir.join("bundle/bad.pem"),
            format!("{KEY}-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        std::fs::write(dir.join("bundle/good.pem"), ca_pem()).unwrap();
        std::fs::write(dir.join("README"), "not a certificate").unwrap();
        // Named as certificates, holding none (issue 33: this was silent).
        std::fs::write(dir.join("bundle/empty.CRT"), "").unwrap();
        let (added, mut warnings) = roots(None, dir.path());
        assert_eq!(added, Ok(webpki_roots::TLS_SERVER_ROOTS.len() + 1));
        warnings.sort();
        let [warning, empty] = &warnings[..] else {
            panic!("{warnings:?}")
        };
        assert!(
            empty.ends_with("bundle/empty.CRT skipped: no PEM block found"),
            "{empty}"
        );
        assert!(
            warning
                .ends_with("bundle/bad.pem skipped: PEM block 2 (CERTIFICATE): not valid base64"),
            "{warning}"
        );
        assert!(!warning.contains("MIG"), "{warning}");
    }

    #[test]
    fn symlinked_directories_are_entered_once_and_linked_files_read_once() {
        let dir = TempDir::new("tls-links");
        std::fs::write(dir.join("ca.pem"), ca_pem()).unwrap();
        // As c_rehash names a certificate: a hash link beside the file.
        std::os::unix::fs::symlink("ca.pem", dir.join("9d66eef0.0")).unwrap();
        // Six links to the directory itself: 6^8 paths to walk if links were followed blindly.
        for n in 0..6 {
            std::os::unix::fs::symlink(".", dir.join(&format!("l{n}"))).unwrap();
        }
        let mut store = RootCertStore::empty();
        let mut warnings = Vec::new();
        let mut walk = BundleWalk {
            roots: &mut store,
            warnings: &mut warnings,
            visited: Vec::new(),
            read: Vec::new(),
        };
        walk.dir(dir.path(), 0);
        assert_eq!(walk.visited.len(), 1);
        assert_eq!(store.len(), 1);
    }
}
