//! The `remote-assist-operator` command.

use clap::{Parser, Subcommand};
use remote_assist_operator::{config::RunArgs, crd};
use std::path::PathBuf;

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
    /// Print the CustomResourceDefinitions, or write one file per kind into a directory.
    Crdgen {
        /// Write `<plural>.yaml` files into this directory instead of printing to stdout.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crdgen { out_dir } => crdgen(out_dir),
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
