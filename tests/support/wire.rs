//! HTTP/1 as bytes on the wire, for tests of what the proxy sends and receives exactly: a client
//! that writes raw bytes and reads responses framed as RFC 9112 says, and an upstream that
//! answers each request from a script and records what every connection received.
//!
//! Both are blocking and run on loopback; every read has a deadline ([`WAIT`]), so a proxy that
//! hangs fails the test instead of stalling it.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest wait for any one read.
pub const WAIT: Duration = Duration::from_secs(10);

/// One response as it came on the wire.
#[derive(Debug, Clone)]
pub struct Wire {
    /// `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// Fields in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Trailer fields, names lowercased.
    pub trailers: Vec<(String, String)>,
}

impl Wire {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    /// The first field of this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// Every field of this name.
    pub fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_owned();
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(&name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that writes raw bytes and reads what comes back.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects to `addr`.
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the proxy");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes`.
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the proxy");
    }

    /// Reads more; false at the close (or a reset).
    #[track_caller]
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "nothing arrived within {WAIT:?}; read so far: {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            }
            Err(_) => false,
        }
    }

    #[track_caller]
    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(), "closed in the middle of a response");
        }
        self.buf.drain(..n).collect()
    }

    #[track_caller]
    fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.take(end + 2);
                return String::from_utf8_lossy(&line[..end]).into_owned();
            }
            assert!(
                self.fill(),
                "closed in the middle of a head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    fn fields(&mut self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                return fields;
            }
            let (name, value) = line.split_once(':').expect("a field line");
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }

    /// Reads one final response to a request with `method` (interim 1xx ones are skipped).
    #[track_caller]
    pub fn response(&mut self, method: &str) -> Wire {
        loop {
            let status_line = self.line();
            let headers = self.fields();
            let mut wire = Wire {
                status_line,
                headers,
                body: Vec::new(),
                trailers: Vec::new(),
            };
            let status = wire.status();
            if (100..200).contains(&status) {
                continue;
            }
            if method == "HEAD" || status == 204 || status == 304 {
                return wire;
            }
            if wire
                .header("transfer-encoding")
                .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
            {
                loop {
                    let size_line = self.line();
                    let size =
                        usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                            .expect("a chunk size");
                    if size == 0 {
                        wire.trailers = self.fields();
                        break;
                    }
                    let data = self.take(size);
                    wire.body.extend_from_slice(&data);
                    assert_eq!(self.take(2), b"\r\n", "chunk data ends with CRLF");
                }
            } else if let Some(len) = wire.header("content-length") {
                let len: usize = len.parse().expect("a content-length");
                wire.body = self.take(len);
            } else {
                while self.fill() {}
                wire.body = std::mem::take(&mut self.buf);
            }
            return wire;
        }
    }

    /// Everything until the proxy closes the connection (each read within [`WAIT`]).
    #[track_caller]
    pub fn until_closed(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Whether the proxy closes the connection, with nothing more to say, within [`WAIT`].
    pub fn closes(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        !self.fill() && self.buf.is_empty()
    }
}

/// A request as the upstream read it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which connection (0-based, in accept order).
    pub conn: usize,
    /// The head, up to and without the blank line.
    pub head: String,
    /// The body, read by its `Content-Length` (or de-chunked).
    pub body: Vec<u8>,
}

impl Seen {
    /// The request line's method.
    pub fn method(&self) -> &str {
        self.head.split(' ').next().unwrap_or("")
    }

    /// The request line's target.
    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// The first field of this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// What the upstream does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Writes these bytes and reads the next request.
    Send(Vec<u8>),
    /// Writes these bytes, waits, writes the rest, and reads the next request.
    SendLater(Vec<u8>, Duration, Vec<u8>),
    /// Writes these bytes (maybe none) and closes the connection.
    Close(Vec<u8>),
    /// Writes these bytes and then nothing, keeping the connection open until the test ends.
    Stall(Vec<u8>),
}

type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

/// An upstream that answers from a script and records every request and every connection's bytes.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    raw: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
}

impl Upstream {
    /// Starts it on `127.0.0.1:0`; `script` decides each reply.
    pub fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
        let addr = listener.local_addr().expect("its address");
        let script: Arc<Script> = Arc::new(script);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let (seen_all, raw_all, count) = (seen.clone(), raw.clone(), connections.clone());
        let ended_all = ended.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let conn = count.fetch_add(1, Ordering::SeqCst);
                raw_all
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Vec::new());
                let (script, seen, raw) = (script.clone(), seen_all.clone(), raw_all.clone());
                let ended = ended_all.clone();
                std::thread::spawn(move || {
                    serve(stream, conn, &*script, &seen, &raw);
                    ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Upstream {
            addr,
            seen,
            raw,
            connections,
            ended,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every byte each connection received, by connection.
    pub fn raw(&self) -> Vec<Vec<u8>> {
        self.raw
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Connections that ended so far (closed by the proxy, or by the script).
    pub fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }
}

fn serve(
    mut stream: TcpStream,
    conn: usize,
    script: &Script,
    seen: &Mutex<Vec<Seen>>,
    raw: &Mutex<Vec<Vec<u8>>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = Vec::new();
    let fill = |stream: &mut TcpStream, buf: &mut Vec<u8>| -> bool {
        let mut chunk = [0u8; 16 << 10];
        match stream.read(&mut chunk) {
            Ok(n @ 1..) => {
                buf.extend_from_slice(&chunk[..n]);
                raw.lock().unwrap_or_else(PoisonError::into_inner)[conn]
                    .extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    };
    loop {
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if !fill(&mut stream, &mut buf) {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut request = Seen {
            conn,
            head,
            body: Vec::new(),
        };
        if request
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                        break end;
                    }
                    if !fill(&mut stream, &mut buf) {
                        return;
                    }
                };
                let size_line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
                buf.drain(..line_end + 2);
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or(0);
                while buf.len() < size + 2 {
                    if !fill(&mut stream, &mut buf) {
                        return;
                    }
                }
                if size == 0 {
                    // No trailers expected: the blank line.
                    buf.drain(..2);
                    break;
                }
                request.body.extend(buf.drain(..size));
                buf.drain(..2);
            }
        } else if let Some(len) = request
            .header("content-length")
            .and_then(|len| len.parse::<usize>().ok())
        {
            while buf.len() < len {
                if !fill(&mut stream, &mut buf) {
                    // Record what came: a test may look for a body that never arrived.
                    request.body = std::mem::take(&mut buf);
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(request);
                    return;
                }
            }
            request.body = buf.drain(..len).collect();
        }
        let reply = script(&request);
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        match reply {
            Reply::Send(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::SendLater(first, wait, rest) => {
                if stream.write_all(&first).is_err() {
                    return;
                }
                std::thread::sleep(wait);
                if stream.write_all(&rest).is_err() {
                    return;
                }
            }
            Reply::Close(bytes) => {
                let _ = stream.write_all(&bytes);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Reply::Stall(bytes) => {
                let _ = stream.write_all(&bytes);
                // Until the proxy gives up on the connection (bounded by the read timeout).
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut sink = [0u8; 1024];
                while Instant::now() < deadline {
                    match stream.read(&mut sink) {
                        Ok(1..) => {}
                        _ => return,
                    }
                }
                return;
            }
        }
    }
}

/// A complete response with this status and body, `Content-Length` framed.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `body` in one chunk and the last chunk, with `trailers` (each `name: value`).
pub fn chunked(body: &[u8], trailers: &[&str]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n");
    for trailer in trailers {
        out.extend_from_slice(trailer.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
