//! A moto server for the whole test binary: started on first use on a free loopback port,
//! stopped by a watchdog when the test process exits.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    /// The watchdog shell; it ends with this process.
    _watchdog: Child,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| start(&moto_command()))
}

/// scripts/moto_server.py (moto, one request at a time, as DynamoDB serializes writes to
/// an item) run by the project's `.venv` Python, or `MOTO_PYTHON`.
fn moto_command() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("MOTO_PYTHON").unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string());
    format!("{python} {}", root.join("scripts/moto_server.py").display())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Starts a moto server with `command` (a shell command line, without host and port).
pub fn start(command: &str) -> Moto {
    let port = free_port();
    // The watchdog shell is this process's child: it stops moto once we are gone, so no
    // server outlives a test run, however the run ends.
    let script = format!(
        "{command} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & server=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $server",
        parent = std::process::id()
    );
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto ({command}): {e}; run `make test`, which installs it"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto ({command}) did not start on port {port}; run `make test`, which installs it"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { endpoint: format!("http://127.0.0.1:{port}"), port, _watchdog: watchdog }
}
