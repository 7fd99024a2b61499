"""The one test kit of the repository: what `tests/`, the services' and the library's
tests, and `bench/` share (bench never imports from `tests/`).

- `clients`: boto3 clients of a LocalStack (or of the Kinesis proxy in front of one);
- `localstack`: a fresh LocalStack container on 127.0.0.1;
- `streams`: a stream read back whole (`read_stream`), and `wait_active`;
- `waiting`: `wait_until`, the one polling helper.

The AWS-faithful proxy itself is a service of its own: `kinesis_proxy`
(services/kinesis-proxy).
"""
