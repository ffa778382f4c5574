//! Starting a real server binary on port 0 and talking HTTP to it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a server may take to print its address, or to exit after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running server process, killed when dropped.
pub struct Server {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
}

impl Server {
    /// Starts `bin --listen 127.0.0.1:0` and reads the address from its first stdout line.
    pub fn start(bin: &str) -> Server {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let res = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = line_tx.send(res);
        });
        let line = line_rx
            .recv_timeout(PATIENCE)
            .expect("server prints its address in time")
            .expect("stdout is readable");
        let addr = line
            .trim_end()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first stdout line is the address, got {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit, at most [`PATIENCE`].
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("child can be polled") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit in {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A whole response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, after checking the content type says so.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|value| value.to_str().ok()),
            Some("application/json"),
            "content type of {}",
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    /// The value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Sends one request and collects the whole response.
pub async fn send(method: Method, url: &str, body: impl Into<Bytes>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("request is valid");
    let response = tokio::time::timeout(PATIENCE, client.request(request))
        .await
        .expect("server answers in time")
        .expect("request succeeds");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body arrives")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// `GET url`.
pub async fn get(url: &str) -> Reply {
    send(Method::GET, url, Bytes::new()).await
}

/// A hand-driven HTTP/1.1 `POST /echo` with a chunked body, to watch streaming happen.
pub struct RawEcho {
    stream: TcpStream,
    received: Vec<u8>,
}

impl RawEcho {
    /// Connects and sends the request head.
    pub async fn start(addr: &str) -> RawEcho {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let head =
            format!("POST /echo HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("head sent");
        RawEcho {
            stream,
            received: Vec::new(),
        }
    }

    /// Sends one body chunk.
    pub async fn send_chunk(&mut self, data: &str) {
        let chunk = format!("{:x}\r\n{data}\r\n", data.len());
        self.stream
            .write_all(chunk.as_bytes())
            .await
            .expect("chunk sent");
    }

    /// Ends the body.
    pub async fn finish(&mut self) {
        self.stream.write_all(b"0\r\n\r\n").await.expect("end sent");
    }

    /// Reads until the received bytes contain `needle`, within [`PATIENCE`].
    pub async fn read_until(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.received).contains(needle) {
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {needle:?} in time, got {:?}",
                        String::from_utf8_lossy(&self.received)
                    )
                })
                .expect("read succeeds");
            assert!(
                n > 0,
                "connection closed before {needle:?}, got {:?}",
                String::from_utf8_lossy(&self.received)
            );
            self.received.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

/// Runs `bin --listen <listen>` expecting it to exit on its own; returns its status and stderr.
pub fn run_until_exit(bin: &str, listen: &str) -> (ExitStatus, String) {
    let mut child = Command::new(bin)
        .args(["--listen", listen])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child can be polled") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} --listen {listen} still runs after {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(
        &mut child.stderr.take().expect("stderr is piped"),
        &mut stderr,
    )
    .expect("stderr is readable");
    (status, stderr)
}
