//! What the layers' unit tests share: a connection in memory for ureq, in the way of ureq's own
//! `transport/test.rs`. Each request that goes out is kept whole, and answered with the next
//! answer of a script (a 200 once the script runs out); no socket, no thread, no clock.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// How one request is answered.
#[derive(Debug, Clone)]
pub enum Answer {
    /// These bytes (a whole response), on a connection that stays open.
    Bytes(Vec<u8>),
    /// The connection fails this way instead.
    Fail(io::ErrorKind),
}

/// A whole response with `status`, these headers and an empty body.
pub fn status(status: u16, headers: &[(&str, &str)]) -> Answer {
    let mut text = format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 0\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    Answer::Bytes(text.into_bytes())
}

#[derive(Debug, Default)]
struct State {
    answers: VecDeque<Answer>,
    /// Every request sent, head and body, in order.
    requests: Vec<Vec<u8>>,
    connections: usize,
}

/// The script and what was sent; a clone shares them.
#[derive(Debug, Clone, Default)]
pub struct Memory(Arc<Mutex<State>>);

impl Memory {
    pub fn new(answers: impl IntoIterator<Item = Answer>) -> Memory {
        let memory = Memory::default();
        memory.state().answers.extend(answers);
        memory
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every request sent so far, in order.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.state().requests.clone()
    }

    /// The head of request `index`, as text.
    pub fn head(&self, index: usize) -> String {
        let request = &self.state().requests[index];
        let end = request
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head");
        String::from_utf8_lossy(&request[..end]).into_owned()
    }

    /// The body of request `index`.
    pub fn body(&self, index: usize) -> Vec<u8> {
        let request = &self.state().requests[index];
        let end = request
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head");
        request[end + 4..].to_vec()
    }

    /// How many connections were opened.
    pub fn connections(&self) -> usize {
        self.state().connections
    }

    /// An agent on this memory, configured by `config` (the agent under test's settings).
    pub fn agent(&self, config: ureq::config::Config) -> ureq::Agent {
        ureq::Agent::with_parts(config, self.clone(), NoLookup)
    }

    /// An agent on this memory that takes a status as an answer, as every agent here does.
    pub fn plain_agent(&self) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        self.agent(config)
    }

    /// Telemetry's links to this memory: every HTTP export goes to it; no gRPC.
    pub fn links(&self) -> std::sync::Arc<dyn crate::telemetry::Links> {
        std::sync::Arc::new(MemoryLinks(self.plain_agent()))
    }
}

/// See [`Memory::links`].
struct MemoryLinks(ureq::Agent);

impl crate::telemetry::Links for MemoryLinks {
    fn agent(&self, _: bool, _: &crate::config::observability::ExportTls) -> ureq::Agent {
        self.0.clone()
    }

    fn grpc_tls(
        &self,
        _: &crate::config::observability::ExportTls,
    ) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
        Err("no TLS in memory".into())
    }

    fn dial(&self, _: &str, _: u16, _: std::time::Instant) -> std::io::Result<std::net::TcpStream> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    fn waiter(&self) -> std::sync::Arc<crate::wait::Waiter> {
        unreachable!("no gRPC in memory")
    }
}

impl<In: Transport> Connector<In> for Memory {
    type Out = MemoryTransport;

    fn connect(
        &self,
        _: &ConnectionDetails,
        _: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        self.state().connections += 1;
        Ok(Some(MemoryTransport {
            memory: self.clone(),
            buffers: LazyBuffers::new(64 * 1024, 64 * 1024),
            sent: Vec::new(),
            unread: Vec::new(),
        }))
    }
}

/// Names need no lookup in memory.
#[derive(Debug)]
struct NoLookup;

impl ureq::unversioned::resolver::Resolver for NoLookup {
    fn resolve(
        &self,
        _: &ureq::http::Uri,
        _: &ureq::config::Config,
        _: NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        Ok(self.empty())
    }
}

/// One connection in memory.
#[derive(Debug)]
pub struct MemoryTransport {
    memory: Memory,
    buffers: LazyBuffers,
    /// What was written since the last answer: the request going out.
    sent: Vec<u8>,
    /// The rest of the answer being read.
    unread: Vec<u8>,
}

impl Transport for MemoryTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
        let output = &self.buffers.output()[..amount];
        self.sent.extend_from_slice(output);
        Ok(())
    }

    fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
        if self.unread.is_empty() {
            let mut state = self.memory.state();
            state.requests.push(std::mem::take(&mut self.sent));
            match state.answers.pop_front() {
                Some(Answer::Bytes(bytes)) => self.unread = bytes,
                Some(Answer::Fail(kind)) => return Err(ureq::Error::Io(kind.into())),
                None => self.unread = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(),
            }
        }
        let input = self.buffers.input_append_buf();
        let n = input.len().min(self.unread.len());
        input[..n].copy_from_slice(&self.unread[..n]);
        self.unread.drain(..n);
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        true
    }

    fn is_tls(&self) -> bool {
        // As ureq's test transport: no TLS wrapper is put around it.
        true
    }
}
