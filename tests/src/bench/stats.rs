//! Latency statistics and the figures table every benchmark prints.

use std::time::Duration;

/// Throughput and latency of one benchmark row.
pub struct Stats {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

pub fn stats(mut latencies: Vec<Duration>, wall: Duration) -> Stats {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Stats {
        per_second: latencies.len() as f64 / wall.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Latencies gathered in several batches (rounds), and the time the batches took in all:
/// rows measured in turns, so that the simulator's drift over a run hits them alike.
#[derive(Default)]
pub struct Samples {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Samples {
    pub fn add(&mut self, latencies: Vec<Duration>, wall: Duration) {
        self.latencies.extend(latencies);
        self.wall += wall;
    }

    /// Operations measured so far.
    pub fn len(&self) -> usize {
        self.latencies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latencies.is_empty()
    }

    pub fn stats(&self) -> Stats {
        stats(self.latencies.clone(), self.wall)
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A figures table: one row per measurement, each with two ratios to the floor: of
/// rates (signs/s, what a busy server sees) and of medians (floor p50 over the row's
/// p50, what one client waits; a tail of slow outliers moves the first, not this).
pub struct Table {
    name_width: usize,
    floor: Stats,
}

impl Table {
    /// Prints the column headings.
    pub fn start(name_width: usize, floor: Stats) -> Table {
        println!(
            "{:<name_width$} {:>9} {:>9} {:>9} {:>7} {:>7}",
            "", "signs/s", "p50 ms", "p99 ms", "rate", "p50"
        );
        Table { name_width, floor }
    }

    pub fn row(&self, name: &str, s: &Stats) {
        println!(
            "{:<width$} {:>9.1} {:>9.2} {:>9.2} {:>7.2} {:>7.2}",
            name,
            s.per_second,
            ms(s.p50),
            ms(s.p99),
            s.per_second / self.floor.per_second,
            ms(self.floor.p50) / ms(s.p50),
            width = self.name_width
        );
    }
}
