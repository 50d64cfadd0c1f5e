//! A one-line progress indicator on stderr: redrawn in place every 100 ms on
//! a terminal, one plain line every 5 s otherwise (logs stay readable).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub struct Progress {
    pub done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub fn start(label: &str, total: u64, enabled: bool) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let task = enabled.then(|| {
            let (done, stop, wake, label) =
                (done.clone(), stop.clone(), wake.clone(), label.to_string());
            tokio::spawn(async move {
                let tty = std::io::stderr().is_terminal();
                let every = if tty {
                    Duration::from_millis(100)
                } else {
                    Duration::from_secs(5)
                };
                let start = Instant::now();
                loop {
                    let finished = stop.load(Ordering::Acquire);
                    if !finished {
                        tokio::select! {
                            _ = tokio::time::sleep(every) => {}
                            _ = wake.notified() => {}
                        }
                    }
                    let finished = finished || stop.load(Ordering::Acquire);
                    let n = done.load(Ordering::Relaxed);
                    let el = start.elapsed().as_secs_f64();
                    let pct = if total > 0 {
                        n as f64 * 100.0 / total as f64
                    } else {
                        100.0
                    };
                    let rate = if el > 0.0 { n as f64 / el } else { 0.0 };
                    let line = format!("{label}: {n}/{total} ({pct:5.1}%)  {rate:.0}/s  {el:.1}s");
                    let mut e = std::io::stderr().lock();
                    if tty {
                        let _ = write!(e, "\r\x1b[2K{line}");
                        if finished {
                            let _ = writeln!(e);
                        }
                    } else {
                        let _ = writeln!(e, "{line}");
                    }
                    let _ = e.flush();
                    if finished {
                        break;
                    }
                }
            })
        });
        Progress {
            done,
            stop,
            wake,
            task,
        }
    }

    pub fn inc(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Prints the final line and stops the indicator.
    pub async fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_one();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
    }
}
