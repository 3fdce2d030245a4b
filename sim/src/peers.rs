//! Peers' real code for the SpiNNaker tests: the Python venv that `scripts/spinnaker-venv.sh` (run by
//! `.ci/run`) fills from PyPI with pinned `spalloc-server` and `SpiNNMan`, and the real spalloc-server
//! run from it.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The venv's directory: `$ACCEL_SPINNAKER_VENV`, else `target/spinnaker-venv` in the workspace.
pub fn spinnaker_venv() -> PathBuf {
    match std::env::var_os("ACCEL_SPINNAKER_VENV") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/spinnaker-venv"),
    }
}

/// The venv's python, when the venv has been created (its pins recorded last, so a half-made one is
/// not taken for a whole one).
pub fn spinnaker_python() -> Option<PathBuf> {
    let venv = spinnaker_venv();
    let python = venv.join("bin/python");
    (python.is_file() && venv.join(".pins").is_file()).then_some(python)
}

/// A loopback address nobody else is likely to use, for a BMP that must listen on UDP 17893: parallel
/// tests (and other checkouts on the same host) each get their own.
pub fn fresh_loopback_ip(attempt: u32) -> Ipv4Addr {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let n = std::process::id().wrapping_mul(2_654_435_761) ^ nanos ^ attempt.wrapping_mul(40_503);
    // 127.16.0.1 ..= 127.255.255.254, clear of the 127.0.0.x addresses services use.
    Ipv4Addr::new(127, 16 + (n % 240) as u8, (n >> 8) as u8, 1 + ((n >> 16) % 254) as u8)
}

/// A machine for spalloc-server's configuration file (its `Machine` in spalloc_server/configuration.py):
/// one frame at cabinet 0, frame 0, whose boards `(x, y, z)` sit at board `(y * width + x) * 3 + z` behind
/// one BMP. The boards' own addresses are from TEST-NET-1 (192.0.2.0/24): the server only reports them.
#[derive(Debug, Clone)]
pub struct ServerMachine {
    pub name: String,
    pub tags: Vec<String>,
    /// Triads: 1 x 1 is three boards.
    pub width: u32,
    pub height: u32,
    pub bmp: Ipv4Addr,
    pub dead_boards: Vec<[u32; 3]>,
    /// (x, y, z, link) with link 0..=5 as spalloc's `Links` (east, north_east, north, west, south_west,
    /// south).
    pub dead_links: Vec<[u32; 4]>,
}

/// The real spalloc-server (v1 protocol) from the venv, on 127.0.0.1; killed when dropped.
pub struct SpallocServer {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl SpallocServer {
    /// Writes a configuration for `machines` and starts the server on a free port, waiting until it
    /// accepts connections. Err carries the server's own output.
    pub fn start(python: &Path, machines: &[ServerMachine]) -> Result<SpallocServer, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let config = dir.path().join("spalloc.cfg.py");
        std::fs::write(&config, server_config(port, machines)).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new(python)
            .args(["-m", "spalloc_server.server"])
            .arg(&config)
            .args(["--cold-start", "--port", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting spalloc-server: {e}"))?;
        let mut server = SpallocServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), dir };
        server.wait_listening()?;
        Ok(server)
    }

    /// Until the server accepts connections, or Err with its output when it exits or takes over 30 s.
    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("spalloc-server exited ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("spalloc-server not listening within 30 s:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A new connection speaking the v1 protocol.
    pub fn connect(&self) -> std::io::Result<V1> {
        V1::connect(self.addr)
    }
}

impl Drop for SpallocServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's Python configuration: one `Machine` per entry, boards at one BMP per machine and
/// SpiNNaker addresses from 192.0.2.1 up.
fn server_config(port: u16, machines: &[ServerMachine]) -> String {
    let mut conf = String::from("configuration = Configuration(\n");
    conf += &format!(
        "    port={port}, ip=\"127.0.0.1\", timeout_check_interval=0.5, seconds_before_free=1,\n    machines=[\n"
    );
    for m in machines {
        let tags: Vec<String> = m.tags.iter().map(|t| format!("{t:?}")).collect();
        let dead: Vec<String> = m.dead_boards.iter().map(|[x, y, z]| format!("({x}, {y}, {z})")).collect();
        let links: Vec<String> =
            m.dead_links.iter().map(|[x, y, z, l]| format!("({x}, {y}, {z}, Links({l}))")).collect();
        conf += &format!(
            "        Machine(name={:?}, tags=frozenset([{}]), width={}, height={},\n            \
             dead_boards=frozenset([{}]), dead_links=frozenset([{}]),\n            \
             board_locations={{(x, y, z): (0, 0, (y * {w} + x) * 3 + z) for x in range({w}) for y in range({h}) for z in range(3)}},\n            \
             bmp_ips={{(0, 0): \"{bmp}\"}},\n            \
             spinnaker_ips={{(x, y, z): \"192.0.2.%d\" % (1 + (y * {w} + x) * 3 + z) for x in range({w}) for y in range({h}) for z in range(3)}}),\n",
            m.name,
            tags.join(", "),
            m.width,
            m.height,
            dead.join(", "),
            links.join(", "),
            w = m.width,
            h = m.height,
            bmp = m.bmp,
        );
    }
    conf += "    ])\n";
    conf
}

/// A minimal spalloc v1 client (newline-delimited JSON, skipping notifications), written here so tests
/// can ask the server directly rather than through the agent's client.
pub struct V1 {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl V1 {
    pub fn connect(addr: SocketAddr) -> std::io::Result<V1> {
        let writer = TcpStream::connect(addr)?;
        writer.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(V1 { reader: BufReader::new(writer.try_clone()?), writer })
    }

    /// `{"return": v}` gives v; `{"exception": m}` gives Err(m).
    pub fn call(&mut self, command: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        let line = json!({"command": command, "args": args, "kwargs": kwargs}).to_string() + "\n";
        self.writer.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        loop {
            let mut reply = String::new();
            if self.reader.read_line(&mut reply).map_err(|e| e.to_string())? == 0 {
                return Err("connection closed".into());
            }
            let v: Value = serde_json::from_str(&reply).map_err(|e| format!("{e}: {reply}"))?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("exception") {
                return Err(e.to_string());
            }
        }
    }
}
