//! Nodes from the Kubernetes API: kube-runtime's watcher on Nodes (a list,
//! then a watch; relisting and retrying with backoff when the API server is
//! unreachable or the watch breaks), on a thread of its own with a
//! one-thread runtime. The daemon's main loop takes the latest whole list at
//! each round, so the watch never waits on the daemon nor the daemon on the
//! API. Credentials: the pod's service account in a cluster, else
//! `$KUBECONFIG` or `~/.kube/config`.

use super::Node;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

/// The watch, as the main loop sees it.
pub struct Watch {
    latest: Receiver<Vec<Node>>,
}

impl Watch {
    /// Starts the watch thread; it ends with `stop`.
    pub fn start(stop: &'static AtomicBool) -> std::io::Result<Watch> {
        let (tx, latest) = channel();
        std::thread::Builder::new().name("nodes".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(watch(tx, stop)),
                Err(e) => log::error!("nodes: cannot start the Kubernetes client's runtime: {e}"),
            }
        })?;
        Ok(Watch { latest })
    }

    /// The newest list the watch sent, if any came.
    pub fn poll(&mut self) -> Option<Vec<Node>> {
        self.latest.try_iter().last()
    }
}

async fn watch(tx: Sender<Vec<Node>>, stop: &'static AtomicBool) {
    let mut wait = Duration::from_secs(1);
    let client = loop {
        match Client::try_default().await {
            Ok(c) => break c,
            Err(e) => log::error!("nodes: no Kubernetes client ({e}); retrying in {}s", wait.as_secs()),
        }
        if sleep_or_stop(wait, stop).await {
            return;
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    };
    let api: Api<KubeNode> = Api::all(client);
    let mut stream = Box::pin(watcher::watcher(api, watcher::Config::default()).default_backoff());
    let (mut nodes, mut listing) = (BTreeMap::new(), BTreeMap::new());
    while !stop.load(Ordering::Relaxed) {
        // woken at least every second to notice the stop
        let Ok(next) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await else { continue };
        let changed = match next {
            None => break,
            Some(Err(e)) => {
                log::error!("nodes: the watch on Nodes: {e}; retrying with backoff");
                false
            }
            Some(Ok(Event::Init)) => {
                listing.clear();
                false
            }
            Some(Ok(Event::InitApply(n))) => {
                listing.insert(name(&n), n);
                false
            }
            Some(Ok(Event::InitDone)) => {
                nodes = std::mem::take(&mut listing);
                true
            }
            Some(Ok(Event::Apply(n))) => {
                nodes.insert(name(&n), n);
                true
            }
            Some(Ok(Event::Delete(n))) => nodes.remove(&name(&n)).is_some(),
        };
        if changed && tx.send(usable(&nodes)).is_err() {
            return;
        }
    }
}

fn name(n: &KubeNode) -> String {
    n.metadata.name.clone().unwrap_or_default()
}

/// The nodes the daemon can route to; the others named in the log.
fn usable(nodes: &BTreeMap<String, KubeNode>) -> Vec<Node> {
    let mut out = Vec::new();
    for n in nodes.values() {
        match super::node(&as_kubectl_prints(n)) {
            Ok(node) => out.push(node),
            Err(e) if !e.is_empty() => log::error!("nodes: {e}; skipped"),
            Err(_) => {}
        }
    }
    out
}

/// A Node as JSON with its kind, as kubectl prints it (watch events and
/// gets may leave the kind out), for [`super::node`].
fn as_kubectl_prints(n: &KubeNode) -> serde_json::Value {
    let mut value = serde_json::to_value(n).unwrap_or_default();
    value["kind"] = "Node".into();
    value
}

/// Sleeps `d`, or less when the daemon stops; whether it stopped.
async fn sleep_or_stop(d: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(200);
    let mut slept = Duration::ZERO;
    while slept < d {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        tokio::time::sleep(step).await;
        slept += step;
    }
    stop.load(Ordering::Relaxed)
}
