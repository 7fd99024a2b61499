# The stack's verbs. `make` alone lists them.
.DEFAULT_GOAL := help
COMPOSE := docker compose
# uv from PATH, or as a module of the Python that `make env` installed it into.
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)

.PHONY: help up up-cluster up-connect up-aws up-proxy down clean logs env test unit-test integration-test aws-smoke lint bench docs watch tail

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

up: ## start the stack in the background, building images as needed
	$(COMPOSE) up --build -d
	@echo "The stack is up: 'make logs' follows it, 'make down' stops it."

up-cluster: ## the stack with the consumer on a Spark standalone master and two workers
	SPARK_MASTER=spark://spark-master:7077 $(COMPOSE) --profile cluster up --build -d

up-connect: ## the stack and a Spark Connect server on 127.0.0.1:15002 (docs/spark-connect.md)
	$(COMPOSE) --profile connect up --build -d

up-aws: ## producer and consumer against real AWS (docs/real-aws-and-clusters.md)
	$(COMPOSE) -f docker-compose.yml -f docker-compose.aws.yml up --build -d producer consumer

up-proxy: ## the stack through a Kinesis that behaves like AWS (docs/aws-limits.md)
	$(COMPOSE) -f docker-compose.yml -f docker-compose.proxy.yml up --build -d

down: ## stop the stack, keeping its data (checkpoints, sink)
	$(COMPOSE) --profile cluster --profile notebook --profile connect down --remove-orphans

clean: ## stop the stack and delete its volumes
	$(COMPOSE) --profile cluster --profile notebook --profile connect down --volumes --remove-orphans

logs: ## follow every service's log
	$(COMPOSE) logs --follow

watch: ## the stack, its services restarted when their (mounted) source changes
	$(COMPOSE) watch

tail: ## print the stream's records as they arrive (the stack must be up)
	$(COMPOSE) run --rm --no-deps producer tail

env: ## install uv if missing, then the locked dev environment
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv==0.13.9
	$(UV) sync --frozen

test: env ## every test: unit, then integration (the whole Compose stack)
	@# Separate sessions, so the unit suites' LocalStack containers are gone before the stack starts.
	$(UV) run pytest -m unit
	$(MAKE) --no-print-directory integration-test

unit-test: env ## unit tests: real LocalStack containers and a local Spark, no Compose stack
	$(UV) run pytest -m unit

integration-test: env ## the integration suite: the Compose stack through testcontainers
	$(UV) run pytest -m integration
	@# The fault suite again, with the stack behind the AWS-faithful proxy, every behaviour on.
	KINESIS_IT_PROXY=1 $(UV) run pytest -m integration tests/integration/test_faults.py

aws-smoke: env ## opt-in: real AWS (needs AWS_SMOKE_STREAM and credentials; skipped otherwise)
	@# pytest exits 5 when the module skipped itself for lack of credentials: say so, succeed.
	$(UV) run pytest -m aws -rs tests/aws || [ $$? -eq 5 ]

bench: env ## measure ingest, drain, latency, cold start and memory; writes bench/results.*
	$(UV) run python -m bench

docs: env ## write .env.example and docs/configuration.md's settings table from the settings classes
	$(UV) run python -m settings_docs

lint: env ## ruff, ruff format and mypy --strict
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy pyspark-kinesis/src services/producer/src services/consumer/src services/kinesis-proxy/src services/kinesis-connection/src settings_docs testkit
