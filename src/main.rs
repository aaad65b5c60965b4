//! The `remote-assist-operator` command.

use clap::{Parser, Subcommand};
use remote_assist_operator::{commands, config::RunArgs, crd, doctor};
use std::path::PathBuf;

/// jemalloc, not the C library's allocator: the operator's memory is mostly short-lived JSON
/// of Graph and API-server answers, which glibc's malloc fragments and keeps (its RSS only
/// grows), and musl's (the image) is slow. Measured on 2,000 accounts: 75.5 MiB peak with glibc,
/// 67.3 MiB with jemalloc (1 s decay, two arenas).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at start (`_RJEM_MALLOC_CONF` in the environment overrides them):
/// freed pages go back to the system at once (by the background thread), and one arena serves
/// the runtime's couple of threads. At 5,000 Group accounts this peaked at 75.5 MiB against
/// 83.9 MiB with a 1 s decay and two arenas, for 10 % more CPU (16.2 s per 1,000 accounts
/// against 14.7).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:0,muzzy_decay_ms:0,narenas:1\0";

#[derive(Parser)]
#[command(
    name = "remote-assist-operator",
    version,
    about = "Manage vendor access to Dynamics 365 Remote Assist from Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers against the current kube context and the configured tenant.
    Run {
        #[command(flatten)]
        args: Box<RunArgs>,
        /// Log format: `json` (structured, one object per line) or `text`.
        #[arg(long, env = "LOG_FORMAT", default_value = "json")]
        log_format: String,
    },
    /// Show what the operator would change in the tenant for these manifests, without changing
    /// anything. Exit status: 0 nothing would change, 2 changes planned, 1 error.
    Plan {
        /// Manifest files or directories (what a GitOps pull request contains).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// `text` or `json`.
        #[arg(short = 'o', long, default_value = "text")]
        output: String,
        /// Do not read the cluster's BarrierSegments (the vendors' generated segments are then
        /// shown as to be generated).
        #[arg(long)]
        no_cluster: bool,
        #[command(flatten)]
        args: Box<RunArgs>,
    },
    /// Report what the tenant really allows: managed accounts and their barriers, reachability
    /// between vendors, accounts enabled without a barrier, cost leaks, seats. Exit status 1 on
    /// any finding, so it can run as a scheduled job.
    Audit {
        /// `text` or `json`.
        #[arg(short = 'o', long, default_value = "text")]
        output: String,
        /// Do not compare with the cluster's RemoteAssistLicenses and VendorTenants.
        #[arg(long)]
        no_cluster: bool,
        #[command(flatten)]
        args: Box<RunArgs>,
    },
    /// Check the tenant's prerequisites (tokens, permissions, the compliance identity, the IB
    /// mode, admin consent, verified domains, SKUs and seats, IB-capable licences, the directory
    /// role for passwords). Exit status 1 when any check fails.
    Doctor {
        /// VendorTenant manifests to check; without them, the cluster's VendorTenants.
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
        /// Do not read the cluster's VendorTenants.
        #[arg(long)]
        no_cluster: bool,
        /// `text` or `json`.
        #[arg(short = 'o', long, default_value = "text")]
        output: String,
        #[command(flatten)]
        args: Box<RunArgs>,
    },
    /// Sign in once as an administrator (OAuth device code) and keep the refresh token in a
    /// Secret, for `--compliance-auth delegated`. Prints the sign-in instructions, never a token.
    Login {
        /// Sign in for the Security & Compliance endpoint (the only delegated credential).
        #[arg(long, required = true)]
        compliance: bool,
        /// The Secret (`<namespace>/<name>`) that receives the refresh token.
        #[arg(long, env = "COMPLIANCE_REFRESH_TOKEN_SECRET")]
        secret: remote_assist_operator::compliance::sign_in::SecretRef,
        /// The token endpoint's host.
        #[arg(
            long,
            env = "AZURE_AUTHORITY_HOST",
            default_value = "https://login.microsoftonline.com/"
        )]
        authority_host: String,
        /// The host company's Entra tenant id.
        #[arg(long, env = "AZURE_TENANT_ID")]
        tenant_id: String,
        /// The app registration to sign in to (it must allow public client flows).
        #[arg(long, env = "COMPLIANCE_CLIENT_ID")]
        client_id: String,
    },
    /// Print the CustomResourceDefinitions, or write one file per kind into a directory.
    Crdgen {
        /// Write `<plural>.yaml` files into this directory instead of printing to stdout.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

/// glibc's allocator, left to its defaults, keeps an arena per thread and serves large
/// short-lived buffers (Graph pages, watch lists) from the heap, so freed memory stays resident:
/// the operator's memory would then grow with the number of threads and its largest burst, not
/// with what it holds. Two arenas and a fixed mmap threshold (large buffers go back to the
/// system when freed) keep it near what it holds.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024);
    }
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    match Cli::parse().command {
        Command::Crdgen { out_dir } => crdgen(out_dir),
        Command::Plan {
            files,
            output,
            no_cluster,
            args,
        } => {
            init_logs("text");
            let config = (*args).into_config()?;
            let code = runtime()?.block_on(async {
                let kube = kube::Client::try_default().await.ok();
                let tenant = commands::Tenant::connect(&config, kube.clone())?
                    .read_mode()
                    .await;
                let manifests = commands::Manifests::load(&files)?;
                let cluster = if no_cluster { None } else { kube };
                let report = commands::plan::plan(&tenant, &manifests, cluster).await?;
                print_report(&output, &report, report.render_text())?;
                anyhow::Ok(if report.changes() > 0 { 2 } else { 0 })
            })?;
            std::process::exit(code);
        }
        Command::Audit {
            output,
            no_cluster,
            args,
        } => {
            init_logs("text");
            let config = (*args).into_config()?;
            let code = runtime()?.block_on(async {
                let kube = kube::Client::try_default().await.ok();
                let tenant = commands::Tenant::connect(&config, kube.clone())?
                    .read_mode()
                    .await;
                let cluster = if no_cluster { None } else { kube };
                let report = commands::audit::audit(&tenant, cluster).await?;
                print_report(&output, &report, report.render_text())?;
                anyhow::Ok(if report.findings.is_empty() { 0 } else { 1 })
            })?;
            std::process::exit(code);
        }
        Command::Doctor {
            files,
            no_cluster,
            output,
            args,
        } => {
            init_logs("text");
            let config = (*args).into_config()?;
            let code = runtime()?.block_on(async {
                let kube = kube::Client::try_default().await.ok();
                let tenant = commands::Tenant::connect(&config, kube.clone())?
                    .read_mode()
                    .await;
                let vendors = commands::doctor_vendors(&files, if no_cluster { None } else { kube }).await?;
                let report = doctor::examine(&tenant, &vendors).await;
                print_report(&output, &report, report.render_text())?;
                anyhow::Ok(i32::from(report.failed().next().is_some()))
            })?;
            std::process::exit(code);
        }
        Command::Login {
            compliance: _,
            secret,
            authority_host,
            tenant_id,
            client_id,
        } => {
            init_logs("text");
            let login = commands::login::DeviceLogin {
                authority: authority_host,
                tenant_id,
                client_id,
                resource: remote_assist_operator::compliance::COMPLIANCE_RESOURCE.into(),
            };
            runtime()?.block_on(async {
                let kube = kube::Client::try_default().await?;
                let http = remote_assist_operator::graph::transport::http_client()?;
                let signed_in = login.sign_in(&http, |m| eprintln!("{m}")).await?;
                commands::login::store(kube, &secret, &signed_in).await?;
                let who = signed_in.user.as_deref().unwrap_or("the administrator");
                eprintln!("signed in as {who}; the refresh token is in the Secret {secret}");
                anyhow::Ok(())
            })
        }
        Command::Run { args, log_format } => {
            init_logs(&log_format);
            let config = (*args).into_config()?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(remote_assist_operator::run::run(config))
        }
    }
}

fn crdgen(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = crd::all_crds();
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (file, crd) in &crds {
                std::fs::write(dir.join(file), crd::render_crd(crd))?;
            }
        }
        None => {
            let docs: Vec<String> = crds.iter().map(|(_, crd)| crd::render_crd(crd)).collect();
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "text" {
        builder.init();
    } else {
        builder.json().flatten_event(true).with_current_span(false).init();
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

fn print_report<T: serde::Serialize>(output: &str, report: &T, text: String) -> anyhow::Result<()> {
    match output {
        "json" => println!("{}", serde_json::to_string_pretty(report)?),
        "text" => print!("{text}"),
        other => anyhow::bail!("--output must be text or json, not {other}"),
    }
    Ok(())
}
