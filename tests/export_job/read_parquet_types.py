#!/usr/bin/env python3
"""Reads Parquet files with PySpark (Glue's engine) and prints, as one JSON
object on stdout, for each file given: the Spark type of every column
(`simpleString()`: "timestamp", "boolean", "decimal(10,2)", ...) and its rows,
timestamps as microseconds since the epoch and decimals as text, so the
caller compares exact values.

Used by tests/export.rs (the direct export's Parquet logical types).
Usage: read_parquet_types.py FILE...
"""
import json
import os
import sys
import tempfile

import pyspark
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, TimestampType

work = tempfile.mkdtemp(prefix="windsock-parquet-")
log4j = os.path.join(work, "log4j2.properties")
with open(log4j, "w") as f:
    f.write("rootLogger.level = error\n"
            "rootLogger.appenderRef.stderr.ref = console\n"
            "appender.console.type = Console\n"
            "appender.console.name = console\n"
            "appender.console.target = SYSTEM_ERR\n"
            "appender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = %p %c{1}: %m%n\n")
os.environ.update(SPARK_HOME=os.path.dirname(pyspark.__file__), SPARK_LOCAL_IP="127.0.0.1",
                  PYSPARK_PYTHON=sys.executable)
spark = (SparkSession.builder.master("local[1]").appName("windsock-parquet-types")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.driver.extraJavaOptions",
                 f"-Duser.timezone=UTC -Dlog4j2.configurationFile=file:{log4j}")
         .getOrCreate())

out = {}
for path in sys.argv[1:]:
    df = spark.read.parquet(path)
    columns = []
    for field in df.schema.fields:
        if isinstance(field.dataType, TimestampType):
            columns.append(F.unix_micros(field.name).alias(field.name))
        elif isinstance(field.dataType, DecimalType):
            columns.append(F.col(field.name).cast("string").alias(field.name))
        else:
            columns.append(F.col(field.name))
    out[path] = {
        "types": {f.name: f.dataType.simpleString() for f in df.schema.fields},
        "rows": [r.asDict() for r in df.select(columns).collect()],
    }
spark.stop()
json.dump(out, sys.stdout, default=str)
