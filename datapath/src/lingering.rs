//! Work the kernel finishes after a call returns. Closing a NETLINK_NETFILTER
//! socket waits for nf_tables' deferred destruction of what recent
//! transactions deleted (an RCU grace period, about 20 ms here), and an
//! iptables-nft tool that deleted rules sits out the same wait as it exits.
//! Operations that delete hand both back in a `Lingering` instead of waiting.
//!
//! Dropping it waits: the sockets close and the tools are reaped, as a
//! long-running process wants. A short-lived one may instead hand it to a
//! background child and exit without dropping it (the plugin's retire.rs).

use std::process::Child;

#[derive(Default)]
pub struct Lingering {
    sockets: Vec<netlink_sys::Socket>,
    tools: Vec<Child>,
}

impl Lingering {
    pub fn socket(sock: netlink_sys::Socket) -> Self {
        Lingering { sockets: vec![sock], tools: Vec::new() }
    }

    /// A tool whose work is done but whose exit would wait.
    pub fn tool(child: Child) -> Self {
        Lingering { sockets: Vec::new(), tools: vec![child] }
    }

    pub fn extend(&mut self, mut other: Lingering) {
        self.sockets.append(&mut other.sockets);
        self.tools.append(&mut other.tools);
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty() && self.tools.is_empty()
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        for tool in &mut self.tools {
            let _ = tool.wait();
        }
    }
}
