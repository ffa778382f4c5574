//! The example monolith (`shop`) and payment service, served in-process on loopback port 0.
//!
//! The root package's tests cannot reach the example binaries (`CARGO_BIN_EXE_*` only names the
//! package's own binaries), so they run the same servers from their libraries, on a runtime of
//! their own. They answer with `x-served-by: shop` or `x-served-by: payment-service`. Dropping
//! [`Upstreams`] stops both.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

/// Both example servers, running until dropped.
pub struct Upstreams {
    /// The monolith (`shop`).
    pub monolith: SocketAddr,
    /// The extracted payment service.
    pub service: SocketAddr,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Upstreams {
    /// Starts both servers on `127.0.0.1:0`.
    pub fn start() -> Upstreams {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the example servers");
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut receiver: watch::Receiver<bool>| async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        };
        let (monolith, service) = runtime.block_on(async {
            let monolith = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the monolith");
            let service = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the service");
            let addrs = (
                monolith.local_addr().expect("monolith address"),
                service.local_addr().expect("service address"),
            );
            tokio::spawn(shop::http::serve(
                monolith,
                shop::Shop::seeded(),
                until_stopped(stopped.clone()),
            ));
            tokio::spawn(payment_service::serve(
                service,
                payment_service::PaymentBook::seeded(),
                until_stopped(stopped),
            ));
            addrs
        });
        Upstreams {
            monolith,
            service,
            stop,
            runtime: Some(runtime),
        }
    }
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A loopback address where nothing listens: bound, then released.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("its address")
}
