//! weavice-ipam: a standard CNI IPAM plugin with host-local's configuration.

use conf::version::LATEST;
use conf::{CmdArgs, CniError, CniVersion, Command, ConfError, IpamConf, NetConf};
use ipam::IpamError;
use serde_json::json;
use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let version = conf::netconf::peek_version(&stdin).unwrap_or_else(|| LATEST.to_string());
    match run(&stdin) {
        Ok(out) => {
            if let Some(out) = out {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err((command, e)) => {
            let code = if command == Some(Command::Status) { e.status_code() } else { e.code() };
            let err = CniError::new(&version, code, e.to_string(), "");
            let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string(&err).unwrap_or_default());
            eprintln!("weavice-ipam: {e}");
            ExitCode::FAILURE
        }
    }
}

type Failure = (Option<Command>, IpamError);

fn run(stdin: &[u8]) -> Result<Option<serde_json::Value>, Failure> {
    let command = std::env::var("CNI_COMMAND")
        .map_err(|_| ConfError::MissingEnv("CNI_COMMAND"))
        .and_then(|c| Command::parse(&c))
        .map_err(|e| (None, e.into()))?;
    if command == Command::Version {
        return Ok(Some(json!({"cniVersion": LATEST, "supportedVersions": conf::version::SUPPORTED})));
    }
    verb(command, stdin).map_err(|e| (Some(command), e))
}

fn verb(command: Command, stdin: &[u8]) -> Result<Option<serde_json::Value>, IpamError> {
    let args = CmdArgs::from_env(command, |k| std::env::var(k))?;
    let net = NetConf::parse(stdin)?;
    let ipam_value = net.ipam.as_ref().ok_or_else(|| ConfError::Invalid("the ipam section is missing".into()))?;
    let ipam = IpamConf::from_value(ipam_value)?;
    let needs = |verb, needs, min: CniVersion| {
        if net.cni_version < min {
            Err(ConfError::VerbNeedsVersion { verb, version: net.cni_version.to_string(), needs })
        } else {
            Ok(())
        }
    };
    match command {
        Command::Add => {
            let wanted = ipam::requested_ips(&net, &args)?;
            let result = ipam::add(&ipam, &net.name, &args.container_id, &args.ifname, &wanted)?;
            Ok(Some(result.to_value(net.cni_version)))
        }
        Command::Del => ipam::del(&ipam, &net.name, &args.container_id, &args.ifname).map(|_| None),
        Command::Check => {
            needs("CHECK", "0.4.0", CniVersion::V0_4_0)?;
            ipam::check(&ipam, &net.name, &args.container_id, &args.ifname).map(|_| None)
        }
        Command::Gc => {
            needs("GC", "1.1.0", CniVersion::V1_1_0)?;
            // no list: no GC requested; only an explicit one, even empty, collects
            match &net.valid_attachments {
                Some(keep) => ipam::gc(&ipam, &net.name, keep).map(|_| None),
                None => Ok(None),
            }
        }
        Command::Status => {
            needs("STATUS", "1.1.0", CniVersion::V1_1_0)?;
            ipam::status(&ipam, &net.name).map(|_| None)
        }
        Command::Version => unreachable!("answered above"),
    }
}
