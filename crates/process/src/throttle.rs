//! Rate-limited logging, so a flood of bad input or lost batches cannot flood the logs.
//!
//! The first event is logged at once; later ones at most once per period, with how many were
//! left out in between. The counts themselves always go to stats: nothing is lost silently.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of log line: let through at once, then at most once per period.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(period: Duration) -> Self {
        Throttle {
            period,
            state: Mutex::default(),
        }
    }

    /// Returns `Some(left_out)` when this event should be logged, with the number of events
    /// left out since the last one logged; `None` when it should be left out.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap();
        let now = Instant::now();
        match state.last {
            Some(last) if now.duration_since(last) < self.period => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_first_then_counts_left_out() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.admit(), Some(0));
        assert_eq!(t.admit(), None);
        assert_eq!(t.admit(), None);
        let t0 = Throttle::new(Duration::ZERO);
        assert_eq!(t0.admit(), Some(0));
        assert_eq!(t0.admit(), Some(0));
    }
}
