//! The `remote-assist-operator` command.

use clap::{Parser, Subcommand};
use remote_assist_operator::crd;
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
