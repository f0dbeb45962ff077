//! The protocol-buffers wire format for the OTLP export requests: varints, fixed-width numbers,
//! and length-delimited fields (strings, bytes, nested messages). A field whose value is the
//! default (0, empty) is still written when asked: proto3 readers accept it. The read side
//! ([`fields`]) is only what an export's answer needs: a partial success, a gRPC status's
//! details.

/// A message being written.
#[derive(Default)]
pub struct Message {
    bytes: Vec<u8>,
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

impl Message {
    pub fn new() -> Message {
        Message::default()
    }

    pub fn with_capacity(bytes: usize) -> Message {
        Message {
            bytes: Vec::with_capacity(bytes),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn varint(&mut self, value: u64) {
        if value < 0x80 {
            self.bytes.push(value as u8);
            return;
        }
        let (bytes, used) = varint(value);
        self.bytes.extend_from_slice(&bytes[..used]);
    }

    fn key(&mut self, field: u32, wire_type: u64) {
        self.varint((u64::from(field) << 3) | wire_type);
    }

    /// An `int64`, `uint64`, enum or `bool` field.
    pub fn uint(&mut self, field: u32, value: u64) -> &mut Self {
        self.key(field, VARINT);
        self.varint(value);
        self
    }

    /// A `fixed64` (or `sfixed64`, two's complement) field.
    pub fn fixed64(&mut self, field: u32, value: u64) -> &mut Self {
        self.key(field, FIXED64);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn fixed32(&mut self, field: u32, value: u32) -> &mut Self {
        self.key(field, FIXED32);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn double(&mut self, field: u32, value: f64) -> &mut Self {
        self.fixed64(field, value.to_bits())
    }

    pub fn bytes(&mut self, field: u32, value: &[u8]) -> &mut Self {
        self.key(field, LENGTH_DELIMITED);
        self.varint(value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn string(&mut self, field: u32, value: &str) -> &mut Self {
        self.bytes(field, value.as_bytes())
    }

    /// Fields already encoded, appended as they are.
    pub fn raw(&mut self, fields: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(fields);
        self
    }

    /// A nested message, written by `write` in place; its length goes in front once known,
    /// the content moved along by the length's few bytes (no buffer per nested message).
    pub fn message(&mut self, field: u32, write: impl FnOnce(&mut Message)) -> &mut Self {
        self.key(field, LENGTH_DELIMITED);
        let start = self.bytes.len();
        write(self);
        let length = self.bytes.len() - start;
        let (prefix, used) = varint(length as u64);
        self.bytes.extend_from_slice(&prefix[..used]);
        self.bytes.copy_within(start..start + length, start + used);
        self.bytes[start..start + used].copy_from_slice(&prefix[..used]);
        self
    }

    /// A packed `repeated fixed64` (or `double`, as bits) field.
    pub fn packed_fixed64(&mut self, field: u32, values: impl ExactSizeIterator<Item = u64>) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(values.len() as u64 * 8);
        for value in values {
            self.bytes.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// `value` as a varint: the bytes and how many of them are used.
fn varint(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut used = 0;
    while value >= 0x80 {
        bytes[used] = (value as u8 & 0x7f) | 0x80;
        value >>= 7;
        used += 1;
    }
    bytes[used] = value as u8;
    (bytes, used + 1)
}

/// A field's value as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed-width numbers, not needed by what reads here.
    Fixed,
}

/// The fields of `message`, in order: (number, value); `None` where it is not protobuf.
pub fn fields(message: &[u8]) -> Option<Vec<(u32, Value<'_>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    let varint = |at: &mut usize| -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *message.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    };
    while at < message.len() {
        let key = varint(&mut at)?;
        let number = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            VARINT => Value::Varint(varint(&mut at)?),
            LENGTH_DELIMITED => {
                let length = usize::try_from(varint(&mut at)?).ok()?;
                let bytes = message.get(at..at.checked_add(length)?)?;
                at += length;
                Value::Bytes(bytes)
            }
            FIXED64 => {
                at = at.checked_add(8).filter(|&end| end <= message.len())?;
                Value::Fixed
            }
            FIXED32 => {
                at = at.checked_add(4).filter(|&end| end <= message.len())?;
                Value::Fixed
            }
            _ => return None,
        };
        out.push((number, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_as_the_protobuf_encoding_guide_shows() {
        // The guide's examples: field 1 = 150 is 08 96 01; field 2 = "testing" is 12 07 ….
        let mut m = Message::new();
        m.uint(1, 150).string(2, "testing");
        assert_eq!(
            m.into_bytes(),
            [
                0x08, 0x96, 0x01, 0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g'
            ]
        );
        let mut m = Message::new();
        m.message(3, |inner| {
            inner.uint(1, 150);
        });
        assert_eq!(m.into_bytes(), [0x1a, 0x03, 0x08, 0x96, 0x01]);
        // A nested message of 300 bytes: its length takes two bytes (0xac 0x02) in front.
        let mut m = Message::new();
        m.message(1, |inner| {
            inner.bytes(2, &[7; 297]);
        });
        let bytes = m.into_bytes();
        assert_eq!(bytes[..6], [0x0a, 0xac, 0x02, 0x12, 0xa9, 0x02]);
        assert_eq!(bytes.len(), 3 + 300);
        let mut m = Message::new();
        m.fixed64(1, 1).packed_fixed64(2, [1u64, 2].into_iter());
        let bytes = m.into_bytes();
        assert_eq!(bytes[..9], [0x09, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes[9..11], [0x12, 16]);
        assert_eq!(bytes.len(), 11 + 16);
    }
}
