//! Request bodies as the proxy sends them on ([`Outbound`], [`RequestBody`]), and [`Tee`], the
//! copy of a body that passes by, which shadow traffic reads.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use crate::http::deadline::Idle;
use crate::http::server::ClientBody;

/// A request's body as the proxy sends it on.
///
/// **Invariant:** a body that may go to an upstream more than once (a resend on a new
/// connection, the retry on a route's fallback) is `Whole`, and every send of it writes all of
/// it: the proxy's own client only borrows it (`client::Outgoing`). A body that streams from the
/// client is sent once, by hyper's client, which hands a request back only when none of it left.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// All of it is here: none, a body the proxy's own HTTP/1 server read whole, or one collected
    /// so that it can be sent again.
    Whole(Bytes),
    /// Streams from the client.
    Streaming(RequestBody),
}

impl Outbound {
    /// Whether there is no body.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Outbound::Whole(bytes) => bytes.is_empty(),
            Outbound::Streaming(body) => body.is_end_stream(),
        }
    }

    /// Its length, when it is known before it is sent.
    pub(crate) fn exact_len(&self) -> Option<u64> {
        match self {
            Outbound::Whole(bytes) => Some(bytes.len() as u64),
            Outbound::Streaming(body) => body.size_hint().exact(),
        }
    }
}

/// A request body that streams from the client to the upstream, cut off when it passes the body
/// limit.
#[derive(Debug)]
pub struct RequestBody {
    pub(crate) inner: ClientBody,
    pub(crate) remaining: u64,
    /// A copy for shadow traffic, if the request is mirrored.
    pub(crate) tee: Option<Tee>,
    /// `timeouts.body_idle`: a client that stops sending its body.
    pub(crate) idle: Idle,
}

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body passed `limits.max_body_size`.
    #[error("request body is larger than the limit")]
    TooLarge,
    /// Reading from the client failed.
    #[error("reading the request body failed")]
    Client(#[source] hyper::Error),
    /// The client sent nothing of its body for `timeouts.body_idle`.
    #[error("the client sent nothing of the request body for too long")]
    Stalled,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(tee) = &mut this.tee {
            tee.observe(&polled, this.inner.is_end_stream());
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.progress();
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(BodyError::Client(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.idle.poll_expired(cx) => {
                Poll::Ready(Some(Err(BodyError::Stalled)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Keeps the bytes of a body that passes by, up to a cap, and hands them over when it ends.
/// Dropped before the end (the body failed or was cut short), it hands over nothing.
#[derive(Debug)]
pub(crate) struct Tee {
    chunks: Vec<Bytes>,
    len: u64,
    cap: u64,
    done: Option<oneshot::Sender<Copied>>,
}

/// What a [`Tee`] hands over.
#[derive(Debug)]
pub(crate) enum Copied {
    Complete(Bytes),
    TooLarge,
}

impl Tee {
    pub(crate) fn new(cap: u64) -> (Tee, oneshot::Receiver<Copied>) {
        let (sender, receiver) = oneshot::channel();
        let tee = Tee {
            chunks: Vec::new(),
            len: 0,
            cap,
            done: Some(sender),
        };
        (tee, receiver)
    }

    /// Looks at one poll of the body it copies; `end_stream` is the body's `is_end_stream`
    /// after the poll.
    pub(crate) fn observe<E>(
        &mut self,
        polled: &Poll<Option<Result<Frame<Bytes>, E>>>,
        end_stream: bool,
    ) {
        match polled {
            Poll::Pending => return,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.data(data);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                self.chunks.clear();
                self.done = None;
            }
            Poll::Ready(None) => self.end(),
        }
        if end_stream {
            self.end();
        }
    }

    fn data(&mut self, data: &Bytes) {
        if self.done.is_none() {
            return;
        }
        self.len += data.len() as u64;
        if self.len > self.cap {
            self.chunks = Vec::new();
            if let Some(done) = self.done.take() {
                let _ = done.send(Copied::TooLarge);
            }
        } else if !data.is_empty() {
            // A reference-counted handle on the same bytes, not a copy.
            self.chunks.push(data.clone());
        }
    }

    /// Copies a body that is all there, and ends.
    pub(crate) fn copy(mut self, body: &Bytes) {
        self.data(body);
        self.end();
    }

    /// The body ended: hands the bytes over (once).
    pub(crate) fn end(&mut self) {
        let Some(done) = self.done.take() else {
            return;
        };
        let body = match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut joined = BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0));
                for chunk in self.chunks.drain(..) {
                    joined.extend_from_slice(&chunk);
                }
                joined.freeze()
            }
        };
        let _ = done.send(Copied::Complete(body));
    }
}
