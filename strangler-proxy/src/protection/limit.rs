//! Flow control: per-route rate limits and per-upstream caps on requests in flight.
//!
//! **Rate limits** are token buckets (GCRA, from the `governor` crate: one `AtomicU64` of
//! "theoretical arrival time" per bucket, no lock for the global bucket, a sharded map for keyed
//! ones). A route's limit is `rate` tokens per `per`, `burst` at most, taken per user id, per
//! client IP or globally. Keys are stored as 64-bit hashes (random seed per process), so a
//! lookup allocates nothing whatever the user id. Memory is bounded by evicting idle keys: at
//! most once per `EVICT_EVERY`, the request that finds the time is up drops every key whose
//! bucket has refilled completely (a full bucket and no bucket behave the same, so eviction never
//! changes an answer). So the map holds at most the keys seen within one refill time plus
//! `EVICT_EVERY`, about 40 bytes each.
//!
//! **In-flight caps** are a semaphore per upstream: a request takes a permit before it is sent and
//! holds it until its response body ends. Without a free permit it waits up to `queue_timeout`
//! (zero by default), then is shed with 503 and `Retry-After`, instead of queueing without bound.

use std::hash::BuildHasher as _;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference as _};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{RateKey, RateLimitConfig};

/// How often idle keys are evicted.
pub const EVICT_EVERY: Duration = Duration::from_secs(1);

/// A route's rate limit.
pub struct RateLimit<C: Clock = DefaultClock> {
    config: RateLimitConfig,
    limiter: RateLimiter<u64, DashMapStateStore<u64>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    started: C::Instant,
    hasher: std::hash::RandomState,
    /// Clock reading (nanoseconds since the clock's start) of the last eviction.
    last_evicted: AtomicU64,
}

impl<C: Clock> std::fmt::Debug for RateLimit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("config", &self.config)
            .field("keys", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

/// Who a request is, for a keyed limit.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A user id.
    User(&'a str),
    /// A client address.
    Ip(IpAddr),
    /// The route's one bucket.
    Global,
}

impl RateLimit<DefaultClock> {
    /// The limit of `config` on the real clock.
    pub fn new(config: RateLimitConfig) -> RateLimit {
        RateLimit::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimit<C> {
    /// The limit of `config` on `clock`.
    pub fn with_clock(config: RateLimitConfig, clock: C) -> RateLimit<C> {
        let period = (config.per / config.rate).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        RateLimit {
            config,
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            started: clock.now(),
            clock,
            hasher: std::hash::RandomState::new(),
            last_evicted: AtomicU64::new(0),
        }
    }

    /// What a limit keys on.
    pub fn key_kind(&self) -> RateKey {
        self.config.key
    }

    /// Takes one token for `key`: `Ok`, or `Err` with the time until one is available.
    pub fn check(&self, key: Key<'_>) -> Result<(), Duration> {
        let hashed = match key {
            Key::User(user) => self.hasher.hash_one((0u8, user)),
            Key::Ip(ip) => self.hasher.hash_one((1u8, ip)),
            Key::Global => 0,
        };
        let result = self
            .limiter
            .check_key(&hashed)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()));
        // A global limit has one key: nothing to evict, and no second clock read.
        if self.config.key != RateKey::Global {
            self.evict_idle();
        }
        result
    }

    /// Keys held now.
    pub fn keys(&self) -> usize {
        self.limiter.len()
    }

    fn evict_idle(&self) {
        let now = self.clock.now().duration_since(self.started);
        let now = u64::from(now);
        let last = self.last_evicted.load(Ordering::Relaxed);
        let every = u64::try_from(EVICT_EVERY.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every
            || self
                .last_evicted
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The in-flight cap of an upstream.
#[derive(Debug)]
pub struct Concurrency {
    semaphore: Arc<Semaphore>,
    queue_timeout: Duration,
    /// The cap.
    #[cfg(test)]
    max: u32,
}

impl Concurrency {
    /// A cap of `max` requests in flight, waiting up to `queue_timeout` for a slot.
    pub fn new(max: u32, queue_timeout: Duration) -> Concurrency {
        Concurrency {
            semaphore: Arc::new(Semaphore::new(max as usize)),
            queue_timeout,
            #[cfg(test)]
            max,
        }
    }

    /// A slot, held until the permit is dropped; `None` when the request must be shed.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.queue_timeout.is_zero() {
            return None;
        }
        tokio::time::timeout(self.queue_timeout, self.semaphore.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Requests in flight now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> u32 {
        self.max
            .saturating_sub(u32::try_from(self.semaphore.available_permits()).unwrap_or(u32::MAX))
    }
}

/// `Retry-After` in whole seconds for a wait of `wait` (at least 1).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}
