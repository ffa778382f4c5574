//! gRPC through `fig proxy` (issue 16): a tonic client speaks HTTP/2 (prior knowledge) to the
//! proxy, which routes each call by its service path (`/shop.Greeter/...`) to one of two tonic
//! servers over HTTP/2 (`protocol = "h2"`), the flag deciding per call: on for the user, the
//! extracted service; off, the monolith. Unary, server-streaming and client-streaming calls, a
//! non-OK `grpc-status` with its message, and the proxy's own failure answered as gRPC does.
//!
//! No protoc: the messages are `prost::Message` written by hand, the server is tonic's
//! `server::Grpc` on hyper's HTTP/2 server, the client tonic's `client::Grpc` on a `Channel`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::support::fig;
use crate::support::procs::Proc;

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

const SAY_HELLO: &str = "/shop.Greeter/SayHello";
const COUNTDOWN: &str = "/shop.Greeter/Countdown";
const COLLECT: &str = "/shop.Greeter/Collect";

/// A Greeter server named `who`, on 127.0.0.1, HTTP/2 only. `Countdown` sends its first message,
/// then waits for `gate` before the others: a proxy that held the stream back would never
/// deliver the first one.
struct Greeter {
    addr: SocketAddr,
    gate: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Greeter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Greeter {
    async fn start(who: &'static str) -> Greeter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let shared = gate.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let gate = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let gate = gate.clone();
                        async move { Ok::<_, Infallible>(answer(who, gate, request).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Greeter { addr, gate, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn answer(
    who: &'static str,
    gate: Arc<tokio::sync::Semaphore>,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<tonic::body::Body> {
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
    match request.uri().path() {
        SAY_HELLO => grpc.unary(SayHello(who), request).await,
        COUNTDOWN => grpc.server_streaming(Countdown(who, gate), request).await,
        COLLECT => grpc.client_streaming(Collect(who), request).await,
        _ => Status::unimplemented("no such method").into_http(),
    }
}

struct SayHello(&'static str);

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = std::future::Ready<Result<Response<HelloReply>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        let name = request.into_inner().name;
        std::future::ready(if name == "nobody" {
            Err(Status::not_found(format!(
                "{}: no one is called {name}",
                self.0
            )))
        } else {
            Ok(Response::new(HelloReply {
                message: format!("{}: hello {name}", self.0),
            }))
        })
    }
}

struct Countdown(&'static str, Arc<tokio::sync::Semaphore>);

type ReplyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<HelloReply, Status>> + Send>>;

impl tonic::server::ServerStreamingService<HelloRequest> for Countdown {
    type Response = HelloReply;
    type ResponseStream = ReplyStream;
    type Future = std::future::Ready<Result<Response<ReplyStream>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        let name = request.into_inner().name;
        let (who, gate) = (self.0, self.1.clone());
        let stream = futures_util::stream::unfold(3u32, move |n| {
            let (name, gate) = (name.clone(), gate.clone());
            async move {
                if n == 0 {
                    return None;
                }
                if n < 3 {
                    // After the first message, wait for the test to have read it.
                    gate.acquire().await.ok()?.forget();
                }
                let reply = HelloReply {
                    message: format!("{who}: {name} {n}"),
                };
                Some((Ok(reply), n - 1))
            }
        });
        std::future::ready(Ok(Response::new(Box::pin(stream) as ReplyStream)))
    }
}

struct Collect(&'static str);

impl tonic::server::ClientStreamingService<HelloRequest> for Collect {
    type Response = HelloReply;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<HelloReply>, Status>> + Send>,
    >;

    fn call(&mut self, request: Request<tonic::Streaming<HelloRequest>>) -> Self::Future {
        let who = self.0;
        Box::pin(async move {
            let mut stream = request.into_inner();
            let mut names = Vec::new();
            while let Some(hello) = stream.message().await? {
                names.push(hello.name);
            }
            Ok(Response::new(HelloReply {
                message: format!("{who}: {}", names.join(",")),
            }))
        })
    }
}

/// `fig proxy` with both greeters as h2 upstreams, the route `/shop.Greeter/` flagged by
/// `greeter-service`, which is on for the user `alice` only.
struct Setup {
    _dir: tempfile::TempDir,
    proxy: Proc,
    addr: SocketAddr,
}

fn start_proxy(monolith: &str, service: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = dir.path().join("flags.json");
    for args in [
        &["create", "greeter-service"][..],
        &["users", "greeter-service", "alice"],
        &["enable", "greeter-service"],
    ] {
        let output = fig()
            .arg("flags")
            .arg("--store")
            .arg(&flags)
            .args(args)
            .output()
            .expect("fig flags runs");
        assert!(output.status.success(), "fig flags {args:?}: {output:?}");
    }
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"off\"\n\n[reload]\nwatch = false\n\n\
         [upstreams.monolith]\naddresses = [\"{monolith}\"]\nprotocol = \"h2\"\n\n\
         [upstreams.greeter]\naddresses = [\"{service}\"]\nprotocol = \"h2\"\n\n\
         [[routes]]\nname = \"greeter\"\nmatch = {{ prefix = \"/shop.Greeter/\" }}\nservice = \"greeter\"\n\
         flag = \"greeter-service\"\nfallback = \"monolith\"\n"
    );
    let path = dir.path().join("fig-proxy.toml");
    std::fs::write(&path, config).expect("write the config");
    let mut command = fig();
    command
        .arg("proxy")
        .arg("--config")
        .arg(&path)
        .arg("--flags")
        .arg(&flags);
    let mut proxy = Proc::spawn("fig proxy", command);
    let addr = proxy.address("listening on http://");
    Setup {
        _dir: dir,
        proxy,
        addr,
    }
}

type Client = tonic::client::Grpc<tonic::transport::Channel>;

async fn client(addr: SocketAddr) -> Client {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect to the proxy");
    tonic::client::Grpc::new(channel)
}

fn as_user<T>(message: T, user: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-user-id", user.parse().expect("metadata value"));
    request
}

async fn say_hello(client: &mut Client, user: &str, name: &str) -> Result<String, Status> {
    client.ready().await.expect("ready");
    let request = as_user(
        HelloRequest {
            name: name.to_owned(),
        },
        user,
    );
    client
        .unary(
            request,
            PathAndQuery::from_static(SAY_HELLO),
            ProstCodec::<HelloRequest, HelloReply>::default(),
        )
        .await
        .map(|response| response.into_inner().message)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Unary calls go where the flag says, per call: alice's to the service, bob's to the monolith,
/// on one HTTP/2 connection; a non-OK status arrives with its code and message.
#[test]
fn unary_calls_are_routed_by_service_path_and_flag_per_call() {
    runtime().block_on(async {
        let monolith = Greeter::start("monolith").await;
        let service = Greeter::start("service").await;
        let setup = start_proxy(&monolith.url(), &service.url());
        let mut client = client(setup.addr).await;
        for _ in 0..3 {
            assert_eq!(
                say_hello(&mut client, "alice", "alice")
                    .await
                    .unwrap_or_else(|status| panic!("{status:?}\n{}", setup.proxy.stderr())),
                "service: hello alice"
            );
            assert_eq!(
                say_hello(&mut client, "bob", "bob")
                    .await
                    .expect("an answer"),
                "monolith: hello bob"
            );
        }
        let status = say_hello(&mut client, "alice", "nobody")
            .await
            .expect_err("not found");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "service: no one is called nobody");
    });
}

/// A server-streaming call: every message, in order, from the flag's upstream, each passed on
/// as it comes (the first before the server sends the next), and the OK trailers at the end.
#[test]
fn server_streaming_calls_stream_through_unbuffered() {
    runtime().block_on(async {
        let monolith = Greeter::start("monolith").await;
        let service = Greeter::start("service").await;
        let setup = start_proxy(&monolith.url(), &service.url());
        for (user, greeter, who) in [
            ("alice", &service, "service"),
            ("bob", &monolith, "monolith"),
        ] {
            let mut client = client(setup.addr).await;
            client.ready().await.expect("ready");
            let request = as_user(
                HelloRequest {
                    name: "launch".to_owned(),
                },
                user,
            );
            let response = client
                .server_streaming(
                    request,
                    PathAndQuery::from_static(COUNTDOWN),
                    ProstCodec::<HelloRequest, HelloReply>::default(),
                )
                .await
                .unwrap_or_else(|status| panic!("{status:?}\n{}", setup.proxy.stderr()));
            let mut stream = response.into_inner();
            let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("the first message arrives before the server sends the second")
                .expect("a message")
                .expect("not the end");
            assert_eq!(first.message, format!("{who}: launch 3"));
            greeter.gate.add_permits(2);
            let mut rest = Vec::new();
            while let Some(reply) = stream.message().await.expect("a message or the end") {
                rest.push(reply.message);
            }
            assert_eq!(
                rest,
                [format!("{who}: launch 2"), format!("{who}: launch 1")]
            );
            let trailers = stream
                .trailers()
                .await
                .expect("trailers")
                .expect("some trailers");
            assert_eq!(
                trailers.get("grpc-status").and_then(|v| v.to_str().ok()),
                Some("0")
            );
        }
    });
}

/// A client-streaming call: the messages the client streams all reach the flag's upstream.
#[test]
fn client_streaming_calls_reach_the_flags_upstream() {
    runtime().block_on(async {
        let monolith = Greeter::start("monolith").await;
        let service = Greeter::start("service").await;
        let setup = start_proxy(&monolith.url(), &service.url());
        for (user, who) in [("bob", "monolith"), ("alice", "service")] {
            let mut client = client(setup.addr).await;
            client.ready().await.expect("ready");
            let names = ["a", "b", "c"].map(|name| HelloRequest {
                name: name.to_owned(),
            });
            let request = as_user(futures_util::stream::iter(names), user);
            let reply = client
                .client_streaming(
                    request,
                    PathAndQuery::from_static(COLLECT),
                    ProstCodec::<HelloRequest, HelloReply>::default(),
                )
                .await
                .unwrap_or_else(|status| panic!("{status:?}\n{}", setup.proxy.stderr()));
            assert_eq!(reply.into_inner().message, format!("{who}: a,b,c"));
        }
    });
}

/// When the upstream cannot be reached, the proxy answers a gRPC call as gRPC does (HTTP 200,
/// `grpc-status` 14 UNAVAILABLE with a message), not with a bare 502 the client reads as a
/// protocol error.
#[test]
fn an_unreachable_upstream_is_a_grpc_unavailable() {
    runtime().block_on(async {
        let monolith = Greeter::start("monolith").await;
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr")
        };
        let setup = start_proxy(&monolith.url(), &format!("http://{closed}"));
        let mut client = client(setup.addr).await;
        let status = say_hello(&mut client, "alice", "alice")
            .await
            .expect_err("the service is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status
                .message()
                .contains("cannot connect to upstream `greeter`"),
            "{status:?}"
        );
        // The monolith still answers on the same connection.
        assert_eq!(
            say_hello(&mut client, "bob", "bob")
                .await
                .expect("an answer"),
            "monolith: hello bob"
        );
    });
}
