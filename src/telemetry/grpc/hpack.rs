//! HPACK (RFC 7541) for one HTTP/2 connection. The decoder reads whatever a server sends:
//! indexed fields, literals with and without indexing, Huffman-coded strings, the dynamic table
//! and its size updates, within the table size and header-list size this client announces
//! (tests/vectors/hpack.jsonl replays published test stories through it). The encoder writes
//! every field as a literal without indexing and without Huffman coding: requests are few and
//! small, and a server keeps no state for them.

use std::collections::VecDeque;

use super::huffman::{CODES, STARTS};

/// RFC 7541 Appendix A.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// A decoded field: name and value.
pub type Field = (Vec<u8>, Vec<u8>);

/// Why a header block cannot be decoded: a connection error (COMPRESSION_ERROR), or a list
/// over the announced size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Compression(&'static str),
    TooLarge,
}

/// The decoding side of one connection.
pub struct Decoder {
    table: VecDeque<Field>,
    /// The size of the table's entries (each name + value + 32).
    size: usize,
    /// The table's current maximum, as the last size update set it.
    max: usize,
    /// SETTINGS_HEADER_TABLE_SIZE as announced: no update may go above it.
    limit: usize,
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: limit,
            limit,
        }
    }

    /// Sets the announced limit (as a new SETTINGS_HEADER_TABLE_SIZE, once acknowledged).
    #[cfg(test)]
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.max = self.max.min(limit);
        self.evict();
    }

    /// The fields of `block`, a whole header block; their names and values (each counted with
    /// 32 bytes more, as SETTINGS_MAX_HEADER_LIST_SIZE counts) may total `max_list`.
    pub fn decode(&mut self, block: &[u8], max_list: usize) -> Result<Vec<Field>, Error> {
        let mut fields = Vec::new();
        let (mut at, mut listed, mut first) = (0, 0usize, true);
        while at < block.len() {
            let byte = block[at];
            let field = if byte & 0x80 != 0 {
                let index = integer(block, &mut at, 7)?;
                self.entry(index)?
            } else if byte & 0xe0 == 0x20 {
                // A size update: only at the start of a block.
                if !first {
                    return Err(Error::Compression("a table size update after a field"));
                }
                let size = integer(block, &mut at, 5)?;
                if size > self.limit {
                    return Err(Error::Compression("a table size over the announced one"));
                }
                self.max = size;
                self.evict();
                continue;
            } else {
                let (prefix, indexing) = match byte & 0xf0 {
                    0x40..=0x70 => (6, true),
                    _ => (4, false),
                };
                let index = integer(block, &mut at, prefix)?;
                let name = match index {
                    0 => string(block, &mut at)?,
                    index => self.entry(index)?.0,
                };
                let value = string(block, &mut at)?;
                if indexing {
                    self.insert((name.clone(), value.clone()));
                }
                (name, value)
            };
            first = false;
            listed += field.0.len() + field.1.len() + 32;
            if listed > max_list {
                return Err(Error::TooLarge);
            }
            fields.push(field);
        }
        Ok(fields)
    }

    fn entry(&self, index: usize) -> Result<Field, Error> {
        match index {
            0 => Err(Error::Compression("index 0")),
            1..=61 => {
                let (name, value) = STATIC[index - 1];
                Ok((name.as_bytes().to_vec(), value.as_bytes().to_vec()))
            }
            _ => self
                .table
                .get(index - 62)
                .cloned()
                .ok_or(Error::Compression("an index past the table")),
        }
    }

    fn insert(&mut self, field: Field) {
        let size = field.0.len() + field.1.len() + 32;
        if size > self.max {
            // An entry larger than the table empties it (RFC 7541 §4.4).
            self.table.clear();
            self.size = 0;
            return;
        }
        self.table.push_front(field);
        self.size += size;
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.table.pop_back() {
                Some((name, value)) => self.size -= name.len() + value.len() + 32,
                None => self.size = 0,
            }
        }
    }
}

/// An integer with an `n`-bit prefix at `block[*at]` (RFC 7541 §5.1); at most 2^28.
fn integer(block: &[u8], at: &mut usize, n: u8) -> Result<usize, Error> {
    let truncated = Error::Compression("a field ends too soon");
    let mask = (1u16 << n) as usize - 1;
    let mut value = usize::from(*block.get(*at).ok_or(truncated)?) & mask;
    *at += 1;
    if value < mask {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let byte = *block.get(*at).ok_or(truncated)?;
        *at += 1;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(Error::Compression("an integer too large"));
        }
    }
    Ok(value)
}

/// A string literal at `block[*at]`: its length, then its bytes, Huffman-coded or not.
fn string(block: &[u8], at: &mut usize) -> Result<Vec<u8>, Error> {
    let huffman = block.get(*at).is_some_and(|b| b & 0x80 != 0);
    let length = integer(block, at, 7)?;
    let bytes = block
        .get(*at..*at + length)
        .ok_or(Error::Compression("a string longer than its block"))?;
    *at += length;
    if huffman {
        decode_huffman(bytes)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Huffman-coded `bytes` (RFC 7541 §5.2): each code read bit by bit; the padding must be the
/// most significant bits of EOS, at most 7 of them, and EOS itself never appears.
fn decode_huffman(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    let (mut code, mut length) = (0u32, 0usize);
    for &byte in bytes {
        for bit in (0..8).rev() {
            code = code << 1 | u32::from(byte >> bit & 1);
            length += 1;
            if length < 5 {
                continue;
            }
            if length > 30 {
                return Err(Error::Compression("a Huffman code longer than 30 bits"));
            }
            let (start, end) = (
                usize::from(STARTS[length]),
                usize::from(STARTS.get(length + 1).copied().unwrap_or(257)),
            );
            if let Ok(found) = CODES[start..end].binary_search_by_key(&code, |&(c, _)| c) {
                let symbol = CODES[start + found].1;
                if symbol == 256 {
                    return Err(Error::Compression("EOS inside a string"));
                }
                out.push(symbol as u8);
                (code, length) = (0, 0);
            }
        }
    }
    // What is left must be a short run of 1 bits.
    if length > 7 || code != (1 << length) - 1 {
        return Err(Error::Compression("bad Huffman padding"));
    }
    Ok(out)
}

/// Appends `fields` as literals without indexing, names as text (RFC 7541 §6.2.2).
pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>, out: &mut Vec<u8>) {
    for (name, value) in fields {
        out.push(0);
        literal(name.as_bytes(), out);
        literal(value.as_bytes(), out);
    }
}

fn literal(bytes: &[u8], out: &mut Vec<u8>) {
    let mut length = bytes.len();
    if length < 127 {
        out.push(length as u8);
    } else {
        out.push(127);
        length -= 127;
        while length >= 128 {
            out.push((length % 128) as u8 | 0x80);
            length /= 128;
        }
        out.push(length as u8);
    }
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc_7541_examples_decode() {
        // C.4.1 to C.4.3: requests with Huffman coding, one connection's table.
        let mut decoder = Decoder::new(4096);
        let first = decoder
            .decode(&hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"), 16384)
            .unwrap();
        assert_eq!(
            first[3],
            (b":authority".to_vec(), b"www.example.com".to_vec())
        );
        let second = decoder
            .decode(&hex("828684be5886a8eb10649cbf"), 16384)
            .unwrap();
        assert_eq!(second[4], (b"cache-control".to_vec(), b"no-cache".to_vec()));
        let third = decoder
            .decode(
                &hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
                16384,
            )
            .unwrap();
        assert_eq!(third[4], (b"custom-key".to_vec(), b"custom-value".to_vec()));
        assert_eq!(decoder.size, 164);
    }

    /// The published HPACK stories of seven implementations' encoders (http2jp/hpack-test-case,
    /// tests/vectors/hpack.jsonl): each decoded in order on one table, every field as listed.
    #[test]
    fn published_stories_decode_field_for_field() {
        #[derive(serde::Deserialize)]
        struct Story {
            story: String,
            cases: Vec<Case>,
        }
        #[derive(serde::Deserialize)]
        struct Case {
            wire: String,
            headers: Vec<(String, String)>,
            size: Option<usize>,
        }
        let text = include_str!("../../../tests/vectors/hpack.jsonl");
        let mut decoded = 0;
        for line in text.lines() {
            let story: Story = serde_json::from_str(line).unwrap();
            let mut decoder = Decoder::new(4096);
            for (seqno, case) in story.cases.iter().enumerate() {
                if let Some(size) = case.size {
                    decoder.set_limit(size);
                }
                let fields = decoder
                    .decode(&hex(&case.wire), 1 << 20)
                    .unwrap_or_else(|e| panic!("{} case {seqno}: {e:?}", story.story));
                let expected: Vec<Field> = case
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect();
                assert_eq!(fields, expected, "{} case {seqno}", story.story);
                decoded += 1;
            }
        }
        assert!(decoded >= 590, "{decoded}");
    }

    #[test]
    fn broken_blocks_and_limits_are_errors() {
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decoder.decode(&[0x80], 100),
            Err(Error::Compression("index 0"))
        );
        assert!(decoder.decode(&[0xff, 0x80], 100).is_err());
        assert!(
            decoder.decode(&[0x3f, 0xe2, 0x1f], 100).is_err(),
            "a size over 4096"
        );
        // A literal whose list is over the limit.
        let mut block = Vec::new();
        encode([("x-big", "0123456789")], &mut block);
        assert_eq!(decoder.decode(&block, 40), Err(Error::TooLarge));
        // Huffman padding of zeros.
        assert!(decode_huffman(&[0x00]).is_err());
        decoder.set_limit(0);
        assert_eq!(decoder.size, 0);
    }

    #[test]
    fn what_we_encode_decodes() {
        let mut block = Vec::new();
        let long = "v".repeat(300);
        encode([(":path", "/x"), ("x-long", long.as_str())], &mut block);
        let fields = Decoder::new(4096).decode(&block, 1 << 20).unwrap();
        assert_eq!(fields[1].1.len(), 300);
    }
}
