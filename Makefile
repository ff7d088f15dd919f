# Qianliyan: the few commands a newcomer needs. Everything installs what it lacks.
UV := $(shell deploy/local/bin/ensure-uv)
RUN := UV_PYTHON_DOWNLOADS=never $(UV) run --frozen

.PHONY: up down status test lint typecheck unit schemas logs

up:            ## provision what is missing, start Kafka, MinIO, PostgreSQL and the three services
	$(UV) sync --frozen --quiet
	$(RUN) qianliyan-stack up

down:          ## stop the services and the stack
	$(RUN) qianliyan-stack down

status:        ## what runs, with pids and addresses
	$(RUN) qianliyan-stack status

test:          ## lint, type check and the whole suite against a real stack (what CI runs)
	deploy/local/bin/run-tests

unit:          ## only the fast tests that need no server
	$(RUN) pytest tests/unit -q

lint:          ## ruff lint and format check
	$(RUN) ruff check . && $(RUN) ruff format --check .

typecheck:     ## mypy
	$(RUN) mypy

schemas:       ## regenerate the checked-in JSON Schemas of the events
	$(RUN) python -m qianliyan.shared.events.schemas
