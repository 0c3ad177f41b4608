//! Netfilter netlink sockets whose release would wait. Closing any bound
//! NETLINK_NETFILTER socket waits for nf_tables' deferred destruction of what
//! recent transactions deleted (an RCU grace period, about 20 ms here). Such
//! sockets are kept open until the process hands its last work to a
//! background child (retire.rs), whose exit releases them after the runtime
//! has its answer.

use netlink_sys::Socket;
use std::sync::Mutex;

static KEPT: Mutex<Vec<Socket>> = Mutex::new(Vec::new());

pub fn keep(sock: Socket) {
    if let Ok(mut kept) = KEPT.lock() {
        kept.push(sock);
    }
}

/// Whether any socket waits for a background child to release it.
pub fn any() -> bool {
    KEPT.lock().map(|k| !k.is_empty()).unwrap_or(false)
}
