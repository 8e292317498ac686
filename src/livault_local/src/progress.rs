//! A minimal text progress bar on stderr for long CLI operations (e.g. large uploads).
//!
//! ```
//! let mut bar = livault_local::progress::ProgressBar::new("upload", 10);
//! for _ in 0..10 { bar.inc(1); }
//! bar.finish();
//! ```

use std::io::Write;
use std::time::Instant;

/// A progress bar drawn on stderr (redrawn in place; quiet when stderr is not a terminal
/// unless `LIVAULT_PROGRESS=1`).
pub struct ProgressBar {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    visible: bool,
    last_drawn: Option<u64>,
}

impl ProgressBar {
    /// A bar for `total` units labelled `label`.
    pub fn new(label: &str, total: u64) -> Self {
        use std::io::IsTerminal;
        let visible = std::io::stderr().is_terminal()
            || std::env::var("LIVAULT_PROGRESS").is_ok_and(|v| v == "1");
        ProgressBar {
            label: label.to_string(),
            total: total.max(1),
            done: 0,
            started: Instant::now(),
            visible,
            last_drawn: None,
        }
    }

    /// Units done so far.
    pub fn position(&self) -> u64 {
        self.done
    }

    /// Advances by `n` units.
    pub fn inc(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }

    /// Sets the position.
    pub fn set(&mut self, done: u64) {
        self.done = done.min(self.total);
        let pct = self.done * 100 / self.total;
        if self.last_drawn != Some(pct) {
            self.last_drawn = Some(pct);
            self.draw();
        }
    }

    /// Renders the bar as text (without the carriage return).
    pub fn render(&self) -> String {
        const WIDTH: u64 = 30;
        let filled = (self.done * WIDTH / self.total) as usize;
        format!(
            "{} [{}{}] {:>3}% ({}/{}) {:.1}s",
            self.label,
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled),
            self.done * 100 / self.total,
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64()
        )
    }

    fn draw(&self) {
        if self.visible {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r{}", self.render());
            let _ = err.flush();
        }
    }

    /// Completes the bar and ends the line.
    pub fn finish(&mut self) {
        self.set(self.total);
        if self.visible {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fraction() {
        let mut b = ProgressBar::new("up", 4);
        b.inc(1);
        assert!(b.render().starts_with("up [#######"));
        assert!(b.render().contains(" 25% (1/4)"));
        b.inc(10);
        assert_eq!(b.position(), 4);
    }
}
