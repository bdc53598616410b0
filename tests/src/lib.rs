//! Harness of the end-to-end tests: a fresh PostgreSQL database per test,
//! and `lockgate` processes started from the built binary on their own
//! 127.0.0.1 ports, talked to over HTTP, and killed with SIGKILL when a test
//! wants a crash.
//!
//! The binary is the one cargo built beside the test (`target/debug/lockgate`);
//! `./scripts/test` builds the whole workspace first, so it is current.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

pub mod evm;
pub mod otlp;
pub mod satp;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ledger_core::hash::sha256;
use ledger_core::{ChainId, SignedTransaction, SigningKey, Transaction, TxBody};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const CHAIN: u64 = 4201;

pub fn chain() -> ChainId {
    ChainId::new(CHAIN).unwrap()
}

pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = dir.join("lockgate");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p lockgate` (./scripts/test does)",
        binary.display()
    );
    binary
}

pub fn pg_admin_url() -> String {
    std::env::var("LOCKGATE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, dropped at the end.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub async fn new() -> Self {
        let name = format!("lockgate_e2e_{}", uuid::Uuid::new_v4().simple());
        let admin = pg_admin_url();
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url).await.unwrap()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&pool)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Settings shared by the processes of one test.
pub struct Env {
    pub database_url: String,
    pub data_dir: tempfile::TempDir,
    pub block_key: SigningKey,
    pub jwt_secret_hex: String,
    /// A configuration file passed to every process (`LOCKGATE_CONFIG`).
    pub config_file: Option<PathBuf>,
    /// Environment variables set for every process of this `Env`, after
    /// (so overriding) the defaults above.
    pub vars: Vec<(String, String)>,
    /// Where `serve` processes write stderr (their log); inherited if unset.
    pub log_file: Option<PathBuf>,
    /// Variables removed from every process of this `Env` (a default above
    /// that a test replaces with another source, such as a key given as a
    /// keystore instead).
    pub unset: Vec<String>,
}

impl Env {
    pub fn new(database_url: &str) -> Self {
        Self {
            database_url: database_url.to_string(),
            data_dir: tempfile::tempdir().unwrap(),
            block_key: SigningKey::from_bytes(sha256(b"e2e-block-key")).unwrap(),
            jwt_secret_hex: hex::encode(sha256(b"e2e-jwt-secret")),
            config_file: None,
            vars: Vec::new(),
            log_file: None,
            unset: Vec::new(),
        }
    }

    /// Removes variable `name` from every later process of this `Env`
    /// (per-process variables may still set it).
    pub fn without_var(&mut self, name: &str) {
        self.vars.retain(|(n, _)| n != name);
        self.unset.push(name.to_string());
    }

    /// [`Env::run`] with extra environment variables for this command only.
    pub async fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> String {
        let mut command = self.command(args);
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = command.output().await.unwrap();
        assert!(
            output.status.success(),
            "lockgate {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs `lockgate serve` expecting it to fail at start-up; its stderr.
    pub async fn start_failure(&self, vars: &[(&str, &str)]) -> String {
        // A gateway that started would not exit by itself: the wait fails.
        let (status, stderr) = self.serve_until_exit(vars, Duration::from_secs(30)).await;
        assert!(!status.success(), "lockgate serve exited 0: {stderr}");
        stderr
    }

    /// Sends the stderr (the log) of every `serve` process to `path`.
    pub fn log_to(mut self, path: PathBuf) -> Self {
        self.log_file = Some(path);
        self
    }

    /// Sets environment variables for every process of this `Env` (a second
    /// gateway overrides `LOCKGATE_CHAIN_ID`, `LOCKGATE_BLOCK_KEY`, ...).
    pub fn with_vars(mut self, vars: &[(&str, &str)]) -> Self {
        self.vars
            .extend(vars.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        self
    }

    /// Runs `lockgate ARGS` to completion; its stdout (the command must succeed).
    pub async fn run(&self, args: &[&str]) -> String {
        let output = self.command(args).output().await.unwrap();
        assert!(
            output.status.success(),
            "lockgate {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Starts `lockgate serve` on `listen` (`127.0.0.1:PORT`).
    pub async fn start_at(&self, listen: &str, vars: &[(&str, &str)]) -> Process {
        self.spawn(listen, vars).await
    }

    /// Writes `toml` into the data directory and passes it to every process.
    pub fn with_config(mut self, toml: &str) -> Self {
        self.write_config(toml);
        self
    }

    /// [`Env::with_config`] in place.
    pub fn write_config(&mut self, toml: &str) {
        let path = self.data_dir.path().join("lockgate.toml");
        std::fs::write(&path, toml).unwrap();
        self.config_file = Some(path);
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("LOCKGATE_DATA_DIR", self.data_dir.path())
            .env("LOCKGATE_CHAIN_ID", CHAIN.to_string())
            .env(
                "LOCKGATE_BLOCK_KEY",
                format!("0x{}", hex::encode(sha256(b"e2e-block-key"))),
            )
            .env("LOCKGATE_JWT_SECRET", &self.jwt_secret_hex)
            .env("LOCKGATE_BATCH_WAIT_MS", "1")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        if let Some(path) = &self.config_file {
            command.env("LOCKGATE_CONFIG", path);
        }
        for (name, value) in &self.vars {
            command.env(name, value);
        }
        for name in &self.unset {
            command.env_remove(name);
        }
        command
    }

    /// `lockgate token`, as a script would call it.
    pub async fn token(&self) -> String {
        let output = self.command(&["token"]).output().await.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "the token is alone on stdout");
        lines[0].to_string()
    }

    /// Starts `lockgate serve` on a free port and waits until it answers.
    pub async fn start(&self) -> Process {
        self.start_with_env(&[]).await
    }

    /// [`Env::start`] with extra environment variables for this process only.
    pub async fn start_with_env(&self, vars: &[(&str, &str)]) -> Process {
        self.spawn("127.0.0.1:0", vars).await
    }

    /// Starts `lockgate serve` on a free port and returns as soon as it has
    /// bound its listener, while it may still be connecting to and
    /// migrating the database (its `lockgate listening on` line comes later,
    /// through [`Process::stdout_line`]).
    pub async fn start_starting(&self, vars: &[(&str, &str)]) -> Process {
        self.spawn_until("127.0.0.1:0", vars, "lockgate starting on ")
            .await
    }

    /// Runs `lockgate serve` expecting it to fail at start-up: its exit
    /// status and its log (stderr), within `within`.
    pub async fn serve_until_exit(
        &self,
        vars: &[(&str, &str)],
        within: Duration,
    ) -> (std::process::ExitStatus, String) {
        let mut command = self.command(&["serve", "--listen", "127.0.0.1:0"]);
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = tokio::time::timeout(
            within,
            command
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output(),
        )
        .await
        .expect("lockgate serve did not exit")
        .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn spawn(&self, listen: &str, vars: &[(&str, &str)]) -> Process {
        self.spawn_until(listen, vars, "lockgate listening on ")
            .await
    }

    /// Starts `lockgate serve` and returns once it printed a line starting
    /// with `ready_line` (and the address after it).
    async fn spawn_until(&self, listen: &str, vars: &[(&str, &str)], ready_line: &str) -> Process {
        let mut command = self.command(&["serve", "--listen", listen]);
        for (name, value) in vars {
            command.env(name, value);
        }
        let stderr = match &self.log_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            ),
            None => Stdio::inherit(),
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix(ready_line) {
                    return rest
                        .split(|c: char| c.is_whitespace() || c == ';')
                        .next()
                        .unwrap()
                        .to_string();
                }
            }
            panic!("lockgate exited before printing {ready_line:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("lockgate did not print {ready_line:?} within 30 s"));
        // Keep draining stdout so the process never blocks on a full pipe;
        // every later line goes to `Process::stdout_line`.
        let (lines_tx, lines_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = lines_tx.send(line);
            }
        });
        Process {
            child,
            base,
            http: reqwest::Client::new(),
            stdout: lines_rx,
        }
    }

    /// `lockgate verify FILE --producer <block key>`: (success, stdout).
    pub async fn verify(&self, file: &std::path::Path) -> (bool, String) {
        let output = Command::new(binary())
            .args([
                "verify",
                file.to_str().unwrap(),
                "--producer",
                &self.block_key.address().to_string(),
            ])
            .output()
            .await
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
        )
    }
}

/// A running gateway process.
pub struct Process {
    pub child: Child,
    pub base: String,
    pub http: reqwest::Client,
    /// Lines the process printed on stdout after the line its start waited
    /// for (`lockgate listening on`, or `lockgate starting on`).
    pub stdout: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Process {
    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn submit(
        &self,
        token: &str,
        tx: &SignedTransaction,
    ) -> Result<(u16, serde_json::Value), reqwest::Error> {
        let body =
            serde_json::to_value(lockgate::dto::SignedTransactionDto::from_domain(tx)).unwrap();
        let response = self
            .http
            .post(format!("{}/v1/ledger/transactions", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        ))
    }

    pub async fn is_producer(&self) -> bool {
        let (_, health) = self.get("/healthz", "").await;
        health["blockProducer"] == true
    }

    /// Waits up to `within` for a stdout line that starts with `prefix`.
    pub async fn stdout_line(&mut self, prefix: &str, within: Duration) -> Option<String> {
        tokio::time::timeout(within, async {
            while let Some(line) = self.stdout.recv().await {
                if line.starts_with(prefix) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
    }

    pub async fn export(&self, token: &str, into: &std::path::Path) {
        let response = self
            .http
            .get(format!("{}/v1/ledger/export", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        std::fs::write(into, response.bytes().await.unwrap()).unwrap();
    }
}

/// A free 127.0.0.1 port (for gateways that must know each other's address
/// before they start). It is taken below Linux's ephemeral range (32768 and
/// up), so a process binding port 0, or an outgoing connection, cannot be
/// handed the same port between this check and the gateway's own bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread test processes over the range; step within one process.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7919) % 12_000;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed + offset.wrapping_mul(37)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn key(i: u64) -> SigningKey {
    SigningKey::from_bytes(sha256(format!("e2e-key-{i}").as_bytes())).unwrap()
}

pub fn sign(key: &SigningKey, nonce: u64, body: TxBody) -> SignedTransaction {
    sign_on(chain(), key, nonce, body)
}

/// A transaction on ledger `chain_id` (a gateway may host several).
pub fn sign_on(chain_id: ChainId, key: &SigningKey, nonce: u64, body: TxBody) -> SignedTransaction {
    Transaction {
        chain_id,
        from: key.address(),
        nonce,
        body,
    }
    .sign(key)
    .unwrap()
}

/// A PostgreSQL server of the test's own (initdb into a temporary
/// directory, its own port), for tests that stop and restart the server,
/// which the shared one must never be. Stopped and removed on drop.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// The newest installed server's binaries (Debian's layout).
    fn bin_dir() -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        versions
            .pop()
            .expect("an initdb under /usr/lib/postgresql/*/bin")
    }

    /// Runs a server binary, as the `postgres` user when this process is
    /// root (PostgreSQL refuses to run as root).
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let output = if is_root {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            std::process::Command::new(&path).args(args).output()
        }
        .unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// initdb and start; `synchronous_commit` and `fsync` stay on.
    /// Creates database `name` on this server.
    pub async fn create_database(&self, name: &str) {
        let admin = sqlx::PgPool::connect(&self.url("postgres")).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }

    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lockgate-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        // The postgres user must own the directory when we run as root.
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let server = Self {
            port: free_port(),
            dir,
            bin: Self::bin_dir(),
        };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.pg_ctl_start();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m fast`: every session is terminated, like a restart.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts it again after [`PrivatePostgres::stop`].
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::process::Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}
