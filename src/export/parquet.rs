//! Parquet for direct mode: one row group per page, Snappy, a flat schema
//! from the table's catalog types, with Parquet's logical types so Athena,
//! Glue and Spark read the columns as what they are:
//!
//! | catalog type | Parquet | Spark / Athena |
//! |---|---|---|
//! | boolean, bool, MySQL tinyint(1) | BOOLEAN | boolean |
//! | integers | INT64 | bigint |
//! | real, double, float; numeric without precision | DOUBLE | double |
//! | numeric/decimal(p,s), p <= 18 | INT64 DECIMAL(p,s) | decimal(p,s) |
//! | timestamp (with or without time zone), datetime | INT64 TIMESTAMP(MICROS, UTC) | timestamp |
//! | bytea, blob, binary, varbinary | BYTE_ARRAY | binary |
//! | everything else (text, JSON, uuid, decimals wider than 18 digits) | BYTE_ARRAY STRING | string |
//!
//! Every column is optional (NULLs are kept). Timestamps without a zone
//! are UTC, as Airflow writes them. Decimals pass through the database
//! driver as doubles: exact up to 15 significant digits.

use std::io::Write;
use std::str::FromStr as _;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use rust_decimal::Decimal;

use crate::db::Cell;
use crate::digest::hex;

/// The Parquet type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// BOOLEAN.
    Bool,
    /// INT64.
    Int,
    /// DOUBLE.
    Float,
    /// INT64 with DECIMAL(precision, scale).
    Decimal {
        /// Total digits (1-18).
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// INT64 with TIMESTAMP(MICROS, adjusted to UTC).
    Timestamp,
    /// BYTE_ARRAY (UTF-8).
    Text,
    /// BYTE_ARRAY (raw bytes).
    Binary,
}

/// `(p,s)` of `numeric(p,s)` / `decimal(p)` (scale 0).
fn precision_scale(ty: &str) -> Option<(u8, u8)> {
    let args = ty.split_once('(')?.1.split_once(')')?.0;
    let mut it = args.split(',').map(|a| a.trim().parse::<u8>().ok());
    let p = it.next()??;
    let s = it.next().unwrap_or(Some(0))?;
    (p > 0 && s <= p).then_some((p, s))
}

/// The kind of a catalog type name (PostgreSQL / MySQL `data_type`, with
/// `(p,s)` for decimals and `boolean` for MySQL `tinyint(1)`, as
/// [`super::direct`] asks the catalog; SQLite's declared type).
pub fn kind_of(ty: &str) -> Kind {
    let t = ty.trim().to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match base {
        "boolean" | "bool" => Kind::Bool,
        "smallint" | "integer" | "int" | "bigint" | "tinyint" | "mediumint" | "int2" | "int4"
        | "int8" => Kind::Int,
        "real" | "double" | "float" | "float4" | "float8" => Kind::Float,
        "numeric" | "decimal" => match precision_scale(&t) {
            None => Kind::Float,
            Some((precision, scale)) if precision <= 18 => Kind::Decimal { precision, scale },
            Some(_) => Kind::Text,
        },
        "timestamp" | "timestamptz" | "datetime" => Kind::Timestamp,
        "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary" => {
            Kind::Binary
        }
        _ => Kind::Text,
    }
}

/// Microseconds since the epoch of an ISO-8601 / SQL timestamp text
/// (`2026-11-25T01:02:03.123456Z`, `2026-11-25 01:02:03+00:00`, naive =
/// UTC).
fn timestamp_micros(text: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDateTime};
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(&s.replacen(' ', "T", 1)) {
        return Some(t.timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp_micros());
        }
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Some(t.timestamp_micros());
        }
    }
    None
}

/// The unscaled value of a decimal cell at `scale`, if it fits `precision`.
fn decimal_unscaled(cell: &Cell, precision: u8, scale: u8) -> Option<i64> {
    let mut d = match cell {
        Cell::Int(i) => Decimal::from(*i),
        // The shortest text that reads back as the same double.
        Cell::Float(f) if f.is_finite() => Decimal::from_str(&f.to_string()).ok()?,
        Cell::Text(t) => Decimal::from_str(t.trim()).ok()?,
        _ => return None,
    };
    d.rescale(u32::from(scale));
    let v = i64::try_from(d.mantissa()).ok()?;
    (v.unsigned_abs() < 10u64.pow(u32::from(precision))).then_some(v)
}

fn boolean(cell: &Cell) -> Option<bool> {
    match cell {
        Cell::Int(0) => Some(false),
        Cell::Int(1) => Some(true),
        Cell::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "0" | "f" | "false" => Some(false),
            "1" | "t" | "true" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// The schema field of one column.
fn field(name: &str, kind: Kind) -> Result<Arc<Type>, parquet::errors::ParquetError> {
    let (physical, logical) = match kind {
        Kind::Bool => (Physical::BOOLEAN, None),
        Kind::Int => (Physical::INT64, None),
        Kind::Float => (Physical::DOUBLE, None),
        Kind::Decimal { precision, scale } => (
            Physical::INT64,
            Some(LogicalType::decimal(scale.into(), precision.into())),
        ),
        Kind::Timestamp => (
            Physical::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
        Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        Kind::Binary => (Physical::BYTE_ARRAY, None),
    };
    let mut b = Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical);
    if let Kind::Decimal { precision, scale } = kind {
        b = b.with_precision(precision.into()).with_scale(scale.into());
    }
    b.build().map(Arc::new)
}

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("parquet: {e}"))
}

/// The values of column `i` converted by `f` (NULLs left out) and the
/// definition levels; the first cell `f` refuses.
fn column<T>(
    rows: &[Vec<Cell>],
    i: usize,
    f: impl Fn(&Cell) -> Option<T>,
) -> Result<(Vec<T>, Vec<i16>), &Cell> {
    let mut vals = Vec::with_capacity(rows.len());
    let mut defs = Vec::with_capacity(rows.len());
    for r in rows {
        match &r[i] {
            Cell::Null => defs.push(0),
            c => {
                defs.push(1);
                vals.push(f(c).ok_or(c)?);
            }
        }
    }
    Ok((vals, defs))
}

fn integer(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Int(v) => Some(*v),
        Cell::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
}

fn timestamp(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Text(t) => timestamp_micros(t),
        // Decoded timestamps are UNIX seconds.
        Cell::Float(f) if f.is_finite() => Some((f * 1e6).round() as i64),
        _ => None,
    }
}

fn bytes(cell: &Cell) -> Option<ByteArray> {
    Some(ByteArray::from(match cell {
        Cell::Bytes(b) => b.clone(),
        c => c.as_label().into_bytes(),
    }))
}

fn text(cell: &Cell) -> Option<ByteArray> {
    Some(ByteArray::from(match cell {
        Cell::Bytes(b) => hex(b).into_bytes(),
        c => c.as_label().into_bytes(),
    }))
}

/// Writes one table as Parquet.
pub struct ParquetWriter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    names: Vec<String>,
    kinds: Vec<Kind>,
    rows: u64,
}

impl<W: Write + Send> ParquetWriter<W> {
    /// A writer for columns `(name, catalog type)`.
    pub fn new(out: W, columns: &[(String, String)]) -> std::io::Result<Self> {
        let kinds: Vec<Kind> = columns.iter().map(|(_, t)| kind_of(t)).collect();
        let fields = columns
            .iter()
            .zip(&kinds)
            .map(|((name, _), kind)| field(name, *kind).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(err)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer =
            SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props)).map_err(err)?;
        Ok(ParquetWriter {
            writer,
            names: columns.iter().map(|(n, _)| n.clone()).collect(),
            kinds,
            rows: 0,
        })
    }

    /// Writes a page of rows as one row group. A value that does not fit
    /// its column's type (SQLite keeps any value in any column) is an
    /// error naming the column, never silently dropped.
    pub fn write_page(&mut self, rows: &[Vec<Cell>]) -> std::io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group().map_err(err)?;
        for (i, kind) in self.kinds.iter().enumerate() {
            let mut col = rg
                .next_column()
                .map_err(err)?
                .ok_or_else(|| err("fewer columns than the schema"))?;
            let bad = |c: &Cell| {
                err(format!(
                    "column `{}`: value {c:?} does not fit {kind:?}",
                    self.names[i]
                ))
            };
            match *kind {
                Kind::Bool => {
                    let (v, d) = column(rows, i, boolean).map_err(bad)?;
                    col.typed::<BoolType>().write_batch(&v, Some(&d), None)
                }
                Kind::Int => {
                    let (v, d) = column(rows, i, integer).map_err(bad)?;
                    col.typed::<Int64Type>().write_batch(&v, Some(&d), None)
                }
                Kind::Decimal { precision, scale } => {
                    let (v, d) =
                        column(rows, i, |c| decimal_unscaled(c, precision, scale)).map_err(bad)?;
                    col.typed::<Int64Type>().write_batch(&v, Some(&d), None)
                }
                Kind::Timestamp => {
                    let (v, d) = column(rows, i, timestamp).map_err(bad)?;
                    col.typed::<Int64Type>().write_batch(&v, Some(&d), None)
                }
                Kind::Float => {
                    let (v, d) = column(rows, i, Cell::as_f64).map_err(bad)?;
                    col.typed::<DoubleType>().write_batch(&v, Some(&d), None)
                }
                Kind::Text => {
                    let (v, d) = column(rows, i, text).map_err(bad)?;
                    col.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)
                }
                Kind::Binary => {
                    let (v, d) = column(rows, i, bytes).map_err(bad)?;
                    col.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)
                }
            }
            .map_err(err)?;
            col.close().map_err(err)?;
        }
        rg.close().map_err(err)?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer; returns the inner writer.
    pub fn finish(self) -> std::io::Result<W> {
        self.writer.into_inner().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_catalog_types() {
        for (ty, kind) in [
            ("bigint", Kind::Int),
            ("INTEGER", Kind::Int),
            ("BOOLEAN", Kind::Bool),
            ("boolean", Kind::Bool),
            ("double precision", Kind::Float),
            ("FLOAT", Kind::Float),
            ("numeric", Kind::Float),
            (
                "numeric(10,2)",
                Kind::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            (
                "decimal(18)",
                Kind::Decimal {
                    precision: 18,
                    scale: 0,
                },
            ),
            ("decimal(19,4)", Kind::Text),
            ("timestamp with time zone", Kind::Timestamp),
            ("timestamp without time zone", Kind::Timestamp),
            ("DATETIME", Kind::Timestamp),
            ("TIMESTAMP", Kind::Timestamp),
            ("time", Kind::Text),
            ("VARCHAR(250)", Kind::Text),
            ("json", Kind::Text),
            ("bytea", Kind::Binary),
            ("LONGBLOB", Kind::Binary),
        ] {
            assert_eq!(kind_of(ty), kind, "{ty}");
        }
    }

    #[test]
    fn timestamps_and_decimals_convert_exactly() {
        for (text, micros) in [
            ("2026-11-25T01:02:03.123456Z", 1_795_568_523_123_456),
            ("2026-11-25T01:02:03.123456", 1_795_568_523_123_456),
            ("2026-11-25 01:02:03", 1_795_568_523_000_000),
            ("2026-11-25 01:02:03.5+00:00", 1_795_568_523_500_000),
            ("2026-11-25 03:02:03+02:00", 1_795_568_523_000_000),
        ] {
            assert_eq!(timestamp_micros(text), Some(micros), "{text}");
        }
        assert_eq!(timestamp_micros("yesterday"), None);
        assert_eq!(decimal_unscaled(&Cell::Float(12.34), 10, 2), Some(1234));
        assert_eq!(decimal_unscaled(&Cell::Float(0.1), 4, 3), Some(100));
        assert_eq!(decimal_unscaled(&Cell::Int(-5), 4, 2), Some(-500));
        assert_eq!(
            decimal_unscaled(&Cell::Text("99.99".into()), 4, 2),
            Some(9999)
        );
        // Does not fit the precision: refused, not wrapped.
        assert_eq!(decimal_unscaled(&Cell::Text("100.00".into()), 4, 2), None);
    }

    #[test]
    fn a_file_with_nulls_is_written_and_misfits_are_refused() {
        let cols = vec![
            ("id".to_owned(), "integer".to_owned()),
            ("s".to_owned(), "text".to_owned()),
        ];
        let mut w = ParquetWriter::new(Vec::new(), &cols).unwrap();
        w.write_page(&[
            vec![Cell::Int(1), Cell::Null],
            vec![Cell::Null, Cell::Text("x".into())],
        ])
        .unwrap();
        assert_eq!(w.rows(), 2);
        let bytes = w.finish().unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
        let mut w = ParquetWriter::new(Vec::new(), &cols).unwrap();
        let e = w
            .write_page(&[vec![Cell::Text("abc".into()), Cell::Null]])
            .unwrap_err();
        assert!(e.to_string().contains("column `id`"), "{e}");
    }
}
