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

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

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
    /// When it was emitted, on Tokio's clock.
    pub at: Instant,
}

impl Record {
    /// The value of field `name`; panics naming the event if it has none.
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("event {:?} has no field `{name}`: {self:?}", self.message))
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
    }
}

struct Recorder;

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let Some(records) = SINK.with(|sink| sink.borrow().clone()) else {
            return;
        };
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let record = Record {
            level: *event.metadata().level(),
            message: visitor.message,
            fields: visitor.fields,
            at: Instant::now(),
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
