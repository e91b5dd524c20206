.PHONY: setup engine demo test lint

setup:
	./scripts/setup.sh

# Podman, runc and a local Debian base image, for --sandbox podman (skipped when done)
engine:
	./scripts/setup-container-engine.sh

demo: setup
	./scripts/demo.sh

# The whole suite, the real agent included; a missing prerequisite fails instead of skipping.
test: setup engine
	BFC_REQUIRE_E2E=1 .venv/bin/pytest -q

lint: setup
	.venv/bin/ruff check src tests examples
	.venv/bin/ruff format --check src tests examples
