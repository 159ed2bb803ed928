//! Test support: records the crate's `tracing` events (target `tokio_filelock`) with the
//! time each was emitted, on Tokio's clock (virtual under paused time, std's outside a
//! runtime).
//!
//! ```ignore
//! let capture = Capture::install(); // for this thread, until `capture` is dropped
//! // ... acquire ...
//! assert_eq!(capture.named("attempt").len(), 1);
//! ```
//!
//! One global subscriber (installed once per test binary) hands each event to the capture
//! installed on the emitting thread, so a capture sees the events emitted on its thread:
//! with a current-thread runtime, every event of the async driver; with the sync facade,
//! every event of the calling thread. (Thread-scoped subscribers from `set_default` race
//! with tracing's callsite-interest cache when tests run in parallel and lose events.)
//! [`Capture::install_all_threads`] also takes the events of every other thread (the
//! blocking pool's), for a test binary whose tests do not run in parallel.
//!
//! Each record keeps the fields of the spans it was emitted in (the crate's `acquire` span:
//! lock id, path, mode), innermost first; [`Record::field`] looks there after the event's
//! own fields.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The crate's log target.
pub const TARGET: &str = "tokio_filelock";

/// One recorded event.
#[derive(Debug, Clone)]
pub struct Record {
    pub level: Level,
    /// The event's message (`"attempt"`, `"acquired"`, ...).
    pub message: String,
    /// The other fields, formatted (`Display` for `%` fields, `Debug` otherwise).
    pub fields: BTreeMap<String, String>,
    /// The spans it was emitted in, innermost first.
    pub spans: Vec<SpanRecord>,
    /// When it was emitted, on Tokio's clock.
    pub at: Instant,
    /// The name of the thread that emitted it.
    pub thread: String,
}

/// A span an event was emitted in: its name and fields.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub name: String,
    pub fields: BTreeMap<String, String>,
}

impl Record {
    /// The value of field `name`, the event's own or else of the innermost span that has
    /// it; panics naming the event if none has.
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .or_else(|| self.spans.iter().find_map(|span| span.fields.get(name)))
            .unwrap_or_else(|| panic!("event {:?} has no field `{name}`: {self:?}", self.message))
    }

    /// The innermost span named `name` this event was emitted in, if any.
    pub fn span(&self, name: &str) -> Option<&SpanRecord> {
        self.spans.iter().find(|span| span.name == name)
    }
}

/// The events recorded so far; installed for the current thread by [`Capture::install`].
pub struct Capture {
    records: Sink,
}

type Sink = Arc<Mutex<Vec<Record>>>;

thread_local! {
    /// The capture installed on this thread, if any.
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// The capture that also takes the events of threads without one of their own.
static ALL_THREADS: Mutex<Option<Sink>> = Mutex::new(None);

impl Capture {
    /// Records the crate's events emitted on this thread until the capture is dropped.
    pub fn install() -> Capture {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
                .expect("no other global subscriber in tests");
        });
        let records: Sink = Arc::new(Mutex::new(Vec::new()));
        SINK.with(|sink| *sink.borrow_mut() = Some(records.clone()));
        Capture { records }
    }

    /// As [`install`](Self::install), and records the events of every thread that has no
    /// capture of its own (the blocking pool's, the crate's own threads). Only for a test
    /// binary whose tests do not run in parallel: it takes any test's events.
    pub fn install_all_threads() -> Capture {
        let capture = Capture::install();
        *ALL_THREADS.lock().unwrap_or_else(PoisonError::into_inner) = Some(capture.records.clone());
        capture
    }

    /// Every event recorded so far, in order.
    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The events with this message.
    pub fn named(&self, message: &str) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.message == message)
            .collect()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// When each `"attempt"` event came, as time since `start`.
    pub fn attempt_times(&self, start: Instant) -> Vec<Duration> {
        self.named("attempt")
            .iter()
            .map(|r| r.at.duration_since(start))
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
        let mut all = ALL_THREADS.lock().unwrap_or_else(PoisonError::into_inner);
        if all
            .as_ref()
            .is_some_and(|sink| Arc::ptr_eq(sink, &self.records))
        {
            *all = None;
        }
    }
}

struct Recorder;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut visitor = Fields::default();
        attrs.record(&mut visitor);
        span.extensions_mut().insert(SpanRecord {
            name: attrs.metadata().name().to_owned(),
            fields: visitor.fields,
        });
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(record) = extensions.get_mut::<SpanRecord>() {
            let mut visitor = Fields::default();
            values.record(&mut visitor);
            record.fields.extend(visitor.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let Some(records) = SINK.with(|sink| sink.borrow().clone()).or_else(|| {
            ALL_THREADS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }) else {
            return;
        };
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let spans = ctx
            .event_scope(event)
            .into_iter()
            .flatten()
            .filter_map(|span| span.extensions().get::<SpanRecord>().cloned())
            .collect();
        let record = Record {
            level: *event.metadata().level(),
            message: visitor.message,
            fields: visitor.fields,
            spans,
            at: Instant::now(),
            thread: std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned(),
        };
        records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

/// Milliseconds as a `Duration`, for writing schedules.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
