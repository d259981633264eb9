//! Stats: counters in the stages, one point per second per process, written to InfluxDB 1.x.
//!
//! A stage keeps [`Counter`]s and implements [`Meter`]; a [`Reporter`] turns it into a point
//! each second and a progress line each ten, into a [`StatsSink`], a bounded queue that a
//! [`StatsWriter`] task drains to `/write`. Mining never waits for InfluxDB: while it is away
//! or refuses the writer, points are held (stamped when made). A point with a control character
//! in a tag or string value is withheld: the line protocol library leaves a line break in a tag
//! raw, starting a point of the sender's choosing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use influxdb_line_protocol::LineProtocolBuilder;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use chocominer_influx::schema::{FieldValue, INSTANCE, Kind, Measurement, Value};
use chocominer_influx::{Client, InfluxArgs, WriteError};

use chocominer_process::{Shutdown, Throttle, now_ns};

/// Points held while InfluxDB is unreachable: well over an hour of a busy process.
pub const HELD_POINTS: usize = 200_000;
/// Lines per `/write` request.
const WRITE_BATCH: usize = 5_000;
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// How often the error is repeated while InfluxDB refuses the writer: someone must act.
pub const DENIED_LOG_EVERY: Duration = Duration::from_secs(60);
/// Periods (seconds) per progress line.
const PROGRESS_EVERY: u32 = 10;

/// A monotonically increasing count, read both as a total and as per-period deltas.
#[derive(Debug, Default)]
pub struct Counter {
    total: AtomicU64,
    reported: AtomicU64,
}

impl Counter {
    pub fn add(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// What was added since the previous call (a stage's [`Meter`]'s, once per period).
    pub fn take_delta(&self) -> u64 {
        let total = self.total();
        total - self.reported.swap(total, Ordering::Relaxed)
    }
}

/// One InfluxDB point; the writer adds the `instance` tag. Measurements and field values come
/// only from the schema, so a point cannot name what the readers do not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: &'static Measurement,
    pub fields: Vec<FieldValue>,
    pub time_ns: i64,
}

/// What a stage reports every second.
pub trait Meter: Send + Sync + 'static {
    /// The measurement of the per-second point (`schema::RNG`, `HASHER`, `WORKER`).
    fn measurement(&self) -> &'static Measurement;
    /// Every field of the measurement once: counts since the last call, gauges now.
    fn fields(&self, period: Duration) -> Vec<FieldValue>;
}

const SECOND_NS: i64 = 1_000_000_000;

fn render(point: &Point, instance: &str) -> Option<String> {
    let (first, rest) = point.fields.split_first()?;
    let b = LineProtocolBuilder::new()
        .measurement(point.measurement.name())
        .tag(INSTANCE, instance);
    let mut b = match first.value() {
        Value::Integer(v) => b.field(first.name(), *v),
        Value::Float(v) => b.field(first.name(), *v),
        Value::String(v) => b.field(first.name(), v.as_str()),
    };
    for field in rest {
        b = match field.value() {
            Value::Integer(v) => b.field(field.name(), *v),
            Value::Float(v) => b.field(field.name(), *v),
            Value::String(v) => b.field(field.name(), v.as_str()),
        };
    }
    let line = b.timestamp(point.time_ns).close_line().build();
    String::from_utf8(line).ok()
}

/// The first tag or string value of `point` (`instance` included) with a control character.
fn unsafe_value<'a>(point: &'a Point, instance: &'a str) -> Option<(&'static str, &'a str)> {
    std::iter::once((INSTANCE, instance))
        .chain(point.fields.iter().filter_map(|field| match field.value() {
            Value::String(text) => Some((field.name(), text.as_str())),
            _ => None,
        }))
        .find(|(_, text)| text.chars().any(char::is_control))
}

/// Where points go: a bounded queue shared by the stage and the writer. Cheap to clone.
#[derive(Clone)]
pub struct StatsSink {
    inner: Arc<SinkInner>,
}

#[derive(Default)]
struct SinkInner {
    instance: String,
    enabled: bool,
    queue: Mutex<VecDeque<String>>,
    capacity: usize,
    dropped: AtomicU64,
    written: AtomicU64,
    /// Refused by InfluxDB as malformed: retrying cannot help.
    refused: AtomicU64,
    withheld: AtomicU64,
    drop_log: Throttle,
    withheld_log: Throttle,
    /// Last nugget timestamp, so two nuggets never share one (they would overwrite).
    last_event_ns: AtomicI64,
    wake: Notify,
}

impl StatsSink {
    fn new(instance: &str, enabled: bool, capacity: usize) -> Self {
        StatsSink {
            inner: Arc::new(SinkInner {
                instance: instance.to_owned(),
                enabled,
                capacity,
                drop_log: Throttle::new(Duration::from_secs(30)),
                withheld_log: Throttle::new(Duration::from_secs(30)),
                ..Default::default()
            }),
        }
    }

    /// Discards everything (stats disabled).
    pub fn disabled(instance: &str) -> Self {
        StatsSink::new(instance, false, 0)
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// A timestamp for an event point (such as a nugget): now, and strictly after the previous.
    pub fn event_time_ns(&self) -> i64 {
        let now = now_ns();
        let prev = self
            .inner
            .last_event_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(0);
        now.max(prev + 1)
    }

    /// Queues a point without waiting, dropping the oldest when full; a point with a control
    /// character is withheld. Both counted and logged.
    pub fn push(&self, point: Point) {
        // Debug builds (the tests) catch a stage writing another measurement's fields, or
        // leaving one out, even with stats disabled.
        debug_assert_eq!(point.measurement.check(&point.fields), Ok(()));
        if !self.inner.enabled {
            return;
        }
        if let Some((name, value)) = unsafe_value(&point, &self.inner.instance) {
            let total = self.inner.withheld.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(left_out) = self.inner.withheld_log.admit() {
                tracing::error!(
                    measurement = point.measurement.name(),
                    withheld_total = total,
                    left_out,
                    "stats point not written: its {name} {:?} holds a control character",
                    value
                );
            }
            return;
        }
        let Some(line) = render(&point, &self.inner.instance) else {
            return;
        };
        let len = {
            let mut queue = self.inner.queue.lock().unwrap();
            queue.push_back(line);
            self.trim(&mut queue);
            queue.len()
        };
        if len >= WRITE_BATCH {
            self.inner.wake.notify_one();
        }
    }

    /// Drops the oldest lines beyond the capacity, counted and logged.
    fn trim(&self, queue: &mut VecDeque<String>) {
        let over = queue.len().saturating_sub(self.inner.capacity);
        if over == 0 {
            return;
        }
        queue.drain(..over);
        let total = self.inner.dropped.fetch_add(over as u64, Ordering::Relaxed) + over as u64;
        if self.inner.drop_log.admit().is_some() {
            tracing::error!(
                dropped_total = total,
                held = queue.len(),
                "InfluxDB has been unreachable too long: dropping the oldest stats points"
            );
        }
    }

    /// Points dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Points withheld because a tag or string value holds a control character.
    pub fn withheld(&self) -> u64 {
        self.inner.withheld.load(Ordering::Relaxed)
    }

    /// Points waiting to be written.
    pub fn held(&self) -> usize {
        self.inner.queue.lock().unwrap().len()
    }

    fn take(&self, max: usize) -> Vec<String> {
        let mut queue = self.inner.queue.lock().unwrap();
        let n = queue.len().min(max);
        queue.drain(..n).collect()
    }

    /// Puts back lines that could not be written, ahead of newer ones.
    fn put_back(&self, lines: Vec<String>) {
        let mut queue = self.inner.queue.lock().unwrap();
        for line in lines.into_iter().rev() {
            queue.push_front(line);
        }
        self.trim(&mut queue);
    }
}

/// What became of the points at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteReport {
    pub written: u64,
    pub refused: u64,
    pub dropped: u64,
    pub unwritten: u64,
    pub withheld: u64,
}

/// Writes the sink's points to InfluxDB in the background.
pub struct StatsWriter {
    sink: StatsSink,
    stop: Shutdown,
    task: Option<JoinHandle<()>>,
}

impl StatsWriter {
    /// Starts the writer; with an empty URL, stats are disabled.
    pub fn start(args: &InfluxArgs, instance: &str) -> anyhow::Result<StatsWriter> {
        let stop = Shutdown::new();
        if args.url().is_empty() {
            tracing::info!("INFLUX_URL is empty: stats are not written");
            let sink = StatsSink::disabled(instance);
            return Ok(StatsWriter {
                sink,
                stop,
                task: None,
            });
        }
        let sink = StatsSink::new(instance, true, HELD_POINTS);
        let task = Some(tokio::spawn(write_loop(
            Client::new(args)?,
            sink.clone(),
            stop.clone(),
        )));
        Ok(StatsWriter { sink, stop, task })
    }

    pub fn sink(&self) -> StatsSink {
        self.sink.clone()
    }

    /// Writes what is left, trying for at most `grace`, and reports what became of the points.
    pub async fn close(mut self, grace: Duration) -> WriteReport {
        self.stop.trigger();
        let Some(mut task) = self.task.take() else {
            return WriteReport::default();
        };
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
        let unwritten = self.sink.held() as u64;
        if unwritten > 0 {
            tracing::error!(
                unwritten,
                "InfluxDB did not take the last stats points before exit: they are lost"
            );
        }
        let inner = &self.sink.inner;
        WriteReport {
            written: inner.written.load(Ordering::Relaxed),
            refused: inner.refused.load(Ordering::Relaxed),
            dropped: self.sink.dropped(),
            unwritten,
            withheld: self.sink.withheld(),
        }
    }
}

/// Drains the sink to InfluxDB until stopped, then writes what is left.
async fn write_loop(influx: Client, sink: StatsSink, stop: Shutdown) {
    let mut failing_since: Option<tokio::time::Instant> = None;
    let denied_log = Throttle::new(DENIED_LOG_EVERY);
    match influx.create_database().await {
        Ok(()) => {}
        // A write-only user may not create it: the administrator does (writes say if not).
        Err(WriteError::Denied(e)) => tracing::info!(
            db = influx.db(),
            "the database is left to the InfluxDB administrator: {e}"
        ),
        Err(e) => tracing::debug!("could not create database yet: {e}"),
    }
    loop {
        let stopping = stop.is_triggered();
        loop {
            let lines = sink.take(WRITE_BATCH);
            if lines.is_empty() {
                break;
            }
            let n = lines.len() as u64;
            match influx.write(&lines).await {
                Ok(()) => {
                    sink.inner.written.fetch_add(n, Ordering::Relaxed);
                    if let Some(since) = failing_since.take() {
                        tracing::info!(
                            url = %influx.url(),
                            after = ?since.elapsed(),
                            held = sink.held() + lines.len(),
                            "InfluxDB takes the stats points again: writing the held ones"
                        );
                    }
                }
                Err(WriteError::Refused(e)) => {
                    sink.inner.refused.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(points = n, "InfluxDB refused stats points: {e}");
                }
                Err(error) => {
                    let held = sink.held() + lines.len();
                    sink.put_back(lines);
                    let first = failing_since.is_none();
                    failing_since.get_or_insert_with(tokio::time::Instant::now);
                    match error {
                        WriteError::Denied(e) if denied_log.admit().is_some() => tracing::error!(
                            held,
                            "stats not written: {e}; holding them and retrying every second, \
                             mining goes on"
                        ),
                        WriteError::Retry(e) if first => tracing::warn!(
                            url = %influx.url(),
                            held,
                            "cannot write stats to InfluxDB ({e}); holding them and retrying, \
                             mining goes on"
                        ),
                        _ => {}
                    }
                    break;
                }
            }
        }
        if stopping {
            if sink.held() == 0 {
                return;
            }
            // Shutting down with InfluxDB away: keep trying until the caller's grace ends.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(WRITE_EVERY) => {}
            _ = sink.inner.wake.notified() => {}
            _ = stop.triggered() => {}
        }
    }
}

/// Emits a stage's point every second, on whole seconds.
pub struct Reporter {
    stop: Shutdown,
    task: JoinHandle<()>,
}

impl Reporter {
    pub fn start(meter: Arc<dyn Meter>, sink: StatsSink) -> Reporter {
        let stop = Shutdown::new();
        let task = tokio::spawn(report_loop(meter, sink, stop.clone()));
        Reporter { stop, task }
    }

    /// Emits the last (partial) second and stops.
    pub async fn stop(self) {
        self.stop.trigger();
        let _ = self.task.await;
    }
}

async fn report_loop(meter: Arc<dyn Meter>, sink: StatsSink, stop: Shutdown) {
    let now = now_ns();
    let to_next_second = SECOND_NS - now.rem_euclid(SECOND_NS);
    let start = tokio::time::Instant::now() + Duration::from_nanos(to_next_second as u64);
    let start_wall_ns = now + to_next_second;
    let mut ticks = tokio::time::interval_at(start, Duration::from_secs(1));
    // Skip keeps the ticks on whole seconds after a late one (Delay would shift them all).
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_tick = tokio::time::Instant::now();
    let mut last_time_ns = 0i64;
    let mut progress = Progress::default();
    loop {
        let scheduled = tokio::select! {
            at = ticks.tick() => Some(at),
            _ = stop.triggered() => None,
        };
        let stopping = scheduled.is_none();
        let period = last_tick.elapsed();
        last_tick = tokio::time::Instant::now();
        let fields = meter.fields(period);
        // Whole seconds, strictly increasing, so two points of a series never collide: a tick
        // the second it was scheduled for, the last, partial period the second after.
        let time_ns = match scheduled {
            Some(at) => {
                let wall = start_wall_ns + at.saturating_duration_since(start).as_nanos() as i64;
                (wall + SECOND_NS / 2).div_euclid(SECOND_NS) * SECOND_NS
            }
            None if last_time_ns == 0 => now_ns().div_euclid(SECOND_NS) * SECOND_NS + SECOND_NS,
            None => last_time_ns + SECOND_NS,
        }
        .max(last_time_ns + SECOND_NS);
        last_time_ns = time_ns;
        progress.add(&fields, period);
        if progress.periods >= PROGRESS_EVERY || stopping {
            progress.log(meter.measurement().name(), stopping);
        }
        sink.push(Point {
            measurement: meter.measurement(),
            fields,
            time_ns,
        });
        if stopping {
            return;
        }
    }
}

/// Per-second averages over the last few periods, for the progress line.
#[derive(Default)]
struct Progress {
    periods: u32,
    seconds: f64,
    sums: Vec<(&'static str, Kind, f64)>,
}

impl Progress {
    fn add(&mut self, fields: &[FieldValue], period: Duration) {
        self.periods += 1;
        self.seconds += period.as_secs_f64();
        for field in fields {
            let Some(v) = field.value().as_f64() else {
                continue;
            };
            match self.sums.iter_mut().find(|(k, _, _)| *k == field.name()) {
                Some((_, _, sum)) => *sum += v,
                None => self.sums.push((field.name(), field.field().kind(), v)),
            }
        }
    }

    fn log(&mut self, stage: &str, last: bool) {
        let secs = self.seconds.max(1e-9);
        let periods = f64::from(self.periods.max(1));
        let summary: Vec<String> = self
            .sums
            .iter()
            .map(|(k, kind, sum)| match kind {
                // Counts become rates; gauges (and any event field) are averaged per period.
                Kind::Count => format!("{k}={:.1}/s", sum / secs),
                Kind::Gauge | Kind::Event => format!("{k}={:.2}", sum / periods),
            })
            .collect();
        let what = if last { "last period" } else { "last 10 s" };
        tracing::info!("{stage} {what}: {}", summary.join(" "));
        *self = Progress::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chocominer_influx::schema::{self, nugget, rng};

    #[test]
    fn renders_line_protocol_with_instance_tag() {
        let point = Point {
            measurement: &schema::NUGGET,
            fields: vec![
                nugget::NUMBER.of("ab"),
                nugget::DIGEST.of("0f"),
                nugget::ZERO_BITS.of(5u32),
            ],
            time_ns: 7,
        };
        assert_eq!(
            render(&point, "w 1").unwrap(),
            "nugget,instance=w\\ 1 number=\"ab\",digest=\"0f\",zero_bits=5i 7\n"
        );
        let gauges = Point {
            measurement: &schema::RNG,
            fields: vec![rng::RATE_LIMIT.at(100u64), rng::WINDOW.at(8usize)],
            time_ns: 1,
        };
        assert_eq!(
            render(&gauges, "r").unwrap(),
            "rng,instance=r rate_limit=100,window=8i 1\n"
        );
        let empty = Point {
            measurement: &schema::RNG,
            fields: vec![],
            time_ns: 1,
        };
        assert_eq!(render(&empty, "a"), None);
    }

    fn nugget_point(number: &str) -> Point {
        Point {
            measurement: &schema::NUGGET,
            fields: vec![
                nugget::NUMBER.of(number),
                nugget::DIGEST.of("0f"),
                nugget::ZERO_BITS.of(5u32),
            ],
            time_ns: 7,
        }
    }

    #[test]
    fn points_with_a_control_character_in_a_tag_or_string_are_withheld() {
        let sink = StatsSink::new("w1", true, 10);
        sink.push(nugget_point("ab"));
        sink.push(nugget_point("ab\nnugget number=\"x\" 1"));
        sink.push(nugget_point("ab\x1b"));
        assert_eq!((sink.held(), sink.withheld()), (1, 2));
        for instance in ["w1\nnugget", "w1\r", "w1\t"] {
            let sink = StatsSink::new(instance, true, 10);
            sink.push(nugget_point("ab"));
            assert_eq!((sink.held(), sink.withheld()), (0, 1), "{instance:?}");
        }
    }

    #[test]
    fn counter_gives_totals_and_deltas() {
        let c = Counter::default();
        c.add(5);
        assert_eq!(c.take_delta(), 5);
        c.add(2);
        c.add(3);
        assert_eq!((c.take_delta(), c.total()), (5, 10));
        assert_eq!(c.take_delta(), 0);
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let sink = StatsSink::new("i", true, 3);
        for t in 0..5u32 {
            sink.push(Point {
                measurement: &schema::NUGGET,
                fields: vec![
                    nugget::NUMBER.of("ab"),
                    nugget::DIGEST.of("0f"),
                    nugget::ZERO_BITS.of(t),
                ],
                time_ns: i64::from(t),
            });
        }
        assert_eq!((sink.held(), sink.dropped()), (3, 2));
        let lines = sink.take(10);
        assert!(lines[0].contains("zero_bits=2i"), "{lines:?}");
        sink.put_back(lines);
        assert_eq!(sink.held(), 3);
    }

    #[test]
    fn event_times_are_strictly_increasing() {
        let sink = StatsSink::disabled("i");
        let mut last = 0;
        for _ in 0..1000 {
            let t = sink.event_time_ns();
            assert!(t > last);
            last = t;
        }
    }
}
