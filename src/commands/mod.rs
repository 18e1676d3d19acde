//! One module per subcommand: each parses its arguments, calls the engine,
//! and renders what to print. No command imports another.

pub mod complete;
pub mod plan;
pub mod scale;
pub mod status;
pub mod watch;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::cluster::{Cluster, connect};

/// Runs a parsed command line; returns the text for stdout.
pub async fn run(cli: Cli) -> Result<String> {
    match cli.command {
        Command::Version => Ok(crate::version::long()),
        Command::Completion { shell } => Ok(complete::script(shell)),
        Command::Complete { words } => complete::candidates(&cli.kube, &words).await,
        Command::Status(args) if args.watch => watch::run(&cluster(&cli.kube).await?, &args).await,
        Command::Status(args) => status::run(&cluster(&cli.kube).await?, &args).await,
        Command::Plan(args) => plan::run(&cluster(&cli.kube).await?, &args).await,
        Command::Scale(args) => scale::run(&cluster(&cli.kube).await?, &args).await,
    }
}

async fn cluster(flags: &crate::cli::KubeFlags) -> Result<Cluster> {
    Ok(Cluster::new(connect(&flags.connect_options()).await?))
}
