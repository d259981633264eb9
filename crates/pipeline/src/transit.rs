//! How long a batch spent getting here, from its sender's wall clock (`Chocominer-Sent-Ms`) to
//! this receiver's: the intake takes it off the batch's time to live, so a receiver that
//! was frozen drops what waited in its socket as stale. Two clocks never agree, so the wait is
//! how much longer than the shortest recent transits *from the same sender* this one took (the
//! baseline, kept over the last two periods of [`PERIOD`]; a period ends only when a batch is
//! noted, so after a freeze the one from before it holds). Only proven batches are noted, and
//! the baseline is the [`RANKED`]-th shortest, so forged send times cannot move it
//! (docs/security.md).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// How long one period of the baseline lasts.
const PERIOD: Duration = Duration::from_secs(10);
/// Which of a period's shortest transits is the baseline: the third, so no one or two batches
/// set it. Batches come by the dozen a second; the third-shortest is within a millisecond or
/// so of the shortest.
const RANKED: usize = 3;
/// Senders remembered at once; when more come (a pipeline does not have that many, a forger
/// might), the baselines start over, and batches count as on time until they have some again.
const MAX_SENDERS: usize = 1024;

/// A batch's figure: `receiver's clock at arrival - sender's clock at send`, in milliseconds
/// (negative when the receiver's clock is behind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen(i64);

impl Seen {
    /// The figure of a batch sent at `sent` by its sender's clock, read at `now_wall` by ours.
    pub(crate) fn new(sent: SystemTime, now_wall: SystemTime) -> Seen {
        Seen(match now_wall.duration_since(sent) {
            Ok(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
            Err(behind) => i64::try_from(behind.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        })
    }
}

/// One sender's baseline: its shortest figures in the current period (in order, [`RANKED`] at
/// most), and the baseline of the previous period.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    period_began: Instant,
    current: [i64; RANKED],
    previous: i64,
}

impl Baseline {
    /// The baseline, if the periods have seen [`RANKED`] batches: `i64::MAX` stands for none.
    fn value(&self) -> Option<i64> {
        let baseline = self.previous.min(self.current[RANKED - 1]);
        (baseline != i64::MAX).then_some(baseline)
    }

    fn add(&mut self, seen: i64) {
        if let Some(at) = self.current.iter().position(|&quick| seen < quick) {
            self.current.copy_within(at..RANKED - 1, at + 1);
            self.current[at] = seen;
        }
    }
}

/// The transit baselines of the senders a receiver hears from.
#[derive(Debug, Default)]
pub(crate) struct Transit {
    senders: HashMap<String, Baseline>,
}

impl Transit {
    /// How much longer than the baseline of `sender` a batch with figure `seen` took: the time
    /// it waited somewhere, frozen receivers included. Zero while `sender` has no baseline yet.
    pub(crate) fn late_by(&self, sender: &str, seen: Seen) -> Duration {
        let baseline = self.senders.get(sender).and_then(Baseline::value);
        baseline.map_or(Duration::ZERO, |baseline| {
            Duration::from_millis(seen.0.saturating_sub(baseline).max(0) as u64)
        })
    }

    /// Notes a batch of `sender` with figure `seen`, noted at `now`: one that proved to be a
    /// batch (see the module's doc).
    pub(crate) fn note(&mut self, sender: &str, seen: Seen, now: Instant) {
        // Looked up by `&str` first: the sender's name is copied only when it is new.
        if !self.senders.contains_key(sender) {
            if self.senders.len() >= MAX_SENDERS {
                self.senders.clear();
            }
            self.senders.insert(
                sender.to_owned(),
                Baseline {
                    period_began: now,
                    current: [i64::MAX; RANKED],
                    previous: i64::MAX,
                },
            );
        }
        let baseline = self
            .senders
            .get_mut(sender)
            .expect("inserted just above if it was not there");
        if now.duration_since(baseline.period_began) >= PERIOD {
            // A period of fewer batches leaves the baseline before it in force.
            if baseline.current[RANKED - 1] != i64::MAX {
                baseline.previous = baseline.current[RANKED - 1];
            }
            baseline.current = [i64::MAX; RANKED];
            baseline.period_began = now;
        }
        baseline.add(seen.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A batch of `sender` sent at `sent`, arriving at `now` (`now_wall` by the receiver's
    /// clock), taken or dropped as stale: how late it is, then noted.
    fn arrive(
        transit: &mut Transit,
        sender: &str,
        sent: SystemTime,
        now: Instant,
        now_wall: SystemTime,
    ) -> Duration {
        let seen = Seen::new(sent, now_wall);
        let late = transit.late_by(sender, seen);
        transit.note(sender, seen, now);
        late
    }

    fn skewed(wall: SystemTime, skew_ms: i64) -> SystemTime {
        if skew_ms >= 0 {
            wall + MS * skew_ms as u32
        } else {
            wall - MS * (-skew_ms) as u32
        }
    }

    /// Batches sent every 100 ms taking `wire` to arrive, with the receiver's clock `skew`
    /// ahead (negative: behind); returns the transit, the start and the moments used.
    fn steady(skew_ms: i64, wire: Duration, batches: u32) -> (Transit, Instant, SystemTime) {
        let mut transit = Transit::default();
        let start = Instant::now();
        let sender_epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for i in 0..batches {
            let sent = sender_epoch + 100 * MS * i;
            let now_wall = skewed(sent + wire, skew_ms);
            let late = arrive(
                &mut transit,
                "r1",
                sent,
                start + 100 * MS * i + wire,
                now_wall,
            );
            assert_eq!(late, Duration::ZERO, "batch {i} with skew {skew_ms} ms");
        }
        (transit, start, sender_epoch)
    }

    #[test]
    fn steady_batches_are_on_time_whatever_the_clocks_difference() {
        for skew in [0, 30_000, -30_000, 3_600_000, -86_400_000] {
            steady(skew, 2 * MS, 20);
        }
    }

    #[test]
    fn a_batch_that_waited_while_the_receiver_was_frozen_is_late_by_the_wait() {
        for skew in [0, 7_000, -7_000] {
            let (mut transit, start, epoch) = steady(skew, 2 * MS, 20);
            // Sent at 2.0 s by the sender's clock; read 20 s later, after the freeze.
            let sent = epoch + Duration::from_secs(2);
            let thawed = start + Duration::from_secs(22);
            let wall = skewed(sent + Duration::from_secs(20) + 2 * MS, skew);
            let late = arrive(&mut transit, "r1", sent, thawed, wall);
            assert_eq!(late, Duration::from_secs(20), "skew {skew} ms");
            // The next stale one too: the period from before the freeze still counts.
            let late = arrive(&mut transit, "r1", sent + 100 * MS, thawed + MS, wall + MS);
            assert_eq!(late, Duration::from_millis(19_901), "skew {skew} ms");
        }
    }

    #[test]
    fn a_clock_set_anew_is_followed_within_two_periods() {
        let (mut transit, start, epoch) = steady(0, 2 * MS, 20);
        // The receiver's clock jumps 5 s ahead: batches look 5 s late at first...
        let mut late = Duration::ZERO;
        for i in 0..30u32 {
            let sent = epoch + Duration::from_secs(2) + Duration::from_secs(1) * i;
            let now = start + Duration::from_secs(2) + Duration::from_secs(1) * i + 2 * MS;
            let wall = sent + 2 * MS + Duration::from_secs(5);
            late = arrive(&mut transit, "r1", sent, now, wall);
            if i == 0 {
                assert_eq!(late, Duration::from_secs(5));
            }
        }
        // ...and on time again once the periods from before the jump are over.
        assert_eq!(late, Duration::ZERO);
    }

    #[test]
    fn each_sender_is_judged_against_its_own_clock() {
        let mut transit = Transit::default();
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // r1's clock is 3 s behind the receiver's, r2's 3 s ahead.
        let r1_sent = wall - Duration::from_secs(3);
        let r2_sent = wall + Duration::from_secs(3);
        for i in 0..RANKED as u32 {
            let (later, wall_later) = (now + MS * i, wall + MS * i);
            assert_eq!(
                arrive(&mut transit, "r1", r1_sent + MS * i, later, wall_later),
                Duration::ZERO
            );
            assert_eq!(
                arrive(&mut transit, "r2", r2_sent + MS * i, later, wall_later),
                Duration::ZERO
            );
        }
        let later = now + Duration::from_secs(1);
        let wall_later = wall + Duration::from_secs(1);
        let r2_late = r2_sent + Duration::from_millis(500);
        assert_eq!(
            arrive(
                &mut transit,
                "r1",
                r1_sent + Duration::from_secs(1),
                later,
                wall_later
            ),
            Duration::ZERO
        );
        assert_eq!(
            arrive(&mut transit, "r2", r2_late, later, wall_later),
            Duration::from_millis(500)
        );
    }

    /// Finding: 18 one-byte messages naming an honest rng, "sent" an hour ahead, made its
    /// batches look an hour late. Malformed ones are never noted; well-formed forgeries fewer
    /// than [`RANKED`] a period cannot move the figure.
    #[test]
    fn forged_send_times_cannot_move_the_figure() {
        let (mut transit, start, epoch) = steady(0, 2 * MS, 20);
        let hour_ahead = epoch + Duration::from_secs(3600);
        let (now, wall) = (
            start + Duration::from_secs(2),
            epoch + Duration::from_secs(2),
        );
        // Refused as malformed: looked at, never noted.
        for _ in 0..18 {
            assert_eq!(
                transit.late_by("r1", Seen::new(hour_ahead, wall)),
                Duration::ZERO
            );
        }
        // Well-formed, but fewer than RANKED.
        for _ in 0..RANKED - 1 {
            arrive(&mut transit, "r1", hour_ahead, now, wall);
        }
        let honest = arrive(
            &mut transit,
            "r1",
            epoch + Duration::from_secs(2),
            now + MS,
            wall + 2 * MS,
        );
        assert_eq!(honest, Duration::ZERO, "an honest batch judged late");
    }

    #[test]
    fn no_figure_before_enough_batches() {
        let mut transit = Transit::default();
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for _ in 0..RANKED - 1 {
            arrive(&mut transit, "r1", wall, now, wall);
        }
        let late = Seen::new(wall, wall + Duration::from_secs(60));
        assert_eq!(transit.late_by("r1", late), Duration::ZERO);
        transit.note("r1", Seen::new(wall, wall), now);
        assert_eq!(transit.late_by("r1", late), Duration::from_secs(60));
    }

    #[test]
    fn many_senders_take_bounded_memory() {
        let mut transit = Transit::default();
        let now = Instant::now();
        let wall = SystemTime::now();
        for i in 0..(3 * MAX_SENDERS) {
            arrive(&mut transit, &format!("forged-{i}"), wall, now, wall);
            assert!(transit.senders.len() <= MAX_SENDERS);
        }
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let mut transit = Transit::default();
        let now = Instant::now();
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2_000);
        for _ in 0..RANKED {
            assert_eq!(
                arrive(&mut transit, "r1", SystemTime::UNIX_EPOCH, now, far),
                Duration::ZERO
            );
        }
        let late = arrive(
            &mut transit,
            "r1",
            SystemTime::UNIX_EPOCH,
            now,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(late, Duration::ZERO);
        let late = arrive(&mut transit, "r1", far, now, SystemTime::UNIX_EPOCH);
        assert_eq!(late, Duration::ZERO);
    }
}
