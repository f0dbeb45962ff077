//! What the recorder, the scrape server and the exporter share: the metrics and the spans, behind
//! one lock that is never contended (one thread; ureq wants what its transports hold `Sync`).

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::metrics::Metrics;
use super::trace::Tracer;

/// See the module documentation.
pub struct Shared {
    pub metrics: Option<Metrics>,
    pub tracer: Option<Tracer>,
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Vec<(String, String)>,
}

/// The shared records, locked. A panic while they were held is taken as over: the records are
/// counters and queues that stay usable.
pub fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}
