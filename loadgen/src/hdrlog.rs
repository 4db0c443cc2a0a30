//! HDR histogram interval logs (the `HistogramLogProcessor` text format): one tagged line per op
//! and interval, `Tag=<op>-<service|response>,<start s>,<length s>,<max ms>,<base64 V2+deflate>`.
//! Values are microseconds; the max column is in milliseconds (divisor 1000).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};

use crate::workload::OpKind;

/// An open interval log.
pub struct HdrLog {
    out: std::io::BufWriter<std::fs::File>,
    path: String,
    serializer: V2DeflateSerializer,
    buf: Vec<u8>,
}

impl HdrLog {
    /// Creates the file and writes the header.
    pub fn create(path: &Path) -> anyhow::Result<HdrLog> {
        let file =
            std::fs::File::create(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        writeln!(out, "#[fkload interval log; values in microseconds]")?;
        writeln!(out, "#[StartTime: {now:.3} (seconds since epoch)]")?;
        writeln!(out, "#[BaseTime: {now:.3} (seconds since epoch)]")?;
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        Ok(HdrLog {
            out,
            path: path.display().to_string(),
            serializer: V2DeflateSerializer::new(),
            buf: Vec::new(),
        })
    }

    fn line(
        &mut self,
        tag: &str,
        h: &Histogram<u64>,
        start: Duration,
        length: Duration,
    ) -> anyhow::Result<()> {
        self.buf.clear();
        self.serializer.serialize(h, &mut self.buf).map_err(|e| anyhow::anyhow!("hdr serialize: {e:?}"))?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.buf);
        writeln!(
            self.out,
            "Tag={tag},{:.3},{:.3},{:.3},{encoded}",
            start.as_secs_f64(),
            length.as_secs_f64(),
            h.max() as f64 / 1000.0
        )?;
        Ok(())
    }

    /// Writes one interval's histograms.
    pub fn write(
        &mut self,
        interval: &[(OpKind, Histogram<u64>, Histogram<u64>, u64)],
        start: Duration,
        length: Duration,
    ) -> anyhow::Result<()> {
        for (op, service, response, _) in interval {
            self.line(&format!("{}-service", op.name()), service, start, length)?;
            if !response.is_empty() {
                self.line(&format!("{}-response", op.name()), response, start, length)?;
            }
        }
        Ok(())
    }

    /// Flushes and returns the path.
    pub fn finish(mut self) -> String {
        let _ = self.out.flush();
        self.path
    }
}
