//! The `weavice-policy` command line: list, generate, graph, explain,
//! validate. Exit 0 on success, 2 on bad input, 1 on any other failure (and
//! for a verdict that denies); messages on stderr.

use clap::{Args, Parser, Subcommand};
use policy::cluster::Cluster;
use policy::connections::{self, Connection};
use policy::error::{bad, Error, Result};
use policy::generate::{self, Generated, Granularity};
use policy::netpol::model::Protocol;
use policy::window::Window;
use policy::{explain, graph, list, netpol, scan, validate, yaml};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "weavice-policy", version, about = "NetworkPolicies and flow graphs from weavice node journals")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The observed connections, numbered.
    List {
        #[command(flatten)]
        input: Input,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// One NetworkPolicy YAML file per policy, for `kubectl apply -f DIR`.
    Generate {
        #[command(flatten)]
        input: Input,
        #[arg(long, value_enum, default_value = "workload")]
        granularity: Granularity,
        /// Egress to the DNS resolvers really used, UDP and TCP (the default).
        #[arg(long, overrides_with = "no_allow_dns")]
        allow_dns: bool,
        /// DNS flows as any other: only the protocol observed.
        #[arg(long, overrides_with = "allow_dns")]
        no_allow_dns: bool,
        /// Only these connections (ids from `list`), comma-separated.
        #[arg(long, value_delimiter = ',')]
        only: Vec<usize>,
        /// A new or empty directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// The verdict of policies for one connection, rule by rule. Exit 0
    /// allowed, 1 denied, 2 bad input.
    Explain {
        /// A file of one or more NetworkPolicies (YAML or JSON) or a directory of them; repeatable.
        #[arg(long = "policies", value_name = "PATH", required = true)]
        policies: Vec<PathBuf>,
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        /// NAMESPACE/POD, or an IP address.
        #[arg(long, value_name = "FROM")]
        from: String,
        /// NAMESPACE/POD, or an IP address.
        #[arg(long, value_name = "TO")]
        to: String,
        /// A number, or a container port name of the destination pod.
        #[arg(long, value_name = "N|NAME")]
        port: String,
        #[arg(long, value_enum, default_value = "TCP", ignore_case = true)]
        protocol: Protocol,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// Replays every recorded flow against policies: what they would deny and
    /// why, rules no flow used, selectors matching no pod. Exit 0 when nothing
    /// recorded would be denied, 1 otherwise, 2 on bad input.
    Validate {
        #[command(flatten)]
        input: Input,
        /// A file of one or more NetworkPolicies (YAML or JSON) or a directory of them; repeatable.
        #[arg(long = "policies", value_name = "PATH", required = true)]
        policies: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// The flow graph: FILE.svg, FILE.dot, or FILE.html (a report with the
    /// graph, the connections and the generated policies).
    Graph {
        #[command(flatten)]
        input: Input,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
struct Input {
    /// A journal file or directory (repeat for many nodes).
    #[arg(long = "journal", value_name = "PATH", required = true)]
    journals: Vec<PathBuf>,
    /// `kubectl get pods,namespaces,deployments,replicasets,statefulsets,daemonsets,services -A -o json`.
    #[arg(long, value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// Only connections of (and policies for) this namespace's pods.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Only flows seen at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only flows seen at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

/// What the journals and the cluster file say.
struct Observed {
    connections: Vec<Connection>,
    pods: Vec<(String, String)>,
    cluster: Option<Cluster>,
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("weavice-policy: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

/// The exit code: 0, or 1 for a verdict that denies.
fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Explain { policies, cluster, from, to, port, protocol, format } => {
            let policies = netpol::load::policies(&policies)?;
            let cluster = Cluster::load(&cluster)?;
            let from_end = explain::named("--from", &from, &cluster, &policies)?;
            let to_end = explain::named("--to", &to, &cluster, &policies)?;
            let port = explain::port(&port, protocol, &to_end)?;
            let v = explain::verdict(&policies, &cluster, &from_end, &to_end, protocol, port);
            let text = match format {
                Output::Json => serde_json::to_string_pretty(&explain::json(&v)).unwrap_or_default() + "\n",
                Output::Text => explain::text(&v, &format!("{from} -> {to} {protocol} {port}")),
            };
            print_out(&text)?;
            Ok(if v.allowed { 0 } else { 1 })
        }
        Command::Validate { input, policies, format } => {
            let policies = netpol::load::policies(&policies)?;
            let o = observe(&input)?;
            let r = validate::validate(&o.connections, &policies, o.cluster.as_ref());
            let text = match format {
                Output::Json => serde_json::to_string_pretty(&validate::json(&r)).unwrap_or_default() + "\n",
                Output::Text => validate::text(&r),
            };
            print_out(&text)?;
            Ok(if r.denied.is_empty() { 0 } else { 1 })
        }
        Command::List { input, output } => {
            let o = observe(&input)?;
            let listed = list::json(&o.connections, o.cluster.as_ref());
            let text = match output {
                Output::Json => serde_json::to_string_pretty(&listed).unwrap_or_default() + "\n",
                Output::Text => list::text(&listed),
            };
            print_out(&text)?;
            Ok(0)
        }
        Command::Generate { input, granularity, no_allow_dns, only, out, .. } => {
            check_out_dir(&out)?;
            let mut o = observe(&input)?;
            if !only.is_empty() {
                if let Some(id) = only.iter().find(|id| !o.connections.iter().any(|c| c.id == **id)) {
                    return Err(bad(format!(
                        "--only {id}: no such connection in this selection (`list` with the same --journal, --namespace, --since and --until numbers them)"
                    )));
                }
                o.connections.retain(|c| only.contains(&c.id));
                o.pods.clear();
            }
            let opts =
                generate::Options { granularity, allow_dns: !no_allow_dns, namespace: input.namespace.as_deref() };
            let g = generate::generate(&o.connections, &o.pods, o.cluster.as_ref(), &opts);
            report(&g);
            if g.policies.is_empty() {
                let why = if g.unresolved.is_empty() {
                    "the journal records no pods for it"
                } else {
                    "no pod could be resolved"
                };
                return Err(bad(format!("no policy to write: {why}")));
            }
            self_check(&g, &o)?;
            write_dir(&out, &g)?;
            eprintln!("weavice-policy: wrote {} policies to {}", g.policies.len(), out.display());
            Ok(0)
        }
        Command::Graph { input, out } => {
            let kind = out.extension().and_then(|e| e.to_str()).unwrap_or_default().to_string();
            if !matches!(kind.as_str(), "svg" | "dot" | "html") {
                return Err(bad(format!("--out {}: the name must end in .svg, .dot or .html", out.display())));
            }
            check_parent(&out)?;
            let o = observe(&input)?;
            let g = graph::build(&o.connections, o.cluster.as_ref());
            let text = match kind.as_str() {
                "svg" => graph::svg::render(&g),
                "dot" => graph::dot::render(&g),
                _ => {
                    let granularity = if o.cluster.is_some() { Granularity::Workload } else { Granularity::Namespace };
                    let opts =
                        generate::Options { granularity, allow_dns: true, namespace: input.namespace.as_deref() };
                    let generated = generate::generate(&o.connections, &o.pods, o.cluster.as_ref(), &opts);
                    let note = format!(
                        "{} granularity, DNS allowed to the resolvers used ({} policies; `weavice-policy generate` writes them)",
                        if o.cluster.is_some() { "workload" } else { "namespace (no --cluster file)" },
                        generated.policies.len()
                    );
                    let connections = list::json(&o.connections, o.cluster.as_ref());
                    let r = graph::html::Report {
                        graph: &g,
                        connections: &connections,
                        policy_note: note,
                        policies: &generated.policies,
                    };
                    graph::html::render(&r)
                }
            };
            write_file(&out, text.as_bytes())?;
            eprintln!("weavice-policy: wrote {}", out.display());
            Ok(0)
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) is no failure.
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("stdout")(e)),
        _ => Ok(()),
    }
}

fn observe(input: &Input) -> Result<Observed> {
    let window = Window::new(input.since.as_deref(), input.until.as_deref())?;
    let cluster = input.cluster.as_deref().map(Cluster::load).transpose()?;
    let scanned = scan::scan(&input.journals, &window, cluster.as_ref())?;
    for (path, n) in &scanned.skipped {
        eprintln!(
            "weavice-policy: {}: skipped {n} lines that are not records (torn or corrupt); read the rest",
            path.display()
        );
    }
    if scanned.lost > 0 {
        eprintln!(
            "weavice-policy: the journals record {} lost events (`lost` records): some flows may be missing",
            scanned.lost
        );
    }
    let mut connections = connections::numbered(scanned.connections);
    let mut pods: Vec<(String, String)> = scanned.pods.into_iter().collect();
    if let Some(ns) = &input.namespace {
        let touches =
            |c: &Connection| [&c.key.client, &c.key.server].iter().any(|p| p.pod().is_some_and(|(n, _)| n == ns));
        connections.retain(touches);
        pods.retain(|(n, _)| n == ns);
    }
    Ok(Observed { connections, pods, cluster })
}

/// The policies, read back as the API server would and replayed against
/// the connections they were made from, must deny none.
fn self_check(g: &Generated, o: &Observed) -> Result<()> {
    let mut read = Vec::new();
    for p in &g.policies {
        let parsed = netpol::model::parse(&p.value, &p.file_name())
            .map_err(|e| Error::Internal(format!("a generated policy does not read back: {e}")))?;
        read.push(parsed);
    }
    let r = validate::validate(&o.connections, &read, o.cluster.as_ref());
    if let Some(d) = r.denied.first() {
        return Err(Error::Internal(format!("the generated policies would deny a recorded connection: {d}")));
    }
    Ok(())
}

/// What generation could not do, on stderr.
fn report(g: &Generated) {
    if !g.unresolved.is_empty() {
        eprintln!("weavice-policy: {} pods could not be resolved to a workload and selector:", g.unresolved.len());
        for (pod, why) in &g.unresolved {
            eprintln!("  {pod}: {why}");
        }
    }
    for w in &g.withheld {
        eprintln!("weavice-policy: not written: {w}");
    }
    if g.inexpressible > 0 {
        eprintln!(
            "weavice-policy: {} flows are ICMP or other protocols without ports, which NetworkPolicy cannot allow by rule",
            g.inexpressible
        );
    }
}

/// `--out` before any work: a new or empty directory, in a directory that
/// exists; not a symlink, `.` or `..` (it is renamed into place).
fn check_out_dir(out: &Path) -> Result<()> {
    check_parent(out)?;
    if out.file_name().is_none() || fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(bad(format!("--out {}: name a new or empty directory (not a symlink, . or ..)", out.display())));
    }
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(bad(format!("--out {}: the directory is not empty", out.display())));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(bad(format!("--out {}: {e}", out.display()))),
    }
}

/// The directory `out` goes into must exist.
fn check_parent(out: &Path) -> Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(bad(format!("--out {}: {} is not a directory", out.display(), parent.display())));
    }
    Ok(())
}

/// The policies into `out`, whole or not at all: written beside it, then
/// renamed into place.
fn write_dir(out: &Path, g: &Generated) -> Result<()> {
    let tmp = sibling(out, "tmp");
    let _ = fs::remove_dir_all(&tmp);
    let written = (|| -> Result<()> {
        fs::create_dir(&tmp).map_err(Error::io(out))?;
        for p in &g.policies {
            fs::write(tmp.join(p.file_name()), yaml::to_yaml(&p.value)).map_err(Error::io(out))?;
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(Error::io(out))?;
        fs::rename(&tmp, out).map_err(Error::io(out))
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    written
}

fn write_file(out: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling(out, "tmp");
    let written = fs::write(&tmp, bytes).and_then(|_| fs::rename(&tmp, out)).map_err(Error::io(out));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// `.NAME.tmp-PID` beside `path`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}
