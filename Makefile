# The two entry points of the README. Both install what they need first.
PYTHON ?= python3

.PHONY: setup demo test lint-code

setup:
	./scripts/setup.sh

demo: setup
	rollouts lint -f infra/rollouts/
	rollouts demo

lint-code:
	ruff check src tests bench
	mypy

test: setup lint-code
	$(PYTHON) -m pytest -q
