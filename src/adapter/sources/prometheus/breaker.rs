//! A circuit breaker for one backend: after [`FAILURES_TO_OPEN`] failures in a row, calls are
//! refused without being sent for a cool-down that doubles on every failed probe (up to
//! [`MAX_COOL_DOWN`]); after the cool-down one probe goes through, and its success closes the
//! circuit. A Prometheus that is down or drowning gets one query per cool-down, not one per rule
//! and per HPA request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const FAILURES_TO_OPEN: u32 = 3;
pub(crate) const FIRST_COOL_DOWN: Duration = Duration::from_secs(2);
pub(crate) const MAX_COOL_DOWN: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        cool_down: Duration,
    },
    /// One probe is out; everything else waits for its answer, or for `until` should the probe
    /// never report (its caller gave up).
    Probing {
        until: Instant,
        cool_down: Duration,
    },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }
}

impl Breaker {
    /// Whether a call may go out at `now`; when the cool-down has passed, the caller that gets
    /// `true` is the probe.
    pub fn allow(&self, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return true;
        };
        match *state {
            State::Closed { .. } => true,
            State::Open { until, cool_down } | State::Probing { until, cool_down }
                if now >= until =>
            {
                *state = State::Probing {
                    until: now + cool_down,
                    cool_down,
                };
                true
            }
            State::Open { .. } | State::Probing { .. } => false,
        }
    }

    /// Records a call's outcome.
    pub(crate) fn record(&self, ok: bool, now: Instant) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        *state = match (&*state, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < FAILURES_TO_OPEN => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Closed { .. }, false) => State::Open {
                until: now + FIRST_COOL_DOWN,
                cool_down: FIRST_COOL_DOWN,
            },
            // a call sent before the circuit opened: already counted in
            (State::Open { until, cool_down }, false) => State::Open {
                until: *until,
                cool_down: *cool_down,
            },
            (State::Probing { cool_down, .. }, false) => {
                let cool_down = (*cool_down * 2).min(MAX_COOL_DOWN);
                State::Open {
                    until: now + cool_down,
                    cool_down,
                }
            }
        };
    }

    /// Whether calls are being held back.
    pub(crate) fn is_open(&self) -> bool {
        self.state
            .lock()
            .map(|s| !matches!(*s, State::Closed { .. }))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_probes_after_cool_down_and_backs_off() {
        let breaker = Breaker::default();
        let start = Instant::now();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(breaker.allow(start));
            breaker.record(false, start);
        }
        assert!(!breaker.is_open());
        breaker.record(false, start);
        assert!(breaker.is_open());
        assert!(!breaker.allow(start + Duration::from_secs(1)));
        // the cool-down passed: exactly one probe
        let later = start + FIRST_COOL_DOWN;
        assert!(breaker.allow(later));
        assert!(!breaker.allow(later));
        // the probe failed: twice as long
        breaker.record(false, later);
        assert!(!breaker.allow(later + FIRST_COOL_DOWN));
        assert!(breaker.allow(later + FIRST_COOL_DOWN * 2));
        breaker.record(true, later + FIRST_COOL_DOWN * 2);
        assert!(!breaker.is_open());
        assert!(breaker.allow(later + FIRST_COOL_DOWN * 2));
    }

    #[test]
    fn calls_in_flight_when_it_opened_do_not_lengthen_the_cool_down() {
        let breaker = Breaker::default();
        let now = Instant::now();
        // twenty queries were in flight when Prometheus died
        for _ in 0..20 {
            breaker.record(false, now);
        }
        assert!(breaker.allow(now + FIRST_COOL_DOWN));
    }

    #[test]
    fn success_resets_the_count() {
        let breaker = Breaker::default();
        let now = Instant::now();
        breaker.record(false, now);
        breaker.record(false, now);
        breaker.record(true, now);
        breaker.record(false, now);
        breaker.record(false, now);
        assert!(!breaker.is_open());
    }
}
