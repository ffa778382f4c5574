//! The circuit breaker of an upstream, and outlier ejection of its addresses.
//!
//! Both are lock-free state machines over atomics, built once per config load, and both are pure
//! functions of the time they are given (`now`, nanoseconds on the proxy's monotonic clock, see
//! [`nanos`]): the request path passes the time it already read, and the unit tests pass any time
//! they like instead of sleeping.
//!
//! **Circuit breaker** (one per upstream): *closed* lets everything through and counts. It opens
//! on `consecutive_failures` failures in a row, or when the failure ratio over the sliding
//! `window` reaches `error_rate` with at least `min_requests` requests in it. *Open* lets nothing
//! through for `open_for`; then the first request finds it *half-open*, which lets at most
//! `half_open_requests` trial requests through at once. That many trial successes close it; one
//! trial failure opens it again. The window is ten buckets of `window / 10`, so it slides in
//! tenths; counts are approximate under races (a bucket being reset may lose an increment),
//! which a breaker can afford.
//!
//! Every transition bumps a generation, packed with the state in one `AtomicU64`, so an outcome
//! that comes back after the state moved on (a slow request let through while closed, finishing
//! after the circuit opened) is ignored instead of counting against the new state. A trial slot
//! is held by a [`Permit`] and freed when it is dropped, so a request that is cancelled midway
//! (the client went away) cannot leave the breaker half-open forever.
//!
//! **Outlier ejection** (per address, as Envoy's outlier detection): `consecutive_failures`
//! failures in a row eject an address for `base_ejection_time × times ejected` (at most
//! `max_ejection_time`), unless `max_ejection_percent` of the upstream's addresses are already out
//! (one is always allowed). An ejected address gets no requests from the balancer until its time
//! is up. The multiplier goes down by one for each base ejection time the address then serves
//! without being ejected again.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{CircuitBreakerConfig, OutlierConfig};

/// Nanoseconds since the proxy's clock started (the first call of [`nanos`]).
pub type Nanos = u64;

/// The time `at` on the proxy's monotonic clock.
pub fn nanos(at: Instant) -> Nanos {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

fn to_nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Requests go through.
    Closed = 0,
    /// Requests are refused.
    Open = 1,
    /// A few trial requests go through.
    HalfOpen = 2,
}

impl State {
    /// A stable kebab-case name: `closed`, `open`, `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }

    /// The value of the `fig_proxy_circuit_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> u8 {
        self as u8
    }

    fn from_bits(bits: u64) -> State {
        match bits & 3 {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        }
    }
}

/// A change of state, reported so it can be logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
}

const BUCKETS: usize = 10;

/// The circuit breaker of one upstream.
#[derive(Debug)]
pub struct Breaker {
    config: CircuitBreakerConfig,
    /// `generation << 2 | state`.
    word: AtomicU64,
    opened_at: AtomicU64,
    consecutive: AtomicU32,
    trials_in_flight: AtomicU32,
    trial_successes: AtomicU32,
    bucket_width: Nanos,
    buckets: [Bucket; BUCKETS],
}

#[derive(Debug, Default)]
struct Bucket {
    /// `now / bucket_width` of the counts held, plus one (0 is "never used").
    slot: AtomicU64,
    requests: AtomicU32,
    failures: AtomicU32,
}

/// Leave to send one request through a breaker, from [`Breaker::try_acquire`]. Hand it back with
/// the outcome to [`Breaker::record`]; dropping it instead gives up a trial slot.
#[derive(Debug)]
pub struct Permit<'b> {
    breaker: Option<&'b Breaker>,
    generation: u64,
    trial: bool,
}

impl Permit<'_> {
    /// A permit of no breaker (the breaker is off): recording it does nothing.
    pub fn none() -> Permit<'static> {
        Permit {
            breaker: None,
            generation: 0,
            trial: false,
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial
            && let Some(breaker) = self.breaker
        {
            breaker.trials_in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: CircuitBreakerConfig) -> Breaker {
        Breaker {
            config,
            word: AtomicU64::new(State::Closed as u64),
            opened_at: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            trials_in_flight: AtomicU32::new(0),
            trial_successes: AtomicU32::new(0),
            bucket_width: (to_nanos(config.window) / BUCKETS as u64).max(1),
            buckets: Default::default(),
        }
    }

    /// Whether the breaker is on at all.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The state at `now` (an open circuit whose time is up reads as half-open).
    pub fn state(&self, now: Nanos) -> State {
        let state = State::from_bits(self.word.load(Ordering::Acquire));
        if state == State::Open && self.open_time_is_up(now) {
            State::HalfOpen
        } else {
            state
        }
    }

    /// Asks to send one request at `now`: `Ok` with a permit, or `Err` with how long the circuit
    /// stays open (zero when it is half-open and its trial slots are taken), and the transition
    /// to half-open if this call made it.
    pub fn try_acquire(&self, now: Nanos) -> (Result<Permit<'_>, Duration>, Option<Transition>) {
        if !self.config.enabled {
            return (Ok(Permit::none()), None);
        }
        let mut transition = None;
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            match State::from_bits(word) {
                State::Closed => {
                    return (
                        Ok(Permit {
                            breaker: Some(self),
                            generation: word >> 2,
                            trial: false,
                        }),
                        transition,
                    );
                }
                State::Open => {
                    if !self.open_time_is_up(now) {
                        let until = self
                            .opened_at
                            .load(Ordering::Acquire)
                            .saturating_add(to_nanos(self.config.open_for));
                        return (
                            Err(Duration::from_nanos(until.saturating_sub(now))),
                            transition,
                        );
                    }
                    let next = ((word >> 2) + 1) << 2 | State::HalfOpen as u64;
                    match self.word.compare_exchange(
                        word,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            self.trial_successes.store(0, Ordering::Release);
                            transition = Some(Transition {
                                from: State::Open,
                                to: State::HalfOpen,
                            });
                            word = next;
                        }
                        Err(actual) => word = actual,
                    }
                }
                State::HalfOpen => {
                    let taken = self.trials_in_flight.fetch_add(1, Ordering::AcqRel);
                    if taken >= self.config.half_open_requests {
                        self.trials_in_flight.fetch_sub(1, Ordering::AcqRel);
                        return (Err(Duration::ZERO), transition);
                    }
                    return (
                        Ok(Permit {
                            breaker: Some(self),
                            generation: word >> 2,
                            trial: true,
                        }),
                        transition,
                    );
                }
            }
        }
    }

    /// Records the outcome of a request sent with `permit`; returns the transition it caused.
    pub fn record(&self, permit: Permit<'_>, now: Nanos, failed: bool) -> Option<Transition> {
        permit.breaker?;
        let word = self.word.load(Ordering::Acquire);
        if word >> 2 != permit.generation {
            // The circuit moved on since this request started; its outcome says nothing new.
            return None;
        }
        match State::from_bits(word) {
            State::Closed => {
                self.count(now, failed);
                if !failed {
                    if self.consecutive.load(Ordering::Relaxed) != 0 {
                        self.consecutive.store(0, Ordering::Relaxed);
                    }
                    return None;
                }
                let in_a_row = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
                let by_count = self.config.consecutive_failures > 0
                    && in_a_row >= self.config.consecutive_failures;
                if by_count || self.rate_exceeded(now) {
                    self.open(word, now, State::Closed)
                } else {
                    None
                }
            }
            State::HalfOpen if permit.trial => {
                if failed {
                    return self.open(word, now, State::HalfOpen);
                }
                let successes = self.trial_successes.fetch_add(1, Ordering::AcqRel) + 1;
                if successes < self.config.half_open_requests {
                    return None;
                }
                let next = ((word >> 2) + 1) << 2 | State::Closed as u64;
                if self
                    .word
                    .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return None;
                }
                self.consecutive.store(0, Ordering::Release);
                for bucket in &self.buckets {
                    bucket.slot.store(0, Ordering::Release);
                }
                Some(Transition {
                    from: State::HalfOpen,
                    to: State::Closed,
                })
            }
            State::HalfOpen | State::Open => None,
        }
    }

    fn open(&self, word: u64, now: Nanos, from: State) -> Option<Transition> {
        let next = ((word >> 2) + 1) << 2 | State::Open as u64;
        // Store the time first: a reader that sees the new state must see its time.
        let previous = self.opened_at.swap(now, Ordering::AcqRel);
        if self
            .word
            .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.opened_at.store(previous, Ordering::Release);
            return None;
        }
        Some(Transition {
            from,
            to: State::Open,
        })
    }

    fn open_time_is_up(&self, now: Nanos) -> bool {
        now >= self
            .opened_at
            .load(Ordering::Acquire)
            .saturating_add(to_nanos(self.config.open_for))
    }

    fn count(&self, now: Nanos, failed: bool) {
        if self.config.error_rate <= 0.0 {
            return;
        }
        let slot = now / self.bucket_width + 1;
        let bucket = &self.buckets[(slot % BUCKETS as u64) as usize];
        let seen = bucket.slot.load(Ordering::Acquire);
        if seen != slot
            && bucket
                .slot
                .compare_exchange(seen, slot, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bucket.requests.store(0, Ordering::Release);
            bucket.failures.store(0, Ordering::Release);
        }
        bucket.requests.fetch_add(1, Ordering::AcqRel);
        if failed {
            bucket.failures.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether the failure ratio over the window has reached `error_rate`.
    fn rate_exceeded(&self, now: Nanos) -> bool {
        if self.config.error_rate <= 0.0 {
            return false;
        }
        let (requests, failures) = self.window(now);
        requests >= u64::from(self.config.min_requests)
            && failures as f64 >= self.config.error_rate * requests as f64
    }

    /// Requests and failures in the window ending at `now`.
    pub fn window(&self, now: Nanos) -> (u64, u64) {
        let current = now / self.bucket_width + 1;
        // Slot 0 marks a bucket never used (or cleared when the circuit closed).
        let oldest = current.saturating_sub(BUCKETS as u64 - 1).max(1);
        let mut requests = 0;
        let mut failures = 0;
        for bucket in &self.buckets {
            let slot = bucket.slot.load(Ordering::Acquire);
            if slot >= oldest && slot <= current {
                requests += u64::from(bucket.requests.load(Ordering::Acquire));
                failures += u64::from(bucket.failures.load(Ordering::Acquire));
            }
        }
        (requests, failures)
    }
}

/// The outlier-ejection state of one address.
#[derive(Debug, Default)]
pub struct Outlier {
    consecutive: AtomicU32,
    /// Until when the address is ejected (0: never was).
    ejected_until: AtomicU64,
    times_ejected: AtomicU32,
}

impl Outlier {
    /// Whether the address is ejected at `now`.
    pub fn is_ejected(&self, now: Nanos) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Records one outcome of the address at `now`. `ejected_elsewhere` counts the upstream's
    /// other ejected addresses (called only on the failure that would eject). Returns the
    /// ejection time when this outcome ejected the address.
    pub fn record(
        &self,
        config: &OutlierConfig,
        now: Nanos,
        failed: bool,
        ejected_elsewhere: impl FnOnce() -> usize,
        addresses: usize,
    ) -> Option<Duration> {
        if !config.enabled {
            return None;
        }
        if !failed {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            // Healthy for one base ejection time since it came back: the multiplier goes down.
            let times = self.times_ejected.load(Ordering::Relaxed);
            if times > 0 {
                let back_at = self.ejected_until.load(Ordering::Relaxed);
                if now >= back_at.saturating_add(to_nanos(config.base_ejection_time))
                    && self
                        .times_ejected
                        .compare_exchange(times, times - 1, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    self.ejected_until.store(now, Ordering::Relaxed);
                }
            }
            return None;
        }
        let in_a_row = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
        if in_a_row < config.consecutive_failures || self.is_ejected(now) {
            return None;
        }
        let allowed = (addresses * config.max_ejection_percent as usize / 100).max(1);
        if ejected_elsewhere() >= allowed {
            return None;
        }
        let times = self.times_ejected.fetch_add(1, Ordering::AcqRel) + 1;
        let ejection = config
            .base_ejection_time
            .saturating_mul(times)
            .min(config.max_ejection_time);
        self.ejected_until
            .store(now.saturating_add(to_nanos(ejection)), Ordering::Release);
        self.consecutive.store(0, Ordering::Release);
        Some(ejection)
    }
}
