//! rng's pacing: at most `rate` numbers per second on average, by tokio's clock (so tests can
//! pause it).

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    /// Seconds per number; `None` = unlimited.
    interval: Option<f64>,
    /// When the next number may go.
    next: Instant,
}

/// Largest burst allowed after an idle period, in seconds of the rate.
const MAX_BURST: Duration = Duration::from_millis(100);

impl RateLimiter {
    /// 0 (or not finite) means unlimited.
    pub fn new(rate: f64) -> Self {
        let interval = (rate.is_finite() && rate > 0.0).then(|| 1.0 / rate);
        RateLimiter {
            interval,
            next: Instant::now(),
        }
    }

    /// Waits until `count` numbers may go.
    pub async fn acquire(&mut self, count: usize) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        // After an idle period, do not let a long backlog of credit through at once.
        if self.next + MAX_BURST < now {
            self.next = now - MAX_BURST;
        }
        let start = self.next;
        self.next = start + Duration::from_secs_f64(interval * count as f64);
        if start > now {
            tokio::time::sleep_until(start).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let mut limiter = RateLimiter::new(100.0);
        let t0 = Instant::now();
        for _ in 0..200 {
            limiter.acquire(1).await;
        }
        // 200 numbers at 100/s: the last one goes after 1.99 s.
        let elapsed = t0.elapsed();
        assert!(elapsed >= Duration::from_millis(1980), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2000), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn batches_cost_their_size() {
        let mut limiter = RateLimiter::new(1000.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.acquire(500).await;
        }
        // Five batches of 500 at 1000/s: the fifth starts after 2 s.
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_credit_is_capped() {
        let mut limiter = RateLimiter::new(10.0);
        limiter.acquire(1).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let t0 = Instant::now();
        for _ in 0..11 {
            limiter.acquire(1).await;
        }
        // At most 100 ms of credit (one number) was saved up: 11 numbers take ~0.9 s.
        assert!(
            t0.elapsed() >= Duration::from_millis(890),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let mut limiter = RateLimiter::new(0.0);
        assert!(limiter.interval.is_none());
        let t0 = Instant::now();
        limiter.acquire(1_000_000).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
