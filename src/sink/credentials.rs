//! Credentials on the wire: `Authorization: Basic` from the sink URL's userinfo and
//! `Proxy-Authorization: Basic` from a proxy's (RFC 7617), as Go's `net/http` sends them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// RFC 7617: `Basic ` and the base64 (RFC 4648 §4, padded) of `user:password` as decoded bytes.
pub fn basic(userinfo: &[u8]) -> String {
    let mut value = String::from("Basic ");
    STANDARD.encode_string(userinfo, &mut value);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_rfc_7617_base64() {
        // RFC 7617 §2's example, and the padding cases of RFC 4648 §10.
        assert_eq!(
            basic(b"Aladdin:open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        for (input, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v")] {
            assert_eq!(basic(input.as_bytes()), format!("Basic {encoded}"));
        }
        assert_eq!(basic(b"al@ce:p#ss"), "Basic YWxAY2U6cCNzcw==");
    }
}
