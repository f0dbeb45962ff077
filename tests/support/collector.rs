//! A real OTLP collector over gRPC for the tests and the footprint bench: tonic's server on a
//! tokio runtime of its own (h2c, or TLS with an optional client CA for mTLS; gzip accepted),
//! recording every export with its metadata, answering as scripted, and counting the TCP
//! connections it takes.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio_stream::StreamExt;
use tonic::codec::CompressionEncoding;

/// What the collector received: the service, the request's metadata, and the request.
#[derive(Debug)]
pub enum Got {
    Traces(Vec<(String, String)>, ExportTraceServiceRequest),
    Metrics(Vec<(String, String)>, ExportMetricsServiceRequest),
}

/// How the collector answers, in turn (the last repeats; none: OK).
#[derive(Clone)]
pub enum Answer {
    Ok,
    Status(tonic::Code, &'static str, Option<Vec<u8>>),
    Partial(i64, &'static str),
}

#[derive(Clone)]
struct Collector {
    got: Arc<Mutex<Sender<Got>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

impl Collector {
    fn answer(&self) -> Answer {
        let mut answers = self.answers.lock().unwrap();
        if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().unwrap_or(Answer::Ok)
        }
    }
}

fn metadata(request: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    request
        .clone()
        .into_headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect()
}

fn status(code: tonic::Code, message: &str, details: Option<Vec<u8>>) -> tonic::Status {
    match details {
        Some(details) => tonic::Status::with_details(code, message, details.into()),
        None => tonic::Status::new(code, message),
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let got = Got::Traces(metadata(request.metadata()), request.into_inner());
        let _ = self.got.lock().unwrap().send(got);
        match self.answer() {
            Answer::Ok => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Answer::Partial(rejected, message) => {
                Ok(tonic::Response::new(ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: message.into(),
                    }),
                }))
            }
            Answer::Status(code, message, details) => Err(status(code, message, details)),
        }
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let got = Got::Metrics(metadata(request.metadata()), request.into_inner());
        let _ = self.got.lock().unwrap().send(got);
        match self.answer() {
            Answer::Ok | Answer::Partial(..) => {
                Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
            }
            Answer::Status(code, message, details) => Err(status(code, message, details)),
        }
    }
}

/// A tonic collector on 127.0.0.1: TLS with (certificate, key, and the CA clients need) when
/// given; its requests, and how many TCP connections it took.
pub struct Collecting {
    pub port: u16,
    pub got: Receiver<Got>,
    pub connections: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

pub fn collector(
    answers: Vec<Answer>,
    tls: Option<(String, String, Option<String>)>,
) -> Collecting {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, got) = mpsc::channel();
    let collector = Collector {
        got: Arc::new(Mutex::new(tx)),
        answers: Arc::new(Mutex::new(answers.into())),
    };
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |stream| {
        counted.fetch_add(1, Ordering::SeqCst);
        stream
    });
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key, client_ca)) = tls {
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key));
        if let Some(ca) = client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config).unwrap();
    }
    let router = builder
        .add_service(
            TraceServiceServer::new(collector.clone()).accept_compressed(CompressionEncoding::Gzip),
        )
        .add_service(
            MetricsServiceServer::new(collector).accept_compressed(CompressionEncoding::Gzip),
        );
    runtime.spawn(router.serve_with_incoming(incoming));
    Collecting {
        port,
        got,
        connections,
        _runtime: runtime,
    }
}

impl Collecting {
    pub fn next(&self) -> Got {
        self.got
            .recv_timeout(Duration::from_secs(10))
            .expect("an export within 10 s")
    }

    pub fn drain(&self) -> Vec<Got> {
        self.got.try_iter().collect()
    }
}
