//! The scripts in `scripts/` that the proxy bench uses, run on inputs whose answer is known:
//! the ratio script on raw results, the like-for-like NGINX config in a real NGINX.
//!
//! They need `python3` and `nginx`. Without one, a test says loudly that it skipped, except when
//! `CI=true` (`.ci/run` installs both), where it fails.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::procs::Proc;
use crate::support::upstreams::closed_port;
use crate::support::workspace_root;

/// `name` found on the PATH, or `None` after saying why the test is skipped.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    // NGINX lives in /usr/sbin, which a user's PATH may leave out.
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&paths)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        let why = format!("no {name} on the PATH (.ci/run installs it)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI=true, but {why}"
        );
        eprintln!("SKIPPED {test}: {why}");
    }
    found
}

const HEADER: &str = "round,conns,target,rps,avg_us,p50_us,p75_us,p90_us,p99_us,socket_errors,non2xx,proxy_cpu_us_per_req,upstream_cpu_us_per_req\n";

/// One `raw.csv` row: round, connections, target, req/s, p99 and proxy CPU per request (empty for
/// `direct`, as the bench writes it).
fn row(round: u32, conns: u32, target: &str, rps: f64, p99: f64, cpu: Option<f64>) -> String {
    let cpu = cpu.map_or(String::new(), |cpu| cpu.to_string());
    format!("{round},{conns},{target},{rps},500,450,520,700,{p99},0,0,{cpu},7.0\n")
}

fn write_run(dir: &Path, rows: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("raw.csv"), format!("{HEADER}{}", rows.concat())).unwrap();
}

fn ratios(python: &Path, args: &[&str]) -> std::process::Output {
    Command::new(python)
        .arg(workspace_root().join("scripts/bench-ratios.py"))
        .args(args)
        .output()
        .expect("cannot run scripts/bench-ratios.py")
}

#[test]
fn bench_ratios_pairs_each_round_and_pools_runs() {
    let test = "scripts::bench_ratios_pairs_each_round_and_pools_runs";
    let Some(python) = tool("python3", test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("proxy-a"), tmp.path().join("proxy-b"));
    // Fig's req/s against NGINX per round: 1.10 and 0.90 in run a, 1.05 in run b. Its p99: 0.90,
    // 1.20, 1.00. Its CPU per request: 10 against 12 every time.
    write_run(
        &a,
        &[
            row(1, 32, "direct", 150_000.0, 400.0, None),
            row(1, 32, "nginx", 50_000.0, 1_000.0, Some(12.0)),
            row(1, 32, "fig", 55_000.0, 900.0, Some(10.0)),
            row(2, 32, "fig", 45_000.0, 1_200.0, Some(10.0)),
            row(2, 32, "nginx", 50_000.0, 1_000.0, Some(12.0)),
            row(2, 32, "direct", 150_000.0, 400.0, None),
        ],
    );
    write_run(
        &b,
        &[
            row(1, 32, "nginx", 60_000.0, 1_000.0, Some(12.0)),
            row(1, 32, "fig", 63_000.0, 1_000.0, Some(10.0)),
            row(1, 32, "direct", 150_000.0, 400.0, None),
        ],
    );
    let out_file = tmp.path().join("ratios.md");
    let output = ratios(
        &python,
        &[
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench-ratios failed: {stderr}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        text,
        "--out holds the table printed"
    );
    assert!(
        text.starts_with("# Per-round ratios, fig / peer (2 run(s), 3 rounds)"),
        "{text}"
    );
    let line = |peer: &str, metric: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("| {peer} | {metric} |")))
            .unwrap_or_else(|| panic!("no {peer} {metric} row in:\n{text}"))
            .to_owned()
    };
    // | peer | metric | median | interval | min-max | better in |
    let cells = |line: String| -> Vec<String> {
        line.split('|')
            .map(|cell| cell.trim().to_owned())
            .filter(|cell| !cell.is_empty())
            .collect()
    };
    let rps = cells(line("nginx", "req/s"));
    assert_eq!(
        (&rps[2][..], &rps[4][..], &rps[5][..]),
        ("1.050", "0.90-1.10", "2 of 3")
    );
    let p99 = cells(line("nginx", "p99"));
    assert_eq!(
        (&p99[2][..], &p99[4][..], &p99[5][..]),
        ("1.000", "0.90-1.20", "1 of 3")
    );
    let cpu = cells(line("nginx", "proxy CPU/req"));
    assert_eq!((&cpu[2][..], &cpu[5][..]), ("0.833", "3 of 3"));
    // The interval of the median lies within the range of the ratios.
    let (low, high) = rps[3].split_once('-').unwrap();
    let (low, high): (f64, f64) = (low.parse().unwrap(), high.parse().unwrap());
    assert!(
        (0.9..=1.05).contains(&low) && (1.05..=1.1).contains(&high),
        "interval {low}-{high}"
    );
    // `direct` has no CPU figure: no row rather than a made-up one.
    assert!(
        !text.contains("| direct | proxy CPU/req |"),
        "a CPU ratio to direct:\n{text}"
    );
    assert!(text.contains("| direct | req/s |"), "{text}");
}

#[test]
fn bench_ratios_names_what_is_missing() {
    let test = "scripts::bench_ratios_names_what_is_missing";
    let Some(python) = tool("python3", test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("proxy-a");
    write_run(&run, &[row(1, 32, "nginx", 50_000.0, 1_000.0, Some(12.0))]);

    let output = ratios(&python, &[run.to_str().unwrap(), "--target", "fig"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no target `fig` in the results (have: nginx)"),
        "{stderr}"
    );

    let missing = tmp.path().join("nowhere");
    let output = ratios(&python, &[missing.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read") && stderr.contains("nowhere/raw.csv"),
        "{stderr}"
    );
}

/// The shape of the shared bench's `proxy-nginx.conf`: placeholders, a keep-alive pool to the
/// upstream, and the `proxy_set_header Host $host;` line the forwarding fields go after.
const NGINX_TEMPLATE: &str = r#"worker_processes 1;
daemon off;
pid @RUN@/nginx-proxy.pid;
error_log @RUN@/nginx-proxy.err warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path @RUN@/px_body;
    proxy_temp_path       @RUN@/px_proxy;
    fastcgi_temp_path     @RUN@/px_fcgi;
    uwsgi_temp_path       @RUN@/px_uwsgi;
    scgi_temp_path        @RUN@/px_scgi;
    upstream monolith {
        server 127.0.0.1:@UPSTREAM_PORT@;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:@NGINX_PORT@;
        location / {
            proxy_pass http://monolith;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
    }
}
"#;

fn forwarding_conf(args: &[&str]) -> std::process::Output {
    Command::new(workspace_root().join("scripts/nginx-forwarding-conf.sh"))
        .args(args)
        .output()
        .expect("cannot run scripts/nginx-forwarding-conf.sh")
}

/// An upstream that answers one request with `hello` and hands over the request's head.
fn recording_upstream() -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    let addr = listener.local_addr().expect("its address");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while reader.read_line(&mut head).is_ok_and(|n| n > 0) && !head.ends_with("\r\n\r\n") {}
        let mut stream = reader.into_inner();
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
        let _ = sender.send(head);
        // Keep the connection open for NGINX's pool until the test ends.
        let _ = stream.read(&mut [0u8; 1]);
    });
    (addr, receiver)
}

/// The value of header `name` (case-insensitive) in an HTTP head, if there is exactly one.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    let mut values = head.lines().filter_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim())
    });
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

#[test]
fn nginx_forwarding_conf_sets_the_fields_fig_sets() {
    let test = "scripts::nginx_forwarding_conf_sets_the_fields_fig_sets";
    let Some(nginx) = tool("nginx", test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("proxy-nginx.conf");
    std::fs::write(&template, NGINX_TEMPLATE).unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let (upstream, heads) = recording_upstream();
    let listen = closed_port();

    let output = forwarding_conf(&[
        template.to_str().unwrap(),
        run.to_str().unwrap(),
        &upstream.port().to_string(),
        &listen.port().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nginx-forwarding-conf failed: {stderr}"
    );
    let conf = run.join("nginx.conf");
    std::fs::write(&conf, &output.stdout).unwrap();

    // One process (no master), so that killing it on a failed test leaves no worker behind.
    let mut command = Command::new(&nginx);
    command
        .arg("-p")
        .arg(&run)
        .arg("-e")
        .arg(run.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .args(["-g", "master_process off;"]);
    let mut proxy = Proc::spawn("nginx", command);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        if let Ok(stream) = TcpStream::connect(listen) {
            break stream;
        }
        assert!(
            proxy.is_running() && Instant::now() < deadline,
            "nginx is not listening on {listen}; stderr: {}; error.log: {}",
            proxy.stderr(),
            std::fs::read_to_string(run.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(b"GET /payments/7 HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).expect("nginx answers");

    let sent = heads
        .recv_timeout(Duration::from_secs(10))
        .expect("the request reached the upstream");
    assert!(sent.starts_with("GET /payments/7 HTTP/1.1\r\n"), "{sent}");
    for (name, value) in [
        ("Host", "shop.test"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "shop.test"),
        ("Via", "1.1 nginx"),
    ] {
        assert_eq!(
            header(&sent, name),
            Some(value),
            "{name} to the upstream in:\n{sent}"
        );
    }
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.ends_with("\r\n\r\nhello\n"), "{response}");
    let upstream_addr = upstream.to_string();
    for (name, value) in [("Via", "1.1 nginx"), ("X-Upstream", upstream_addr.as_str())] {
        assert_eq!(
            header(&response, name),
            Some(value),
            "{name} to the client in:\n{response}"
        );
    }
    proxy.signal("QUIT");
    proxy.wait(Duration::from_secs(10));
}

#[test]
fn nginx_forwarding_conf_refuses_a_template_without_its_hook() {
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("proxy-nginx.conf");
    std::fs::write(
        &template,
        NGINX_TEMPLATE.replace("proxy_set_header Host $host;", ""),
    )
    .unwrap();
    let template = template.to_str().unwrap();

    let output = forwarding_conf(&[template, "/tmp/run", "18080", "18090"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "a config printed after all");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{template} has no 'proxy_set_header Host $host;' line to add the forwarding fields after"
        )),
        "{stderr}"
    );

    let output = forwarding_conf(&[template, "/tmp/run", "18080"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("usage:"), "{stderr}");
}
