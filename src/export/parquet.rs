//! Parquet for direct mode: one row group per page, Snappy, a flat schema
//! from the table's catalog types. Integer and boolean columns are INT64,
//! floating and decimal ones DOUBLE, everything else (text, timestamps as
//! ISO-8601 text, JSON, binary as hex) UTF-8 strings. Every column is
//! optional (NULLs are kept).

use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::db::Cell;
use crate::digest::hex;

/// The Parquet type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// INT64.
    Int,
    /// DOUBLE.
    Float,
    /// BYTE_ARRAY (UTF-8).
    Text,
}

/// The kind of a catalog type name (PostgreSQL / MySQL `data_type`,
/// SQLite declared type).
pub fn kind_of(ty: &str) -> Kind {
    let t = ty.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match base {
        "smallint" | "integer" | "int" | "bigint" | "tinyint" | "mediumint" | "boolean"
        | "bool" | "int2" | "int4" | "int8" => Kind::Int,
        "real" | "double" | "float" | "numeric" | "decimal" => Kind::Float,
        _ => Kind::Text,
    }
}

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("parquet: {e}"))
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
            .map(|((name, _), kind)| {
                let (physical, logical) = match kind {
                    Kind::Int => (Physical::INT64, None),
                    Kind::Float => (Physical::DOUBLE, None),
                    Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
                };
                Type::primitive_type_builder(name, physical)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(logical)
                    .build()
                    .map(Arc::new)
                    .map_err(err)
            })
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
            let mut defs = Vec::with_capacity(rows.len());
            let bad = |c: &Cell| {
                err(format!(
                    "column `{}`: value {c:?} does not fit",
                    self.names[i]
                ))
            };
            match kind {
                Kind::Int => {
                    let mut vals = Vec::with_capacity(rows.len());
                    for r in rows {
                        match &r[i] {
                            Cell::Null => defs.push(0),
                            Cell::Int(v) => {
                                defs.push(1);
                                vals.push(*v);
                            }
                            c @ Cell::Text(t) => {
                                defs.push(1);
                                vals.push(t.trim().parse::<i64>().map_err(|_| bad(c))?);
                            }
                            c => return Err(bad(c)),
                        }
                    }
                    col.typed::<Int64Type>()
                        .write_batch(&vals, Some(&defs), None)
                        .map_err(err)?;
                }
                Kind::Float => {
                    let mut vals = Vec::with_capacity(rows.len());
                    for r in rows {
                        match &r[i] {
                            Cell::Null => defs.push(0),
                            c => {
                                defs.push(1);
                                vals.push(c.as_f64().ok_or_else(|| bad(c))?);
                            }
                        }
                    }
                    col.typed::<DoubleType>()
                        .write_batch(&vals, Some(&defs), None)
                        .map_err(err)?;
                }
                Kind::Text => {
                    let mut vals = Vec::with_capacity(rows.len());
                    for r in rows {
                        match &r[i] {
                            Cell::Null => defs.push(0),
                            Cell::Bytes(b) => {
                                defs.push(1);
                                vals.push(ByteArray::from(hex(b).into_bytes()));
                            }
                            c => {
                                defs.push(1);
                                vals.push(ByteArray::from(c.as_label().into_bytes()));
                            }
                        }
                    }
                    col.typed::<ByteArrayType>()
                        .write_batch(&vals, Some(&defs), None)
                        .map_err(err)?;
                }
            }
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
        assert_eq!(kind_of("bigint"), Kind::Int);
        assert_eq!(kind_of("INTEGER"), Kind::Int);
        assert_eq!(kind_of("BOOLEAN"), Kind::Int);
        assert_eq!(kind_of("double precision"), Kind::Float);
        assert_eq!(kind_of("timestamp with time zone"), Kind::Text);
        assert_eq!(kind_of("VARCHAR(250)"), Kind::Text);
        assert_eq!(kind_of("json"), Kind::Text);
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
