"""`format("aws-kinesis")`: the same source under the AWS connector's name.

Users of AWS's `spark-sql-kinesis-connector` write `format("aws-kinesis")`. Spark 4
registers a Python data source under its `name()` from any installed top-level
module named `pyspark_*` exposing `DefaultSource`; a module holds one, so this one
gives `pyspark_kinesis`'s source its second name, and the connector's README
examples run as written::

    df = (spark.readStream.format("aws-kinesis")
          .option("kinesis.region", "us-east-2")
          .option("kinesis.streamName", "teststream")
          .option("kinesis.consumerType", "GetRecords")
          .option("kinesis.endpointUrl", "https://kinesis.us-east-2.amazonaws.com")
          .option("kinesis.startingposition", "LATEST")
          .load())
"""

from pyspark_kinesis.data_source import KinesisDataSource


class AwsKinesisDataSource(KinesisDataSource):
    """`spark.readStream.format("aws-kinesis")`: `format("kinesis")` under a second name."""

    @classmethod
    def name(cls) -> str:
        return "aws-kinesis"


DefaultSource = AwsKinesisDataSource

__all__ = ["AwsKinesisDataSource", "DefaultSource"]
