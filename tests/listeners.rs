//! Both listeners (`/metrics` and the admin API) against stalled and slow
//! clients, through the binary on real sockets: a flood of half-sent
//! request headers is shed at the connection cap and closed after the
//! header read timeout, while a normal request is answered at once; a body
//! that never arrives gets a 503 after the request timeout; file
//! descriptors come back.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{TestDb, Windsock, http_get};
use windsock::admin::auth::hash_token;
use windsock::db::Dialect;

const TOKEN: &str = "listener-test-token-0123456789abcdef";
const CAP: usize = 16;
const FLOOD: usize = 100;

fn start(db: &TestDb, dir: &std::path::Path) -> (Windsock, SocketAddr) {
    let cfg = dir.join("windsock.toml");
    let limits = format!(
        "header_read_timeout = \"1s\"\nrequest_timeout = \"1s\"\nmax_connections = {CAP}\n"
    );
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[server.limits]\n{limits}\
             [[targets]]\nenvironment = \"l\"\nurl = \"{}\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[admin.limits]\n{limits}\
             [[admin.auth.tokens]]\nname = \"t\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
            db.url,
            hash_token(TOKEN)
        ),
    )
    .unwrap();
    let ws = Windsock::start(&["run", "--config", cfg.to_str().unwrap()], &[]);
    let addr = ws.admin_addr("http").parse().unwrap();
    (ws, addr)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Opens `n` connections that send part of a request's headers and stop.
fn stall(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect()
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    matches!(s.read(&mut buf), Ok(0) | Err(_)) && {
        // A timeout is an error too: tell them apart.
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        !matches!(s.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

fn shed(metrics: &str, listener: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "windsock_http_connections_shed_total{{listener=\"{listener}\",reason=\"evicted\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A raw request on a fresh connection; the status line.
fn request(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_clients_are_shed_and_real_requests_still_answered() {
    let db = TestDb::with_schema(Dialect::Sqlite, "3.1.8").await;
    let dir = std::env::temp_dir().join(format!("ws-listeners-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ws, admin) = start(&db, &dir);
    let baseline = open_fds(ws.pid());

    for (name, addr, probe) in [
        (
            "metrics",
            ws.addr,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
        ),
        (
            "admin",
            admin,
            format!(
                "GET /api/v1/users-ext/?username=nobody HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
            ),
        ),
    ] {
        let mut flood = stall(addr, FLOOD);
        std::thread::sleep(Duration::from_millis(300));
        // Never more than the cap (plus the listeners, DB and log files).
        let during = open_fds(ws.pid());
        assert!(
            during <= baseline + CAP + 4,
            "{name}: {during} fds open during the flood (baseline {baseline}, cap {CAP})"
        );
        // A real request is answered while the flood holds on.
        let status = request(addr, &probe);
        assert!(
            status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 404"),
            "{name}: {status:?}"
        );
        // The newest stalled ones, still open, are closed after the header
        // read timeout (1s).
        let last = flood.last_mut().unwrap();
        assert!(
            closed_by_server(last, Duration::from_secs(5)),
            "{name}: a stalled client kept its connection"
        );
        drop(flood);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = open_fds(ws.pid());
    // The collector may have opened a DB connection or two meanwhile.
    assert!(
        after <= baseline + 6,
        "fds {after} after the floods, {baseline} before"
    );
    let (_, _, metrics) = http_get(ws.addr, "/metrics", None);
    for listener in ["metrics", "admin"] {
        let n = shed(&metrics, listener);
        assert!(
            n >= (FLOOD - CAP) as f64,
            "{listener}: {n} evicted\n{metrics}"
        );
    }
    let (status, log) = ws.terminate();
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_arrives_gets_503_after_the_request_timeout() {
    let db = TestDb::with_schema(Dialect::Sqlite, "3.1.8").await;
    let dir = std::env::temp_dir().join(format!("ws-listeners-body-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ws, admin) = start(&db, &dir);
    let mut s = TcpStream::connect(admin).unwrap();
    s.write_all(
        format!(
            "PATCH /api/v1/users-ext/?username=nobody HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{\"first_name\":"
        )
        .as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("not completed within"), "{text}");
    drop(ws);
    let _ = std::fs::remove_dir_all(&dir);
}
