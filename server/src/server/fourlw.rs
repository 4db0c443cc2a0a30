//! Four-letter words: the text each command prints, in ZooKeeper's formats (reference §3.1).

use std::fmt::Write as _;
use std::path::Path;

use crate::replica::{Core, VERSION};

/// Runs one whitelisted command against the core's state.
pub fn execute(core: &mut Core, word: &str) -> String {
    match word {
        "ruok" => "imok".to_owned(),
        "srvr" => server_lines(core, false),
        "stat" => server_lines(core, true),
        "mntr" => mntr(core),
        "conf" => conf(core),
        "cons" => cons(core),
        "envi" => envi(),
        "wchs" => {
            let stats = core.tree.watch_stats();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                stats.connections, stats.paths, stats.total
            )
        }
        "wchc" => wchc(core),
        "wchp" => wchp(core),
        "dump" => dump(core),
        "isro" => if core.read_only_active() { "ro" } else { "rw" }.to_owned(),
        "dirs" => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            dir_size(&core.config.data_dir),
            dir_size(&core.config.data_log_dir)
        ),
        "srst" => {
            core.reset_stats();
            "Server stats reset.\n".to_owned()
        }
        "crst" => {
            core.reset_connection_stats();
            "Connection stats reset.\n".to_owned()
        }
        "gtmk" | "stmk" => format!("{}\n", core.trace_mask),
        "hash" => format!("0x{:x}: {}\n", core.tree.last_processed_zxid(), core.tree.digest() as i64),
        other => format!("Unknown command: {other}\n"),
    }
}

/// A double as Java's `Double.toString` prints the values we produce (rounded to 4 places).
pub fn java_double(value: f64) -> String {
    let rounded = (value * 10_000.0).round() / 10_000.0;
    let text = format!("{rounded}");
    if text.contains('.') { text } else { format!("{text}.0") }
}

fn server_lines(core: &Core, with_clients: bool) -> String {
    let mut out = format!("Zookeeper version: {VERSION}\n");
    if core.read_only_active() {
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if with_clients {
        out.push_str("Clients:\n");
        for state in core.connections.values() {
            let _ = writeln!(
                out,
                " /{}[1](queued={},recved={},sent={})",
                state.peer, state.unanswered, state.received, state.sent
            );
        }
        out.push('\n');
    }
    let latency = &core.latency;
    let _ = write!(
        out,
        "Latency min/avg/max: {}/{}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\n\
         Zxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        latency.min_ms,
        java_double(latency.avg_ms()),
        latency.max_ms,
        core.packets_received,
        core.packets_sent,
        core.connections.len(),
        outstanding_requests(core),
        core.tree.last_processed_zxid(),
        core.mode(),
        core.tree.node_count(),
    );
    out
}

fn mntr(core: &Core) -> String {
    let latency = &core.latency;
    let watches = core.tree.watch_stats();
    let ephemerals: usize = core.tree.ephemerals().values().map(Vec::len).sum();
    let (open_fds, max_fds) = file_descriptors();
    let lines: Vec<(&str, String)> = vec![
        ("zk_version", VERSION.to_owned()),
        ("zk_server_state", core.mode().to_owned()),
        ("zk_avg_latency", java_double(latency.avg_ms())),
        ("zk_max_latency", latency.max_ms.to_string()),
        ("zk_min_latency", latency.min_ms.to_string()),
        ("zk_packets_received", core.packets_received.to_string()),
        ("zk_packets_sent", core.packets_sent.to_string()),
        ("zk_num_alive_connections", core.connections.len().to_string()),
        ("zk_outstanding_requests", outstanding_requests(core).to_string()),
        ("zk_znode_count", core.tree.node_count().to_string()),
        ("zk_watch_count", watches.total.to_string()),
        ("zk_ephemerals_count", ephemerals.to_string()),
        ("zk_approximate_data_size", core.tree.approximate_data_size().to_string()),
        ("zk_open_file_descriptor_count", open_fds.to_string()),
        ("zk_max_file_descriptor_count", max_fds.to_string()),
        ("zk_uptime", core.started.elapsed().as_millis().to_string()),
        ("zk_global_sessions", core.tree.sessions().len().to_string()),
        // zk_local_sessions is shown only with localSessionsEnabled (below), and
        // zk_last_proposal_size is left out: proposal sizes are not tracked, and a constant
        // would read as a measure.
    ];
    let mut lines = lines;
    if let Some(peer_state) = core.peer_state() {
        lines.insert(2, ("zk_peer_state", peer_state.to_owned()));
    }
    if let Some(master) = core.observer_master_id() {
        lines.insert(3, ("zk_observer_master_id", master.to_string()));
    }
    if let Some(synced) = core.synced_followers() {
        lines.push(("zk_synced_followers", synced.to_string()));
    }
    if let Some(local) = core.local_session_count() {
        lines.push(("zk_local_sessions", local.to_string()));
    }
    if let Some(synced) = core.synced_observers() {
        lines.push(("zk_synced_observers", synced.to_string()));
    }
    let log = core.log_stats();
    // ZooKeeper's BASIC summaries: fsync time in ms, txns per group commit.
    let summary = |name: &str, h: &crate::txlog::stats::Histogram, scale: f64| {
        let avg = if h.count() == 0 { 0.0 } else { h.sum() as f64 / h.count() as f64 * scale };
        vec![
            (format!("zk_avg_{name}"), java_double(avg)),
            (format!("zk_min_{name}"), ((h.min() as f64 * scale) as u64).to_string()),
            (format!("zk_max_{name}"), ((h.max() as f64 * scale) as u64).to_string()),
            (format!("zk_cnt_{name}"), h.count().to_string()),
            (format!("zk_sum_{name}"), ((h.sum() as f64 * scale) as u64).to_string()),
        ]
    };
    let mut extra = summary("fsynctime", &log.fsync_micros, 0.001);
    if log.fsync_micros.count() > 0 {
        extra.extend(percentiles("fsynctime", &log.fsync_micros));
    }
    extra.extend(summary("sync_processor_batch_size", &log.txns_per_batch, 1.0));
    let stages = core.stage_stats();
    for (name, histogram) in crate::metrics::STAGE_MNTR_NAMES.iter().zip(stages.iter()) {
        if histogram.count() > 0 {
            extra.extend(summary(name, histogram, 0.001));
            extra.extend(percentiles(name, histogram));
        }
    }
    let elections = core.election_stats();
    if elections.count() > 0 {
        extra.extend(summary("election_time", &elections, 0.001));
        extra.extend(percentiles("election_time", &elections));
    }
    // ZooKeeper's auth_failed_count (which 3.8 counts for certificate logins on its Netty
    // port only) is every refused authentication here; then ferrokeeper's by scheme and the
    // secure port's failed handshakes by reason (`docs/metrics.md`).
    let auth_failures = core.metrics.auth_failures();
    let auth_total: u64 = auth_failures.iter().map(|(_, n)| n).sum();
    extra.push(("zk_auth_failed_count".to_owned(), auth_total.to_string()));
    for (scheme, count) in auth_failures {
        extra.push((format!("zk_auth_failures_{scheme}"), count.to_string()));
    }
    if core.config.quorum_tls.is_some() {
        for (side, count) in core.metrics.quorum_tls.failures() {
            extra.push((format!("zk_quorum_tls_handshake_failures_{side}"), count.to_string()));
        }
    }
    if core.config.client_tls.is_some() {
        let tls_failures = core.metrics.tls.failures();
        let tls_total: u64 = tls_failures.iter().map(|(_, n)| n).sum();
        extra.push(("zk_tls_handshakes".to_owned(), core.metrics.tls.handshakes.get().to_string()));
        extra.push(("zk_tls_handshake_failures".to_owned(), tls_total.to_string()));
        for (reason, count) in tls_failures {
            extra.push((format!("zk_tls_handshake_failures_{reason}"), count.to_string()));
        }
    }
    extra.push(("zk_txnlog_queue_depth".to_owned(), log.queue_depth().to_string()));
    extra.push(("zk_txnlog_backend".to_owned(), core.log_backend().to_owned()));
    let extra: Vec<(&str, String)> = extra.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    lines.extend(extra);
    let mut out = String::new();
    for (key, value) in lines {
        let _ = writeln!(out, "{key}\t{value}");
    }
    out
}

/// Client requests received and not yet answered, as `/metrics` reports them (one gauge, kept
/// by the core as requests arrive and replies leave).
fn outstanding_requests(core: &Core) -> i64 {
    core.metrics.outstanding_requests.get()
}

/// ZooKeeper's percentile keys of a time summary kept in µs (`zk_p50_X` .. `zk_p999_X`, ms, since start; the
/// upper bound of the power-of-two bucket holding the rank, capped by the maximum), and
/// `zk_histogram_X`: the non-empty buckets as `upper_bound_us=count` pairs, from which a reader
/// of two snapshots computes percentiles over the interval between them (fkload does).
fn percentiles(name: &str, h: &crate::txlog::stats::Histogram) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)]
        .iter()
        .map(|(key, q)| (format!("zk_{key}_{name}"), java_double(h.quantile(*q) as f64 * 0.001)))
        .collect();
    let mut previous = 0;
    let mut buckets = Vec::new();
    for (upper, cumulative) in h.cumulative() {
        if cumulative > previous {
            buckets.push(format!("{upper}={}", cumulative - previous));
        }
        previous = cumulative;
    }
    out.push((format!("zk_histogram_{name}"), buckets.join(" ")));
    out
}

fn conf(core: &Core) -> String {
    let c = &core.config;
    let mut text = conf_common(c);
    if let Some(quorum) = &c.quorum
        && let Some(me) = quorum.me()
    {
        // ZooKeeper's LearnerType ordinal: 0 participant, 1 observer.
        let peer_type = match me.peer_type {
            crate::config::PeerType::Participant => 0,
            crate::config::PeerType::Observer => 1,
        };
        text.push_str(&format!(
            "initLimit={}\nsyncLimit={}\nelectionAlg=3\nelectionPort={}\nquorumPort={}\npeerType={peer_type}\n\
             membership: \n{}",
            quorum.init_limit,
            quorum.sync_limit,
            me.election_port,
            me.quorum_port,
            quorum.membership(),
        ));
    }
    text
}

fn conf_common(c: &crate::config::Config) -> String {
    format!(
        "clientPort={}\nsecureClientPort={}\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\n\
         tickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\n\
         clientPortListenBacklog=-1\nserverId={}\n",
        // ZooKeeper prints -1 for a port it does not serve.
        c.client_port.map_or(-1, i32::from),
        c.client_tls.as_ref().map_or(-1, |tls| i32::from(tls.port)),
        c.data_dir.display(),
        dir_size(&c.data_dir),
        c.data_log_dir.display(),
        dir_size(&c.data_log_dir),
        c.tick_time_ms,
        c.max_client_cnxns,
        c.min_session_timeout_ms,
        c.max_session_timeout_ms,
        // ZooKeeper prints 0 standalone and the myid in an ensemble.
        c.quorum.as_ref().map_or(0, |q| q.my_id),
    )
}

fn cons(core: &Core) -> String {
    let mut out = String::new();
    for state in core.connections.values() {
        let _ = writeln!(
            out,
            " /{}[1](queued={},recved={},sent={},sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},\
             lresp={},llat={},minlat={},avglat={},maxlat={})",
            state.peer,
            state.unanswered,
            state.received,
            state.sent,
            state.caller.session_id,
            state.last_op,
            state.established_ms,
            state.timeout_ms,
            state.last_cxid,
            state.last_zxid,
            state.last_response_ms,
            state.last_latency_ms,
            state.latency.min_ms,
            state.latency.avg_ms() as u64,
            state.latency.max_ms,
        );
    }
    out.push('\n');
    out
}

fn envi() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let os_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={VERSION}\nhost.name={}\nos.name={}\nos.arch={}\nos.version={}\n\
         user.name={user}\nuser.home={home}\nuser.dir={cwd}\n",
        host.trim(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        os_release.trim(),
    )
}

fn session_of(core: &Core, conn: crate::tree::ConnId) -> i64 {
    core.connections.get(&conn).map(|s| s.caller.session_id).unwrap_or(0)
}

fn wchc(core: &Core) -> String {
    let mut out = String::new();
    for (conn, paths) in core.tree.watches_by_connection() {
        let _ = writeln!(out, "0x{:x}", session_of(core, conn));
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push('\n');
    out
}

fn wchp(core: &Core) -> String {
    let mut out = String::new();
    for (path, conns) in core.tree.watches_by_path() {
        let _ = writeln!(out, "{path}");
        for conn in conns {
            let _ = writeln!(out, "\t0x{:x}", session_of(core, conn));
        }
    }
    out.push('\n');
    out
}

fn dump(core: &Core) -> String {
    let sessions = core.tree.sessions();
    let mut out = format!("SessionTracker dump:\nGlobal Sessions({}):\n", sessions.len());
    for (id, timeout) in sessions {
        let _ = writeln!(out, "0x{id:x}\t{timeout}ms");
    }
    let ephemerals = core.tree.ephemerals();
    let _ = writeln!(out, "ephemeral nodes dump:\nSessions with Ephemerals ({}):", ephemerals.len());
    for (id, paths) in ephemerals {
        let _ = writeln!(out, "0x{id:x}:");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    let _ = writeln!(out, "Connections dump:\nConnections Sets ({}):", core.connections.len());
    for state in core.connections.values() {
        let _ = writeln!(out, "0x{:x}", state.caller.session_id);
    }
    out
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn file_descriptors() -> (usize, u64) {
    let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    (open, max)
}

#[cfg(test)]
mod tests {
    use super::java_double;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(2.0), "2.0");
        assert_eq!(java_double(1.23456), "1.2346");
    }
}
