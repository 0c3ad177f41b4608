//! weavice-agent: the node agent and its CLI, on the datapath library.
//! First command: `repair`, which restores what weavice installed on the
//! node from weavice's own state after someone flushed the tables
//! (`nft flush ruleset`) or deleted a bridge.

mod logging;
mod repair;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "weavice-agent", version, about = "weavice node agent")]
struct Cli {
    /// Also log what is done, not only warnings and errors (to stderr).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Restore the bridge, gateway addresses, sysctls, netfilter rules and
    /// port mappings of every network weavice recorded (idempotent).
    Repair {
        /// The networks' `stateDir`.
        #[arg(long, global = true, default_value = conf::netconf::DEFAULT_STATE_DIR, value_parser = absolute)]
        state_dir: PathBuf,
    },
}

fn absolute(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(format!("{s:?} is not an absolute path"))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            eprintln!("(weavice-agent --help shows the usage)");
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    logging::install(cli.verbose);
    match cli.command {
        Cmd::Repair { state_dir } => match repair::run(&state_dir.to_string_lossy()) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                log::error!("repair: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
