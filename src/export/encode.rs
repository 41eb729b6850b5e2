//! Row encoders: gzip CSV (header line; NULL is an empty field, an empty
//! string is `""`) and gzip JSON Lines (one object per row, typed values).
//! Binary values are written as lowercase hex.

use std::fmt::Write as _;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::config::ExportFormat;
use crate::db::Cell;
use crate::digest::hex;

/// Encodes rows of one table into a gzip stream.
pub struct RowWriter<W: Write> {
    format: ExportFormat,
    out: GzEncoder<W>,
    columns: Vec<String>,
    rows: u64,
    line: String,
}

impl<W: Write> RowWriter<W> {
    /// Starts a stream (CSV: writes the header).
    pub fn new(out: W, format: ExportFormat, columns: Vec<String>) -> std::io::Result<Self> {
        if format == ExportFormat::Parquet {
            return Err(std::io::Error::other(
                "Parquet is written by the Glue job; direct mode writes csv or jsonl",
            ));
        }
        let mut w = RowWriter {
            format,
            out: GzEncoder::new(out, Compression::default()),
            columns,
            rows: 0,
            line: String::new(),
        };
        if format == ExportFormat::Csv {
            let header: Vec<String> = w.columns.iter().map(|c| csv_field(c)).collect();
            w.out.write_all(header.join(",").as_bytes())?;
            w.out.write_all(b"\n")?;
        }
        Ok(w)
    }

    /// Writes one row (cells in column order).
    pub fn write(&mut self, row: &[Cell]) -> std::io::Result<()> {
        self.line.clear();
        match self.format {
            ExportFormat::Csv => {
                for (i, c) in row.iter().enumerate() {
                    if i > 0 {
                        self.line.push(',');
                    }
                    match c {
                        Cell::Null => {}
                        Cell::Int(v) => {
                            let _ = write!(self.line, "{v}");
                        }
                        Cell::Float(v) => {
                            let _ = write!(self.line, "{v}");
                        }
                        Cell::Text(t) => self.line.push_str(&csv_field(t)),
                        Cell::Bytes(b) => self.line.push_str(&hex(b)),
                    }
                }
            }
            ExportFormat::Jsonl | ExportFormat::Parquet => {
                let mut obj = serde_json::Map::with_capacity(row.len());
                for (name, c) in self.columns.iter().zip(row) {
                    let v = match c {
                        Cell::Null => serde_json::Value::Null,
                        Cell::Int(v) => (*v).into(),
                        Cell::Float(v) => serde_json::Number::from_f64(*v)
                            .map_or(serde_json::Value::Null, serde_json::Value::Number),
                        Cell::Text(t) => t.clone().into(),
                        Cell::Bytes(b) => hex(b).into(),
                    };
                    obj.insert(name.clone(), v);
                }
                self.line = serde_json::Value::Object(obj).to_string();
            }
        }
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Ends the gzip stream; returns the inner writer.
    pub fn finish(self) -> std::io::Result<W> {
        self.out.finish()
    }
}

/// A CSV field, quoted when needed (RFC 4180); an empty string is `""` so
/// that it differs from NULL.
fn csv_field(s: &str) -> String {
    if s.is_empty() {
        return "\"\"".to_owned();
    }
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn gunzip(b: &[u8]) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(b)
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[test]
    fn csv_quotes_and_nulls() {
        let mut w = RowWriter::new(
            Vec::new(),
            ExportFormat::Csv,
            vec!["a".into(), "b,c".into()],
        )
        .unwrap();
        w.write(&[Cell::Text("x,\"y\"\nz".into()), Cell::Null])
            .unwrap();
        w.write(&[Cell::Text(String::new()), Cell::Bytes(vec![0x78, 0x9c])])
            .unwrap();
        w.write(&[Cell::Int(-3), Cell::Float(1.5)]).unwrap();
        let text = gunzip(&w.finish().unwrap());
        assert_eq!(text, "a,\"b,c\"\n\"x,\"\"y\"\"\nz\",\n\"\",789c\n-3,1.5\n");
    }

    #[test]
    fn jsonl_is_typed() {
        let mut w = RowWriter::new(
            Vec::new(),
            ExportFormat::Jsonl,
            vec!["id".into(), "s".into(), "n".into()],
        )
        .unwrap();
        w.write(&[Cell::Int(7), Cell::Text("domain/alice".into()), Cell::Null])
            .unwrap();
        assert_eq!(w.rows(), 1);
        let text = gunzip(&w.finish().unwrap());
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": 7, "s": "domain/alice", "n": null})
        );
        assert!(text.ends_with("}\n") && text.lines().count() == 1);
    }
}
