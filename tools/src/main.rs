//! `roster`: the companion tool of rosterd. It talks LDAP to a running server, so it works
//! remotely and under the same access rules as any client; it never opens the store.

mod connect;
mod csvin;
mod csvout;
mod domain;
mod export;
mod import;
mod ldap;
mod manage;
mod members;
mod nif;
mod plan;
mod sync;

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
    /// Maps the users and groups of an upstream directory (Active Directory, eDirectory,
    /// LDAP) into a domain, once or on a schedule (docs/sync.md). Exit status: 0 done, 1 the
    /// run failed (nothing, or what it lists, was changed), 2 done but some entries could not
    /// be mapped (each is named).
    Sync {
        /// The job's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Run once and exit (the default).
        #[arg(long, conflicts_with = "every")]
        once: bool,
        /// Run now and then again after each DURATION (30s, 15m, 1h), until stopped.
        #[arg(long, value_name = "DURATION")]
        every: Option<String>,
        /// Print what the run would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Read all of the upstream, whatever the stored state says.
        #[arg(long)]
        full: bool,
        /// Allow this many removals in this run (a number, or a percentage such as 50%).
        #[arg(long, value_name = "N")]
        max_deletes: Option<String>,
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
    /// Creates and updates the users of a CSV file (semicolons or commas between fields).
    Import {
        file: PathBuf,
        #[arg(long)]
        domain: String,
        #[arg(long, default_value = "utf-8")]
        encoding: csvin::Encoding,
        /// Print what would be created, changed or left alone; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import only these users (comma-separated names; may be repeated).
        #[arg(long, value_delimiter = ',')]
        select: Vec<String>,
        /// New users start with this template's settings (cn=T,ou=templates,<domain>).
        #[arg(long)]
        template: Option<String>,
        /// Create groups the file names that do not exist (otherwise such rows are bad).
        #[arg(long)]
        create_groups: bool,
        /// Passwords in the file also replace those of existing users.
        #[arg(long)]
        update_passwords: bool,
        /// Import the good rows even when some are bad.
        #[arg(long)]
        skip_invalid: bool,
        /// Write what became of every row to this CSV file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Connections writing at once.
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
    /// Writes the domain's users as CSV (the importer's columns).
    Export {
        #[arg(long)]
        domain: String,
        /// The file to write (standard output without).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Disables a user: it can no longer log in; its mail and groups stay.
    Disable {
        #[arg(long)]
        domain: String,
        name: String,
    },
    /// Enables a disabled user.
    Enable {
        #[arg(long)]
        domain: String,
        name: String,
    },
    /// Deletes a user.
    Delete {
        #[arg(long)]
        domain: String,
        name: String,
        /// This user receives the deleted user's addresses and group memberships.
        #[arg(long)]
        transfer_to: Option<String>,
    },
    /// Adds a user to groups (one change per group).
    Join {
        #[arg(long)]
        domain: String,
        name: String,
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Removes a user from groups (one change per group).
    Leave {
        #[arg(long)]
        domain: String,
        name: String,
        #[arg(required = true)]
        groups: Vec<String>,
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
    /// Writes a group's members to users_<domain>_<group>_<YYYY-MM-DD>.csv.
    ExportMembers {
        #[arg(long)]
        domain: String,
        group: String,
        /// The directory to write the file in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Writes the member file to fill in: users-mailbox-example.csv (no rows), or with
    /// --unassigned users-mailbox-available.csv (the users not in the group).
    Template {
        #[arg(long)]
        domain: String,
        group: String,
        #[arg(long)]
        unassigned: bool,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Adds the users of a filled-in member file (Identifier;Name) to a group.
    ImportMembers {
        #[arg(long)]
        domain: String,
        group: String,
        file: PathBuf,
        #[arg(long, default_value = "utf-8")]
        encoding: csvin::Encoding,
    },
    /// Creates a group.
    Create {
        #[arg(long)]
        domain: String,
        name: String,
        /// An address of the group (a local part or a whole address); may be repeated.
        #[arg(long = "address")]
        addresses: Vec<String>,
        /// internal (only the domain's users may write to it), external or security.
        #[arg(long)]
        kind: Option<String>,
        /// The right its members get in the domain: none, read or admin.
        #[arg(long)]
        right: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Renames a group; its members, addresses and memberships stay.
    Rename {
        #[arg(long)]
        domain: String,
        name: String,
        new_name: String,
    },
    /// Deletes a group.
    Delete {
        #[arg(long)]
        domain: String,
        name: String,
    },
    /// Adds users, contacts (by address) or groups to a group, in one change.
    AddMember {
        #[arg(long)]
        domain: String,
        group: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Removes members from a group, in one change.
    RemoveMember {
        #[arg(long)]
        domain: String,
        group: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roster: {e:#}");
            if e.downcast_ref::<Unmapped>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
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

fn print_membership(who: &str, did: &str, had: &str, m: &manage::Membership) {
    if !m.changed.is_empty() {
        println!("{who}: {did} {}", m.changed.join(", "));
    }
    if !m.unchanged.is_empty() {
        println!("{who}: {had} {}", m.unchanged.join(", "));
    }
}

/// Why `roster sync` ends with status 2: the run was made, some entries were not mapped.
#[derive(Debug, thiserror::Error)]
#[error("{0} entries could not be mapped (listed above)")]
struct Unmapped(usize);

fn sync_command(
    target: &connect::Target,
    config: &std::path::Path,
    every: Option<String>,
    dry_run: bool,
    full: bool,
    max_deletes: Option<String>,
) -> anyhow::Result<()> {
    let cfg = sync::config::SyncConfig::load(config)?;
    let every = every
        .map(|e| sync::config::parse_duration(&e).map_err(|m| anyhow::anyhow!("--every {m}")))
        .transpose()?;
    let max_deletes = max_deletes
        .map(|m| sync::config::Cap::parse(&m).map_err(|e| anyhow::anyhow!("--max-deletes {e}")))
        .transpose()?;
    // The [rosterd] table of the job names the server and account; the command line's
    // options stand in for what it leaves out.
    let rosterd = match &cfg.rosterd {
        Some(r) => connect::Target {
            url: r.url.clone(),
            bind_dn: r.bind_dn.clone().or_else(|| target.bind_dn.clone()),
            password_file: r
                .password_file
                .clone()
                .or_else(|| target.password_file.clone()),
            password_env: target.password_env.clone(),
            ca: r.ca.clone().or_else(|| target.ca.clone()),
            no_tls: target.no_tls,
            timeout: None,
        },
        None => connect::Target {
            url: target.url.clone(),
            bind_dn: target.bind_dn.clone(),
            password_file: target.password_file.clone(),
            password_env: target.password_env.clone(),
            ca: target.ca.clone(),
            no_tls: target.no_tls,
            timeout: None,
        },
    };
    let mut opts = sync::Options {
        dry_run,
        full,
        max_deletes,
    };
    loop {
        let outcome = sync::run_once(&cfg, &rosterd, &opts);
        // --full and --max-deletes are for the first run; later ones follow the configuration.
        opts.full = false;
        opts.max_deletes = None;
        let result = match outcome {
            Ok(report) => {
                for c in &report.changes {
                    println!("{c}");
                }
                println!("{}", report.text());
                if report.errors.is_empty() {
                    Ok(())
                } else {
                    Err(anyhow::Error::new(Unmapped(report.errors.len())))
                }
            }
            Err(e) => {
                if let sync::SyncError::TooManyDeletes { report, .. }
                | sync::SyncError::Interrupted { report, .. } = &e
                {
                    for c in &report.changes {
                        println!("{c}");
                    }
                    println!("{}", report.text());
                }
                Err(anyhow::anyhow!("sync {}: {e}", cfg.name))
            }
        };
        let Some(every) = every else {
            return result;
        };
        if let Err(e) = result {
            eprintln!("roster: {e:#}");
        }
        std::thread::sleep(every);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let target = connect::Target {
        url: cli.url.clone(),
        bind_dn: cli.bind_dn.clone(),
        password_file: cli.password_file.clone(),
        password_env: std::env::var("ROSTER_PASSWORD").ok(),
        ca: cli.ca.clone(),
        no_tls: cli.no_tls,
        timeout: None,
    };
    match cli.command {
        Command::Sync {
            config,
            once: _,
            every,
            dry_run,
            full,
            max_deletes,
        } => sync_command(&target, &config, every, dry_run, full, max_deletes)?,
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
            action:
                UsersAction::Import {
                    file,
                    domain,
                    encoding,
                    dry_run,
                    select,
                    template,
                    create_groups,
                    update_passwords,
                    skip_invalid,
                    report,
                    connections,
                },
        } => {
            let options = import::Options {
                file,
                encoding,
                domain,
                dry_run,
                select: select
                    .iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect(),
                template,
                create_groups,
                update_passwords,
                skip_invalid,
                connections,
            };
            let result = import::run(&target, &options)?;
            result
                .print(&mut std::io::stdout().lock())
                .context("write the summary")?;
            if let Some(path) = &report {
                let mut f = output(&Some(path.clone()))?;
                result.write_csv(&mut f).context("write the report")?;
                f.flush().context("write the report")?;
            }
            if !result.complete(skip_invalid) {
                anyhow::bail!(
                    "{}",
                    if result.dry_run || result.count("invalid") > 0 && !skip_invalid {
                        "the file has problems; nothing was imported"
                    } else {
                        "the import did not apply every row (see above)"
                    }
                );
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
        Command::Users {
            action: UsersAction::Disable { domain, name },
        } => {
            let mut conn = connect::connect(&target)?;
            let changed =
                manage::set_disabled(&mut conn, &manage::Scope::new(&domain)?, &name, true)?;
            println!(
                "{name}: {}",
                if changed {
                    "disabled"
                } else {
                    "was already disabled"
                }
            );
        }
        Command::Users {
            action: UsersAction::Enable { domain, name },
        } => {
            let mut conn = connect::connect(&target)?;
            let changed =
                manage::set_disabled(&mut conn, &manage::Scope::new(&domain)?, &name, false)?;
            println!(
                "{name}: {}",
                if changed {
                    "enabled"
                } else {
                    "was already enabled"
                }
            );
        }
        Command::Users {
            action:
                UsersAction::Delete {
                    domain,
                    name,
                    transfer_to,
                },
        } => {
            let mut conn = connect::connect(&target)?;
            let scope = manage::Scope::new(&domain)?;
            let dn = manage::delete_user(&mut conn, &scope, &name, transfer_to.as_deref())?;
            match transfer_to {
                Some(h) => println!("deleted {dn}; its addresses and groups went to {h}"),
                None => println!("deleted {dn}"),
            }
        }
        Command::Users {
            action:
                UsersAction::Join {
                    domain,
                    name,
                    groups,
                },
        } => {
            let mut conn = connect::connect(&target)?;
            let m = manage::user_groups(
                &mut conn,
                &manage::Scope::new(&domain)?,
                &name,
                &groups,
                true,
            )?;
            print_membership(&name, "joined", "was already in", &m);
        }
        Command::Users {
            action:
                UsersAction::Leave {
                    domain,
                    name,
                    groups,
                },
        } => {
            let mut conn = connect::connect(&target)?;
            let m = manage::user_groups(
                &mut conn,
                &manage::Scope::new(&domain)?,
                &name,
                &groups,
                false,
            )?;
            print_membership(&name, "left", "was not in", &m);
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
        Command::Groups {
            action: GroupsAction::ExportMembers { domain, group, dir },
        } => {
            let mut conn = connect::connect(&target)?;
            let d = domain::Domain::read(&mut conn, &domain)?;
            let date = time::OffsetDateTime::now_utc().date();
            let path = dir.join(members::export_file_name(
                &d.name,
                &group,
                &date.to_string(),
            ));
            let mut out = output(&Some(path.clone()))?;
            let n = members::export(&d, &group, &mut out)?;
            out.flush().context("write the CSV")?;
            println!("{}: {n} members of {group}", path.display());
        }
        Command::Groups {
            action:
                GroupsAction::Template {
                    domain,
                    group,
                    unassigned,
                    dir,
                },
        } => {
            let mut conn = connect::connect(&target)?;
            let d = domain::Domain::read(&mut conn, &domain)?;
            let name = if unassigned {
                "users-mailbox-available.csv"
            } else {
                "users-mailbox-example.csv"
            };
            let path = dir.join(name);
            let mut out = output(&Some(path.clone()))?;
            let n = members::template(&d, &group, unassigned, &mut out)?;
            out.flush().context("write the CSV")?;
            println!("{}: {n} users", path.display());
        }
        Command::Groups {
            action:
                GroupsAction::ImportMembers {
                    domain,
                    group,
                    file,
                    encoding,
                },
        } => {
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let text = csvin::decode(&bytes, encoding)
                .map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
            let mut conn = connect::connect(&target)?;
            let d = domain::Domain::read(&mut conn, &domain)?;
            let r = members::import(&mut conn, &d, &group, &text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            for (line, id) in &r.unknown {
                println!("line {line}: unknown identifier {id:?}");
            }
            for (line, why) in &r.invalid {
                println!("line {line}: invalid: {why}");
            }
            println!(
                "added {}, already members {}, unknown identifiers {}, invalid lines {}",
                r.added.len(),
                r.already.len(),
                r.unknown.len(),
                r.invalid.len()
            );
        }
        Command::Groups {
            action:
                GroupsAction::Create {
                    domain,
                    name,
                    addresses,
                    kind,
                    right,
                    description,
                },
        } => {
            let mut conn = connect::connect(&target)?;
            let dn = manage::create_group(
                &mut conn,
                &manage::Scope::new(&domain)?,
                &manage::NewGroup {
                    name,
                    addresses,
                    kind,
                    right,
                    description,
                },
            )?;
            println!("created {dn}");
        }
        Command::Groups {
            action:
                GroupsAction::Rename {
                    domain,
                    name,
                    new_name,
                },
        } => {
            let mut conn = connect::connect(&target)?;
            let dn =
                manage::rename_group(&mut conn, &manage::Scope::new(&domain)?, &name, &new_name)?;
            println!("renamed {dn} to {new_name}");
        }
        Command::Groups {
            action: GroupsAction::Delete { domain, name },
        } => {
            let mut conn = connect::connect(&target)?;
            let dn = manage::delete_group(&mut conn, &manage::Scope::new(&domain)?, &name)?;
            println!("deleted {dn}");
        }
        Command::Groups {
            action:
                GroupsAction::AddMember {
                    domain,
                    group,
                    members,
                },
        } => {
            let mut conn = connect::connect(&target)?;
            let m = manage::members(
                &mut conn,
                &manage::Scope::new(&domain)?,
                &group,
                &members,
                true,
            )?;
            print_membership(&group, "added", "already has", &m);
        }
        Command::Groups {
            action:
                GroupsAction::RemoveMember {
                    domain,
                    group,
                    members,
                },
        } => {
            let mut conn = connect::connect(&target)?;
            let m = manage::members(
                &mut conn,
                &manage::Scope::new(&domain)?,
                &group,
                &members,
                false,
            )?;
            print_membership(&group, "removed", "does not have", &m);
        }
    }
    Ok(())
}
