//! weavice: the CNI plugin binary. Reads the environment and stdin, runs one
//! verb, prints the result or the CNI error JSON on stdout (logs never go there).

use conf::version::{LATEST, SUPPORTED};
use conf::{CmdArgs, CniError, Command, ConfError, NetConf};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::ExitCode;
use weavice::error::PluginError;
use weavice::{cmd, error, link, logger, retire};

/// What a verb leaves to do after the container runtime has its answer.
enum After {
    Nothing,
    DeleteLink(link::Link),
}

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let command =
        std::env::var("CNI_COMMAND").map_err(|_| ConfError::MissingEnv("CNI_COMMAND")).and_then(|c| Command::parse(&c));
    let outcome = match command {
        Ok(command) => run(command, &stdin).map_err(|e| (Some(command), e)),
        Err(e) => Err((None, e.into())),
    };
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok((output, after)) => {
            if let Some(v) = output {
                let _ = writeln!(stdout, "{v}");
            }
            let _ = stdout.flush();
            drop(stdout);
            match after {
                After::DeleteLink(l) => retire::finish_in_background(Some(l)),
                After::Nothing if weavice::firewall::linger::any() => retire::finish_in_background(None),
                After::Nothing => {}
            }
            ExitCode::SUCCESS
        }
        Err((command, e)) => {
            let version = conf::netconf::peek_version(&stdin)
                .filter(|v| SUPPORTED.contains(&v.as_str()))
                .unwrap_or_else(|| LATEST.to_string());
            let code = if command == Some(Command::Status) { e.status_code() } else { e.code() };
            let err = CniError { cni_version: version, code, msg: e.to_string(), details: String::new() };
            error!("{} failed (code {code}): {e}", command.map_or("?", Command::as_str));
            let _ = writeln!(stdout, "{}", serde_json::to_string(&err).unwrap_or_default());
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, stdin: &[u8]) -> Result<(Option<Value>, After), PluginError> {
    if command == Command::Version {
        let version = conf::netconf::peek_version(stdin)
            .filter(|v| SUPPORTED.contains(&v.as_str()))
            .unwrap_or_else(|| LATEST.to_string());
        return Ok((Some(json!({"cniVersion": version, "supportedVersions": SUPPORTED})), After::Nothing));
    }
    let net = NetConf::parse(stdin)?;
    let args = CmdArgs::from_env(command, |k| std::env::var(k).ok())?;
    logger::init(net.log_level, net.log_file.as_deref(), format!("{} {}", command.as_str(), net.name));
    Ok(match command {
        Command::Add => (Some(cmd::add::run(&net, &args)?), After::Nothing),
        Command::Del => match cmd::del::run(&net, &args)?.retired {
            Some(l) => (None, After::DeleteLink(l)),
            None => (None, After::Nothing),
        },
        Command::Check => (cmd::check::run(&net, &args).map(|_| None)?, After::Nothing),
        Command::Gc => (cmd::gc::run(&net, &args).map(|_| None)?, After::Nothing),
        Command::Status => (cmd::status::run(&net, &args).map(|_| None)?, After::Nothing),
        Command::Version => unreachable!("answered above"),
    })
}
