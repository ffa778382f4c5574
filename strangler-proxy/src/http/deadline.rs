//! Request deadlines on one timer per client connection, re-armed lazily.
//!
//! `tokio::time::timeout` puts an entry in the timer wheel when a request starts waiting and takes
//! it out when the answer comes: two trips through the timer driver for every request, about
//! 1,500 instructions on the proxy benchmark, for a timer that almost never fires. An HTTP/1
//! connection carries one request at a time, so its requests can share one `Sleep`, armed once
//! and left alone while it is later than needed; it only moves when it fires early (it was armed
//! for an earlier request: re-armed for the current one) or when a request needs an earlier
//! deadline than the one armed. NGINX's timers are lazy the same way (`NGX_TIMER_LAZY_DELAY`).
//! HTTP/2 requests run side by side in their own tasks and keep `tokio::time::timeout`.
//!
//! Bodies have a deadline of another kind: [`Idle`], the longest a body may go without progress
//! (`timeouts.body_idle`), whatever its total time. It costs nothing while the bytes come: its
//! `Sleep` is made only when a body first has to wait, and moved only when it waits again after
//! some progress. [`IdleWrite`] puts it on the writes of a connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// The shared timer of one client connection.
#[derive(Debug, Default)]
pub(crate) struct ConnTimer {
    sleep: Mutex<Option<Armed>>,
}

/// The connection's `Sleep`, and the waker it was last polled with since it was last set: while
/// that waker is the current one and the sleep has not fired, polling it again would only
/// register the same waker again.
#[derive(Debug)]
struct Armed {
    sleep: Pin<Box<Sleep>>,
    waker: Option<Waker>,
}

impl ConnTimer {
    /// Runs `future` until `deadline`. Only one future at a time may use a `ConnTimer` (one
    /// HTTP/1 connection's requests): a second one would take over the timer's waker.
    ///
    /// A named future rather than an `async fn`: an `async fn` would keep `future` twice in its
    /// state (as the argument and as the pinned local), and the request's whole future is moved
    /// by copying it when it starts.
    pub(crate) fn timeout<F: Future>(&self, deadline: Instant, future: F) -> Timeout<'_, F> {
        Timeout {
            timer: self,
            deadline,
            future,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future cut at a deadline on a connection's timer: [`ConnTimer::timeout`].
    pub(crate) struct Timeout<'a, F> {
        timer: &'a ConnTimer,
        deadline: Instant,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Timeout<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let deadline = *this.deadline;
        let mut slot = this
            .timer
            .sleep
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let armed = slot.get_or_insert_with(|| Armed {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            waker: None,
        });
        if armed.sleep.deadline() > deadline {
            armed.sleep.as_mut().reset(deadline);
            armed.waker = None;
        }
        let registered = |armed: &Armed, current: &Waker| {
            armed
                .waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(current))
        };
        if registered(armed, cx.waker()) && !armed.sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            match armed.sleep.as_mut().poll(cx) {
                Poll::Pending => {
                    if !registered(armed, cx.waker()) {
                        armed.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(()) if Instant::now() >= deadline => {
                    return Poll::Ready(Err(Elapsed));
                }
                // Armed for an earlier request: now for this one.
                Poll::Ready(()) => {
                    armed.sleep.as_mut().reset(deadline);
                    armed.waker = None;
                }
            }
        }
    }
}

/// A deadline on the time a body (or a connection's writes) may go without progress.
#[derive(Debug)]
pub(crate) struct Idle {
    limit: Duration,
    /// Made on the first wait.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Progress came since the `Sleep` was last set.
    moved: bool,
}

impl Idle {
    /// Allows `limit` without progress.
    pub(crate) fn new(limit: Duration) -> Idle {
        Idle {
            limit,
            sleep: None,
            moved: false,
        }
    }

    /// Notes progress (bytes read or written).
    pub(crate) fn progress(&mut self) {
        self.moved = true;
    }

    /// Called when the body has to wait: whether it has waited `limit` without progress. Until
    /// then the task is woken when the limit passes.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if std::mem::take(&mut self.moved) {
            // A limit too far to add never passes: a year will do.
            let deadline = Instant::now()
                .checked_add(limit)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

pin_project_lite::pin_project! {
    /// A connection whose writes fail with `TimedOut` when none of them makes progress for the
    /// [`Idle`] limit: a peer that stops reading holds the connection (and whatever feeds it,
    /// an upstream's response body) no longer than that. Reads pass through untouched.
    pub(crate) struct IdleWrite<I> {
        #[pin]
        inner: I,
        idle: Idle,
    }
}

impl<I> IdleWrite<I> {
    /// `inner`, whose writes may wait `limit` at most.
    pub(crate) fn new(inner: I, limit: Duration) -> IdleWrite<I> {
        IdleWrite {
            inner,
            idle: Idle::new(limit),
        }
    }
}

impl<I: tokio::io::AsyncRead> tokio::io::AsyncRead for IdleWrite<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite> IdleWrite<I> {
    fn guard<T>(
        idle: &mut Idle,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Pending if idle.poll_expired(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer took nothing of what was written for timeouts.body_idle",
            ))),
            Poll::Pending => Poll::Pending,
            ready => {
                idle.progress();
                ready
            }
        }
    }
}

impl<I: tokio::io::AsyncWrite> tokio::io::AsyncWrite for IdleWrite<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        Self::guard(this.idle, cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        Self::guard(this.idle, cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let polled = this.inner.poll_flush(cx);
        Self::guard(this.idle, cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let polled = this.inner.poll_shutdown(cx);
        Self::guard(this.idle, cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn waiting(idle: &mut Idle) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(idle.poll_expired(cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_deadline_counts_from_the_last_progress() {
        let mut idle = Idle::new(Duration::from_secs(10));
        assert!(!waiting(&mut idle).await);
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert!(!waiting(&mut idle).await);
        // Progress at 8 s: the limit counts from there.
        idle.progress();
        assert!(!waiting(&mut idle).await);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!waiting(&mut idle).await, "9 s after progress");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(waiting(&mut idle).await, "10 s after progress");
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_finishes_in_time_is_not_cut_and_one_that_does_not_is() {
        let timer = ConnTimer::default();
        let start = Instant::now();
        let quick = timer
            .timeout(start + Duration::from_secs(30), async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                7
            })
            .await;
        assert_eq!(quick, Ok(7));
        // The timer is still armed for 30 s from the start; a later request with a shorter
        // deadline must get its own.
        let later = Instant::now();
        let slow = timer
            .timeout(
                later + Duration::from_secs(2),
                tokio::time::sleep(Duration::from_secs(10)),
            )
            .await;
        assert_eq!(slow, Err(Elapsed));
        assert_eq!(Instant::now() - later, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_holds_while_the_future_is_woken_again_and_again() {
        // Each wake-up of the inner future polls the timer again, which then skips its `Sleep`
        // (same waker, not fired); the `Sleep` must still end the future on time. The second,
        // shorter deadline, on the same timer, must re-arm it.
        let timer = ConnTimer::default();
        for wait in [Duration::from_secs(1), Duration::from_millis(300)] {
            let start = Instant::now();
            // Bounded, so that a timer that never fires fails the test rather than hangs it.
            let outcome = tokio::time::timeout(
                Duration::from_secs(10),
                timer.timeout(start + wait, async {
                    loop {
                        tokio::time::sleep(Duration::from_millis(70)).await;
                    }
                }),
            )
            .await
            .expect("the deadline never came");
            assert_eq!(outcome, Err(Elapsed));
            assert_eq!(Instant::now() - start, wait);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_armed_for_an_earlier_request_does_not_cut_a_later_one_short() {
        let timer = ConnTimer::default();
        let first = Instant::now();
        // Arms the timer for first + 5 s.
        let done = timer
            .timeout(first + Duration::from_secs(5), async { 1 })
            .await;
        assert_eq!(done, Ok(1));
        assert!(
            timer.sleep.lock().unwrap().is_none(),
            "not armed when not needed"
        );
        let armed = timer
            .timeout(
                first + Duration::from_secs(5),
                tokio::time::sleep(Duration::from_millis(1)),
            )
            .await;
        assert_eq!(armed, Ok(()));
        // A request starting 3 s later with a 5 s deadline: the timer fires at first + 5 s, too
        // early for it, and must be re-armed rather than end the request.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = Instant::now();
        let outcome = timer
            .timeout(
                second + Duration::from_secs(5),
                tokio::time::sleep(Duration::from_secs(4)),
            )
            .await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(Instant::now() - second, Duration::from_secs(4));
        // And the same request, too slow, ends at its own deadline.
        let third = Instant::now();
        let outcome = timer
            .timeout(
                third + Duration::from_secs(5),
                tokio::time::sleep(Duration::from_secs(60)),
            )
            .await;
        assert_eq!(outcome, Err(Elapsed));
        assert_eq!(Instant::now() - third, Duration::from_secs(5));
    }
}
