# The two entry points of the README. Each installs what it needs first, and only that:
# `make demo` the package alone, `make test` the test extras with Prometheus and Chromium too.
PYTHON ?= python3

.PHONY: setup setup-demo setup-test demo test lint-code

setup: setup-test

setup-demo:
	./scripts/setup.sh demo

setup-test:
	./scripts/setup.sh test

demo: setup-demo
	rollouts lint -f infra/rollouts/
	rollouts demo

lint-code:
	ruff check src tests bench
	mypy
	lint-imports

test: setup-test lint-code
	# Two workers: the suite is mostly waiting on real processes, and two cores keep it under 15 minutes.
	$(PYTHON) -m pytest -q -n 2
