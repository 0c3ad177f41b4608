//! weavice-agent: the node agent and its CLI, on the datapath library.
//! `repair` restores what weavice installed on the node from weavice's own
//! state after someone flushed the tables (`nft flush ruleset`) or deleted a
//! bridge; `chain` keeps security-function chains; `run` is the node daemon
//! (flows recorded into the journal, chains installed at start, route
//! functions probed); `journal tail` prints the journal; `sockets` lists
//! what each pod listens on, checked against policies. Exit codes: 0 done,
//! 1 failed on the node, 2 bad input.

mod chain;
mod flows;
mod install;
mod journal_tail;
mod logging;
mod nodes;
mod notify;
mod probe;
mod repair;
mod run;
mod sockets;

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
    /// Restore the bridge, gateway addresses, sysctls, netfilter rules, port
    /// mappings and anti-spoofing identities of every network weavice
    /// recorded (idempotent).
    Repair {
        /// The networks' `stateDir`.
        #[arg(long, global = true, default_value = conf::netconf::DEFAULT_STATE_DIR, value_parser = absolute)]
        state_dir: PathBuf,
    },
    /// The node daemon: records the pods' flows into the journal, installs
    /// the stored chains, probes their route functions and applies each
    /// chain's failure policy to one that stops forwarding. Runs until
    /// SIGTERM or SIGINT.
    Run {
        /// The networks' `stateDir`.
        #[arg(long, default_value = conf::netconf::DEFAULT_STATE_DIR, value_parser = absolute)]
        state_dir: PathBuf,
        /// Milliseconds between probe rounds.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60000))]
        interval_ms: u64,
        /// The daemon's own log (also written to stderr).
        #[arg(long, default_value = "/var/log/weavice-agent.log", value_parser = absolute)]
        log_file: PathBuf,
        /// The journal file's size at which it is rotated.
        #[arg(long, default_value_t = journal::rotate::DEFAULT_MAX_BYTES, value_parser = clap::value_parser!(u64).range(4096..))]
        journal_max_bytes: u64,
        /// Journal files kept, the one written included.
        #[arg(long, default_value_t = journal::rotate::DEFAULT_MAX_FILES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10000))]
        journal_max_files: usize,
        /// The cluster's nodes, as `kubectl get nodes -o json` prints them
        /// (read again when it changes): routes to the other nodes' pods.
        #[arg(long, value_name = "FILE", value_parser = absolute, conflicts_with = "kube")]
        nodes: Option<PathBuf>,
        /// The same from the Kubernetes API: a watch on Nodes (in a pod: its
        /// service account; else $KUBECONFIG or ~/.kube/config).
        #[arg(long)]
        kube: bool,
        /// This node's name in the node list (default: $NODE_NAME, then the host name).
        #[arg(long, value_name = "NAME")]
        node_name: Option<String>,
    },
    /// The node journal: pods and flows (docs/journal.md).
    Journal {
        #[command(subcommand)]
        action: JournalAction,
        /// The networks' `stateDir`.
        #[arg(long, global = true, default_value = conf::netconf::DEFAULT_STATE_DIR, value_parser = absolute)]
        state_dir: PathBuf,
    },
    /// Each weavice pod's listening and established TCP and UDP sockets, read
    /// in its network namespace; with --policies and --cluster, listeners no
    /// ingress rule reaches, allowed ports where nothing listens, and
    /// listeners open because no policy isolates the pod.
    Sockets {
        /// The networks' `stateDir` (pods come from its journal).
        #[arg(long, default_value = conf::netconf::DEFAULT_STATE_DIR, value_parser = absolute)]
        state_dir: PathBuf,
        /// Only this namespace's pods.
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// NetworkPolicies: a YAML or JSON file, or a directory (repeatable).
        #[arg(long, value_name = "PATH")]
        policies: Vec<PathBuf>,
        /// `kubectl get pods,namespaces,... -A -o json` (the pods' labels).
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// Install the CNI plugins and the node's conflist (the DaemonSet's init
    /// container): the plugins beside this binary into --cni-bin-dir, the
    /// conflist with the node's podCIDRs into --cni-conf-dir. Retries with
    /// backoff until done.
    Install {
        #[arg(long, default_value = "/opt/cni/bin", value_parser = absolute)]
        cni_bin_dir: PathBuf,
        #[arg(long, default_value = "/etc/cni/net.d", value_parser = absolute)]
        cni_conf_dir: PathBuf,
        /// The node's pod ranges; without it, the node's Node object says
        /// (`spec.podCIDRs`, through the Kubernetes API).
        #[arg(long, value_name = "CIDR")]
        pod_cidr: Vec<ipnet::IpNet>,
        /// This node's name (default: $NODE_NAME, then the host name).
        #[arg(long, value_name = "NAME")]
        node_name: Option<String>,
    },
    /// Security-function chains: steer chosen pod-to-pod traffic through
    /// functions (docs/chains.md).
    Chain {
        #[command(subcommand)]
        action: ChainAction,
        /// The networks' `stateDir`.
        #[arg(long, global = true, default_value = conf::netconf::DEFAULT_STATE_DIR, value_parser = absolute)]
        state_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum JournalAction {
    /// The journal's records, oldest first, across its files.
    Tail {
        /// Then print records as they are appended, until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// `text`: one line for a person; `json`: the records themselves.
        #[arg(long, short, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Subcommand)]
enum ChainAction {
    /// Apply a chain spec (YAML); idempotent, a changed spec replaces the old.
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// The chains, their functions' health and the pods each side matches.
    List {
        #[arg(long, short, value_enum, default_value = "text")]
        output: Output,
    },
    /// Delete a chain.
    Delete { name: String },
    /// Show the packet-mark bits chains use, or choose others (while the node
    /// has no chains): one run of at least 7 bits, e.g. 0x3fff (the default).
    Marks {
        #[arg(long, value_name = "MASK", value_parser = mask)]
        set: Option<u32>,
    },
}

fn mask(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    u32::from_str_radix(digits, 16).map_err(|_| format!("{s:?} is not a hexadecimal mask like 0x3fff"))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

/// `--node-name`, else `$NODE_NAME`, else the host name.
fn this_node(given: Option<String>) -> String {
    given.or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty())).unwrap_or_else(journal::node_name)
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
    let log_file = match &cli.command {
        Cmd::Run { log_file, .. } => Some(log_file.clone()),
        _ => None,
    };
    logging::install(cli.verbose || log_file.is_some(), log_file.as_deref());
    match cli.command {
        Cmd::Run { state_dir, interval_ms, journal_max_bytes, journal_max_files, nodes, kube, node_name, .. } => {
            let me = this_node(node_name);
            let from = match (nodes, kube) {
                (Some(file), _) => Some(nodes::From::File(file)),
                (None, true) => Some(nodes::From::Api),
                (None, false) => None,
            };
            let nodes = from.map(|f| (f, me));
            let limits = journal::rotate::Limits { max_bytes: journal_max_bytes, max_files: journal_max_files };
            let interval = std::time::Duration::from_millis(interval_ms);
            match run::run(&state_dir.to_string_lossy(), interval, limits, nodes) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("run: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Chain { action, state_dir } => {
            let state_dir = state_dir.to_string_lossy();
            let done = match action {
                ChainAction::Apply { file } => chain::apply(&file.to_string_lossy(), &state_dir),
                ChainAction::Delete { name } => chain::delete(&name, &state_dir),
                ChainAction::Marks { set } => chain::marks(&state_dir, set),
                ChainAction::List { output } => chain::list(&state_dir).map(|l| match output {
                    Output::Json => format!("{l:#}"),
                    Output::Text => chain::text(&l).trim_end().to_string(),
                }),
            };
            match done {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log::error!("chain: {e}");
                    ExitCode::from(match e {
                        chain::ChainCmdError::Input(_) => 2,
                        chain::ChainCmdError::Node(_) => 1,
                    })
                }
            }
        }
        Cmd::Journal { action: JournalAction::Tail { follow, output }, state_dir } => {
            match journal_tail::tail(&state_dir.to_string_lossy(), follow, matches!(output, Output::Json)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("journal tail: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Sockets { state_dir, namespace, policies, cluster, format } => {
            let checked = sockets::Policies::load(&policies, cluster.as_ref());
            let report =
                checked.and_then(|p| sockets::report(&state_dir.to_string_lossy(), namespace.as_deref(), p.as_ref()));
            match report {
                Ok(r) => {
                    match format {
                        Output::Json => println!("{r:#}"),
                        Output::Text => print!("{}", sockets::text(&r)),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log::error!("sockets: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Cmd::Install { cni_bin_dir, cni_conf_dir, pod_cidr, node_name } => {
            let node_name = this_node(node_name);
            install::run(&install::Install {
                bin_dir: cni_bin_dir,
                conf_dir: cni_conf_dir,
                pod_cidrs: pod_cidr,
                node_name,
            });
            ExitCode::SUCCESS
        }
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
