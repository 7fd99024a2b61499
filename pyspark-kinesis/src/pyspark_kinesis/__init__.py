"""Amazon Kinesis for PySpark Structured Streaming, with no jar: `format("kinesis")`.

Spark 4 registers this source by itself: its Python workers look for top-level
modules named `pyspark_*` that expose `DefaultSource`, so once this package is
installed the tutorial's code runs as written::

    df = (spark.readStream.format("kinesis")
          .option("streamName", "events")
          .option("endpointUrl", "http://localhost:4566")
          .option("region", "us-east-1")
          .option("awsAccessKeyId", "test")
          .option("awsSecretKey", "test")
          .option("startingposition", "TRIM_HORIZON")
          .load())

See `pyspark_kinesis.stream_reader` for how batches replay exactly, and
`pyspark_kinesis.data_source` for the data source Spark finds here.
"""

from importlib.metadata import version

from pyspark_kinesis.consumers import deregister_consumers
from pyspark_kinesis.data_source import KinesisDataSource
from pyspark_kinesis.options import KinesisOptionError, KinesisOptions
from pyspark_kinesis.rows import SCHEMA

# Written once, in pyproject.toml; read from the installed package's metadata.
__version__ = version("pyspark-kinesis")

DefaultSource = KinesisDataSource

__all__ = [
    "SCHEMA",
    "DefaultSource",
    "KinesisDataSource",
    "KinesisOptionError",
    "KinesisOptions",
    "__version__",
    "deregister_consumers",
]
