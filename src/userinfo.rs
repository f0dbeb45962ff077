//! The userinfo of a URL (`scheme://user:password@host/`) as Go's `net/url` and `net/http` use
//! it: split off, percent-decoded (an invalid escape is an error), and sent as
//! `Authorization: Basic` (the sink's) or `Proxy-Authorization: Basic` (a proxy's).

/// `scheme://user:pass@host/path` → (`scheme://host/path`, `user:pass`).
pub fn split(url: &str) -> (String, Option<&str>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => (format!("{scheme}://{}", &rest[at + 1..]), Some(&rest[..at])),
        None => (url.to_owned(), None),
    }
}

/// `%XX` to that byte; `None` for a `%` not followed by two hex digits, as Go refuses it.
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let digit = |b: u8| char::from(b).to_digit(16);
            let (high, low) = (digit(bytes.next()?)?, digit(bytes.next()?)?);
            out.push(u8::try_from(high * 16 + low).ok()?);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// RFC 7617: `Basic ` and the base64 (RFC 4648 §4, padded) of `user:password` as decoded bytes.
pub fn basic_auth(userinfo: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::from("Basic ");
    for chunk in userinfo.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            let sextet = usize::try_from((n >> shift) & 0x3f).unwrap_or(0);
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[sextet])
            } else {
                '='
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_rfc_7617_base64() {
        // RFC 7617 §2's example, and the padding cases of RFC 4648 §10.
        assert_eq!(
            basic_auth(b"Aladdin:open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        for (input, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v")] {
            assert_eq!(basic_auth(input.as_bytes()), format!("Basic {encoded}"));
        }
        assert_eq!(basic_auth(b"al@ce:p#ss"), "Basic YWxAY2U6cCNzcw==");
    }

    #[test]
    fn userinfo_is_split_at_the_last_at_sign_of_the_authority() {
        assert_eq!(
            split("https://a@b:c@h:1/x@y"),
            ("https://h:1/x@y".to_owned(), Some("a@b:c"))
        );
        assert_eq!(split("http://h/a@b"), ("http://h/a@b".to_owned(), None));
    }

    #[test]
    fn percent_decoding_refuses_what_go_refuses() {
        assert_eq!(percent_decode("al%40ce:p%23ss").unwrap(), b"al@ce:p#ss");
        for bad in ["%", "%4", "%zz", "%+1"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
