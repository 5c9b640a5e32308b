//! A moto server for the whole test binary: started on first use on a free loopback port
//! by scripts/moto_server.py, as `make dev` and `make profile` start it, and told to stop
//! when this process is gone.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    /// The server; it stops by itself once this process is gone (`--parent`).
    _server: Child,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

pub fn moto() -> &'static Moto {
    MOTO.get_or_init(start)
}

/// The project's `.venv` Python (`make test` installs it), or `MOTO_PYTHON`.
pub fn python() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var("MOTO_PYTHON").unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn start() -> Moto {
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/moto_server.py");
    let server = Command::new(python())
        .arg(&script)
        .args(["-H", "127.0.0.1", "-p", &port.to_string(), "--parent", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto ({}): {e}; run `make test`, which installs it", python()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start on port {port}; run `make test`, which installs it");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { endpoint: format!("http://127.0.0.1:{port}"), port, _server: server }
}
