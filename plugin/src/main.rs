//! weavice: the CNI plugin binary. Reads the environment and stdin, runs one
//! verb, prints the result or the CNI error JSON on stdout (logs never go
//! there), then finishes in a background child what need not delay the
//! runtime. The node work itself is in the datapath crate.

mod cmd;
mod error;
mod ipam_client;
mod logger;
mod pod_records;
mod port_mappings;
mod retire;

use cmd::Done;
use conf::version::{LATEST, SUPPORTED};
use conf::{CmdArgs, CniError, Command, ConfError, NetConf};
use datapath::attachment::Attachment;
use error::PluginError;
use journal::PodEvent;
use serde_json::json;
use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    logger::install();
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
        Ok(done) => {
            if let Some(v) = &done.result {
                let _ = writeln!(stdout, "{v}");
            }
            let _ = stdout.flush();
            drop(stdout);
            if done.retired.is_some() || !done.lingering.is_empty() {
                retire::finish_in_background(done.retired, done.lingering);
            }
            ExitCode::SUCCESS
        }
        Err((command, e)) => {
            let version = conf::netconf::peek_version(&stdin)
                .filter(|v| SUPPORTED.contains(&v.as_str()))
                .unwrap_or_else(|| LATEST.to_string());
            let code = if command == Some(Command::Status) { e.status_code() } else { e.code() };
            let err = CniError { cni_version: version, code, msg: e.to_string(), details: String::new() };
            log::error!("{} failed (code {code}): {e}", command.map_or("?", Command::as_str));
            let _ = writeln!(stdout, "{}", serde_json::to_string(&err).unwrap_or_default());
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, stdin: &[u8]) -> Result<Done, PluginError> {
    if command == Command::Version {
        let version = conf::netconf::peek_version(stdin)
            .filter(|v| SUPPORTED.contains(&v.as_str()))
            .unwrap_or_else(|| LATEST.to_string());
        return Ok(Done::answer(json!({"cniVersion": version, "supportedVersions": SUPPORTED})));
    }
    let tag = |name: &str| format!("{} {name}", command.as_str());
    // DEL removes what the attachment's state says, so a runtimeConfig it
    // cannot read must not make it fail (the runtime would retry for ever)
    let parsed = match command {
        Command::Del => NetConf::parse_setting_aside_runtime_config(stdin),
        _ => NetConf::parse(stdin).map(|c| (c, None)),
    };
    let (net, set_aside) = parsed.inspect_err(|_| {
        // a refused config still goes to its logFile when that much parsed
        if let Some(file) = conf::netconf::peek_log_file(stdin) {
            logger::configure(conf::netconf::log_level::Level::Info, Some(&file), tag("?"));
        }
    })?;
    logger::configure(net.log_level, net.log_file.as_deref(), tag(&net.name));
    if let Some(e) = set_aside {
        log::warn!("runtimeConfig set aside: {e}; removing what the attachment's state holds");
    }
    let args = CmdArgs::from_env(command, |k| std::env::var(k))?;
    match command {
        Command::Add => cmd::add::run(&net, &args).map(|result| {
            let saved = Attachment::load(&net.state_dir, &net.name, &args.container_id, &args.ifname).ok().flatten();
            pod_records::write(&net, &args, PodEvent::Add, saved.as_ref());
            Done::answer(result)
        }),
        Command::Del => cmd::del::run(&net, &args),
        Command::Check => cmd::check::run(&net, &args).map(|()| Done::default()),
        Command::Gc => cmd::gc::run(&net, &args),
        Command::Status => cmd::status::run(&net, &args).map(|()| Done::default()),
        Command::Version => unreachable!("answered above"),
    }
}
