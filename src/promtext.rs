//! The Prometheus text exposition format (0.0.4, and the OpenMetrics text our own exporter
//! writes): a parser for what Triton, vLLM and the kubemind exporter serve.
//!
//! Owns the grammar both ways: [`parse`] reads, [`Writer`] writes the 0.0.4 text the exporter
//! serves (Prometheus and promtool read it as it is). The grammar: `# HELP` / `# TYPE` lines, samples `name{label="value",…} value
//! [timestamp]` with escaped label values (`\\`, `\"`, `\n`), names with `:`, `NaN` and `±Inf`,
//! OpenMetrics `# EOF` and exemplars (ignored). Label values borrow from the input unless they
//! hold escapes. A malformed line fails the whole parse with its line number and column, as
//! Prometheus fails a scrape; [`parse_with_limit`] bounds the samples one target can produce.
//! Interpretation (counters, deltas) belongs to the callers.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::collections::HashMap;

/// The declared type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl Sample<'_> {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_ref())
    }
}

/// A parsed exposition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition<'a> {
    pub samples: Vec<Sample<'a>>,
    /// Declared types by family name.
    pub types: HashMap<&'a str, MetricType>,
}

/// Where and why the text is not valid exposition format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}, column {column}: {reason}")]
    Syntax {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("more than {limit} samples")]
    TooManySamples { limit: usize },
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Exposition<'_>, ParseError> {
    parse_with_limit(text, usize::MAX)
}

/// Parses a whole exposition, refusing more than `limit` samples (a cardinality bound).
pub fn parse_with_limit(text: &str, limit: usize) -> Result<Exposition<'_>, ParseError> {
    let mut exposition = Exposition::default();
    for (index, raw_line) in text.split('\n').enumerate() {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let fail = |column: usize, reason: &str| ParseError::Syntax {
            line: index + 1,
            column: column + 1,
            reason: reason.to_string(),
        };
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if let (Some("TYPE"), Some(name), Some(kind)) =
                (words.next(), words.next(), words.next())
            {
                let kind = match kind {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "histogram" | "gaugehistogram" => MetricType::Histogram,
                    "summary" => MetricType::Summary,
                    _ => MetricType::Untyped,
                };
                exposition.types.insert(name, kind);
            }
            continue;
        }
        if exposition.samples.len() >= limit {
            return Err(ParseError::TooManySamples { limit });
        }
        let offset = line.len() - trimmed.len();
        let sample = LineParser {
            text: trimmed,
            position: 0,
        }
        .sample()
        .map_err(|(column, reason)| fail(offset + column, reason))?;
        exposition.samples.push(sample);
    }
    Ok(exposition)
}

struct LineParser<'a> {
    text: &'a str,
    position: usize,
}

type LineResult<T> = Result<T, (usize, &'static str)>;

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

impl<'a> LineParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.position += 1;
        }
    }

    fn name(&mut self, label: bool) -> LineResult<&'a str> {
        let start = self.position;
        match self.peek() {
            Some(b) if is_name_start(b) && !(label && b == b':') => self.position += 1,
            _ => {
                return Err((
                    start,
                    if label {
                        "expected a label name"
                    } else {
                        "expected a metric name"
                    },
                ));
            }
        }
        while let Some(b) = self.peek() {
            if !is_name_char(b) || (label && b == b':') {
                break;
            }
            self.position += 1;
        }
        Ok(&self.text[start..self.position])
    }

    fn sample(mut self) -> LineResult<Sample<'a>> {
        let name = self.name(false)?;
        let mut labels = Vec::new();
        self.skip_blanks();
        if self.peek() == Some(b'{') {
            self.position += 1;
            loop {
                self.skip_blanks();
                if self.peek() == Some(b'}') {
                    self.position += 1;
                    break;
                }
                let key = self.name(true)?;
                self.skip_blanks();
                if self.peek() != Some(b'=') {
                    return Err((self.position, "expected '=' after the label name"));
                }
                self.position += 1;
                self.skip_blanks();
                let value = self.quoted()?;
                labels.push((key, value));
                self.skip_blanks();
                match self.peek() {
                    Some(b',') => self.position += 1,
                    Some(b'}') => {
                        self.position += 1;
                        break;
                    }
                    _ => return Err((self.position, "expected ',' or '}' after a label")),
                }
            }
        }
        self.skip_blanks();
        let value_start = self.position;
        let value_text = self.word();
        if value_text.is_empty() {
            return Err((value_start, "expected a value"));
        }
        let value = parse_value(value_text).ok_or((value_start, "the value is not a number"))?;
        self.skip_blanks();
        let timestamp_start = self.position;
        let timestamp_text = self.word();
        let timestamp_ms = match timestamp_text {
            "" | "#" => None,
            text => Some(
                text.parse::<i64>()
                    .map_err(|_| (timestamp_start, "the timestamp is not an integer"))?,
            ),
        };
        self.skip_blanks();
        // anything left is an OpenMetrics exemplar (`# {…} value`), or an error
        let rest = &self.text[self.position..];
        if !(rest.is_empty() || rest.starts_with('#') || timestamp_text == "#") {
            return Err((self.position, "unexpected text after the sample"));
        }
        Ok(Sample {
            name,
            labels,
            value,
            timestamp_ms,
        })
    }

    /// The run of non-blank characters at the current position.
    fn word(&mut self) -> &'a str {
        let start = self.position;
        while let Some(b) = self.peek() {
            if b == b' ' || b == b'\t' {
                break;
            }
            self.position += 1;
        }
        &self.text[start..self.position]
    }

    /// A double-quoted label value with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> LineResult<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err((self.position, "expected '\"' to open the label value"));
        }
        self.position += 1;
        let start = self.position;
        let bytes = self.text.as_bytes();
        let mut escaped: Option<String> = None;
        let mut run_start = start;
        while let Some(&b) = bytes.get(self.position) {
            match b {
                b'"' => {
                    let value = match escaped {
                        None => Cow::Borrowed(&self.text[start..self.position]),
                        Some(mut owned) => {
                            owned.push_str(&self.text[run_start..self.position]);
                            Cow::Owned(owned)
                        }
                    };
                    self.position += 1;
                    return Ok(value);
                }
                b'\\' => {
                    let owned = escaped.get_or_insert_with(String::new);
                    owned.push_str(&self.text[run_start..self.position]);
                    let replacement = match bytes.get(self.position + 1) {
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'n') => '\n',
                        _ => return Err((self.position, "unknown escape in a label value")),
                    };
                    owned.push(replacement);
                    self.position += 2;
                    run_start = self.position;
                }
                _ => self.position += 1,
            }
        }
        Err((start - 1, "unterminated label value (opened here)"))
    }
}

/// Go's `ParseFloat` forms Prometheus accepts, including `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust's parser also takes "infinity" and "nan" spelled other ways; Prometheus does not
            if text
                .bytes()
                .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E'))
            {
                return None;
            }
            text.parse::<f64>().ok()
        }
    }
}

/// Writes Prometheus text format 0.0.4: a `# HELP` and `# TYPE` line per family, then its
/// samples with escaped label values. A family with no samples is left out entirely.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    out: String,
    /// The header of the family begun last, written with its first sample.
    pending_header: Option<String>,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Starts a family; its samples follow.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        self.pending_header = Some(format!(
            "# HELP {name} {help}\n# TYPE {name} {}\n",
            kind.as_str()
        ));
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        use std::fmt::Write as _;
        if let Some(header) = self.pending_header.take() {
            self.out.push_str(&header);
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                for c in value.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = if value.is_nan() {
            writeln!(self.out, " NaN")
        } else if value.is_infinite() {
            writeln!(self.out, " {}Inf", if value > 0.0 { "+" } else { "-" })
        } else {
            writeln!(self.out, " {value}")
        };
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_writer_writes_what_the_parser_reads() {
        let mut writer = Writer::new();
        writer.family(
            "kubemind_x_seconds",
            MetricType::Gauge,
            "A help\ntext with \\",
        );
        writer.sample(
            "kubemind_x_seconds",
            &[("pod", "a\"b\\c\nd"), ("node", "n1")],
            0.25,
        );
        writer.sample("kubemind_x_seconds", &[], f64::INFINITY);
        writer.family("kubemind_errors_total", MetricType::Counter, "Errors");
        writer.sample("kubemind_errors_total", &[("reason", "timeout")], 3.0);
        writer.family(
            "kubemind_empty",
            MetricType::Gauge,
            "No samples, so no header",
        );
        let text = writer.finish();
        assert!(!text.contains("kubemind_empty"));
        assert!(text.starts_with(
            "# HELP kubemind_x_seconds A help\\ntext with \\\\\n# TYPE kubemind_x_seconds gauge\n"
        ));
        let parsed = parse(&text).expect("our own output parses");
        assert_eq!(parsed.samples.len(), 3);
        assert_eq!(parsed.samples[0].label("pod"), Some("a\"b\\c\nd"));
        assert_eq!(parsed.samples[1].value, f64::INFINITY);
        assert_eq!(
            parsed.types.get("kubemind_errors_total"),
            Some(&MetricType::Counter)
        );
    }

    #[test]
    fn parses_the_triton_sample() {
        let text = include_str!("../tests/data/triton-metrics-sample.txt");
        let exposition = parse(text).expect("the documented sample parses");
        assert_eq!(exposition.samples.len(), 37);
        assert_eq!(
            exposition.types.get("nv_inference_queue_duration_us"),
            Some(&MetricType::Counter)
        );
        assert_eq!(
            exposition.types.get("nv_inference_queue_summary_us"),
            Some(&MetricType::Summary)
        );
        let kv = exposition
            .samples
            .iter()
            .find(|s| {
                s.name == "nv_trt_llm_kv_cache_block_metrics"
                    && s.label("kv_cache_block_type") == Some("fraction")
            })
            .expect("fraction");
        assert_eq!(kv.value, 0.4875);
        let quantile = exposition
            .samples
            .iter()
            .find(|s| s.label("quantile") == Some("0.99"))
            .expect("quantile");
        assert_eq!(
            (quantile.name, quantile.value),
            ("nv_inference_queue_summary_us", 101.0)
        );
    }

    #[test]
    fn reads_every_form_of_the_grammar() {
        let text = "# HELP x a\\nhelp line\n\
            # TYPE vllm:num_requests_waiting gauge\n\
            vllm:num_requests_waiting{model_name=\"m\",engine=\"0\"} 3\n\
            escaped{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\"} 1.5e3 1700000000000\n\
            spaced { a = \"1\" , b=\"2\", } -Inf\n\
            nan_value NaN\n\
            bare 7\r\n\
            om_total 1 # {trace_id=\"abc\"} 1\n\
            # EOF\n";
        let exposition = parse(text).expect("valid");
        let s = &exposition.samples;
        assert_eq!(s.len(), 6);
        assert_eq!(s[0].name, "vllm:num_requests_waiting");
        assert_eq!(s[0].label("engine"), Some("0"));
        assert_eq!(s[1].label("path"), Some("C:\\dir"));
        assert_eq!(s[1].label("quote"), Some("say \"hi\""));
        assert_eq!(s[1].label("nl"), Some("a\nb"));
        assert_eq!(
            (s[1].value, s[1].timestamp_ms),
            (1500.0, Some(1_700_000_000_000))
        );
        assert_eq!(
            (s[2].label("b"), s[2].value),
            (Some("2"), f64::NEG_INFINITY)
        );
        assert!(s[3].value.is_nan());
        assert_eq!((s[4].name, s[4].value), ("bare", 7.0));
        assert_eq!((s[5].name, s[5].value), ("om_total", 1.0));
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let cases = [
            ("ok 1\n{a=\"b\"} 1", 2, 1, "expected a metric name"),
            ("m{a=b} 1", 1, 5, "expected '\"'"),
            ("m{a=\"b} 1", 1, 5, "unterminated"),
            ("m{a=\"\\x\"} 1", 1, 6, "unknown escape"),
            ("m{a=\"b\" c=\"d\"} 1", 1, 9, "expected ',' or '}'"),
            ("m", 1, 2, "expected a value"),
            ("m abc", 1, 3, "not a number"),
            ("m infinity", 1, 3, "not a number"),
            ("m 1 2.5", 1, 5, "timestamp"),
            ("m 1 2 3", 1, 7, "unexpected text"),
            ("m{1a=\"b\"} 1", 1, 3, "expected a label name"),
        ];
        for (text, line, column, reason) in cases {
            match parse(text) {
                Err(ParseError::Syntax {
                    line: l,
                    column: c,
                    reason: r,
                }) => {
                    assert_eq!((l, c), (line, column), "{text:?}: {r}");
                    assert!(r.contains(reason), "{text:?}: {r}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_limit_bounds_the_samples() {
        let text = "a 1\nb 2\nc 3\n";
        assert_eq!(parse_with_limit(text, 3).map(|e| e.samples.len()), Ok(3));
        assert_eq!(
            parse_with_limit(text, 2),
            Err(ParseError::TooManySamples { limit: 2 })
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_exposition_shaped_input(text in "[a-z_:{}=\",\\\\ 0-9.#\\n+-]{0,120}") {
            let _ = parse(&text);
        }

        #[test]
        fn label_values_round_trip_through_escaping(value in "\\PC{0,30}") {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let line = format!("m{{v=\"{escaped}\"}} 1");
            let exposition = parse(&line).expect("escaped values parse");
            prop_assert_eq!(exposition.samples[0].label("v"), Some(value.as_str()));
        }
    }
}
