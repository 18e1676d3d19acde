//! `kubectl-milvus`: parse, run, print, map errors to exit codes.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kubectl_milvus::{cli::Cli, commands, error};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {}", error::one_line(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}
