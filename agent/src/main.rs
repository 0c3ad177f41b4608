//! weavice-agent: the node agent and its CLI. First command: `repair`, which
//! restores what weavice installed on the node from weavice's own state after
//! someone flushed the tables (`nft flush ruleset`) or deleted a bridge.
//!
//! Usage: weavice-agent repair [--state-dir DIR]

mod repair;

use std::process::ExitCode;

const USAGE: &str = "usage: weavice-agent repair [--state-dir DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut state_dir = conf::netconf::DEFAULT_STATE_DIR.to_string();
    let mut command = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--state-dir" => match it.next() {
                Some(d) if d.starts_with('/') => state_dir = d.clone(),
                _ => return usage("--state-dir needs an absolute path"),
            },
            "repair" if command.is_none() => command = Some(a.as_str()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    match command {
        Some("repair") => match repair::run(&state_dir) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("weavice-agent repair: {e}");
                ExitCode::FAILURE
            }
        },
        _ => usage("no command given"),
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("weavice-agent: {why}\n{USAGE}");
    ExitCode::from(2)
}
