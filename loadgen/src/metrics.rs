//! fkload's own Prometheus metrics (ops, errors, latency by op and target), served over a tiny
//! HTTP responder on `--metrics-port`.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::workload::OpKind;

type Labels = Vec<(String, String)>;

/// Handles on the metrics, pre-resolved per op so recording does no lookup.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    ops: Vec<Counter>,
    latency: Vec<Histogram>,
    errors: Family<Labels, Counter>,
    target: String,
}

impl Metrics {
    /// Registers the metrics for one target (`host:port,...`).
    pub fn new(target: &str) -> Metrics {
        let mut registry = Registry::with_prefix("fkload");
        let ops_family = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let latency_family = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        registry.register("ops", "Completed operations by op and target", ops_family.clone());
        registry.register("errors", "Failed operations by op, target and error code", errors.clone());
        registry.register(
            "latency_seconds",
            "Latency by op and target (response time in open loop, else service time)",
            latency_family.clone(),
        );
        let labels = |op: OpKind| {
            vec![("op".to_owned(), op.name().to_owned()), ("target".to_owned(), target.to_owned())]
        };
        let ops = OpKind::ALL.iter().map(|op| ops_family.get_or_create(&labels(*op)).clone()).collect();
        let latency =
            OpKind::ALL.iter().map(|op| latency_family.get_or_create(&labels(*op)).clone()).collect();
        Metrics { registry: Arc::new(registry), ops, latency, errors, target: target.to_owned() }
    }

    /// Creates the error series of `kinds` (the workload's ops) for every ZooKeeper error code,
    /// at zero, so that "no errors" reads 0 from the first scrape rather than "no data".
    pub fn start_at_zero(&self, kinds: &[OpKind]) {
        for op in kinds {
            for code in ferrokeeper_client::Code::ALL.iter().filter(|c| c.as_i32() != 0) {
                let labels = vec![
                    ("op".to_owned(), op.name().to_owned()),
                    ("target".to_owned(), self.target.clone()),
                    ("code".to_owned(), code.message().to_owned()),
                ];
                let _ = self.errors.get_or_create(&labels);
            }
        }
    }

    /// Records one op.
    pub fn observe(&self, op: OpKind, latency_us: u64, error: Option<&str>) {
        self.ops[op.index()].inc();
        self.latency[op.index()].observe(latency_us as f64 / 1e6);
        if let Some(code) = error {
            let labels = vec![
                ("op".to_owned(), op.name().to_owned()),
                ("target".to_owned(), self.target.clone()),
                ("code".to_owned(), code.to_owned()),
            ];
            self.errors.get_or_create(&labels).inc();
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Serves `GET /metrics` (any path, in fact) on 127.0.0.1:`port` until the task is dropped.
    pub async fn serve(self, port: u16) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        Ok(tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let me = self.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf)).await;
                    let body = me.render();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        }))
    }
}
