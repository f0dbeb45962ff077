//! gzip (RFC 1952) of an export's body, for `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`: the header,
//! the deflate stream (miniz_oxide, level 6 as Go's default), the CRC-32 and the size.

/// `bytes` gzip-compressed.
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(bytes, 6);
    let mut out = Vec::with_capacity(deflated.len() + 18);
    // Magic, deflate, no flags, no time, no extra flags, OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32(bytes).to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

/// The CRC-32 of gzip (IEEE 802.3, reflected), a byte at a time: bodies are small.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_the_standard_one() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn compressed_bodies_inflate_to_themselves() {
        let body: Vec<u8> = (0..5000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        let gz = compress(&body);
        assert!(gz.len() < body.len() / 2);
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        let inflated = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
        assert_eq!(inflated, body);
        assert_eq!(gz[gz.len() - 8..gz.len() - 4], crc32(&body).to_le_bytes());
    }
}
