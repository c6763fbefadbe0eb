//! `tusker-cli`: the headless Tusker. It drives the same engine and the same journal as the
//! desktop app, so anything started here can be resumed there and the other way round.

mod check;
mod output;
mod size;
mod upload;
mod watch;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tusker_core::{AddRequest, Engine, EngineConfig, UploadId};

#[derive(Parser, Debug)]
#[command(
    name = "tusker-cli",
    version,
    about = "Resumable uploads over the tus protocol"
)]
struct Cli {
    /// Where the journal lives (shared with the desktop app).
    #[arg(long, global = true, env = "TUSKER_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// The technical detail on stderr: -v the engine at info (error chains, retries), -vv debug. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    cmd: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RunOpts {
    /// Connections at once: each upload takes one, a file sent as parts one per part.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Parts a large file is split into, each on its own connection, where the server
    /// offers concatenation (1 = one stream). Helps where one connection cannot fill the
    /// link (a per-connection cap, a long round trip).
    #[arg(long, value_name = "K", default_value_t = 4)]
    parts: usize,
    /// Files from this size on are split into parts, e.g. 64MiB.
    #[arg(long, value_parser = size::parse, default_value = "64MiB")]
    parts_min_size: u64,
    /// Global bandwidth limit, e.g. 10MiB (per second). 0 = none.
    #[arg(long, value_parser = size::parse, default_value = "0")]
    bandwidth: u64,
    /// Abort and retry a request when nothing moved for this many seconds.
    #[arg(long, default_value_t = 30.0)]
    stall_timeout: f64,
    /// Once a request's whole body is sent, wait this many seconds for the answer (a server
    /// may take a while to store a large upload).
    #[arg(long, default_value_t = 180.0)]
    answer_timeout: f64,
    /// Consecutive failed attempts (without progress) before an upload fails.
    #[arg(long, default_value_t = 12)]
    max_retries: u32,
    /// First retry delay in milliseconds (doubles each time, with jitter).
    #[arg(long, default_value_t = 500)]
    retry_base_ms: u64,
    /// Send the first bytes inside the creation POST when the server offers it: one request
    /// fewer per small file, but a crash at the wrong instant can leave a finished duplicate
    /// on the server (off by default: every file is completed exactly once).
    #[arg(long)]
    creation_with_upload: bool,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    plain: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Enqueue files and folders (recursively) and upload them; exit 0 only if all complete.
    Upload(UploadArgs),
    /// Watch folders and upload every file that appears in them (subfolders too) once it
    /// has stopped changing; files already there are taken at start, content already sent
    /// to the endpoint is not sent again. Runs until SIGTERM or Ctrl-C (exit 0 or 130).
    Watch(WatchArgs),
    /// Run every unfinished upload in the journal to completion; exit 0 only if all complete.
    Resume {
        #[command(flatten)]
        run: RunOpts,
    },
    /// Print the SHA-256 of files (to compare with what a server stored).
    Hash {
        /// Print Tusker's content hash instead (SHA-256 over the SHA-256 of every 1 MiB
        /// block): what the journal records of a completed upload and what a re-added file
        /// is compared with. It reads and hashes like the verification of a resumed upload.
        #[arg(long)]
        content: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the journal.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Ask a server what it supports (OPTIONS), in words (--json for scripts).
    Check(CheckArgs),
    /// Named endpoint profiles, shared with the desktop app.
    Profile {
        #[command(subcommand)]
        cmd: ProfileCmd,
    },
    /// Cancel an upload and terminate it on the server.
    Cancel { id: UploadId },
    /// Forget an upload (an unfinished one is terminated on the server first).
    Remove { id: UploadId },
}

#[derive(clap::Args, Debug)]
pub(crate) struct UploadArgs {
    /// tus endpoint (creation URL), e.g. http://127.0.0.1:1080/files/. Its credentials
    /// (--header, --header-file, --header-command) are kept in a profile named after it,
    /// so `resume` uses them and a later run with new ones refreshes every upload to it.
    #[arg(long, required_unless_present_any = ["profile", "upload_url"])]
    pub(crate) endpoint: Option<String>,
    /// Upload the one file into this existing upload (one a service's API created, such
    /// as Vimeo's): HEAD, then PATCH from the server's offset, never a POST.
    #[arg(long, value_name = "URL")]
    pub(crate) upload_url: Option<String>,
    /// Upload with a saved profile (`tusker-cli profile set`) instead of --endpoint.
    #[arg(long, conflicts_with_all = ["endpoint", "headers", "header_file", "header_command"])]
    pub(crate) profile: Option<String>,
    /// Bytes per PATCH, e.g. 8MiB (default: the whole remainder in one request).
    #[arg(long, value_parser = size::parse)]
    pub(crate) chunk_size: Option<u64>,
    #[command(flatten)]
    pub(crate) creds: CredentialOpts,
    /// Upload metadata key=value (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    pub(crate) metadata: Vec<String>,
    /// Send files again even if the same content already completed on this endpoint
    /// (by default they are reported as already uploaded and skipped).
    #[arg(long)]
    pub(crate) again: bool,
    #[command(flatten)]
    pub(crate) run: RunOpts,
    /// Files or folders.
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct WatchArgs {
    /// tus endpoint (creation URL). Credentials are kept in a profile named after it.
    #[arg(long, required_unless_present = "profile")]
    pub(crate) endpoint: Option<String>,
    /// Upload with a saved profile instead of --endpoint.
    #[arg(long, conflicts_with_all = ["endpoint", "headers", "header_file", "header_command"])]
    pub(crate) profile: Option<String>,
    #[arg(long, value_parser = size::parse)]
    pub(crate) chunk_size: Option<u64>,
    #[command(flatten)]
    pub(crate) creds: CredentialOpts,
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    pub(crate) metadata: Vec<String>,
    /// A file or folder name pattern (`*` and `?`) not to upload, on top of the defaults
    /// (*.part *.crdownload *.tmp ~$* .*). Repeatable.
    #[arg(long = "ignore", value_name = "PATTERN")]
    pub(crate) ignore: Vec<String>,
    /// Only the --ignore patterns, not the defaults.
    #[arg(long)]
    pub(crate) no_default_ignore: bool,
    /// Seconds a file's size and modification time must stay the same before it is sent.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub(crate) settle: f64,
    #[command(flatten)]
    pub(crate) run: RunOpts,
    /// Folders to watch.
    #[arg(required = true)]
    pub(crate) dirs: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct CheckArgs {
    pub(crate) endpoint: String,
    /// The server's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) creds: CredentialOpts,
}

/// Where request headers come from. Secrets stay out of argv with --header-file or the
/// TUSKER_HEADERS environment variable.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct CredentialOpts {
    /// Extra request header, 'Name: value' (repeatable). Values are never logged.
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// Headers from a file of 'Name: value' lines.
    #[arg(long, value_name = "FILE")]
    header_file: Option<PathBuf>,
    /// A shell command that prints 'Name: value' lines; run when credentials are first
    /// needed, after the server refuses them (401/403), and when --header-ttl runs out.
    #[arg(long, value_name = "CMD")]
    header_command: Option<String>,
    /// Seconds after which the header command's headers are fetched again.
    #[arg(long, value_name = "SECS", requires = "header_command")]
    header_ttl: Option<u64>,
    /// Treat this header's value as a secret (kept in the keyring, never shown, sent only to
    /// the server it was given for) on top of those Tusker knows by name (Authorization,
    /// *Token*, *Secret*, *-Key, Cookie, ...). Repeatable.
    #[arg(long = "secret-header", value_name = "NAME")]
    secret_headers: Vec<String>,
}

impl CredentialOpts {
    /// Headers from --header, --header-file and TUSKER_HEADERS (newline-separated lines).
    fn headers(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        if let Ok(env) = std::env::var("TUSKER_HEADERS") {
            out.extend(
                tusker_core::profiles::profile::parse_header_lines(&env)
                    .context("TUSKER_HEADERS")?,
            );
        }
        if let Some(f) = &self.header_file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            out.extend(
                tusker_core::profiles::profile::parse_header_lines(&text)
                    .with_context(|| format!("in {}", f.display()))?,
            );
        }
        out.extend(parse_headers(&self.headers)?);
        tusker_core::tus::client::header_map(&out)?;
        Ok(out)
    }
}

#[derive(Subcommand, Debug)]
enum ProfileCmd {
    /// Create or replace a profile. Uploads with it (queued, waiting, or waiting for
    /// sign-in, in this process or a running app) use the new settings from their next request.
    Set {
        name: String,
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        creds: CredentialOpts,
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        #[arg(long, value_parser = size::parse)]
        chunk_size: Option<u64>,
        /// The server takes exactly --chunk-size per PATCH (Supabase: 6MiB): never halved.
        #[arg(long, requires = "chunk_size")]
        exact_chunk: bool,
        /// Another host uploads may move to (a Location or redirect there). Repeatable.
        #[arg(long = "allow-host", value_name = "HOST")]
        allowed_hosts: Vec<String>,
        /// Send PATCH and DELETE as POST with X-HTTP-Method-Override (proxies that block them).
        #[arg(long)]
        method_override: bool,
    },
    /// Let a profile's uploads go to another host (a Location or redirect there), or with
    /// --refuse, never. Failed uploads of the profile that were sent there go again.
    AllowHost {
        name: String,
        host: String,
        #[arg(long)]
        refuse: bool,
    },
    /// The profiles (header names only; values are secrets).
    List,
    /// Forget a profile; its uploads keep their place and go on without its credentials.
    Remove { name: String },
}

/// The saved profile named `name`, or one named after `endpoint` with the given credentials.
pub(crate) fn resolve_profile(
    data_dir: &std::path::Path,
    name: Option<String>,
    endpoint: Option<String>,
    creds: &CredentialOpts,
) -> Result<tusker_core::profiles::profile::Profile> {
    Ok(match (name, endpoint) {
        (Some(name), _) => open_store(data_dir)?
            .profile_by_name(&name)?
            .with_context(|| {
                format!(
                    "no profile named {name:?} (tusker-cli profile set {name} --endpoint URL ...)"
                )
            })?,
        (None, Some(endpoint)) => {
            tusker_core::tus::client::parse_endpoint(&endpoint)?;
            tusker_core::profiles::profile::Profile {
                name: tusker_core::profiles::profile::Profile::implicit_name(&endpoint),
                endpoint,
                headers: creds.headers()?.into(),
                header_command: creds.header_command.clone(),
                header_ttl_secs: creds.header_ttl,
                secret_headers: creds.secret_headers.clone(),
                ..Default::default()
            }
            // A password in the URL is kept as a secret header, not in the journal.
            .with_userinfo_as_header()?
        }
        (None, None) => bail!("--endpoint or --profile is needed"),
    })
}

/// The request for uploads with `profile` (saved first when it is new, as one named after
/// its endpoint is), with the command line's metadata and chunk size on top of its own.
pub(crate) fn profile_request(
    engine: &Engine,
    mut profile: tusker_core::profiles::profile::Profile,
    metadata: BTreeMap<String, String>,
    chunk_size: Option<u64>,
) -> Result<AddRequest> {
    if profile.id == 0 {
        profile.id = engine.save_profile(&profile)?;
    }
    let mut req = AddRequest::to_profile(&profile);
    req.metadata.extend(metadata);
    req.chunk_size = chunk_size.or(profile.chunk_size);
    Ok(req)
}

pub(crate) fn open_store(data_dir: &std::path::Path) -> Result<tusker_core::journal::Store> {
    tusker_core::journal::Store::open_in(data_dir)
        .with_context(|| format!("opening the journal in {}", data_dir.display()))
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        // What the engine logs is the technical detail (error chains, each retry): the
        // output already says every event in the catalogue's words, so -v shows it.
        0 => "warn,tusker_core=off",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub(crate) fn parse_headers(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for h in raw {
        let (k, v) = h.split_once(':').with_context(|| {
            format!(
                "header {:?} is not 'Name: value'",
                h.split(':').next().unwrap_or("")
            )
        })?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

pub(crate) fn parse_metadata(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for m in raw {
        let (k, v) = m
            .split_once('=')
            .with_context(|| format!("metadata {m:?} is not key=value"))?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub(crate) fn config(data_dir: PathBuf, run: &RunOpts, auto_resume: bool) -> EngineConfig {
    let mut c = EngineConfig::new(data_dir);
    c.concurrency = run.parallel.max(1);
    c.upload.parts = run.parts.max(1);
    c.upload.parts_min_size = run.parts_min_size;
    c.bandwidth = run.bandwidth;
    c.auto_resume = auto_resume;
    c.upload.stall_timeout = Duration::from_secs_f64(run.stall_timeout.max(0.1));
    c.upload.final_answer_timeout = Duration::from_secs_f64(run.answer_timeout.max(0.1));
    c.upload.retry.max_attempts = run.max_retries;
    c.upload.retry.base = Duration::from_millis(run.retry_base_ms);
    c.upload.creation_with_upload = run.creation_with_upload;
    c
}

// With 100,000 small files the system allocator's bookkeeping was a tenth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One event-loop thread, like Node under tus-js-client: with 10,000 small files the
// cross-thread wake-ups of a multi-threaded runtime cost a third of the CPU (2.3-2.6 s ->
// 1.6-1.7 s here), while one core still drives a loopback socket at about 2 GB/s. Streamed
// file bodies, fingerprints and checksums are read on the blocking pool; journal writes
// (committed in groups) and reads of at most 16 KiB happen on this thread.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match real_main(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // The engine's errors in the catalogue's words; the detail with -v.
            match e.downcast_ref::<tusker_core::Error>() {
                Some(core) => {
                    let said = tusker_core::error::explain::Said::of(core);
                    eprintln!("error: {}", said.text);
                    tracing::info!(detail = %said.detail, "error detail");
                }
                None => eprintln!("error: {e:#}"),
            }
            std::process::exit(2);
        }
    }
}

async fn real_main(cli: Cli) -> Result<i32> {
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(tusker_core::default_data_dir);
    match cli.cmd {
        Command::Hash { content, files } => {
            for f in files {
                if content {
                    let (hash, _) = tusker_core::identity::proof::hash_file(&f)?;
                    println!("{hash}  {}", f.display());
                    continue;
                }
                let d = tusker_core::identity::fingerprint::sha256_file(&f)?;
                let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
                println!("{hex}  {}", f.display());
            }
            Ok(0)
        }
        Command::List { json } => {
            output::list(&open_store(&data_dir)?.list()?, json);
            Ok(0)
        }
        Command::Upload(args) => upload::upload(data_dir, args).await,
        Command::Watch(args) => watch::watch_cmd(data_dir, args).await,
        Command::Resume { run } => upload::resume(data_dir, run).await,
        Command::Check(args) => check::check(args).await,
        Command::Profile { cmd } => profile_cmd(&data_dir, cmd),
        Command::Cancel { id } => {
            let engine = Engine::open(config(data_dir, &default_run(), false)).await?;
            engine.cancel(id).await?;
            // Shutdown waits for the termination request.
            engine.shutdown().await?;
            Ok(0)
        }
        Command::Remove { id } => {
            let engine = Engine::open(config(data_dir, &default_run(), false)).await?;
            engine.remove(id).await?;
            // Shutdown waits for the termination request of an unfinished upload.
            engine.shutdown().await?;
            Ok(0)
        }
    }
}

fn profile_cmd(data_dir: &std::path::Path, cmd: ProfileCmd) -> Result<i32> {
    let store = open_store(data_dir)?;
    match cmd {
        ProfileCmd::Set {
            name,
            endpoint,
            creds,
            metadata,
            chunk_size,
            exact_chunk,
            allowed_hosts,
            method_override,
        } => {
            tusker_core::tus::client::parse_endpoint(&endpoint)?;
            let metadata = parse_metadata(&metadata)?;
            for k in metadata.keys() {
                tusker_core::tus::protocol::validate_metadata_key(k)?;
            }
            let p = tusker_core::profiles::profile::Profile {
                name: name.clone(),
                endpoint,
                headers: creds.headers()?.into(),
                metadata,
                chunk_size,
                exact_chunk,
                allowed_hosts,
                header_command: creds.header_command,
                header_ttl_secs: creds.header_ttl,
                secret_headers: creds.secret_headers,
                method_override,
                ..Default::default()
            };
            let secrets = tusker_core::profiles::secrets::Secrets::open(data_dir);
            store.save_profile_sealed(&secrets, &p)?;
            eprintln!(
                "saved profile {name:?}{}",
                if secrets.in_keyring() || p.headers.keys().all(|k| !p.is_secret(k)) {
                    ""
                } else {
                    " (no OS keyring answers: its secrets are in secrets.json, readable by you alone)"
                }
            );
        }
        ProfileCmd::AllowHost { name, host, refuse } => {
            let Some(mut p) = store.profile_by_name(&name)? else {
                bail!("no profile named {name:?}");
            };
            let host = host.trim().to_ascii_lowercase();
            p.answer_host(&host, !refuse);
            // As stored: header values are references already.
            store.save_profile(&p)?;
            let failed: Vec<_> = store
                .list()?
                .into_iter()
                .filter(|r| {
                    r.profile_id == Some(p.id) && r.asks_host.as_deref() == Some(host.as_str())
                })
                .collect();
            for r in &failed {
                store.set_asks_host(r.id, None)?;
            }
            eprintln!(
                "profile {name:?}: uploads {} go to {host}{}",
                if refuse { "never" } else { "may" },
                if refuse || failed.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} failed upload(s) sent there go again with `tusker-cli resume`, or by themselves in a running app)",
                        failed.len()
                    )
                }
            );
        }
        ProfileCmd::List => {
            for p in store.profiles()? {
                let names: Vec<&str> = p.headers.keys().map(String::as_str).collect();
                println!(
                    "{}\t{}\theaders: {}{}",
                    p.name,
                    tusker_core::redact::strip_userinfo(&p.endpoint),
                    if names.is_empty() {
                        "-".to_string()
                    } else {
                        names.join(", ")
                    },
                    if p.header_command.is_some() {
                        "\theader command"
                    } else {
                        ""
                    }
                );
            }
        }
        ProfileCmd::Remove { name } => {
            let Some(p) = store.profile_by_name(&name)? else {
                bail!("no profile named {name:?}");
            };
            tusker_core::profiles::secrets::Secrets::open(data_dir).forget(&p.headers)?;
            store.delete_profile(&name)?;
            eprintln!("removed profile {name:?}");
        }
    }
    Ok(0)
}

pub(crate) fn default_run() -> RunOpts {
    RunOpts {
        parallel: 1,
        parts: 1,
        parts_min_size: 64 << 20,
        bandwidth: 0,
        stall_timeout: 30.0,
        answer_timeout: 180.0,
        max_retries: 12,
        retry_base_ms: 500,
        creation_with_upload: false,
        plain: true,
    }
}
