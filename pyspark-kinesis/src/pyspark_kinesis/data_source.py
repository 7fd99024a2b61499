"""The data source, `format("kinesis")`: options checked, then a reader or a writer.

Spark's shape (`pyspark.sql.datasource`): this `DataSource` hands out the
stream reader (`stream_reader`), the batch reader (`batch_reader`) and the
writers (`sink`); the rows they return are `rows.SCHEMA`. Spark finds it as
`pyspark_kinesis.DefaultSource`.
"""

from __future__ import annotations

from dataclasses import replace

from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamWriter,
    DataSourceWriter,
)
from pyspark.sql.types import StructType

from pyspark_kinesis.batch_reader import KinesisBatchReader
from pyspark_kinesis.client import make_client
from pyspark_kinesis.completions import refuse_s3_markers
from pyspark_kinesis.extra_options import (
    BatchReadOptions,
    SinkOptions,
    refuse_options_of_another_use,
    starting_position_given,
)
from pyspark_kinesis.options import KinesisOptionError, KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON
from pyspark_kinesis.reading import missing_streams
from pyspark_kinesis.rows import SCHEMA
from pyspark_kinesis.sink import KinesisBatchWriter, KinesisStreamWriter, check_input_schema
from pyspark_kinesis.stream_reader import KinesisStreamReader


class KinesisDataSource(DataSource):
    """`format("kinesis")`: records of Kinesis streams, streamed, read in batch or written.

    Reads take one stream or several (`streamName` a comma-separated list); the
    sink writes one stream.

    >>> df = (spark.readStream.format("kinesis")
    ...       .option("streamName", "events")
    ...       .option("endpointUrl", "http://localhost:4566")
    ...       .option("region", "us-east-1")
    ...       .option("startingposition", "TRIM_HORIZON")
    ...       .load())

    Options are validated here, so a bad one fails at `load()`; so does a
    stream that does not exist among several read (one stream alone fails when
    the query first reads it, naming it too). Spark makes the data source and
    calls its methods on the driver, in Python processes of its own.
    """

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        # The sink's and the batch read's own options are split off; the rest is
        # KinesisOptions', shared by every way of using the source.
        self.sink_options = SinkOptions.parse(options)
        self.kinesis_options = self.sink_options.connection
        self.batch_read_options = BatchReadOptions.parse(options)

    @classmethod
    def name(cls) -> str:
        return "kinesis"

    def schema(self) -> StructType:
        # Spark asks for the schema at load(): the one moment a read can still fail before
        # any query runs. One stream is checked by its first read, as before.
        if len(self.kinesis_options.stream_names) > 1:
            refuse_missing_streams(self.kinesis_options)
        return SCHEMA

    def streamReader(self, schema: StructType) -> KinesisStreamReader:
        """`spark.readStream.format("kinesis")`: see `pyspark_kinesis.stream_reader`."""
        refuse_options_of_another_use(self.options, "stream read")
        return KinesisStreamReader(self.kinesis_options)

    def reader(self, schema: StructType) -> DataSourceReader:
        """`spark.read.format("kinesis")`: see `pyspark_kinesis.batch_reader`."""
        refuse_options_of_another_use(self.options, "batch read")
        options = self.kinesis_options
        if not starting_position_given(self.options):
            options = replace(options, starting_position=TRIM_HORIZON)
        return KinesisBatchReader(options, self.batch_read_options)

    def writer(self, schema: StructType, overwrite: bool) -> DataSourceWriter:
        """`df.write.format("kinesis")`: see `pyspark_kinesis.sink`."""
        self._refuse_what_the_sink_cannot_write(schema)
        return KinesisBatchWriter(self.sink_options)

    def streamWriter(self, schema: StructType, overwrite: bool) -> DataSourceStreamWriter:
        """`df.writeStream.format("kinesis")`: see `pyspark_kinesis.sink`."""
        self._refuse_what_the_sink_cannot_write(schema)
        return KinesisStreamWriter(self.sink_options)

    def _refuse_what_the_sink_cannot_write(self, schema: StructType) -> None:
        refuse_options_of_another_use(self.options, "sink")
        refuse_several_streams_to_write(self.kinesis_options)
        check_input_schema(schema)
        refuse_s3_markers(self.kinesis_options.metadata_path)


def refuse_missing_streams(options: KinesisOptions) -> None:
    """Raises KinesisOptionError naming the streams read that Kinesis does not know."""
    missing = missing_streams(make_client(options), options)
    if missing:
        where = f" at {options.endpoint_url}" if options.endpoint_url else ""
        raise KinesisOptionError(
            f"Kinesis stream(s) {', '.join(repr(name) for name in missing)} not found in "
            f"region {options.region!r}{where} (reading {', '.join(options.stream_names)}): "
            "check streamName and region, or create the stream first"
        )


def refuse_several_streams_to_write(options: KinesisOptions) -> None:
    if len(options.stream_names) > 1:
        raise KinesisOptionError(
            f"the sink writes one stream, not {', '.join(options.stream_names)}: "
            "give streamName one stream"
        )
