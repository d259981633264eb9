//! How long a batch spent getting here: from its sender's wall clock (`Chocominer-Sent-Ms`)
//! to this receiver's, net of the difference between the two clocks. The [`intake`] takes it
//! off a batch's time to live.
//!
//! A receiver's own clock cannot see time it did not run: a batch that sat in the socket
//! while this process was frozen (SIGSTOP, a paused container) looks fresh when it is read,
//! although its sender gave up on it long ago. The sender's send time shows that wait. Two
//! clocks never agree exactly, though, and may be seconds apart, so the wait is not
//! `now - sent` but how much later than the quickest recent batch *from the same sender* this
//! one is: the quickest one's figure is the clocks' difference plus the wire's shortest time,
//! whatever the difference is, either way. The quickest is kept over the last two spells of
//! [`SPELL`] (so a clock that is set anew is followed within two spells), and a spell ends
//! only when a batch arrives, one spell per batch at most: after a freeze, the spell from
//! before it still holds the figure the stale batches are judged against.
//!
//! [`intake`]: crate::intake

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// How long one spell of the quickest figure lasts.
const SPELL: Duration = Duration::from_secs(10);
/// Senders remembered at once; when more come (a pipeline does not have that many, a forger
/// might), the figures start over, and batches count as on time until they have some again.
const MAX_SENDERS: usize = 1024;

/// The quickest batch of one sender in the current and the previous spell, as
/// `receiver's clock - sender's clock at send`, in milliseconds (negative when the receiver's
/// clock is behind).
#[derive(Debug, Clone, Copy)]
struct Quickest {
    spell_began: Instant,
    current: i64,
    previous: i64,
}

/// The transit figures of the senders a receiver hears from.
#[derive(Debug, Default)]
pub(crate) struct Transit {
    senders: HashMap<String, Quickest>,
}

impl Transit {
    /// Notes a batch from `sender` sent at `sent` (its wall clock) and received at `now` (this
    /// one's, `now_wall`); returns how much longer than the quickest recent batch of that
    /// sender it took: the time it waited somewhere, frozen receivers included.
    pub(crate) fn late_by(
        &mut self,
        sender: &str,
        sent: SystemTime,
        now: Instant,
        now_wall: SystemTime,
    ) -> Duration {
        let seen = signed_millis(now_wall, sent);
        // Looked up by `&str` first: the sender's name is copied only when it is new, not
        // for every batch.
        if !self.senders.contains_key(sender) {
            if self.senders.len() >= MAX_SENDERS {
                self.senders.clear();
            }
            self.senders.insert(
                sender.to_owned(),
                Quickest {
                    spell_began: now,
                    current: seen,
                    previous: seen,
                },
            );
        }
        let quickest = self
            .senders
            .get_mut(sender)
            .expect("inserted just above if it was not there");
        if now.duration_since(quickest.spell_began) >= SPELL {
            quickest.previous = quickest.current;
            quickest.current = seen;
            quickest.spell_began = now;
        }
        let baseline = quickest.previous.min(quickest.current);
        quickest.current = quickest.current.min(seen);
        Duration::from_millis(seen.saturating_sub(baseline).max(0) as u64)
    }
}

/// `later - earlier` in whole milliseconds, negative when `later` is not later, saturating.
fn signed_millis(later: SystemTime, earlier: SystemTime) -> i64 {
    match later.duration_since(earlier) {
        Ok(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
        Err(behind) => i64::try_from(behind.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Batches sent every 100 ms taking `wire` to arrive, with the receiver's clock `skew`
    /// ahead (negative: behind); returns the transit, the start and the moments used.
    fn steady(skew_ms: i64, wire: Duration, batches: u32) -> (Transit, Instant, SystemTime) {
        let mut transit = Transit::default();
        let start = Instant::now();
        let sender_epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for i in 0..batches {
            let sent = sender_epoch + 100 * MS * i;
            let received = sent + wire;
            let now_wall = if skew_ms >= 0 {
                received + MS * skew_ms as u32
            } else {
                received - MS * (-skew_ms) as u32
            };
            let late = transit.late_by("r1", sent, start + 100 * MS * i + wire, now_wall);
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
            let wall = sent + Duration::from_secs(20) + 2 * MS;
            let wall = if skew >= 0 {
                wall + MS * skew as u32
            } else {
                wall - MS * (-skew) as u32
            };
            let late = transit.late_by("r1", sent, thawed, wall);
            assert_eq!(late, Duration::from_secs(20), "skew {skew} ms");
            // The next stale one too: the spell from before the freeze still counts.
            let late = transit.late_by("r1", sent + 100 * MS, thawed + MS, wall + MS);
            assert_eq!(late, Duration::from_millis(19_901), "skew {skew} ms");
        }
    }

    #[test]
    fn a_clock_set_anew_is_followed_within_two_spells() {
        let (mut transit, start, epoch) = steady(0, 2 * MS, 20);
        // The receiver's clock jumps 5 s ahead: batches look 5 s late at first...
        let mut late = Duration::ZERO;
        for i in 0..30u32 {
            let sent = epoch + Duration::from_secs(2) + Duration::from_secs(1) * i;
            let now = start + Duration::from_secs(2) + Duration::from_secs(1) * i + 2 * MS;
            let wall = sent + 2 * MS + Duration::from_secs(5);
            late = transit.late_by("r1", sent, now, wall);
            if i == 0 {
                assert_eq!(late, Duration::from_secs(5));
            }
        }
        // ...and on time again once the spells from before the jump are over.
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
        assert_eq!(transit.late_by("r1", r1_sent, now, wall), Duration::ZERO);
        assert_eq!(transit.late_by("r2", r2_sent, now, wall), Duration::ZERO);
        let later = now + Duration::from_secs(1);
        let wall_later = wall + Duration::from_secs(1);
        let r2_late = r2_sent + Duration::from_millis(500);
        assert_eq!(
            transit.late_by("r1", r1_sent + Duration::from_secs(1), later, wall_later),
            Duration::ZERO
        );
        assert_eq!(
            transit.late_by("r2", r2_late, later, wall_later),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn many_senders_take_bounded_memory() {
        let mut transit = Transit::default();
        let now = Instant::now();
        let wall = SystemTime::now();
        for i in 0..(3 * MAX_SENDERS) {
            transit.late_by(&format!("forged-{i}"), wall, now, wall);
            assert!(transit.senders.len() <= MAX_SENDERS);
        }
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let mut transit = Transit::default();
        let now = Instant::now();
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2_000);
        assert_eq!(
            transit.late_by("r1", SystemTime::UNIX_EPOCH, now, far),
            Duration::ZERO
        );
        let late = transit.late_by("r1", SystemTime::UNIX_EPOCH, now, SystemTime::UNIX_EPOCH);
        assert_eq!(late, Duration::ZERO);
        let late = transit.late_by("r1", far, now, SystemTime::UNIX_EPOCH);
        assert_eq!(late, Duration::ZERO);
    }
}
