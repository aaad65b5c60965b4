//! `entra-sim --listen 127.0.0.1:8080 [--seed tenant.yaml]`

use clap::Parser;
use entra_sim::Seed;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "entra-sim",
    version,
    about = "A simulated Entra ID tenant (Microsoft Graph v1.0 subset and token endpoint)"
)]
struct Cli {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", env = "ENTRA_SIM_LISTEN")]
    listen: SocketAddr,
    /// Seed file (YAML). Default: the embedded seed of company ABC.
    #[arg(long, env = "ENTRA_SIM_SEED")]
    seed: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let seed = match &cli.seed {
        Some(path) => Seed::parse(&std::fs::read_to_string(path)?)?,
        None => Seed::default_seed(),
    };
    let running = entra_sim::start(seed, cli.listen).await?;
    println!("entra-sim listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
