//! Child processes for end-to-end tests: started with pipes, read line by line with a deadline,
//! signalled by pid, and killed when the guard is dropped, so a failing test leaves nothing behind.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a server may take to print its address; generous for a debug build on a busy machine.
pub const STARTUP: Duration = Duration::from_secs(30);

/// A running child process, killed on drop.
pub struct Proc {
    name: String,
    child: Child,
    // A mutex only to make `Proc` shareable between the threads of a test.
    stdout: Mutex<Receiver<String>>,
    stdout_seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `command` with stdout and stderr piped (stdin closed). `name` appears in failures.
    #[track_caller]
    pub fn spawn(name: &str, mut command: Command) -> Proc {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        // Stderr is drained all along, or a chatty child would block on a full pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            stdout: Mutex::new(receiver),
            stdout_seen: Vec::new(),
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process writes `needle` to stderr within `timeout` (stderr is drained by
    /// another thread, so what the process wrote may reach the test a moment later).
    pub fn stderr_within(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The stdout lines read so far.
    pub fn stdout_seen(&self) -> &[String] {
        &self.stdout_seen
    }

    /// Reads stdout until a line starts with `prefix` and returns the rest of that line. Fails
    /// the test, with the process's stderr, if it does not come within `timeout`.
    #[track_caller]
    pub fn line_after(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = self
                .stdout
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv_timeout(left);
            match received {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} printed no line starting with {prefix:?} within {timeout:?}; stdout: {:?}; stderr:\n{}",
                    self.name,
                    self.stdout_seen,
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    // Give the stderr thread a moment to catch the last words.
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "{} closed stdout before printing {prefix:?} (status {:?}); stdout: {:?}; stderr:\n{}",
                        self.name,
                        self.child.try_wait(),
                        self.stdout_seen,
                        self.stderr()
                    );
                }
            }
        }
    }

    /// Reads the address printed after `prefix`, such as `listening on http://`.
    #[track_caller]
    pub fn address(&mut self, prefix: &str) -> SocketAddr {
        let text = self.line_after(prefix, STARTUP);
        text.trim().parse().unwrap_or_else(|err| {
            panic!(
                "{}: {text:?} after {prefix:?} is not an address: {err}",
                self.name
            )
        })
    }

    /// Sends a signal by name (`TERM`, `HUP`, ...) with `kill(1)`.
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit, failing the test after `timeout`.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The peak resident set size of the process so far (`VmHWM` in `/proc/PID/status`), in bytes.
    #[track_caller]
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .expect("a VmHWM line");
        let kib: u64 = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("VmHWM in kB");
        kib * 1024
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
