//! Logs, spans and the optional OpenTelemetry export (OTLP over HTTP/protobuf).
//!
//! - **Logs**: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`), as text or
//!   (`FK_LOG_FORMAT=json`) one JSON object per line.
//! - **Lifecycle spans** (`tracing`): `conn` (one client connection, DEBUG), `recovery`, `election`
//!   and `snapshot`. They put log lines in context; with OTLP on, `recovery`, `election` and
//!   `snapshot` are exported too (through `tracing-opentelemetry`), with the log events inside
//!   them as span events.
//! - **Request and commit-stage spans**: [`RequestTracer`] builds them from the instants the
//!   commit-stage histograms are computed from, so a trace and `/metrics` tell the same story.
//!   A sampled write gets a `SERVER` span named after its opcode (request received → reply
//!   queued) with the children `queue_wait`, `log_fsync` (standalone) or `quorum_ack`
//!   (ensemble), and `apply`; a sampled read gets the one span. A follower's traced write
//!   carries its span's ids to the leader, whose `forwarded` span (with the same three stages
//!   as seen there) joins the follower's trace.
//!
//! **Off by default, no cost when off**: without an endpoint there is no exporter, no provider
//! and no OpenTelemetry layer, and the core's `Option<RequestTracer>` is `None`: a request pays
//! one branch. Switched on by `otlp.endpoint` in zoo.cfg or the standard `OTEL_*` environment
//! (see [`OtlpSettings::resolve`]). Export never blocks the server: spans go to the SDK's
//! bounded queue and its own thread; when the queue is full they are dropped and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use ferrokeeper_proto::op;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::OtlpConfig;
use crate::quorum::wire::TraceParent;

/// Share of requests traced when neither zoo.cfg nor `OTEL_TRACES_SAMPLER` says.
pub const DEFAULT_SAMPLE_RATIO: f64 = 1.0;
const DEFAULT_SERVICE_NAME: &str = "ferrokeeper";
const TRACES_PATH: &str = "/v1/traces";
/// The `tracing` spans exported when OTLP is on (`conn` stays in the logs only).
const EXPORTED_SPANS: [&str; 3] = ["recovery", "election", "snapshot"];

/// Where and what to export, once zoo.cfg and the environment are combined.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// The OTLP/HTTP traces URL (`…/v1/traces`).
    pub endpoint: String,
    pub service_name: String,
    /// Share of requests traced, 0 to 1.
    pub sample_ratio: f64,
}

impl OtlpSettings {
    /// `None` when export is off. zoo.cfg's `otlp.*` keys win over the environment:
    /// - `OTEL_SDK_DISABLED=true` turns export off whatever else is set;
    /// - endpoint: `otlp.endpoint`, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), else
    ///   `OTEL_EXPORTER_OTLP_ENDPOINT`; a base URL gets `/v1/traces` appended; none: off;
    /// - ratio: `otlp.sampleRatio`, else `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`,
    ///   `traceidratio` with `OTEL_TRACES_SAMPLER_ARG`, and their `parentbased_` forms), else 1;
    /// - service name: `otlp.serviceName`, else `OTEL_SERVICE_NAME`, else `ferrokeeper`.
    ///
    /// Only `http://` and the `http/protobuf` protocol are supported; anything else is an error
    /// rather than a silently missing trace.
    pub fn resolve(
        config: &OtlpConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let env = |key: &str| env(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let endpoint = match (
            &config.endpoint,
            env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _, _) => traces_url(url),
            (None, Some(url), _) => url,
            (None, None, Some(base)) => traces_url(&base),
            (None, None, None) => return Ok(None),
        };
        if endpoint.starts_with("https://") {
            return Err(format!(
                "OTLP endpoint {endpoint}: only http:// is supported (this build has no TLS); \
                 export to a local collector or agent"
            ));
        }
        if !endpoint.starts_with("http://") {
            return Err(format!("OTLP endpoint {endpoint}: expected an http:// URL"));
        }
        if let Some((key, protocol)) = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]
            .into_iter()
            .find_map(|key| env(key).map(|v| (key, v)))
            && protocol != "http/protobuf"
        {
            return Err(format!("{key}={protocol}: only http/protobuf is supported"));
        }
        let sample_ratio = match config.sample_ratio {
            Some(ratio) => ratio,
            None => sampler_ratio(env("OTEL_TRACES_SAMPLER"), env("OTEL_TRACES_SAMPLER_ARG"))?,
        };
        let service_name = config
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        Ok(Some(OtlpSettings { endpoint, service_name, sample_ratio }))
    }
}

fn traces_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with(TRACES_PATH) { url.to_owned() } else { format!("{url}{TRACES_PATH}") }
}

fn sampler_ratio(sampler: Option<String>, arg: Option<String>) -> Result<f64, String> {
    let Some(sampler) = sampler else { return Ok(DEFAULT_SAMPLE_RATIO) };
    match sampler.as_str() {
        "always_on" | "parentbased_always_on" => Ok(1.0),
        "always_off" | "parentbased_always_off" => Ok(0.0),
        "traceidratio" | "parentbased_traceidratio" => match arg {
            None => Ok(1.0),
            Some(arg) => match arg.parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
                _ => Err(format!("OTEL_TRACES_SAMPLER_ARG={arg}: expected a number from 0 to 1")),
            },
        },
        other => Err(format!(
            "OTEL_TRACES_SAMPLER={other}: expected always_on, always_off or traceidratio \
             (or their parentbased_ forms)"
        )),
    }
}

/// Counters of the export, shown in `/metrics` when OTLP is on.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Requests chosen by the sampler.
    pub traced_requests: AtomicU64,
    /// Spans the collector accepted.
    pub exported_spans: AtomicU64,
    /// Spans in batches the collector refused or that could not be sent.
    pub failed_spans: AtomicU64,
    /// Batches that failed.
    pub failed_batches: AtomicU64,
}

/// The OTLP exporter, counting what it delivers (the SDK reports drops only at shutdown).
#[derive(Debug)]
struct CountingExporter {
    inner: opentelemetry_otlp::SpanExporter,
    stats: Arc<ExportStats>,
}

impl SpanExporter for CountingExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let spans = batch.len() as u64;
        let export = self.inner.export(batch);
        let stats = self.stats.clone();
        async move {
            let result = export.await;
            match &result {
                Ok(()) => {
                    stats.exported_spans.fetch_add(spans, Relaxed);
                }
                Err(error) => {
                    stats.failed_spans.fetch_add(spans, Relaxed);
                    let failures = stats.failed_batches.fetch_add(1, Relaxed) + 1;
                    // 1st, 2nd, 4th, 8th… failure: visible, without flooding the log.
                    if failures.is_power_of_two() {
                        tracing::warn!(%error, failures, spans, "OTLP export failed; spans dropped");
                    }
                }
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `tracing`'s human-readable lines (the default).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `span`, `spans`.
    Json,
}

impl LogFormat {
    /// From `FK_LOG_FORMAT` (`text` or `json`; unset: text).
    pub fn from_env(value: Option<&str>) -> Result<LogFormat, String> {
        match value.map(str::trim) {
            None | Some("" | "text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(format!("FK_LOG_FORMAT={other}: expected text or json")),
        }
    }
}

/// What [`Telemetry::init`] set up; [`Telemetry::shutdown`] sends the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the process's `tracing` subscriber: logs to stderr, plus, when `otlp` is given,
    /// the OpenTelemetry pipeline. `resource` describes this server (`service.instance.id`…).
    /// Returns the request tracer the core uses (None when export is off).
    pub fn init(
        format: LogFormat,
        otlp: Option<&OtlpSettings>,
        resource: Vec<KeyValue>,
    ) -> Result<(Telemetry, Option<RequestTracer>), String> {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let logs = match format {
            LogFormat::Text => {
                tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter).boxed()
            }
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .boxed(),
        };
        let Some(settings) = otlp else {
            tracing_subscriber::registry().with(logs).try_init().map_err(|e| e.to_string())?;
            return Ok((Telemetry { provider: None }, None));
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .build()
            .map_err(|e| format!("cannot set up the OTLP exporter for {}: {e}", settings.endpoint))?;
        let stats = Arc::new(ExportStats::default());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(CountingExporter { inner: exporter, stats: stats.clone() })
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .with_attributes(resource)
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("ferrokeeper");
        let lifecycle = tracing_opentelemetry::layer().with_tracer(tracer.clone()).with_filter(
            tracing_subscriber::filter::filter_fn(|meta| {
                if meta.is_span() {
                    EXPORTED_SPANS.contains(&meta.name())
                } else {
                    *meta.level() <= tracing::Level::INFO
                }
            })
            .with_max_level_hint(tracing::Level::INFO),
        );
        tracing_subscriber::registry().with(logs).with(lifecycle).try_init().map_err(|e| e.to_string())?;
        tracing::info!(
            endpoint = settings.endpoint,
            service = settings.service_name,
            sample_ratio = settings.sample_ratio,
            "exporting traces over OTLP"
        );
        let requests = RequestTracer::new(tracer, settings.sample_ratio, stats);
        Ok((Telemetry { provider: Some(provider) }, Some(requests)))
    }

    /// Flushes queued spans (bounded: a collector that is down costs at most a few seconds).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(%error, "OTLP export did not finish");
        }
    }
}

/// Builds request and commit-stage spans in the core task. Cheap to clone.
#[derive(Clone)]
pub struct RequestTracer {
    tracer: SdkTracer,
    /// A request is traced when a random `u64` falls below this; `None`: every request.
    threshold: Option<u64>,
    pub stats: Arc<ExportStats>,
}

/// Converts the core's `Instant`s to the wall-clock times spans carry.
struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn now() -> Clock {
        Clock { wall: SystemTime::now(), mono: Instant::now() }
    }

    fn at(&self, t: Instant) -> SystemTime {
        match self.mono.checked_duration_since(t) {
            Some(ago) => self.wall - ago,
            None => self.wall + t.duration_since(self.mono),
        }
    }
}

impl RequestTracer {
    pub fn new(tracer: SdkTracer, sample_ratio: f64, stats: Arc<ExportStats>) -> RequestTracer {
        let threshold = if sample_ratio >= 1.0 {
            None
        } else {
            // The ratio of the u64 range below the threshold; 0 traces nothing.
            Some((sample_ratio.max(0.0) * u64::MAX as f64) as u64)
        };
        RequestTracer { tracer, threshold, stats }
    }

    /// Whether to trace the next request.
    pub fn sample(&self) -> bool {
        let sampled = match self.threshold {
            None => true,
            Some(0) => false,
            Some(threshold) => rand::random::<u64>() < threshold,
        };
        if sampled {
            self.stats.traced_requests.fetch_add(1, Relaxed);
        }
        sampled
    }

    fn builder(
        &self,
        op_code: i32,
        session: i64,
        xid: i32,
        start: SystemTime,
    ) -> opentelemetry::trace::SpanBuilder {
        self.tracer
            .span_builder(op::name(op_code))
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new("rpc.system", "zookeeper"),
                KeyValue::new("rpc.method", op::name(op_code)),
                KeyValue::new("zk.session_id", format!("0x{session:x}")),
                KeyValue::new("zk.xid", i64::from(xid)),
            ])
    }

    /// Opens a write's span at `received`; [`RequestTrace::finish`] adds its stages and ends it.
    pub fn start(&self, op_code: i32, received: Instant, session: i64, xid: i32) -> RequestTrace {
        let start = Clock::now().at(received);
        let span = self.builder(op_code, session, xid, start).start(&self.tracer);
        RequestTrace { cx: Some(Context::new().with_span(span)) }
    }

    /// Leader: opens the span of a write a follower forwarded with `parent` (its request span).
    /// Named `forwarded` (the opcode is `rpc.method`), so the two nodes' spans stay apart.
    pub fn start_forwarded(
        &self,
        op_code: i32,
        received: Instant,
        session: i64,
        xid: i32,
        parent: TraceParent,
    ) -> RequestTrace {
        let remote = SpanContext::new(
            TraceId::from(parent.trace_id),
            SpanId::from(parent.span_id),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let parent = Context::new().with_remote_span_context(remote);
        let mut builder = self.builder(op_code, session, xid, Clock::now().at(received));
        builder.name = "forwarded".into();
        let span = builder.start_with_context(&self.tracer, &parent);
        RequestTrace { cx: Some(Context::new().with_span(span)) }
    }

    /// A read (or any request answered without a txn): one span, received → now.
    pub fn read(&self, op_code: i32, received: Instant, session: i64, xid: i32, zxid: i64, err: i32) {
        let clock = Clock::now();
        let (attributes, status) = outcome(zxid, err);
        let mut builder = self.builder(op_code, session, xid, clock.at(received));
        builder.attributes.get_or_insert_with(Vec::new).extend(attributes);
        let mut span = builder.start(&self.tracer);
        if let Some(status) = status {
            span.set_status(status);
        }
        span.end_with_timestamp(clock.wall);
    }
}

/// The reply, as span attributes: the zxid and the error code if any. System errors (-1 to
/// -99) also mark the span as failed; API errors such as NoNode are answers, not failures.
fn outcome(zxid: i64, err: i32) -> (Vec<KeyValue>, Option<Status>) {
    let mut attributes = vec![KeyValue::new("zk.zxid", zxid)];
    let mut status = None;
    if err != 0 {
        attributes.push(KeyValue::new("zk.err", i64::from(err)));
        if (-99..=-1).contains(&err) {
            let message = ferrokeeper_proto::Code::from_i32(err).map_or("system error", |c| c.message());
            status = Some(Status::error(message));
        }
    }
    (attributes, status)
}

/// A sampled write in flight (its span is open). Dropped without [`RequestTrace::finish`]
/// (the connection closed, the proposal was dropped by a new leader), the span ends marked
/// as failed: the client got no answer from this server.
pub struct RequestTrace {
    cx: Option<Context>,
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        if let Some(cx) = self.cx.take() {
            let span = cx.span();
            span.set_status(Status::error("no reply: connection closed or proposal dropped"));
            span.end();
        }
    }
}

impl RequestTrace {
    /// This span's ids, for the leader (a forwarded write continues the trace there).
    pub fn parent(&self) -> Option<TraceParent> {
        let cx = self.cx.as_ref()?;
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| TraceParent {
            trace_id: u128::from_be_bytes(context.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(context.span_id().to_bytes()),
        })
    }

    /// Adds one child span per `(name, start, end)` stage, records the outcome and ends the
    /// request span at `end`.
    pub fn finish(
        mut self,
        tracer: &RequestTracer,
        stages: &[(&'static str, Instant, Instant)],
        end: Instant,
        zxid: i64,
        err: i32,
    ) {
        let Some(cx) = self.cx.take() else { return };
        let clock = Clock::now();
        for (name, from, to) in stages {
            let mut stage = tracer
                .tracer
                .span_builder(*name)
                .with_kind(SpanKind::Internal)
                .with_start_time(clock.at(*from))
                .start_with_context(&tracer.tracer, &cx);
            stage.end_with_timestamp(clock.at(*to));
        }
        let span = cx.span();
        let (attributes, status) = outcome(zxid, err);
        span.set_attributes(attributes);
        if let Some(status) = status {
            span.set_status(status);
        }
        span.end_with_timestamp(clock.at(end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(config: &OtlpConfig, env: &[(&str, &str)]) -> Result<Option<OtlpSettings>, String> {
        OtlpSettings::resolve(config, |key| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn off_unless_an_endpoint_is_given() {
        assert_eq!(resolve(&OtlpConfig::default(), &[]), Ok(None));
        assert_eq!(resolve(&OtlpConfig::default(), &[("OTEL_SERVICE_NAME", "zk")]), Ok(None));
        assert_eq!(resolve(&OtlpConfig::default(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), Ok(None));
    }

    #[test]
    fn config_wins_over_environment() {
        let config = OtlpConfig {
            endpoint: Some("http://127.0.0.1:4318/".into()),
            sample_ratio: Some(0.25),
            service_name: Some("zk-a".into()),
        };
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"),
            ("OTEL_TRACES_SAMPLER", "always_off"),
            ("OTEL_SERVICE_NAME", "other"),
        ];
        assert_eq!(
            resolve(&config, &env),
            Ok(Some(OtlpSettings {
                endpoint: "http://127.0.0.1:4318/v1/traces".into(),
                service_name: "zk-a".into(),
                sample_ratio: 0.25,
            }))
        );
    }

    #[test]
    fn environment_follows_the_opentelemetry_spec() {
        let settings = resolve(
            &OtlpConfig::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ],
        );
        assert_eq!(
            settings,
            Ok(Some(OtlpSettings {
                endpoint: "http://collector:4318/v1/traces".into(),
                service_name: "ferrokeeper".into(),
                sample_ratio: 0.1,
            }))
        );
        // The signal-specific URL is used as given, and wins over the base URL.
        let settings = resolve(
            &OtlpConfig::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/custom"),
            ],
        );
        assert_eq!(settings.map(|s| s.map(|s| s.endpoint)), Ok(Some("http://traces:9999/custom".into())));
        let disabled = resolve(
            &OtlpConfig { endpoint: Some("http://127.0.0.1:4318".into()), ..OtlpConfig::default() },
            &[("OTEL_SDK_DISABLED", "TRUE")],
        );
        assert_eq!(disabled, Ok(None));
    }

    #[test]
    fn unsupported_settings_are_refused_by_name() {
        let https = OtlpConfig { endpoint: Some("https://collector:4318".into()), ..OtlpConfig::default() };
        assert!(resolve(&https, &[]).is_err_and(|e| e.contains("only http://")));
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")];
        let grpc = [base[0], ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
        assert!(
            resolve(&OtlpConfig::default(), &grpc).is_err_and(|e| e.contains("OTEL_EXPORTER_OTLP_PROTOCOL"))
        );
        let ratio = [base[0], ("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "2")];
        assert!(
            resolve(&OtlpConfig::default(), &ratio).is_err_and(|e| e.contains("OTEL_TRACES_SAMPLER_ARG"))
        );
        let sampler = [base[0], ("OTEL_TRACES_SAMPLER", "jaeger_remote")];
        assert!(resolve(&OtlpConfig::default(), &sampler).is_err_and(|e| e.contains("jaeger_remote")));
    }

    #[test]
    fn sampling_ratio_is_kept() {
        let provider = SdkTracerProvider::builder().build();
        let stats = Arc::new(ExportStats::default());
        let none = RequestTracer::new(provider.tracer("t"), 0.0, stats.clone());
        assert!((0..1000).all(|_| !none.sample()));
        let all = RequestTracer::new(provider.tracer("t"), 1.0, stats.clone());
        assert!((0..1000).all(|_| all.sample()));
        let tenth = RequestTracer::new(provider.tracer("t"), 0.1, stats.clone());
        let sampled = (0..100_000).filter(|_| tenth.sample()).count();
        // Binomial(100000, 0.1): sd ≈ 95; 10 sd either side.
        assert!((9_000..=11_000).contains(&sampled), "{sampled}");
        assert_eq!(stats.traced_requests.load(Relaxed), 1000 + sampled as u64);
    }

    #[test]
    fn instants_map_to_wall_clock_in_order() {
        let clock = Clock::now();
        let earlier = clock.mono - Duration::from_millis(5);
        let later = clock.mono + Duration::from_millis(5);
        assert_eq!(clock.wall.duration_since(clock.at(earlier)).ok(), Some(Duration::from_millis(5)));
        assert_eq!(clock.at(later).duration_since(clock.wall).ok(), Some(Duration::from_millis(5)));
    }
}
