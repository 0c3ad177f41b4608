//! The last step of DEL, off the runtime's critical path: deleting a retired
//! veth costs about 20 ms of RCU grace periods in the kernel. By now the veth
//! is down, off the bridge and renamed (see link::veth::retire), so the pod is
//! gone from the network's point of view; a child process finishes the job
//! after the container runtime has its answer. If the child dies, GC removes
//! the link.

use crate::link;

/// Deletes the retired link (if any) in a detached child; the child's exit
/// also releases the netfilter sockets that deleted elements (see
/// firewall::nft_netlink), which would otherwise delay this process's exit.
pub fn finish_in_background(l: Option<link::Link>) {
    let delete = || match &l {
        Some(l) => link::connect().and_then(|mut nl| link::delete(&mut nl, l.index, &l.name)).is_ok(),
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
        // no child: delete here, slower but complete
        pid if pid < 0 => {
            delete();
        }
        _ => {}
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
