//! A progress bar on stderr, shown only when reading has taken more than a
//! second and stderr is a terminal: quick runs and pipes see nothing.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
    pending: u64,
}

impl Progress {
    pub fn new(total_bytes: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("reading journals {bar:40} {bytes}/{total_bytes} ({eta})") {
            bar.set_style(style);
        }
        Progress { bar, started: Instant::now(), shown: false, pending: 0 }
    }

    pub fn add(&mut self, bytes: u64) {
        self.pending += bytes;
        // the bar's own bookkeeping costs: batch it
        if self.pending < 1 << 20 {
            return;
        }
        self.bar.inc(std::mem::take(&mut self.pending));
        if !self.shown && self.started.elapsed() > Duration::from_secs(1) && std::io::stderr().is_terminal() {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }

    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
