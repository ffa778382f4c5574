//! Shadow traffic: a share of a route's requests is copied to another upstream, and the two
//! responses are compared.
//!
//! Which requests: those whose method the route mirrors (GET, HEAD and OPTIONS unless the route
//! lists others) from a sticky share of users. The bucket of a request is Unleash's normalized
//! stickiness, `murmur3_32("ROUTE:ID", seed 0) % 100 + 1`, mirrored when it is at most
//! `percent`, so a user's whole session is shadowed or none of it. `ID` is the flag context's
//! user id, else the client IP (the context's `remoteAddress`); requests without a user are
//! sticky per client address.
//!
//! Where: by default to whichever of the route's `service` and `fallback` did not answer
//! (typically the monolith answers and the new service gets the copy), or a named upstream.
//!
//! How, without touching the client's response: `start` takes a slot of a bounded semaphore
//! (none free: the copy is dropped and counted), spawns a task, and gives the proxy a `Tee`
//! (`http::body`) for the request body when it has one. The proxy streams the client's request and response as
//! usual; the tees keep the bytes that pass by, up to a cap, and hand them over when the body
//! ends. The task sends the copy once the request body is complete, reads the shadow's answer,
//! waits for the primary's, and compares them (`diff`). Nothing in it can delay or
//! change the client's response: the only link back is the tees, which never block.
//!
//! Results go to per-route counters (kept across reloads, like the other metrics) and to a ring
//! of the newest samples of differences, which is written, whole and atomically, to
//! `DIR/ROUTE.json` at most once a second when `[shadow] dir` (or a state file) is set, and read
//! back at start.

pub(crate) mod diff;

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt as _, Full, Limited};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::Instrument as _;

use crate::config::{Config, ShadowConfig, ShadowTarget};
use crate::http::body::{Copied, Tee};
use crate::protection::upstream::{Address, Upstream};
use diff::{Captured, CompareConfig, DiffKind, Difference};

/// The header every shadow copy carries, so the shadow upstream can tell it from real traffic.
pub(crate) const SHADOW_HEADER: &str = "x-fig-shadow";
/// Distinct differing paths counted per route; more are counted as `(other paths)`.
const MAX_PATHS: usize = 256;
/// How long the task waits for the primary's response to be complete.
const PRIMARY_WAIT: Duration = Duration::from_secs(30);

/// Why a copy was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Every shadow slot was busy (`[shadow] max_concurrent`).
    Saturated,
    /// The request body was over `max_request_body`.
    RequestBodyTooLarge,
}

/// Why a copy was sent but not compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// The primary failed, or its response did not complete (client gone, timeout).
    PrimaryFailed,
    /// A response body was over `max_response_body`.
    ResponseTooLarge,
}

impl DropReason {
    const ALL: [DropReason; 2] = [DropReason::Saturated, DropReason::RequestBodyTooLarge];

    /// A stable name, used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Saturated => "saturated",
            DropReason::RequestBodyTooLarge => "request-body-too-large",
        }
    }
}

impl SkipReason {
    const ALL: [SkipReason; 2] = [SkipReason::PrimaryFailed, SkipReason::ResponseTooLarge];

    /// A stable name, used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::PrimaryFailed => "primary-failed",
            SkipReason::ResponseTooLarge => "response-too-large",
        }
    }
}

const KINDS: [DiffKind; 3] = [DiffKind::Status, DiffKind::Header, DiffKind::Body];

/// Counters of one route's shadow traffic.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Copies sent.
    pub mirrored: AtomicU64,
    /// Compared and equal.
    pub equal: AtomicU64,
    /// Compared and different.
    pub different: AtomicU64,
    /// The shadow upstream failed (connect, timeout, broken response).
    pub errors: AtomicU64,
    /// Sent but not compared, by [`SkipReason`].
    pub skipped: [AtomicU64; 2],
    /// Not sent, by [`DropReason`].
    pub dropped: [AtomicU64; 2],
    /// Different responses by [`DiffKind`] (a response can count in several).
    pub kinds: [AtomicU64; 3],
    paths: Mutex<HashMap<String, u64>>,
}

impl Stats {
    fn drop_one(&self, reason: DropReason) {
        let idx = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.dropped[idx].fetch_add(1, Ordering::Relaxed);
    }

    fn skip_one(&self, reason: SkipReason) {
        let idx = SkipReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.skipped[idx].fetch_add(1, Ordering::Relaxed);
    }

    fn record_differences(&self, differences: &[Difference]) {
        for (idx, kind) in KINDS.iter().enumerate() {
            if differences.iter().any(|d| d.kind == *kind) {
                self.kinds[idx].fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        for difference in differences {
            let key = if paths.len() < MAX_PATHS || paths.contains_key(&difference.path) {
                difference.path.clone()
            } else {
                "(other paths)".to_owned()
            };
            *paths.entry(key).or_default() += 1;
        }
    }

    /// The `limit` most common differing paths, most common first.
    pub fn top_paths(&self, limit: usize) -> Vec<(String, u64)> {
        let paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(String, u64)> = paths.iter().map(|(p, n)| (p.clone(), *n)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }
}

/// One side of a sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Side {
    /// The upstream's name.
    pub upstream: String,
    /// Its status, if it answered.
    pub status: Option<u16>,
    /// Its body size, if read.
    pub bytes: Option<u64>,
    /// Why it has no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A recorded difference (or shadow failure) of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// When it was compared (RFC 3339, UTC).
    pub time: String,
    /// The request method.
    pub method: String,
    /// The request's path and query.
    pub uri: String,
    /// The upstream that answered the client.
    pub primary: Side,
    /// The upstream that got the copy.
    pub shadow: Side,
    /// The first differences, in path order.
    pub differences: Vec<Difference>,
    /// How many differences there were in all.
    pub total_differences: usize,
}

/// Shadow state that outlives a config: counters and samples per route, by name.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    routes: Mutex<std::collections::BTreeMap<String, Arc<RouteState>>>,
}

/// One route's counters and samples.
#[derive(Debug, Default)]
pub(crate) struct RouteState {
    /// Its counters.
    pub stats: Stats,
    samples: Mutex<VecDeque<Sample>>,
    keep: std::sync::atomic::AtomicUsize,
    file: Mutex<Option<PathBuf>>,
    flush_scheduled: AtomicBool,
}

impl Registry {
    /// The state of `route`, created on first use; samples are read back from `dir`.
    pub fn route(&self, route: &str, dir: Option<&Path>, keep: usize) -> Arc<RouteState> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let state = routes
            .entry(route.to_owned())
            .or_insert_with(|| {
                let state = RouteState::default();
                if let Some(dir) = dir {
                    let file = dir.join(format!("{route}.json"));
                    *state.samples.lock().unwrap_or_else(PoisonError::into_inner) =
                        read_samples(&file);
                }
                Arc::new(state)
            })
            .clone();
        state.keep.store(keep, Ordering::Relaxed);
        *state.file.lock().unwrap_or_else(PoisonError::into_inner) =
            dir.map(|dir| dir.join(format!("{route}.json")));
        state
    }

    /// The state of `route` if it ever had shadow traffic configured.
    pub fn get(&self, route: &str) -> Option<Arc<RouteState>> {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.get(route).cloned()
    }

    fn all(&self) -> Vec<(String, Arc<RouteState>)> {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl RouteState {
    /// The newest samples first, at most `limit`.
    pub fn samples(&self, limit: usize) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.iter().take(limit).cloned().collect()
    }

    fn record_sample(self: &Arc<Self>, sample: Sample) {
        {
            let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            samples.push_front(sample);
            samples.truncate(self.keep.load(Ordering::Relaxed).max(1));
        }
        let has_file = self
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if has_file && !self.flush_scheduled.swap(true, Ordering::AcqRel) {
            let state = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                state.flush_scheduled.store(false, Ordering::Release);
                let file = state
                    .file
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let Some(file) = file else { return };
                let samples = state.samples(usize::MAX);
                let written = tokio::task::spawn_blocking(move || write_samples(&file, &samples));
                if let Ok(Err(err)) = written.await {
                    tracing::warn!(error = %err, "cannot write shadow samples");
                }
            });
        }
    }
}

fn read_samples(file: &Path) -> VecDeque<Sample> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice::<Vec<Sample>>(&bytes)
            .map(VecDeque::from)
            .unwrap_or_else(|err| {
                tracing::warn!(file = %file.display(), error = %err, "ignoring unreadable shadow samples");
                VecDeque::new()
            }),
        Err(_) => VecDeque::new(),
    }
}

/// Writes the samples to `file` with `feature_flags::write_atomically`, so a reader (or a crash)
/// never sees half a file.
fn write_samples(file: &Path, samples: &[Sample]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = serde_json::to_vec_pretty(samples).map_err(std::io::Error::other)?;
    text.push(b'\n');
    feature_flags::write_atomically(file, &text, feature_flags::FileMode::Keep)
}

/// What every shadowed route of one config shares: idle connections and the concurrency bound.
///
/// Copies use hyper's connection-level client with a small pool per address, as the request
/// path does (`upstream.rs`), rather than hyper-util's pooled client: it costs less CPU per
/// request, which is what shadowing 100% of a route spends most of.
pub(crate) struct Engine {
    idle: Mutex<HashMap<http::uri::Authority, Vec<ShadowSender>>>,
    connect_timeout: Duration,
    slots: Arc<Semaphore>,
}

type ShadowSender = crate::protection::upstream::HyperSender<Full<Bytes>>;

/// Most idle shadow connections kept per address.
const MAX_IDLE: usize = 256;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Engine {
    fn checkout(&self, address: &Address) -> Option<ShadowSender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let senders = idle.get_mut(&address.authority)?;
        while let Some(sender) = senders.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, address: &Address, sender: ShadowSender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let senders = idle.entry(address.authority.clone()).or_default();
        if senders.len() < MAX_IDLE {
            senders.push(sender);
        }
    }

    /// Sends `request` on an idle connection to `address`, or a new one.
    async fn send(
        &self,
        address: &Address,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(http::Response<hyper::body::Incoming>, ShadowSender), String> {
        if address.is_h2() {
            let (mut parts, body) = request.into_parts();
            address.h2_head(&mut parts);
            request = Request::from_parts(parts, body);
        }
        while let Some(mut sender) = self.checkout(address) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(err.into_error().to_string()),
                },
            }
        }
        let mut sender = address
            .handshake(self.connect_timeout, false)
            .await
            .map_err(|err| err.reason)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| err.to_string())?;
        Ok((response, sender))
    }

    /// The engine of a config.
    pub fn new(config: &Config) -> Engine {
        Engine {
            idle: Mutex::new(HashMap::new()),
            connect_timeout: config.timeouts.connect,
            slots: Arc::new(Semaphore::new(config.shadow.max_concurrent)),
        }
    }
}

/// The shadow plan of one compiled route.
#[derive(Debug)]
pub(crate) struct RouteShadow {
    route: Arc<str>,
    config: ShadowConfig,
    compare: CompareConfig,
    service: usize,
    fallback: usize,
    target: Option<usize>,
    preserve_host: bool,
    engine: Arc<Engine>,
    state: Arc<RouteState>,
}

impl RouteShadow {
    /// Compiles the shadow plan of a route whose upstreams are at `service` and `fallback`.
    pub fn compile(
        route: &str,
        shadow: &ShadowConfig,
        (service, fallback): (usize, usize),
        config: &Config,
        engine: &Arc<Engine>,
        registry: &Registry,
    ) -> RouteShadow {
        let target = match &shadow.target {
            ShadowTarget::Other => None,
            ShadowTarget::Upstream(name) => config.upstreams.iter().position(|u| &u.name == name),
        };
        RouteShadow {
            route: route.into(),
            compare: CompareConfig {
                headers: shadow.compare_headers.clone(),
                ignore: shadow.ignore.clone(),
            },
            config: shadow.clone(),
            service,
            fallback,
            target,
            preserve_host: config.preserve_host,
            engine: engine.clone(),
            state: registry.route(route, config.shadow.dir.as_deref(), shadow.samples),
        }
    }

    /// Whether this request is mirrored: its method is, and its user's bucket is within
    /// `percent`. `context` is called only when the share is neither 0 nor 100.
    pub fn selects<C: StickyId>(&self, method: &Method, context: impl FnOnce() -> C) -> bool {
        if !self.config.methods.contains(method) {
            return false;
        }
        match self.config.percent {
            0 => false,
            100.. => true,
            percent => {
                let context = context();
                bucket(&self.route, context.sticky_id()) <= percent
            }
        }
    }
}

/// What a request's share of shadow traffic is sticky to: the flag context's user id, else the
/// client's address (`decision::context` implements it for the flag context of a request).
pub(crate) trait StickyId {
    /// The id, `""` when there is none.
    fn sticky_id(&self) -> &str;
}

/// Unleash's normalized stickiness: `murmur3_32("GROUP:ID", 0) % 100 + 1`, in 1..=100.
pub fn bucket(group: &str, id: &str) -> u8 {
    let key = format!("{group}:{id}");
    let hash = murmur3::murmur3_32(&mut key.as_bytes(), 0).unwrap_or(0);
    u8::try_from(hash % 100).unwrap_or(0) + 1
}

/// A started shadow copy waiting for the primary's response head.
#[derive(Debug)]
pub(crate) struct Pending {
    primary: oneshot::Sender<PrimaryHead>,
    headers: Vec<HeaderName>,
    cap: u64,
}

#[derive(Debug)]
struct PrimaryHead {
    status: u16,
    headers: HeaderMap,
    body: oneshot::Receiver<Copied>,
}

impl Pending {
    /// The primary answered with this head; returns the tee for its body.
    pub(crate) fn primary(self, status: http::StatusCode, headers: &HeaderMap) -> Tee {
        let mut kept = HeaderMap::new();
        for name in &self.headers {
            for value in headers.get_all(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        let (tee, body) = Tee::new(self.cap);
        let _ = self.primary.send(PrimaryHead {
            status: status.as_u16(),
            headers: kept,
            body,
        });
        tee
    }
}

/// Starts the shadow copy of a selected request, after the proxy rewrote its head for the
/// primary (`primary` is the index of the upstream that answers). Returns the pending copy and,
/// when the request has a body, the tee the proxy puts on it. `None` when the copy is not sent
/// (no other upstream, no free slot, body over the cap), which is counted.
pub(crate) fn start(
    plan: &Arc<RouteShadow>,
    parts: &Parts,
    forwarded: Option<&crate::http::framing::Forwarded>,
    body: &crate::http::body::Outbound,
    primary: usize,
    upstreams: &[Arc<Upstream>],
) -> Option<(Pending, Option<Tee>)> {
    let target = plan.target.unwrap_or(if primary == plan.service {
        plan.fallback
    } else {
        plan.service
    });
    if target == primary {
        return None;
    }
    let target = upstreams.get(target)?.clone();
    let primary_name: Arc<str> = upstreams.get(primary)?.name.clone();
    let stats = &plan.state.stats;
    let has_body = !body.is_empty();
    if has_body
        && body
            .exact_len()
            .is_some_and(|len| len > plan.config.max_request_body)
    {
        stats.drop_one(DropReason::RequestBodyTooLarge);
        return None;
    }
    let Ok(permit) = plan.engine.slots.clone().try_acquire_owned() else {
        stats.drop_one(DropReason::Saturated);
        return None;
    };
    let (request_tee, request_body) = if has_body {
        let (tee, receiver) = Tee::new(plan.config.max_request_body);
        (Some(tee), Some(receiver))
    } else {
        (None, None)
    };
    let (primary_sender, primary_receiver) = oneshot::channel();
    let mut headers = parts.headers.clone();
    if let Some(forwarded) = forwarded {
        forwarded.apply(&mut headers);
    }
    headers.insert(
        HeaderName::from_static(SHADOW_HEADER),
        HeaderValue::from_static("1"),
    );
    let job = Job {
        plan: plan.clone(),
        _permit: permit,
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers,
        request_body,
        primary: primary_receiver,
        primary_name,
        target,
    };
    let span = tracing::debug_span!("shadow", route = &*plan.route);
    tokio::spawn(run(job).instrument(span));
    let pending = Pending {
        primary: primary_sender,
        headers: plan.config.compare_headers.clone(),
        cap: plan.config.max_response_body,
    };
    Some((pending, request_tee))
}

struct Job {
    plan: Arc<RouteShadow>,
    _permit: OwnedSemaphorePermit,
    method: Method,
    /// Origin form: path and query.
    uri: Uri,
    headers: HeaderMap,
    request_body: Option<oneshot::Receiver<Copied>>,
    primary: oneshot::Receiver<PrimaryHead>,
    primary_name: Arc<str>,
    target: Arc<Upstream>,
}

/// The shadow's answer.
enum ShadowAnswer {
    Response {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    TooLarge,
    Failed(String),
}

async fn run(job: Job) {
    let plan = &job.plan;
    let stats = &plan.state.stats;
    let request_body = match job.request_body {
        None => Bytes::new(),
        Some(receiver) => match receiver.await {
            Ok(Copied::Complete(body)) => body,
            Ok(Copied::TooLarge) => {
                stats.drop_one(DropReason::RequestBodyTooLarge);
                return;
            }
            // The client's body failed or was cut short; the primary failed too.
            Err(_) => return,
        },
    };
    stats.mirrored.fetch_add(1, Ordering::Relaxed);
    let shadow = send_copy(
        plan,
        &job.target,
        job.method.clone(),
        &job.uri,
        job.headers,
        request_body,
    );
    let primary = async {
        let head = job.primary.await.ok()?;
        let body = head.body.await.ok()?;
        Some((head.status, head.headers, body))
    };
    let wait = PRIMARY_WAIT.max(plan.config.timeout);
    let (shadow, primary) = tokio::join!(shadow, tokio::time::timeout(wait, primary));
    let primary = match primary {
        Ok(Some(primary)) => primary,
        _ => {
            stats.skip_one(SkipReason::PrimaryFailed);
            return;
        }
    };
    let (primary_status, primary_headers, primary_body) = match primary {
        (_, _, Copied::TooLarge) => {
            stats.skip_one(SkipReason::ResponseTooLarge);
            return;
        }
        (status, headers, Copied::Complete(body)) => (status, headers, body),
    };
    let primary_side = Side {
        upstream: job.primary_name.to_string(),
        status: Some(primary_status),
        bytes: Some(primary_body.len() as u64),
        error: None,
    };
    let mut sample = Sample {
        time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        method: job.method.to_string(),
        uri: job.uri.to_string(),
        primary: primary_side,
        shadow: Side {
            upstream: job.target.name.to_string(),
            status: None,
            bytes: None,
            error: None,
        },
        differences: Vec::new(),
        total_differences: 0,
    };
    match shadow {
        ShadowAnswer::TooLarge => stats.skip_one(SkipReason::ResponseTooLarge),
        ShadowAnswer::Failed(error) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %error, "shadow request failed");
            sample.shadow.error = Some(error);
            plan.state.record_sample(sample);
        }
        ShadowAnswer::Response {
            status,
            headers,
            body,
        } => {
            let comparison = diff::compare(
                &Captured {
                    status: primary_status,
                    headers: &primary_headers,
                    body: &primary_body,
                },
                &Captured {
                    status,
                    headers: &headers,
                    body: &body,
                },
                &plan.compare,
            );
            if comparison.is_equal() {
                stats.equal.fetch_add(1, Ordering::Relaxed);
                return;
            }
            stats.different.fetch_add(1, Ordering::Relaxed);
            stats.record_differences(&comparison.differences);
            sample.shadow.status = Some(status);
            sample.shadow.bytes = Some(body.len() as u64);
            sample.total_differences = comparison.total;
            sample.differences = comparison.differences;
            plan.state.record_sample(sample);
        }
    }
}

async fn send_copy(
    plan: &RouteShadow,
    target: &Upstream,
    method: Method,
    uri: &Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> ShadowAnswer {
    let (address, _slot) = target.pick();
    // Origin form, as the request path sends: the connection already goes to the address.
    let uri = uri.clone();
    if !plan.preserve_host
        && let Ok(host) = HeaderValue::from_str(address.authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    // The body is whole: its length is known, and chunked framing would be wrong.
    headers.remove(header::CONTENT_LENGTH);
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let cap = usize::try_from(plan.config.max_response_body).unwrap_or(usize::MAX);
    let exchange = async {
        let (response, sender) = plan.engine.send(&address, request).await?;
        let (parts, body) = response.into_parts();
        match Limited::new(body, cap).collect().await {
            Ok(collected) => {
                // Read to the end: the connection can carry the next copy.
                plan.engine.checkin(&address, sender);
                Ok(ShadowAnswer::Response {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: collected.to_bytes(),
                })
            }
            Err(err) if err.is::<http_body_util::LengthLimitError>() => Ok(ShadowAnswer::TooLarge),
            Err(err) => Err(format!("reading the body failed: {err}")),
        }
    };
    match tokio::time::timeout(plan.config.timeout, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => ShadowAnswer::Failed(error),
        Err(_) => ShadowAnswer::Failed(format!(
            "no complete answer within {}",
            humantime::format_duration(plan.config.timeout)
        )),
    }
}

/// The admin API's `GET /routes/{name}/diff` document: counters, the most common differing
/// paths, and the newest `limit` samples. `config` is the route's shadow config in force, if any.
pub(crate) fn summary(
    schema_version: u32,
    route: &str,
    state: Option<&RouteState>,
    config: Option<&ShadowConfig>,
    limit: usize,
) -> Value {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let (counts, top_paths, samples) = match state {
        None => (json!({}), Vec::new(), Vec::new()),
        Some(state) => {
            let stats = &state.stats;
            let compared = load(&stats.equal) + load(&stats.different);
            let different_percent = if compared == 0 {
                0.0
            } else {
                (load(&stats.different) as f64) * 100.0 / (compared as f64)
            };
            let counts = json!({
                "mirrored": load(&stats.mirrored),
                "compared": compared,
                "equal": load(&stats.equal),
                "different": load(&stats.different),
                "different_percent": (different_percent * 10.0).round() / 10.0,
                "errors": load(&stats.errors),
                "skipped": SkipReason::ALL.iter().zip(&stats.skipped)
                    .map(|(reason, n)| (reason.as_str().to_owned(), json!(load(n))))
                    .collect::<serde_json::Map<_, _>>(),
                "dropped": DropReason::ALL.iter().zip(&stats.dropped)
                    .map(|(reason, n)| (reason.as_str().to_owned(), json!(load(n))))
                    .collect::<serde_json::Map<_, _>>(),
                "different_by_kind": KINDS.iter().zip(&stats.kinds)
                    .map(|(kind, n)| (kind.as_str().to_owned(), json!(load(n))))
                    .collect::<serde_json::Map<_, _>>(),
            });
            let top_paths = stats
                .top_paths(10)
                .into_iter()
                .map(|(path, count)| json!({"path": path, "count": count}))
                .collect();
            (counts, top_paths, state.samples(limit))
        }
    };
    let shadow = config.map(|config| {
        json!({
            "percent": config.percent,
            "target": match &config.target {
                ShadowTarget::Other => "other",
                ShadowTarget::Upstream(name) => name.as_str(),
            },
            "methods": config.methods.iter().map(Method::as_str).collect::<Vec<_>>(),
            "compare_headers": config.compare_headers.iter().map(HeaderName::as_str).collect::<Vec<_>>(),
        })
    });
    json!({
        "schema_version": schema_version,
        "route": route,
        "shadow": shadow,
        "counts": counts,
        "top_paths": top_paths,
        "samples": samples,
    })
}

/// Appends the shadow metrics to a Prometheus text exposition.
pub(crate) fn render_metrics(registry: &Registry, out: &mut String) {
    let routes = registry.all();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    out.push_str("# HELP fig_proxy_shadow_mirrored_total Shadow copies sent, by route.\n");
    out.push_str("# TYPE fig_proxy_shadow_mirrored_total counter\n");
    for (route, state) in &routes {
        let _ = writeln!(
            out,
            "fig_proxy_shadow_mirrored_total{{route=\"{}\"}} {}",
            escape(route),
            load(&state.stats.mirrored)
        );
    }
    out.push_str("# HELP fig_proxy_shadow_results_total Shadow copies by outcome: equal, different, error (the shadow failed), skipped-* (not compared).\n");
    out.push_str("# TYPE fig_proxy_shadow_results_total counter\n");
    for (route, state) in &routes {
        let stats = &state.stats;
        let route = escape(route);
        for (result, count) in [
            ("equal", load(&stats.equal)),
            ("different", load(&stats.different)),
            ("error", load(&stats.errors)),
        ] {
            let _ = writeln!(
                out,
                "fig_proxy_shadow_results_total{{route=\"{route}\",result=\"{result}\"}} {count}"
            );
        }
        for (reason, count) in SkipReason::ALL.iter().zip(&stats.skipped) {
            let _ = writeln!(
                out,
                "fig_proxy_shadow_results_total{{route=\"{route}\",result=\"skipped-{}\"}} {}",
                reason.as_str(),
                load(count)
            );
        }
    }
    out.push_str(
        "# HELP fig_proxy_shadow_differences_total Different shadow responses, by what differed.\n",
    );
    out.push_str("# TYPE fig_proxy_shadow_differences_total counter\n");
    for (route, state) in &routes {
        for (kind, count) in KINDS.iter().zip(&state.stats.kinds) {
            let _ = writeln!(
                out,
                "fig_proxy_shadow_differences_total{{route=\"{}\",kind=\"{}\"}} {}",
                escape(route),
                kind.as_str(),
                load(count)
            );
        }
    }
    out.push_str("# HELP fig_proxy_shadow_dropped_total Shadow copies not sent, by reason.\n");
    out.push_str("# TYPE fig_proxy_shadow_dropped_total counter\n");
    for (route, state) in &routes {
        for (reason, count) in DropReason::ALL.iter().zip(&state.stats.dropped) {
            let _ = writeln!(
                out,
                "fig_proxy_shadow_dropped_total{{route=\"{}\",reason=\"{}\"}} {}",
                escape(route),
                reason.as_str(),
                load(count)
            );
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
