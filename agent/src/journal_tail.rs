//! `weavice-agent journal tail`: the journal's records in order across its
//! files, then (with --follow) as they are appended; as one readable line
//! each, or as the JSON lines themselves. A line that is not a record (torn
//! by a crash, garbage) is skipped and counted on stderr, never fatal.

use journal::read::Follower;
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// How often --follow looks for new lines.
const POLL: Duration = Duration::from_millis(200);

/// Prints the records of `state_dir`'s journal; returns when they are out
/// (or stdout is closed), or never with `follow`.
pub fn tail(state_dir: &str, follow: bool, json: bool) -> std::io::Result<()> {
    let dir = journal::Journal::new(state_dir).dir().to_path_buf();
    if journal::rotate::files(&dir).is_empty() {
        let what = format!("no journal in {} (is --state-dir the networks' stateDir?)", dir.display());
        if !follow {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, what));
        }
        log::warn!("{what}; waiting for one");
    }
    let mut follower = Follower::from_start(&dir);
    let mut out = std::io::stdout().lock();
    let mut skipped = 0usize;
    loop {
        let mut failed = Ok(());
        follower.poll(&mut |line| {
            if failed.is_err() || line.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            let written = match serde_json::from_slice::<Value>(line) {
                Ok(r) if r.get("kind").is_some() && json => out.write_all(line).and_then(|()| out.write_all(b"\n")),
                Ok(r) if r.get("kind").is_some() => writeln!(out, "{}", text(&r)),
                _ => {
                    skipped += 1;
                    Ok(())
                }
            };
            failed = written;
        });
        match failed {
            // a closed pipe (`| head`) is the reader's way of saying enough
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        if skipped > 0 {
            log::warn!("{skipped} line(s) of {} skipped: not a record (torn or corrupt)", dir.display());
            skipped = 0;
        }
        if !follow {
            return Ok(());
        }
        out.flush()?;
        std::thread::sleep(POLL);
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// `2026-11-28T10:30:04.123Z`: milliseconds are enough for a person.
fn short_time(r: &Value) -> String {
    let t = s(&r["time"]);
    match t.get(..23) {
        Some(ms) if t.len() == 30 => format!("{ms}Z"),
        _ => t.to_string(),
    }
}

/// A flow's side: the pod by namespace/name, else its address.
fn side(r: &Value, end: &str) -> String {
    let e = &r[end];
    match (e["namespace"].as_str(), e["pod_name"].as_str()) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        _ => s(&r["IP"][end]).to_string(),
    }
}

/// One line for a person: `shop/frontend-1 -> shop/api-2 TCP 8080 (via 10.96.0.10:80) 14 pkts`.
pub fn text(r: &Value) -> String {
    let time = short_time(r);
    match s(&r["kind"]) {
        "pod" => {
            let who = match (r["pod"]["namespace"].as_str(), r["pod"]["pod_name"].as_str()) {
                (Some(ns), Some(name)) => format!("{ns}/{name}"),
                _ => s(&r["container_id"]).chars().take(12).collect(),
            };
            let ips: Vec<&str> = r["ips"].as_array().into_iter().flatten().map(s).collect();
            format!("{time} pod {} {who} {} ({} {})", s(&r["event"]), ips.join(","), s(&r["network"]), s(&r["ifname"]))
        }
        "flow" => {
            let l4 = r["l4"].as_object().and_then(|m| m.iter().next());
            let what = match l4 {
                Some((proto, v)) if v.get("destination_port").is_some() => format!("{proto} {}", v["destination_port"]),
                Some((proto, v)) if v.get("type").is_some() => format!("{proto} type {}", v["type"]),
                Some((_, v)) => format!("protocol {}", v["protocol"]),
                None => String::new(),
            };
            let mut line =
                format!("{time} {} {} -> {} {what}", s(&r["event"]), side(r, "source"), side(r, "destination"));
            if let Some(via) = r.get("via") {
                let ip = s(&via["ip"]);
                match via["port"].as_u64() {
                    Some(port) if ip.contains(':') => line += &format!(" (via [{ip}]:{port})"),
                    Some(port) => line += &format!(" (via {ip}:{port})"),
                    None => line += &format!(" (via {ip})"),
                }
            }
            if let (Some(p), Some(rp)) = (r["packets"].as_u64(), r["reply_packets"].as_u64()) {
                line += &format!(" {} pkts", p + rp);
            }
            if let Some(state) = r["tcp_state"].as_str() {
                line += &format!(" {state}");
            }
            line
        }
        "lost" => format!("{time} lost {} event(s) ({})", r["num_events_lost"], s(&r["source"])),
        other => format!("{time} {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_flow_reads_as_one_line_with_pods_service_and_packets() {
        let r = json!({"v":1,"time":"2026-11-28T10:30:04.123456789Z","kind":"flow","event":"end",
            "IP":{"source":"10.88.0.2","destination":"10.88.0.3","ipVersion":"IPv4"},
            "l4":{"TCP":{"source_port":40000,"destination_port":8080}},
            "source":{"namespace":"shop","pod_name":"frontend-1"},"destination":{"namespace":"shop","pod_name":"api-2"},
            "via":{"ip":"10.96.0.10","port":80},"packets":8,"reply_packets":6,"tcp_state":"TIME_WAIT"});
        assert_eq!(
            text(&r),
            "2026-11-28T10:30:04.123Z end shop/frontend-1 -> shop/api-2 TCP 8080 (via 10.96.0.10:80) 14 pkts TIME_WAIT"
        );
        let out = json!({"time":"t","kind":"flow","event":"new","IP":{"source":"10.88.0.2","destination":"203.0.113.2"},
            "l4":{"ICMPv4":{"type":8,"code":0}},"source":{"namespace":"shop","pod_name":"frontend-1"}});
        assert_eq!(text(&out), "t new shop/frontend-1 -> 203.0.113.2 ICMPv4 type 8");
        let v6 = json!({"time":"t","kind":"flow","event":"new","IP":{"source":"fd22::2","destination":"fd22::3"},
            "l4":{"TCP":{"source_port":40000,"destination_port":8080}},"via":{"ip":"fd96::10","port":80}});
        assert_eq!(text(&v6), "t new fd22::2 -> fd22::3 TCP 8080 (via [fd96::10]:80)");
    }
}
