//! The input and output buffers of one connection, small unless a request or an answer needs
//! more. ureq's own (`LazyBuffers`) allocate the configured size, 128 KiB each by default, the
//! first time a connection is used and keep it: 256 KiB of memory for requests of a few hundred
//! bytes. Here the output buffer is as long as the longest line of the request about to go out
//! ([`LineRoom`]: ureq writes a request head line by line and a body in pieces, so no more is
//! needed), and the input buffer starts at [`INPUT_START`], doubles while an answer's head does
//! not fit (up to the head limit) and shrinks back once everything read was consumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The input buffer's size while answers are small.
pub const INPUT_START: usize = 4 * 1024;
/// The least room an output buffer has, and the least free room a read is offered.
const MIN_ROOM: usize = 1024;
/// What a body read through the input buffer (chunked sending) is offered at least; ureq asks
/// for 10 KiB, which only a chunked body uses (ours have a length).
const MIN_TMP: usize = 1024;

/// The longest line the next requests on an agent's connections may write, set by whoever
/// builds them; shared with every connection's buffers.
#[derive(Debug, Clone)]
pub struct LineRoom(Arc<AtomicUsize>);

impl LineRoom {
    pub fn new(bytes: usize) -> LineRoom {
        LineRoom(Arc::new(AtomicUsize::new(bytes)))
    }

    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed).max(MIN_ROOM)
    }
}

/// One connection's buffers: `input[consumed..filled]` is read and not yet consumed.
#[derive(Debug)]
pub struct Buffers {
    input: Vec<u8>,
    consumed: usize,
    filled: usize,
    /// Input grows up to this (an answer's head must fit whole).
    max_input: usize,
    output: Vec<u8>,
    room: LineRoom,
    /// The last consume took something: what is left may be parsed again.
    progress: bool,
}

impl Buffers {
    /// Buffers whose output is as long as `room` says, and whose input may grow to `max_input`.
    /// Nothing is allocated until the connection is used.
    pub fn new(room: LineRoom, max_input: usize) -> Buffers {
        Buffers {
            input: Vec::new(),
            consumed: 0,
            filled: 0,
            max_input: max_input.max(INPUT_START),
            output: Vec::new(),
            room,
            progress: false,
        }
    }

    /// At least `want` bytes free after `filled` (fewer only at `max_input`): what was consumed
    /// is moved out first, then the buffer doubles.
    fn make_room(&mut self, want: usize) {
        if self.input.is_empty() {
            self.input = vec![0; INPUT_START];
        }
        if self.input.len() - self.filled >= want {
            return;
        }
        self.input.copy_within(self.consumed..self.filled, 0);
        self.filled -= self.consumed;
        self.consumed = 0;
        while self.input.len() - self.filled < want && self.input.len() < self.max_input {
            let grown = (self.input.len() * 2).min(self.max_input);
            self.input.resize(grown, 0);
        }
    }
}

/// `output` as long as `room` says: grown when shorter, given back when twice as long.
fn sized(output: &mut Vec<u8>, room: &LineRoom) {
    let room = room.get();
    if output.len() < room || output.len() > 2 * room {
        *output = vec![0; room];
    }
}

impl ureq::unversioned::transport::Buffers for Buffers {
    fn output(&mut self) -> &mut [u8] {
        sized(&mut self.output, &self.room);
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.make_room(MIN_ROOM);
        &mut self.input[self.filled..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled = (self.filled + amount).min(self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed = (self.consumed + amount).min(self.filled);
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
            if self.input.len() > INPUT_START {
                // A long head is read: the memory it took is given back.
                self.input = vec![0; INPUT_START];
            }
        }
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.make_room(MIN_TMP);
        sized(&mut self.output, &self.room);
        (&mut self.input[self.filled..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        self.consumed < self.filled && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::unversioned::transport::Buffers as _;

    fn read(buffers: &mut Buffers, bytes: &[u8]) {
        let free = buffers.input_append_buf();
        free[..bytes.len()].copy_from_slice(bytes);
        buffers.input_appended(bytes.len());
    }

    #[test]
    fn nothing_is_allocated_before_use_and_the_output_follows_the_room() {
        let room = LineRoom::new(300);
        let mut buffers = Buffers::new(room.clone(), 128 * 1024);
        assert_eq!(
            (buffers.input.capacity(), buffers.output.capacity()),
            (0, 0)
        );
        assert_eq!(buffers.output().len(), MIN_ROOM);
        room.set(20_000);
        assert_eq!(buffers.output().len(), 20_000);
        room.set(1500);
        assert_eq!(
            buffers.output().len(),
            1500,
            "a long line's room is given back"
        );
    }

    #[test]
    fn the_input_grows_for_a_long_head_and_shrinks_once_it_is_consumed() {
        let mut buffers = Buffers::new(LineRoom::new(0), 64 * 1024);
        let head = vec![b'x'; 20_000];
        for chunk in head.chunks(1000) {
            read(&mut buffers, chunk);
        }
        assert_eq!(buffers.input(), &head[..]);
        assert_eq!(buffers.input.len(), 32 * 1024);
        buffers.input_consume(19_000);
        assert!(buffers.can_use_input());
        assert_eq!(buffers.input().len(), 1000);
        buffers.input_consume(1000);
        assert!(!buffers.can_use_input());
        assert_eq!(buffers.input.len(), INPUT_START);
    }

    #[test]
    fn consumed_bytes_are_moved_out_before_the_buffer_grows_and_growth_stops_at_the_limit() {
        let mut buffers = Buffers::new(LineRoom::new(0), 8 * 1024);
        read(&mut buffers, &[1; 3500]);
        buffers.input_consume(3000);
        read(&mut buffers, &[2; 1000]);
        assert_eq!(
            buffers.input.len(),
            INPUT_START,
            "made room by moving 500 bytes down"
        );
        assert_eq!(&buffers.input()[..500], &[1; 500][..]);
        for _ in 0..6 {
            read(&mut buffers, &[3; 1000]);
        }
        assert_eq!(buffers.input.len(), 8 * 1024);
        assert_eq!(buffers.input_append_buf().len(), 8 * 1024 - 7500);
        let (tmp, output) = buffers.tmp_and_output();
        assert_eq!((tmp.len(), output.len()), (8 * 1024 - 7500, MIN_ROOM));
    }
}
