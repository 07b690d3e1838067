//! `roster`: the companion tool of rosterd. It talks LDAP to a running server, so it works
//! remotely and under the same access rules as any client; it never opens the store.

mod connect;
mod csvin;
mod csvout;
mod export;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "roster",
    version,
    about = "Roster's companion tool: CSV import and export over LDAP"
)]
struct Cli {
    /// The server (ldap:// uses StartTLS, ldaps:// TLS).
    #[arg(
        long,
        global = true,
        env = "ROSTER_URL",
        default_value = "ldap://127.0.0.1:3389"
    )]
    url: String,
    /// The DN to bind as.
    #[arg(long, global = true, env = "ROSTER_BIND_DN")]
    bind_dn: Option<String>,
    /// A file holding the password (ROSTER_PASSWORD otherwise).
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the server's certificate.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// Use ldap:// without StartTLS (passwords travel in clear).
    #[arg(long, global = true)]
    no_tls: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Users of a domain.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Groups of a domain.
    Groups {
        #[command(subcommand)]
        action: GroupsAction,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Reads a user CSV file as an import would and lists every problem by line and column;
    /// changes nothing and needs no server.
    Check {
        file: PathBuf,
        /// utf-8 (the default; a byte order mark is skipped) or windows-1252.
        #[arg(long, default_value = "utf-8")]
        encoding: csvin::Encoding,
    },
    /// Writes the domain's users as CSV (the importer's columns).
    Export {
        #[arg(long)]
        domain: String,
        /// The file to write (standard output without).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum GroupsAction {
    /// Writes the domain's groups as CSV: addresses, kind, right, member count.
    Export {
        #[arg(long)]
        domain: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roster: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn output(path: &Option<PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let target = connect::Target {
        url: cli.url.clone(),
        bind_dn: cli.bind_dn.clone(),
        password_file: cli.password_file.clone(),
        password_env: std::env::var("ROSTER_PASSWORD").ok(),
        ca: cli.ca.clone(),
        no_tls: cli.no_tls,
    };
    match cli.command {
        Command::Users {
            action: UsersAction::Check { file, encoding },
        } => {
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let text = csvin::decode(&bytes, encoding)
                .map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
            let table = csvin::read_users(&text);
            for p in &table.problems {
                println!("{}: {p}", file.display());
            }
            eprintln!(
                "{} users readable, {} problems ({} between fields)",
                table.rows.len(),
                table.problems.len(),
                if table.delimiter == ';' {
                    "semicolons"
                } else {
                    "commas"
                }
            );
            if !table.problems.is_empty() {
                anyhow::bail!("{} has {} problems", file.display(), table.problems.len());
            }
        }
        Command::Users {
            action: UsersAction::Export { domain, output: o },
        } => {
            let mut conn = connect::connect(&target)?;
            let mut out = output(&o)?;
            let n = export::users(&mut conn, &domain, &mut out)?;
            out.flush().context("write the CSV")?;
            eprintln!("exported {n} users of {domain}");
        }
        Command::Groups {
            action: GroupsAction::Export { domain, output: o },
        } => {
            let mut conn = connect::connect(&target)?;
            let mut out = output(&o)?;
            let n = export::groups(&mut conn, &domain, &mut out)?;
            out.flush().context("write the CSV")?;
            eprintln!("exported {n} groups of {domain}");
        }
    }
    Ok(())
}
