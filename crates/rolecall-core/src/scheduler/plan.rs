//! The scheduler's arithmetic: when to renew (expiry − `refresh_before` − jitter) and how long
//! to wait before a retry (exponential backoff with full jitter). Pure functions, tested
//! without a runtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first retry waits at most this long.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Each further retry may wait this many times longer.
pub const BACKOFF_FACTOR: u32 = 2;
/// No retry waits longer than this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);
/// The jitter subtracted from a renewal time never exceeds this.
pub const MAX_JITTER: Duration = Duration::from_secs(60);
/// The least time between two attempts at the same profile: the guard against a hot loop.
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// The longest nap of the loop between two looks at the wall clock: a renewal that came due
/// during a suspend the monotonic clock did not count is at most this late (and the idle daemon
/// wakes at most once per this, within its goal of one wake-up a minute).
pub const MAX_NAP: Duration = Duration::from_secs(2 * 60);
/// The longest single sleep. Deadlines are hours away at most; this only bounds what a
/// bogus expiry far in the future could ask of the timer.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(24 * 3600);

/// The largest jitter for `refresh_before`: a tenth of it, at most [`MAX_JITTER`].
pub fn max_jitter(refresh_before: Duration) -> Duration {
    (refresh_before / 10).min(MAX_JITTER)
}

/// A jitter drawn uniformly from `[0, max_jitter(refresh_before)]` (millisecond steps).
pub fn draw_jitter(refresh_before: Duration, rng: &mut fastrand::Rng) -> Duration {
    Duration::from_millis(rng.u64(0..=millis(max_jitter(refresh_before))))
}

/// Like [`draw_jitter`], but never more than a tenth of `slack`, the time left before the
/// un-jittered renewal: with short lifetimes (15 min lived, renewed 14m50s before expiry: 10 s
/// of slack) a minute of jitter would make every renewal due at once.
pub fn draw_jitter_within(
    refresh_before: Duration,
    slack: Duration,
    rng: &mut fastrand::Rng,
) -> Duration {
    let max = max_jitter(refresh_before).min(slack / 10);
    Duration::from_millis(rng.u64(0..=millis(max)))
}

/// When to renew credentials that expire at `expiration`: `refresh_before` plus `jitter`
/// earlier.
pub fn renewal_time(
    expiration: SystemTime,
    refresh_before: Duration,
    jitter: Duration,
) -> SystemTime {
    expiration
        .checked_sub(refresh_before + jitter)
        .map_or(UNIX_EPOCH, |t| t.max(UNIX_EPOCH))
}

/// The longest wait before retry number `attempt` (1 for the first):
/// `min(BACKOFF_BASE · BACKOFF_FACTOR^(attempt − 1), BACKOFF_CAP)`.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    let steps = attempt.saturating_sub(1).min(20);
    BACKOFF_BASE
        .saturating_mul(BACKOFF_FACTOR.saturating_pow(steps))
        .min(BACKOFF_CAP)
}

/// The wait before retry number `attempt`, with full jitter: uniform in
/// `[0, backoff_ceiling(attempt)]` (millisecond steps). Full jitter spreads the retries of many
/// profiles (and many machines) that failed together, as AWS's architecture blog recommends
/// ("Exponential Backoff And Jitter").
pub fn backoff(attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    Duration::from_millis(rng.u64(0..=millis(backoff_ceiling(attempt))))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whole seconds: the credentials file keeps expiries to the second, so this is what
/// "the same expiry" means when comparing with what STS returned.
pub(crate) fn whole_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> fastrand::Rng {
        fastrand::Rng::with_seed(seed)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn jitter_stays_within_a_tenth_of_refresh_before_capped_at_a_minute() {
        for (rb, max) in [(10, 1), (300, 30), (600, 60), (900, 60), (3600, 60)] {
            assert_eq!(max_jitter(secs(rb)), secs(max));
            let draws: Vec<Duration> = (0..2000)
                .map(|seed| draw_jitter(secs(rb), &mut rng(seed)))
                .collect();
            assert!(draws.iter().all(|j| *j <= secs(max)), "rb {rb}");
            // uniform over the whole range, not a constant
            assert!(draws.iter().any(|j| *j < secs(max) / 4), "rb {rb}");
            assert!(draws.iter().any(|j| *j > secs(max) * 3 / 4), "rb {rb}");
        }
    }

    #[test]
    fn jitter_never_exceeds_a_tenth_of_the_slack() {
        // 15 min credentials renewed 14m50s before expiry: 10 s of slack, at most 1 s jitter
        for seed in 0..500 {
            let j = draw_jitter_within(secs(890), secs(10), &mut rng(seed));
            assert!(j <= secs(1), "{j:?}");
        }
        assert_eq!(
            draw_jitter_within(secs(900), Duration::ZERO, &mut rng(1)),
            Duration::ZERO
        );
        // plenty of slack: the usual bound
        let draws: Vec<Duration> = (0..500)
            .map(|seed| draw_jitter_within(secs(900), secs(3600), &mut rng(seed)))
            .collect();
        assert!(draws.iter().all(|j| *j <= secs(60)));
        assert!(draws.iter().any(|j| *j > secs(45)));
    }

    #[test]
    fn renewal_is_refresh_before_plus_jitter_before_expiry() {
        let exp = UNIX_EPOCH + secs(1_800_000_000);
        assert_eq!(renewal_time(exp, secs(900), secs(42)), exp - secs(942));
        // never before the epoch, whatever the numbers
        assert_eq!(
            renewal_time(UNIX_EPOCH + secs(5), secs(900), secs(1)),
            UNIX_EPOCH
        );
    }

    #[test]
    fn backoff_ceiling_doubles_from_two_seconds_and_caps_at_five_minutes() {
        let ceilings: Vec<u64> = (1..=12).map(|n| backoff_ceiling(n).as_secs()).collect();
        assert_eq!(
            ceilings,
            [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]
        );
        assert_eq!(backoff_ceiling(0), secs(2));
        assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn backoff_has_full_jitter_up_to_the_ceiling() {
        for attempt in [1, 3, 9, 40] {
            let ceiling = backoff_ceiling(attempt);
            let waits: Vec<Duration> = (0..2000).map(|s| backoff(attempt, &mut rng(s))).collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "attempt {attempt}");
            // full jitter reaches down to zero, not just to half the ceiling
            assert!(waits.iter().any(|w| *w < ceiling / 10), "attempt {attempt}");
            assert!(
                waits.iter().any(|w| *w > ceiling * 9 / 10),
                "attempt {attempt}"
            );
        }
    }
}
