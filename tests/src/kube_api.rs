//! A Kubernetes API server for the tests, for Nodes only: get, list and
//! watch over plain HTTP, as the API server speaks them, bound in a namespace the
//! test made. No API server runs on these machines.

use serde_json::{json, Value};

/// A Kubernetes API server for Nodes only, in a namespace the test made:
/// list (`GET /api/v1/nodes`) and watch (`?watch=true`, chunked JSON
/// events), as the API server speaks them.
pub struct NodeApi {
    state: std::sync::Arc<std::sync::Mutex<ApiState>>,
}

#[derive(Default)]
struct ApiState {
    nodes: std::collections::BTreeMap<String, Value>,
    version: u64,
    watches: Vec<std::sync::mpsc::Sender<Value>>,
}

impl NodeApi {
    pub fn serve(listener: std::net::TcpListener) -> NodeApi {
        let state = std::sync::Arc::new(std::sync::Mutex::new(ApiState::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || NodeApi::connection(conn, &state));
            }
        });
        NodeApi { state }
    }

    fn connection(mut conn: std::net::TcpStream, state: &std::sync::Mutex<ApiState>) {
        use std::io::{BufRead, BufReader, Write};
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        loop {
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                head += &line;
                line.clear();
            }
            let Some(path) = head.split_whitespace().nth(1).map(str::to_string) else { return };
            if !path.starts_with("/api/v1/nodes") {
                let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                continue;
            }
            if path.contains("watch=true") || path.contains("watch=1") {
                let (tx, rx) = std::sync::mpsc::channel();
                state.lock().unwrap().watches.push(tx);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                for event in rx {
                    let chunk = format!("{event}\n");
                    if write!(conn, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
                        return;
                    }
                }
                return;
            }
            // GET /api/v1/nodes/NAME: one Node
            let name = path.split('?').next().unwrap_or_default().strip_prefix("/api/v1/nodes/").map(str::to_string);
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                let node = state.lock().unwrap().nodes.get(&name).cloned();
                let (status, body) = match node {
                    Some(n) => ("200 OK", n.to_string()),
                    None => ("404 Not Found", json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}).to_string()),
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                continue;
            }
            let body = {
                let s = state.lock().unwrap();
                json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": s.version.to_string()},
                    "items": s.nodes.values().collect::<Vec<_>>()})
                .to_string()
            };
            if write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .is_err()
            {
                return;
            }
        }
    }

    /// Adds or changes a Node and tells the watches.
    pub fn set(&self, mut node: Value) {
        let mut s = self.state.lock().unwrap();
        s.version += 1;
        node["metadata"]["resourceVersion"] = json!(s.version.to_string());
        let name = node["metadata"]["name"].as_str().unwrap().to_string();
        let kind = if s.nodes.insert(name, node.clone()).is_some() { "MODIFIED" } else { "ADDED" };
        s.watches.retain(|w| w.send(json!({"type": kind, "object": node})).is_ok());
    }

    pub fn delete(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.version += 1;
        let Some(mut node) = s.nodes.remove(name) else { return };
        node["metadata"]["resourceVersion"] = json!(s.version.to_string());
        s.watches.retain(|w| w.send(json!({"type": "DELETED", "object": node})).is_ok());
    }
}

/// A kubeconfig at `path` for the server on 127.0.0.1:`port` (plain HTTP,
/// any token).
pub fn write_kubeconfig(path: &str, port: u16) {
    let server = format!("http://127.0.0.1:{port}");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
    );
    std::fs::write(path, config).expect("write the kubeconfig");
}
