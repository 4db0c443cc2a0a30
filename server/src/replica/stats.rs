//! Counters the four-letter words print (srvr/stat/mntr/cons) and their resets.

use std::sync::Arc;

use super::core::Core;

/// Latency and packet counters (srvr/stat/mntr/cons).
#[derive(Debug, Clone, Default)]
pub struct LatencyStats {
    pub count: u64,
    pub total_ms: u64,
    pub min_ms: u64,
    pub max_ms: u64,
}

impl LatencyStats {
    pub(crate) fn record(&mut self, ms: u64) {
        if self.count == 0 || ms < self.min_ms {
            self.min_ms = ms;
        }
        self.max_ms = self.max_ms.max(ms);
        self.count += 1;
        self.total_ms += ms;
    }

    pub fn avg_ms(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.total_ms as f64 / self.count as f64 }
    }
}

impl Core {
    pub fn log_stats(&self) -> Arc<crate::txlog::stats::LogStats> {
        self.io.log_stats()
    }

    pub fn election_stats(&self) -> Arc<crate::txlog::stats::Histogram> {
        self.metrics.election_micros.clone()
    }

    pub fn stage_stats(&self) -> Arc<[crate::txlog::stats::Histogram; crate::metrics::STAGES.len()]> {
        self.metrics.stage_micros.clone()
    }

    pub fn log_backend(&self) -> &'static str {
        self.io.log_backend()
    }

    /// `srst`: resets server-wide counters.
    pub fn reset_stats(&mut self) {
        self.packets_received = 0;
        self.packets_sent = 0;
        self.latency = LatencyStats::default();
    }

    /// `crst`: resets per-connection counters.
    pub fn reset_connection_stats(&mut self) {
        for state in self.connections.values_mut() {
            state.received = 0;
            state.sent = 0;
            state.latency = LatencyStats::default();
            state.last_op = "NA";
            state.last_cxid = -1;
            state.last_zxid = -1;
            state.last_response_ms = 0;
            state.last_latency_ms = 0;
        }
    }
}
