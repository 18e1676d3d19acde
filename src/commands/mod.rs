//! One module per subcommand: each gathers inputs through `cluster`/`helm`,
//! calls the pure core, and returns what to print.

pub mod complete;
pub mod gitops;
pub mod operator;
pub mod plan;
pub mod releases;
pub mod scale;
pub mod status;
pub mod watch;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::cluster::{Cluster, connect};
use crate::commands::operator::Resolved;

/// Runs a parsed command line; returns the text for stdout.
pub async fn run(cli: Cli) -> Result<String> {
    match cli.command {
        Command::Version => Ok(crate::version::long()),
        Command::Completion { shell } => Ok(complete::script(shell)),
        Command::Complete { words } => complete::candidates(&cli.kube, &words).await,
        Command::Status(args) => status::run(&cluster(&cli.kube).await?, &args).await,
        Command::Plan(args) => {
            let cluster = cluster(&cli.kube).await?;
            match operator::resolve(&cluster, &args.release, args.managed_by).await? {
                Resolved::Helm => plan::run(&cluster, &args).await,
                Resolved::Operator(cr) => operator::plan(&cluster, &args, &cr).await,
            }
        }
        Command::Scale(args) => {
            let cluster = cluster(&cli.kube).await?;
            match operator::resolve(&cluster, &args.release, args.managed_by).await? {
                Resolved::Helm => scale::run(&cluster, &args).await,
                Resolved::Operator(cr) => operator::scale::run(&cluster, &args, *cr).await,
            }
        }
    }
}

async fn cluster(flags: &crate::cli::KubeFlags) -> Result<Cluster> {
    Ok(Cluster::new(connect(&flags.connect_options()).await?))
}
