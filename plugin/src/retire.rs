//! The last step of DEL, off the runtime's critical path: deleting a retired
//! veth costs about 20 ms of RCU grace periods in the kernel. By now the veth
//! is down, off the bridge and renamed (see link::veth::retire), so the pod is
//! gone from the network's point of view; a child process finishes the job
//! after the runtime has its answer. If the child dies, GC removes the link.

use crate::link;

pub fn delete_in_background(l: link::Link) {
    // SAFETY: the process is single-threaded here (the runtime is dropped), so
    // fork is safe; the child only makes syscalls and exits.
    match unsafe { libc::fork() } {
        0 => {
            detach();
            let ok = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map(|rt| {
                    rt.block_on(async { link::delete(&link::connect()?, l.index, &l.name).await })
                        .is_ok()
                })
                .unwrap_or(false);
            // SAFETY: leave without running the parent's atexit handlers twice.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid if pid < 0 => {
            // no child: delete here, slower but complete
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                let _ =
                    rt.block_on(async { link::delete(&link::connect()?, l.index, &l.name).await });
            }
        }
        _ => {}
    }
}

/// New session, stdio on /dev/null: the runtime reading our stdout must see
/// EOF when the parent exits, not when the child does.
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
