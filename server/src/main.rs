//! `rosterd`: runs the directory server, or one of its offline commands.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use roster_server::config::{Overrides, Settings};
use roster_server::directory::Directory;
use roster_server::tls::Tls;
use roster_server::{net, offline};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

// Entries, index keys and LDAP messages are many small allocations made and freed on several
// threads; glibc's allocator spent a fifth of a bulk load's time on them (perf), mimalloc less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rosterd", version, about = "The Roster directory server")]
struct Cli {
    /// The configuration file (TOML); without it, built-in defaults are used.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address of the LDAP listener, overriding server.listen (port 0 picks a free port).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Address of the LDAPS listener, overriding tls.listen.
    #[arg(long, global = true)]
    listen_tls: Option<String>,
    /// The data directory, overriding server.data_dir.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Load entries from an LDIF file into the store (offline, like slapadd).
    Load {
        /// The LDIF file, or - for standard input.
        ldif: PathBuf,
        /// Do not show a progress bar.
        #[arg(long)]
        quiet: bool,
        /// Store nothing: read the whole file and list every problem a load would meet (each
        /// value invalid per its syntax, each entry that would be refused), with line numbers.
        #[arg(long)]
        report: bool,
        /// Leave out values that are invalid per their attribute's syntax (as slapadd, which
        /// does not check syntax, would have stored them), name each one, and load the rest.
        #[arg(long, conflicts_with = "report")]
        skip_invalid_values: bool,
    },
    /// Write every entry as LDIF, like slapcat. With the server running, it writes the dump
    /// from one snapshot through the control socket in the data directory; otherwise the store
    /// is read directly.
    Dump {
        /// Output file; standard output when absent.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Check every index against the entries and report differences.
    Verify,
    /// Back up the whole server into DIR (new or empty): every entry from one snapshot (while
    /// the server runs and writes, through its control socket), the TLS files it generated,
    /// and a manifest with the entries' checksum.
    Backup {
        /// The backup directory.
        dir: PathBuf,
    },
    /// Restore a backup made by `rosterd backup` into an empty data directory (the server
    /// stopped): the checksum is checked first, then the entries are loaded.
    Restore {
        /// The backup directory.
        dir: PathBuf,
        /// Do not show a progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rosterd: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out causes an outer message already quotes
/// (the library errors include their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        // Library errors end their message with their source's; print that only once.
        if text.ends_with(&msg) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&msg);
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let overrides = Overrides {
        listen: cli.listen.clone(),
        ldaps_listen: cli.listen_tls.clone(),
        data_dir: cli.data_dir.clone(),
    };
    let settings = Settings::load(cli.config.as_deref(), &overrides)?;
    let mut filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&settings.log_level))?;
    // The protocol crate warns of every control it has no type for; the session reads those
    // itself (and refuses the critical ones it does not know), so the warning is noise, one
    // line per request of an import that sends the No-Op control.
    if let Ok(quiet) = "ldap3_proto::control=error".parse() {
        filter = filter.add_directive(quiet);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    match cli.command {
        None => serve(settings),
        Some(Command::Load {
            ldif,
            quiet,
            report,
            skip_invalid_values,
        }) => {
            let dir = Directory::open(settings)?;
            if report {
                let mut out = std::io::stdout().lock();
                let result = offline::check(&dir, &ldif, !quiet, &mut out);
                let close = dir.store.close();
                let sum = result?;
                close.context("close entry store")?;
                eprintln!(
                    "checked {} entries: {} invalid values in {} entries, {} entries that cannot be loaded{}",
                    sum.entries,
                    sum.invalid_values,
                    sum.entries_with_invalid_values,
                    sum.bad_entries,
                    if sum.invalid_values > 0 && sum.bad_entries == 0 {
                        "; --skip-invalid-values loads the file without those values"
                    } else {
                        ""
                    }
                );
                let clean = sum.invalid_values == 0 && sum.bad_entries == 0;
                return Ok(if clean {
                    std::process::ExitCode::SUCCESS
                } else {
                    std::process::ExitCode::FAILURE
                });
            }
            let invalid = if skip_invalid_values {
                offline::InvalidValues::Skip
            } else {
                offline::InvalidValues::Refuse
            };
            let mut err = std::io::stderr();
            let result = offline::load(&dir, &ldif, !quiet, invalid, &mut err);
            let close = dir.store.close();
            let summary = match result {
                Err(e @ offline::OfflineError::Entry { .. }) => {
                    return Err(anyhow::Error::new(e).context(
                        "the load stopped (rosterd load --report lists every problem of the file)",
                    ))
                }
                other => other?,
            };
            close.context("close entry store")?;
            let rate = summary.entries as f64 / summary.seconds.max(1e-9);
            eprintln!(
                "loaded {} entries in {:.2} s ({:.0} entries/s; writing the tables took {:.2} s of it)",
                summary.entries, summary.seconds, rate, summary.finish_seconds
            );
            if skip_invalid_values {
                eprintln!(
                    "left out {} invalid values in {} entries",
                    summary.dropped_values, summary.entries_with_dropped_values
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Command::Dump { output }) => {
            let socket = roster_server::control::socket_path(&settings.data_dir);
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                let n = match &output {
                    Some(path) => {
                        write_to_file(path, |w| roster_server::control::request_dump(&socket, w))?
                    }
                    None => {
                        let stdout = std::io::stdout();
                        let mut w = std::io::BufWriter::new(stdout.lock());
                        roster_server::control::request_dump(&socket, &mut w)?
                    }
                };
                eprintln!("dumped {n} entries from the running server");
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let dir = Directory::open(settings)?;
            let n = match &output {
                Some(path) => write_to_file(path, |w| offline::dump(&dir, w))?,
                None => {
                    let stdout = std::io::stdout();
                    let mut w = std::io::BufWriter::new(stdout.lock());
                    offline::dump(&dir, &mut w)?
                }
            };
            dir.store.close().context("close entry store")?;
            eprintln!("dumped {n} entries");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Command::Backup { dir: target }) => {
            roster_server::backup::prepare(&target)?;
            let ldif = target.join(roster_server::backup::LDIF_NAME);
            let socket = roster_server::control::socket_path(&settings.data_dir);
            let (entries, from) = if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                let n = write_to_file(&ldif, |w| roster_server::control::request_dump(&socket, w))?;
                (n, "the running server")
            } else {
                let dir = Directory::open(settings.clone())?;
                let n = write_to_file(&ldif, |w| offline::dump(&dir, w))?;
                dir.store.close().context("close entry store")?;
                (n, "the stopped store")
            };
            let manifest = roster_server::backup::finish(&target, &settings.data_dir, entries)?;
            eprintln!(
                "backed up {} entries from {from} to {} (sha256 {})",
                manifest.entries,
                target.display(),
                manifest.sha256
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Command::Restore { dir: source, quiet }) => {
            let socket = roster_server::control::socket_path(&settings.data_dir);
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                anyhow::bail!(
                    "a rosterd is running on the data directory {}: stop it, and restore into an empty data directory",
                    settings.data_dir.display()
                );
            }
            let manifest = roster_server::backup::check(&source)?;
            roster_server::backup::prepare_restore(&source, &settings.data_dir)?;
            let dir = Directory::open(settings)?;
            let mut err = std::io::stderr();
            let result = offline::load(
                &dir,
                &source.join(roster_server::backup::LDIF_NAME),
                !quiet,
                offline::InvalidValues::Refuse,
                &mut err,
            );
            let close = dir.store.close();
            let summary = result.context("restore the entries")?;
            close.context("close entry store")?;
            if summary.entries != manifest.entries {
                anyhow::bail!(
                    "restored {} entries, but the backup's manifest counts {}",
                    summary.entries,
                    manifest.entries
                );
            }
            eprintln!(
                "restored {} entries from the backup of {} (rosterd {})",
                summary.entries, manifest.created, manifest.version
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Command::Verify) => {
            let dir = Directory::open(settings)?;
            let report = dir.store.verify()?;
            dir.store.close().context("close entry store")?;
            println!("{report}");
            Ok(if report.is_clean() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(2)
            })
        }
    }
}

/// Writes through `write` into a temporary file next to `path`, renamed to `path` only once
/// complete and synced, so that a failed dump never leaves a cut file under the final name.
fn write_to_file<E>(
    path: &std::path::Path,
    write: impl FnOnce(&mut dyn Write) -> Result<u64, E>,
) -> anyhow::Result<u64>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".partial");
    let tmp = std::path::PathBuf::from(tmp_name);
    let f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(f);
    let result = write(&mut w);
    let n = match result {
        Ok(n) => n,
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    let f = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("write {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("sync {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(n)
}

/// How long shutdown waits for connections and running searches to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn serve(settings: Settings) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start runtime")?;
    runtime.block_on(async move {
        if settings.root_password.as_ref().map(|p| p.expose()) == Some("admin") {
            tracing::warn!(
                "the root DN's password is still \"admin\": change directory.root_password"
            );
        }
        let listen = settings.listen;
        let ldaps_listen = settings.ldaps_listen;
        let dir = Arc::new(Directory::open(settings)?);
        if let Some(path) = &dir.settings.audit_file {
            roster_server::audit::to_file(path)
                .with_context(|| format!("open the audit log {}", path.display()))?;
        }
        let tls = if dir.settings.tls_enabled {
            let tls = Tls::open(
                dir.settings.tls_files.clone(),
                dir.settings.tls_client_ca.clone(),
                &dir.settings.data_dir,
            )?;
            if let Some(ca) = &tls.files().generated_ca {
                tracing::info!(ca = %ca.display(), "TLS certificate from the generated private CA");
            }
            Some(Arc::new(tls))
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen on {listen}"))?;
        let local = listener.local_addr().context("read listener address")?;
        tracing::info!(address = %local, "listening for LDAP");
        // Tests and scripts read this line to learn the port when it was chosen by the system.
        // Bound before the server says it listens, so that whoever waits for that line can
        // scrape at once.
        let metrics = match dir.settings.metrics_listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listen on {addr} (metrics.listen)"))?;
                tracing::info!(address = %addr, "serving metrics over HTTP at /metrics");
                Some(l)
            }
            None => None,
        };
        println!("listening ldap://{local}");
        let ldaps = match ldaps_listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listen on {addr}"))?;
                let local = l.local_addr().context("read listener address")?;
                tracing::info!(address = %local, "listening for LDAPS");
                println!("listening ldaps://{local}");
                Some(l)
            }
            None => None,
        };
        let _ = std::io::stdout().flush();
        if let Some(tls) = &tls {
            reload_on_sighup(tls.clone());
        }
        let stop_control = tokio_util::sync::CancellationToken::new();
        let control = roster_server::control::start(&dir, stop_control.clone());
        if let Some(addr) = dir.settings.policy_listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {addr} (mail.policy_listen)"))?;
            tracing::info!(address = %addr, "listening for Postfix policy requests");
            dir.background
                .spawn(roster_server::policy::serve(l, dir.clone(), stop_control.clone()));
        }
        for index in 0..dir.replicas.list().len() {
            dir.background.spawn(roster_server::replica::run(
                dir.clone(),
                index,
                stop_control.clone(),
            ));
        }
        if let Some(l) = metrics {
            dir.background
                .spawn(roster_server::metrics::serve(l, dir.clone(), stop_control.clone()));
        }
        // The accept loop runs as a task on a worker thread, not on this one: a new
        // connection's task then starts on the worker that accepted it. Accepting here made
        // every connection wake this thread (the worker that saw the listener ready) and then
        // a worker (for the spawned task): measured with one client connecting, binding and
        // unbinding in turn, 22 system calls per connection, 6.5 of them futex wake-ups,
        // against 12 and none.
        let accepting = tokio::spawn(net::run(listener, ldaps, dir.clone(), tls, shutdown_signal()));
        match accepting.await {
            Ok(()) => {}
            // As when the loop ran on this thread: the process ends as a crash, for the
            // service manager to restart it.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => anyhow::bail!("the accept loop stopped: {e}"),
        }
        stop_control.cancel();
        if let Some(c) = control {
            let _ = c.await;
        }
        // Searches still on blocking threads finish (their clients are gone, so they stop at
        // the next entry) before the store is closed.
        dir.background.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, dir.background.wait()).await.is_err() {
            tracing::warn!("searches still running after {SHUTDOWN_GRACE:?}; stopping without closing the store (the journal is replayed at the next start)");
            return Ok(std::process::ExitCode::SUCCESS);
        }
        match Arc::try_unwrap(dir) {
            Ok(dir) => dir.store.close().context("close entry store")?,
            Err(_) => tracing::warn!("the directory is still in use; stopping without closing the store (the journal is replayed at the next start)"),
        }
        tracing::info!("stopped");
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// Reads the TLS certificate and key again on every SIGHUP; open connections keep theirs.
fn reload_on_sighup(tls: Arc<Tls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; TLS files will not reload");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: TLS reload failed; the previous certificate stays in use")
                }
            }
        }
    });
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
