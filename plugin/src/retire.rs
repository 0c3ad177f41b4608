//! The last step of DEL, off the runtime's critical path: deleting a retired
//! veth costs about 20 ms of RCU grace periods in the kernel. By now the veth
//! is down, off the bridge and renamed (datapath::link::veth), so the pod is
//! gone from the network's point of view; a child process finishes the job
//! after the container runtime has its answer. If the child dies, GC removes
//! the link. Only a short-lived, single-threaded process may do this, which
//! is why it lives in the plugin binary and not in the node library.

use datapath::lingering::Lingering;
use datapath::link::Link;
use datapath::netlink::RouteSocket;

/// Deletes the retired link (if any) in a detached child. The child also
/// inherits what would make this process wait for the kernel (`lingering`:
/// netfilter sockets, an iptables tool sitting out its exit), so its exit,
/// not this process's, waits.
pub fn finish_in_background(l: Option<Link>, lingering: Lingering) {
    let delete = || match &l {
        Some(l) => RouteSocket::open().ok().is_some_and(|mut nl| nl.link().delete(l.index, &l.name).is_ok()),
        None => true,
    };
    // SAFETY: weavice is single-threaded, so fork is safe; the child makes
    // only syscalls and leaves with _exit.
    match unsafe { libc::fork() } {
        0 => {
            detach();
            let ok = delete();
            // SAFETY: leave without running the parent's exit handlers again.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        // no child: delete here and wait for the kernel, slower but complete
        pid if pid < 0 => {
            delete();
        }
        // the child holds its own references now: this process exits
        // without closing or reaping them (at exit, closing ours does not
        // wait, and init reaps the tools)
        _ => std::mem::forget(lingering),
    }
}

/// New session, stdio on /dev/null: the container runtime reading our stdout
/// must see EOF when the parent exits, not when the child does.
fn detach() {
    // SAFETY: plain syscalls on descriptors this process owns.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
}
