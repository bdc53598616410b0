//! The `lockgate` command line: `serve` runs the gateway, `token` mints a
//! development API token, `verify` checks a chain export offline, `openapi`
//! prints the API document, `satp-identity` prints what a peer pins,
//! `evm-deploy` deploys the HTLC contract to an EVM chain, `records import`
//! streams a file of usage records to a gateway, `keystore` makes and reads
//! encrypted key files (secrets only ever from the environment).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use lockgate::auth::Scope;
use lockgate::config::Config;

#[derive(Parser)]
#[command(name = "lockgate", version, about = "Lockgate cross-ledger gateway")]
struct Cli {
    /// Configuration file (TOML); environment variables override it.
    #[arg(long, global = true, env = "LOCKGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (embedded SQLite by default; DATABASE_URL=postgres://... for PostgreSQL).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Print a development API token (alone on stdout), signed with the gateway's JWT secret.
    Token {
        /// Subject.
        #[arg(long, default_value = "developer")]
        subject: String,
        /// Tenant.
        #[arg(long, default_value = "dev")]
        tenant: String,
        /// Scopes (repeat); default: every scope.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Addresses the tenant owns (repeat).
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_s: u64,
    },
    /// Verify a chain export offline; exit status 0 only when it is intact.
    Verify {
        /// The export file (NDJSON), or - for standard input.
        file: PathBuf,
        /// A trusted block key address (repeat); default: the ones the export names.
        #[arg(long = "producer")]
        producers: Vec<String>,
        /// The chain id expected; default: the one the export names.
        #[arg(long)]
        chain_id: Option<u64>,
    },
    /// Load generator: funds ACCOUNTS accounts, pre-signs TRANSFERS transfers
    /// per phase and submits them with C connections, beside baselines
    /// measured in the same run (pgbench one-row INSERT, GET /healthz,
    /// signature recovery on two threads); checks every balance at the end.
    /// See `scripts/bench-throughput`.
    Bench(BenchArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Print what a peer gateway pins of this one (JSON): gateway id, SATP
    /// identity key (JWK) and the previous ones still to be accepted after a
    /// rotation, primary ledger's chain id and block key, account.
    SatpIdentity,
    /// Encrypted key files (Web3 Secret Storage v3, the format of `[[evm]]`
    /// keystores and of every `*_keystore` setting). Keys and passwords are
    /// read from environment variables, never from the command line; each
    /// command prints (JSON) what the key is known by in public: its address
    /// (as a block, connector or EVM key) and its JWK and kid (as a SATP
    /// identity key).
    Keystore {
        #[command(subcommand)]
        command: KeystoreCommand,
    },
    /// Usage records.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Deploy the Lockgate HTLC contract to an EVM chain and print (JSON) its
    /// address and deployment block, for an `[[evm]]` entry's `contract` and
    /// `deploy_block`.
    #[cfg(feature = "evm")]
    EvmDeploy {
        /// The node's JSON-RPC URL.
        #[arg(long, env = "LOCKGATE_EVM_RPC_URL")]
        rpc_url: String,
        /// The environment variable holding the deploying account's hex key.
        #[arg(long, default_value = "LOCKGATE_EVM_KEY")]
        key_env: String,
        /// Or: a keystore file holding the key (its password in the
        /// variable named by --keystore-password-env).
        #[arg(long)]
        keystore: Option<PathBuf>,
        /// The environment variable holding the keystore's password.
        #[arg(long, default_value = "LOCKGATE_EVM_KEYSTORE_PASSWORD")]
        keystore_password_env: String,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The gateway.
    #[arg(long, env = "LOCKGATE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A token with the ledger scopes (`lockgate token`).
    #[arg(long, env = "LOCKGATE_TOKEN", hide_env_values = true)]
    token: String,
    /// Funded accounts.
    #[arg(long, default_value_t = 100_000)]
    accounts: usize,
    /// Transfers per phase.
    #[arg(long, default_value_t = 100_000)]
    transfers: usize,
    /// Concurrent connections of the single-transfer phases.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Concurrent connections of the batch phases.
    #[arg(long, default_value_t = 8)]
    batch_connections: usize,
    /// Transfers per batch request.
    #[arg(long, default_value_t = 512)]
    batch_size: usize,
    /// Phases, comma-separated: single, single-hot, batch, batch-hot.
    #[arg(long, default_value = "single,single-hot,batch,batch-hot")]
    phases: String,
    /// The gateway's process id (its CPU and peak RSS are reported).
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// The gateway's PostgreSQL database: the pgbench baseline runs on it and
    /// the balances are summed in it.
    #[arg(long)]
    database_url: Option<String>,
    /// Seconds each throughput baseline runs.
    #[arg(long, default_value_t = 10)]
    baseline_secs: u64,
    /// Seed of the keys (a fresh asset and fresh accounts per seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Accounts read back at the end (evenly spaced; all by default).
    #[arg(long)]
    check_accounts: Option<usize>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeystoreCommand {
    /// Encrypt an existing key (32 bytes of hex in the variable --key-env)
    /// into a new keystore file.
    Encrypt {
        /// The environment variable holding the key.
        #[arg(long)]
        key_env: String,
        /// The environment variable holding the password.
        #[arg(long)]
        password_env: String,
        /// The new file (refused if it exists); written with mode 0600.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a new random key (valid on secp256k1 and P-256) straight into a
    /// new keystore file: the key never exists in plain text.
    New {
        /// The environment variable holding the password.
        #[arg(long)]
        password_env: String,
        /// The new file (refused if it exists); written with mode 0600.
        #[arg(long)]
        out: PathBuf,
    },
    /// Decrypt a keystore and print only what its key is known by in public.
    Show {
        /// The keystore file.
        file: PathBuf,
        /// The environment variable holding the password.
        #[arg(long)]
        password_env: String,
    },
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// Stream a CSV or NDJSON file of signed usage records to a gateway's
    /// bulk import (POST /v1/settlement/records/import), showing progress;
    /// prints the report (each refused row with its line number and reason).
    /// Exit status 0 when every row was imported, 2 when some were refused.
    Import {
        /// The file (`.csv`, or `.ndjson` / `.jsonl`).
        file: PathBuf,
        /// The gateway.
        #[arg(long, env = "LOCKGATE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API token with `settlement:write` for the senders' tenant.
        #[arg(long, env = "LOCKGATE_TOKEN", hide_env_values = true)]
        token: String,
        /// `csv` or `ndjson`; by default from the file's extension.
        #[arg(long)]
        format: Option<String>,
        /// Check every row, store nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets up its tracing once its configuration is read (the
    // OpenTelemetry export is configured there); the other commands log.
    if !matches!(cli.command, Command::Serve { .. }) {
        lockgate::telemetry::init_log();
    }
    let result = match cli.command {
        Command::Serve { listen } => serve(cli.config, listen),
        Command::Token {
            subject,
            tenant,
            scopes,
            accounts,
            ttl_s,
        } => token(cli.config, &subject, &tenant, &scopes, &accounts, ttl_s),
        Command::Verify {
            file,
            producers,
            chain_id,
        } => return verify(&file, &producers, chain_id),
        Command::SatpIdentity => satp_identity(cli.config),
        Command::Keystore { command } => keystore(command),
        Command::Records {
            command:
                RecordsCommand::Import {
                    file,
                    url,
                    token,
                    format,
                    dry_run,
                },
        } => return records_import(&file, &url, &token, format.as_deref(), dry_run),
        #[cfg(feature = "evm")]
        Command::EvmDeploy {
            rpc_url,
            key_env,
            keystore,
            keystore_password_env,
        } => evm_deploy(&rpc_url, &key_env, keystore, &keystore_password_env),
        Command::Bench(args) => bench(args),
        Command::Openapi => {
            print!("{}", lockgate::api::openapi_json());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lockgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config_file: Option<PathBuf>, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let loaded = Config::load(config_file.as_deref());
    // The log is needed before the configuration is known to be good.
    let telemetry = match &loaded {
        Ok(config) => lockgate::telemetry::init(&config.telemetry, &config.satp.gateway_id)?,
        Err(_) => {
            lockgate::telemetry::init_log();
            lockgate::telemetry::Telemetry::default()
        }
    };
    let mut config = loaded?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if telemetry.exporting() {
        tracing::info!("exporting spans over OTLP (see OTEL_EXPORTER_OTLP_* and telemetry.*)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        let database = if config.database_url.is_some() {
            "the configured database".to_string()
        } else {
            format!("embedded SQLite in {}", config.data_dir.display())
        };
        // Bound before the gateway is assembled, so probes are answered
        // (`/readyz`: 503 naming the phase) while the database is connected
        // and migrated (`lockgate::startup`).
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr().context("local address")?;
        println!("lockgate starting on http://{local} ({database}); /readyz answers 200 once it serves");
        lockgate::startup::serve(config, listener, shutdown(), |app| {
            println!("lockgate listening on http://{local} ({database}, chain id {})", app.chain_id);
            println!("API docs: http://{local}/docs   OpenAPI: http://{local}/openapi.json");
            println!("development token: lockgate token   (then: curl -H \"Authorization: Bearer $TOKEN\" http://{local}/v1/ledger/blocks)");
        })
        .await
    })
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let phases = args
        .phases
        .split(',')
        .map(|p| lockgate::bench::Phase::parse(p.trim()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let seed = match args.seed {
        Some(seed) => seed,
        None => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random seed: {e}"))?;
            u64::from_le_bytes(bytes)
        }
    };
    let options = lockgate::bench::Options {
        url: args.url,
        token: args.token,
        accounts: args.accounts,
        transfers: args.transfers,
        connections: args.connections,
        batch_connections: args.batch_connections,
        batch_size: args.batch_size,
        phases,
        gateway_pid: args.gateway_pid,
        database_url: args.database_url,
        baseline_secs: args.baseline_secs,
        seed,
        check_accounts: args.check_accounts.unwrap_or(args.accounts),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(lockgate::bench::run(options))?;
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&report).context("report")?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A secret from the environment variable `var`, which must be set and not empty.
fn secret_from_env(var: &str, what: &str) -> anyhow::Result<lockgate::config::Secret> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(lockgate::config::Secret::new(value)),
        Ok(_) => anyhow::bail!("the {what} variable {var} is empty"),
        Err(_) => anyhow::bail!("the {what} variable {var} is not set"),
    }
}

fn keystore(command: KeystoreCommand) -> anyhow::Result<()> {
    use lockgate::keys;
    let (file, key) = match command {
        KeystoreCommand::Encrypt {
            key_env,
            password_env,
            out,
        } => {
            let key = keys::parse_hex(&secret_from_env(&key_env, "key")?)
                .map_err(|reason| anyhow::anyhow!("{key_env}: {reason}"))?;
            let password = secret_from_env(&password_env, "password")?;
            keys::encrypt_keystore(&out, &key, &password)?;
            (out, key)
        }
        KeystoreCommand::New { password_env, out } => {
            let password = secret_from_env(&password_env, "password")?;
            let key = keys::random_key().map_err(|e| anyhow::anyhow!("random key: {e}"))?;
            keys::encrypt_keystore(&out, &key, &password)?;
            (out, key)
        }
        KeystoreCommand::Show { file, password_env } => {
            let password = secret_from_env(&password_env, "password")?;
            let key = keys::decrypt_keystore(&file, &password)?;
            (file, key)
        }
    };
    let mut document = keys::public_description(&key);
    if let Some(object) = document.as_object_mut() {
        object.insert("keystore".into(), file.display().to_string().into());
    }
    println!("{document}");
    Ok(())
}

fn satp_identity(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_file.as_deref())?;
    let identity = lockgate::satp::identity(&config)?;
    let block_key = lockgate::app::block_key(&config, &config.ledger)?;
    let connector = lockgate::app::connector_key(&config)?;
    let chain = ledger_core::ChainId::new(config.ledger.chain_id).context("chain_id")?;
    let document = lockgate::satp::identity_document(
        &identity,
        chain,
        block_key.address(),
        connector.address(),
    );
    println!("{document}");
    eprintln!(
        "peers pin identityKey as [[peers]] identity_key; in a rotation they keep the key they \
         pinned before in [[peers]] previous_identity_keys until the overlap ends \
         (docs/operations.md, \"Keys\")"
    );
    Ok(())
}

fn token(
    config_file: Option<PathBuf>,
    subject: &str,
    tenant: &str,
    scopes: &[String],
    accounts: &[String],
    ttl_s: u64,
) -> anyhow::Result<()> {
    let config = Config::load(config_file.as_deref())?;
    let auth = lockgate::app::authenticator(&config)?;
    let scopes: Vec<Scope> = if scopes.is_empty() {
        Scope::ALL.to_vec()
    } else {
        scopes
            .iter()
            .map(|name| {
                Scope::ALL
                    .into_iter()
                    .find(|s| s.name() == name)
                    .with_context(|| format!("unknown scope {name}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let accounts = accounts
        .iter()
        .map(|a| a.parse().map_err(|e| anyhow::anyhow!("account {a}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let now_s = lockgate::sequencer::now_ms() / 1000;
    let token = auth.mint(subject, tenant, &scopes, &accounts, now_s, ttl_s)?;
    println!("{token}");
    Ok(())
}

fn verify(file: &std::path::Path, producers: &[String], chain_id: Option<u64>) -> ExitCode {
    let run = || -> anyhow::Result<lockgate::export::VerifyReport> {
        let producers = producers
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e| anyhow::anyhow!("--producer {p}: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let chain_id = chain_id
            .map(|id| ledger_core::ChainId::new(id).map_err(|e| anyhow::anyhow!("--chain-id: {e}")))
            .transpose()?;
        let report = if file.as_os_str() == "-" {
            lockgate::export::verify_export(std::io::stdin().lock(), chain_id, producers)?
        } else {
            let reader = std::io::BufReader::new(
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
            );
            lockgate::export::verify_export(reader, chain_id, producers)?
        };
        Ok(report)
    };
    match run() {
        Ok(report) => {
            let summary = &report.summary;
            println!(
                "OK: chain {} intact: {} blocks, {} transactions, last block {} ({})",
                report.chain_id,
                summary.blocks,
                summary.transactions,
                summary.tip.next_height.saturating_sub(1),
                summary.tip.last_hash
            );
            if report.producers_from_file {
                println!(
                    "note: trusted the block keys named in the export ({}); pass --producer to pin them",
                    report
                        .producers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for state in summary.state.assets() {
                println!(
                    "asset {}: supply {} (balances and open locks agree)",
                    state.asset.code, state.supply
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("FAIL: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "evm")]
fn evm_deploy(
    rpc_url: &str,
    key_env: &str,
    keystore: Option<PathBuf>,
    keystore_password_env: &str,
) -> anyhow::Result<()> {
    use adapters::evm::{EvmKey, HTLC_ARTIFACT, deploy, load_key, lockgate_address};
    let key = match keystore {
        Some(path) => EvmKey::Bytes(
            lockgate::keys::KeySource {
                section: "evm-deploy".into(),
                key_name: "key",
                keystore_name: "keystore",
                key: None,
                keystore: Some(&path),
                password: None,
                password_env: Some(keystore_password_env),
            }
            .load()?
            .context("no key")?,
        ),
        None => EvmKey::Hex(std::env::var(key_env).with_context(|| {
            format!("the deploying key is read from ${key_env}, which is not set")
        })?),
    };
    let signer = load_key(&key)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (contract, block) = runtime.block_on(deploy(rpc_url, &signer, HTLC_ARTIFACT, &[]))?;
    println!(
        "{}",
        serde_json::json!({
            "contract": contract.to_checksum(),
            "deployBlock": block,
            "account": lockgate_address(signer.address()).to_checksum(),
        })
    );
    Ok(())
}

/// `lockgate records import` (see [`RecordsCommand::Import`]).
fn records_import(
    file: &std::path::Path,
    url: &str,
    token: &str,
    format: Option<&str>,
    dry_run: bool,
) -> ExitCode {
    let run = || -> anyhow::Result<ExitCode> {
        let extension = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        let content_type = match format.unwrap_or(extension) {
            "csv" => "text/csv",
            "ndjson" | "jsonl" => "application/x-ndjson",
            other => {
                anyhow::bail!("unknown format {other:?}: give --format csv or --format ndjson")
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        runtime.block_on(async {
            use tokio::io::AsyncReadExt as _;
            let handle = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let total = handle.metadata().await.map(|m| m.len()).unwrap_or(0);
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            // Read and sent in 256 KiB chunks; progress after each.
            let chunks = futures_util::stream::unfold(
                (handle, 0u64, 0u64),
                move |(mut handle, sent, shown)| async move {
                    let mut buffer = vec![0u8; 256 * 1024];
                    match handle.read(&mut buffer).await {
                        Ok(0) => {
                            eprintln!(
                                "{}sent {sent} of {total} bytes (100%)",
                                if terminal { "\r" } else { "" }
                            );
                            None
                        }
                        Ok(n) => {
                            buffer.truncate(n);
                            let sent = sent + n as u64;
                            let percent = (sent * 100).checked_div(total).unwrap_or(100);
                            let shown = if terminal {
                                eprint!("\rsent {sent} of {total} bytes ({percent}%)");
                                percent
                            } else if percent >= shown + 10 {
                                eprintln!("sent {sent} of {total} bytes ({percent}%)");
                                percent
                            } else {
                                shown
                            };
                            Some((Ok::<_, std::io::Error>(buffer), (handle, sent, shown)))
                        }
                        Err(error) => Some((Err(error), (handle, sent, shown))),
                    }
                },
            );
            let started = std::time::Instant::now();
            let endpoint = format!(
                "{}/v1/settlement/records/import{}",
                url.trim_end_matches('/'),
                if dry_run { "?dryRun=true" } else { "" }
            );
            let response = reqwest::Client::new()
                .post(endpoint)
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(reqwest::Body::wrap_stream(chunks))
                .send()
                .await
                .context("sending the file")?;
            let status = response.status();
            let report: serde_json::Value = response.json().await.context("reading the answer")?;
            if !status.is_success() {
                anyhow::bail!(
                    "the gateway refused the import ({status}): {}",
                    report["detail"].as_str().unwrap_or("")
                );
            }
            let elapsed = started.elapsed().as_secs_f64();
            for error in report["errors"].as_array().into_iter().flatten() {
                println!(
                    "line {}: {}: {}",
                    error["line"],
                    error["type"].as_str().unwrap_or(""),
                    error["detail"].as_str().unwrap_or("")
                );
            }
            if report["errorsTruncated"] == true {
                println!("(more refused rows than listed)");
            }
            let imported = report["imported"].as_u64().unwrap_or(0);
            println!(
                "{} rows: {imported} {}, {} refused, in {elapsed:.1} s ({:.0} rows/s)",
                report["rows"],
                if dry_run {
                    "checked (dry run)"
                } else {
                    "imported"
                },
                report["refused"],
                report["rows"].as_f64().unwrap_or(0.0) / elapsed.max(1e-9),
            );
            Ok(if report["refused"].as_u64().unwrap_or(0) == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        })
    };
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lockgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
