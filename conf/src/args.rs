//! The CNI_* environment of one invocation.

use crate::error::ConfError;
use crate::names::{validate_container_id, validate_ifname};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn parse(s: &str) -> Result<Self, ConfError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            other => {
                return Err(ConfError::InvalidEnv {
                    var: "CNI_COMMAND",
                    why: format!("{other:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"),
                })
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }
}

/// Parsed, validated CNI environment. Fields a verb does not need are empty.
#[derive(Debug, Clone, Default)]
pub struct CmdArgs {
    pub container_id: String,
    /// Empty when the runtime sent none (allowed for DEL).
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` as key/value pairs (`K8S_POD_NAME`, `IP`, `MAC`, ...).
    pub args: HashMap<String, String>,
    pub path: Vec<String>,
}

impl CmdArgs {
    /// Reads what `command` requires from `env` (a lookup like `std::env::var`,
    /// so tests need no process env).
    pub fn from_env(
        command: Command,
        env: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, ConfError> {
        let get = |var: &'static str, required: bool| -> Result<String, ConfError> {
            match env(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(ConfError::InvalidEnv { var, why: "is not UTF-8".into() })
                }
                _ if required => Err(ConfError::MissingEnv(var)),
                _ => Ok(String::new()),
            }
        };
        let attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let mut out = CmdArgs {
            container_id: get("CNI_CONTAINERID", attachment)?,
            netns: get("CNI_NETNS", matches!(command, Command::Add | Command::Check))?,
            ifname: get("CNI_IFNAME", attachment)?,
            ..Default::default()
        };
        if attachment {
            validate_container_id(&out.container_id)
                .map_err(|why| ConfError::InvalidEnv { var: "CNI_CONTAINERID", why })?;
            validate_ifname(&out.ifname).map_err(|why| ConfError::InvalidEnv { var: "CNI_IFNAME", why })?;
        }
        if !out.netns.is_empty() && !out.netns.starts_with('/') {
            return Err(ConfError::InvalidEnv {
                var: "CNI_NETNS",
                why: format!("{:?} is not an absolute path", out.netns),
            });
        }
        out.args = parse_cni_args(&get("CNI_ARGS", false)?)?;
        out.path = get("CNI_PATH", false)?.split(':').filter(|p| !p.is_empty()).map(String::from).collect();
        Ok(out)
    }
}

/// `K1=V1;K2=V2`, as CONVENTIONS.md describes.
pub fn parse_cni_args(s: &str) -> Result<HashMap<String, String>, ConfError> {
    let mut out = HashMap::new();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| ConfError::InvalidEnv { var: "CNI_ARGS", why: format!("{pair:?} is not KEY=VALUE") })?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Result<String, std::env::VarError> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()).ok_or(std::env::VarError::NotPresent)
    }

    #[test]
    fn a_value_that_is_not_utf8_is_named_so() {
        let lookup = |k: &str| match k {
            "CNI_CONTAINERID" => Err(std::env::VarError::NotUnicode(std::ffi::OsString::from("x"))),
            "CNI_NETNS" => Ok("/x".to_string()),
            "CNI_IFNAME" => Ok("eth0".to_string()),
            _ => Err(std::env::VarError::NotPresent),
        };
        let e = CmdArgs::from_env(Command::Add, lookup).unwrap_err();
        assert!(matches!(e, ConfError::InvalidEnv { var: "CNI_CONTAINERID", .. }), "{e}");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn add_needs_container_netns_and_ifname() {
        let base = [("CNI_CONTAINERID", "c1"), ("CNI_NETNS", "/run/netns/x"), ("CNI_IFNAME", "eth0")];
        assert!(CmdArgs::from_env(Command::Add, env(&base)).is_ok());
        for missing in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let vars: Vec<_> = base.iter().copied().filter(|(k, _)| *k != missing).collect();
            assert_eq!(CmdArgs::from_env(Command::Add, env(&vars)).unwrap_err(), ConfError::MissingEnv(missing));
        }
    }

    #[test]
    fn del_accepts_empty_netns() {
        let vars = [("CNI_CONTAINERID", "c1"), ("CNI_NETNS", ""), ("CNI_IFNAME", "eth0")];
        assert_eq!(CmdArgs::from_env(Command::Del, env(&vars)).unwrap().netns, "");
    }

    #[test]
    fn rejects_bad_names_and_args() {
        let bad_id = [("CNI_CONTAINERID", "../etc"), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "eth0")];
        assert!(matches!(
            CmdArgs::from_env(Command::Add, env(&bad_id)),
            Err(ConfError::InvalidEnv { var: "CNI_CONTAINERID", .. })
        ));
        let bad_if = [("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "a/b")];
        assert!(matches!(
            CmdArgs::from_env(Command::Add, env(&bad_if)),
            Err(ConfError::InvalidEnv { var: "CNI_IFNAME", .. })
        ));
        let bad_args = [("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "e"), ("CNI_ARGS", "novalue")];
        assert!(matches!(
            CmdArgs::from_env(Command::Add, env(&bad_args)),
            Err(ConfError::InvalidEnv { var: "CNI_ARGS", .. })
        ));
    }

    #[test]
    fn parses_cni_args() {
        let a = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5").unwrap();
        assert_eq!(a["K8S_POD_NAME"], "web");
        assert_eq!(a["IP"], "10.0.0.5");
    }
}
