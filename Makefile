# aioguest build, check and test entry points (GNU make).
#
#   make lib          build python/aioguest/<library> for in-tree development
#   make system-deps  Debian packages the host toolkits need (apt-get; quick
#                     when present): tools/system-deps.sh
#   make go-check     gofmt, go vet, go test -race, a short fuzz run
#   make venv         .venv (Python 3.11): `pip install ".[test,dev]"` plus
#                     the host toolkits of requirements/hosts.txt
#   make lint         ruff + mypy
#   make test         system-deps, go-check, lint, pytest in .venv, pytest on $(PYTHONS)
#   make demo         run examples/demo.py from .venv
#   make soak         10 minutes of guest-mode traffic and injected failures (not in `make test`)
#   make stress       the Go core under -race for STRESS_TIME (not in `make test`)
#   make bench        the side-by-side benchmark suite (bench/results/latest.md)
#   make conformance  CPython's test_asyncio natively, on GoSelector and as a guest
#                     (a fast subset runs in `make test`)
#   make clean
#
# Knobs (override on the command line, e.g. `make test PYTHONS=3.12`):
#   GO          go executable (default: $AIOGUEST_GO, else `go` on PATH)
#   PYTHONS     the other Pythons `make test` runs the suite on (own venvs,
#               .venv-<version>; a missing interpreter is skipped with a notice)
#   FUZZTIME    per fuzz target: an execution count (Nx), not a duration
#   HOSTS_REQ   extra pip arguments for every test venv (default: the host
#               toolkits; `make test HOSTS_REQ=` skips them, and their tests skip)
#   PYTEST_ARGS extra pytest arguments

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:
# The pip installs all build in ./build and python/*.egg-info: never run two at once.
.NOTPARALLEL:

GO ?= $(or $(AIOGUEST_GO),go)
PYENV_ROOT ?= $(HOME)/.pyenv
MAIN_PYTHON := 3.11
PYTHONS ?= 3.10 3.12 3.13
# A count, not a duration: Go 1.26's fuzz coordinator can report a bare
# "context deadline exceeded" FAIL, with no failing input, when a duration
# -fuzztime runs out while a worker is mid-input (golang/go#75804, fixed in
# Go 1.27).  40,000 inputs take 3-5 s (FuzzABI) and 8-20 s (FuzzHandoff)
# here.
FUZZTIME ?= 40000x
FUZZ_PKGS := ./internal/abi ./internal/handoff
HOSTS_REQ ?= -r requirements/hosts.txt
PYTEST_ARGS ?=
SOAK_ARGS ?=
STRESS_TIME ?= 60s
PIP_FLAGS := --disable-pip-version-check --no-input --quiet

# Newest pyenv X.Y.* interpreter, else pythonX.Y on PATH, else empty.
python_for = $(or $(shell ls -d $(PYENV_ROOT)/versions/$(1).[0-9]*/bin/python3 2>/dev/null \
                            | sort -V | tail -n 1),$(shell command -v python$(1) 2>/dev/null))

ifeq ($(OS),Windows_NT)
LIB_NAME := aioguest.dll
else ifeq ($(shell uname -s),Darwin)
LIB_NAME := libaioguest.dylib
else
LIB_NAME := libaioguest.so
endif
LIB := python/aioguest/$(LIB_NAME)

# Sources. find prunes dot-directories at any depth (.git, .venv*,
# bench/.venv*) and build output.
find_src = $(shell find . -mindepth 1 -name '.*' -prune -o \( -path ./build -o -path ./dist \) -prune \
                          -o -type f \( $(1) \) -print 2>/dev/null)
GO_SRCS := $(call find_src,-name '*.go')
GO_DEPS := $(GO_SRCS) $(call find_src,-name '*.c' -o -name '*.h' -o -name '*.s') \
           $(wildcard go.mod go.sum)
PY_SRCS := $(shell find python -type f -not -name 'libaioguest.*' -not -name '*.pyc' \
                        -not -path '*.egg-info/*' 2>/dev/null)
PKG_DEPS := $(GO_DEPS) $(PY_SRCS) setup.py pyproject.toml

# Run Python tools against the installed package only, never python/.
NO_SRC_PATH := env -u PYTHONPATH

.PHONY: all lib system-deps go-check venv lint test pytest pytest-matrix demo soak stress bench conformance clean

all: test

# ------------------------------------------------------------------ Go

lib: $(LIB)

$(LIB): $(GO_DEPS)
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath -buildvcs=false \
	    -ldflags "-s -w" -o $@ ./capi
	@rm -f $(basename $@).h   # cgo's generated header; capi/aioguest.h is the real one

go-check:
	@test -n "$(GO_SRCS)" || { echo "go-check: no Go sources found" >&2; exit 1; }
	@echo "gofmt -l"; unformatted=$$(gofmt -l $(GO_SRCS)); \
	if [ -n "$$unformatted" ]; then \
	    echo "go-check: these files need gofmt:" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race ./...
	@for pkg in $(FUZZ_PKGS); do \
	    fuzzers=$$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go 2>/dev/null \
	               | cut -d' ' -f2 | sort -u || true); \
	    for f in $$fuzzers; do \
	        echo "$(GO) test -run='^\$$' -fuzz='^$$f\$$' -fuzztime=$(FUZZTIME) $$pkg"; \
	        $(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	    done; \
	done

system-deps:
	@bash tools/system-deps.sh

# ------------------------------------------------------------------ Python

# venv_install <dir>,<python version>,<extras>: create the venv if needed and
# do a real (non-editable) install of the project, then check that `import
# aioguest` from outside the tree resolves to the venv, library included.
define venv_install
	@py='$(call python_for,$(2))'; \
	if [ -z "$$py" ]; then \
	    echo "error: no Python $(2) found (looked in $(PYENV_ROOT)/versions/$(2).*" \
	         "and for python$(2) on PATH)" >&2; exit 1; fi; \
	if ! $(1)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(2))))' \
	        2>/dev/null; then \
	    echo "creating $(1) with $$py"; "$$py" -m venv --clear $(1); fi
	@echo "installing aioguest[$(3)] into $(1)"
	@rm -rf build
	AIOGUEST_GO='$(GO)' $(NO_SRC_PATH) $(1)/bin/python -m pip install $(PIP_FLAGS) ".[$(3)]" $(HOSTS_REQ)
	@rm -rf build
	@cd / && $(NO_SRC_PATH) $(abspath $(1))/bin/python -c '$(check_import)'
	@touch $@
endef
comma := ,
check_import := import os, sys, aioguest; \
    d = os.path.dirname(os.path.abspath(aioguest.__file__)); \
    print("  aioguest imported from", d); \
    sys.exit("error: this is not the aioguest installed in " + sys.prefix \
             if not d.startswith(os.path.abspath(sys.prefix) + os.sep) \
             else "error: the installed aioguest has no $(LIB_NAME)" \
             if not os.path.isfile(os.path.join(d, "$(LIB_NAME)")) else None)

venv: .venv/.installed

# system-deps first: PyGObject builds from source against Debian's headers.
.venv/.installed: $(PKG_DEPS) requirements/hosts.txt | system-deps
	$(call venv_install,.venv,$(MAIN_PYTHON),test$(comma)dev)

# (precious: make would otherwise delete these stamps as intermediate files)
.PRECIOUS: .venv-%/.installed
.venv-%/.installed: $(PKG_DEPS) requirements/hosts.txt | system-deps
	$(call venv_install,.venv-$*,$*,test)

lint: venv
	$(NO_SRC_PATH) .venv/bin/ruff check .
	$(NO_SRC_PATH) .venv/bin/mypy

# pytest runs from the repo root (for pyproject's settings) with PYTHONPATH
# unset; python/ is never on sys.path, so tests import the installed package.
pytest: venv
	@echo "pytest on Python $(MAIN_PYTHON) (.venv)"
	$(NO_SRC_PATH) .venv/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

PYTHONS_FOUND := $(foreach v,$(PYTHONS),$(if $(call python_for,$(v)),$(v)))
PYTHONS_MISSING := $(filter-out $(PYTHONS_FOUND),$(PYTHONS))

pytest-matrix: $(addprefix pytest-,$(PYTHONS_FOUND))
	@$(foreach v,$(PYTHONS_MISSING),echo "NOTICE: Python $(v) not found; skipped its test run";) true

pytest-%: .venv-%/.installed
	@echo "pytest on Python $* (.venv-$*)"
	$(NO_SRC_PATH) .venv-$*/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test: system-deps go-check lint pytest pytest-matrix

demo: venv
	$(NO_SRC_PATH) .venv/bin/python examples/demo.py

soak: venv
	$(NO_SRC_PATH) AIOGUEST_GO='$(GO)' .venv/bin/python tools/soak.py $(SOAK_ARGS)

stress:
	CGO_ENABLED=1 $(GO) run -race ./cmd/stress -duration $(STRESS_TIME)

# ------------------------------------------------------------------ conformance

# CPython's own test_asyncio (and test_selectors' generic selector tests) in
# the stock, selector, guest and guest-watch modes on every Python found;
# writes conformance/results/<X.Y>.{md,json} and the tables at the end of
# docs/conformance.md, and fails on a difference from stock asyncio that
# conformance/expected.py does not list.  `make test` runs a fast subset
# (tests/test_conformance.py).  About 25 minutes.
#   CONFORMANCE_ARGS  extra `python -m conformance.run` arguments, e.g.
#                     --jobs 2, or --mode stock guest --modules test_events
CONFORMANCE_ARGS ?=

conformance: venv $(foreach v,$(PYTHONS_FOUND),.venv-$(v)/.installed)
	@status=0; \
	for py in .venv/bin/python $(foreach v,$(PYTHONS_FOUND),.venv-$(v)/bin/python); do \
	    $(NO_SRC_PATH) .venv/bin/python -m conformance.run --python $$py $(CONFORMANCE_ARGS) \
	        || status=1; \
	done; \
	$(NO_SRC_PATH) .venv/bin/python -m conformance.report --docs docs/conformance.md \
	    || status=1; \
	exit $$status

# ------------------------------------------------------------------ bench
#
#   make bench                 every workload x every contender, 3 repetitions
#   make bench BENCH_ARGS=--quick                   a ~2-minute smoke run
#   make bench BENCH_ARGS="--only tick,echo --reps 5"
#
# Writes bench/results/latest.{md,json,png} and go-bench.txt.  Ours runs from
# the work tree (PYTHONPATH=python, with `make lib`'s library), so what is
# measured is exactly what is checked out, uncommitted edits included.

BENCH_ARGS ?=
BENCH_VENV := bench/.venv
BENCH_OREMANJ_VENV := bench/.venv-oremanj
ECHOPEER := bench/.bin/echopeer

# bench_venv <dir>,<requirements file>: a Python $(MAIN_PYTHON) venv with
# exactly the pinned requirements (re-run when the file changes).
define bench_venv
	@py='$(call python_for,$(MAIN_PYTHON))'; \
	if [ -z "$$py" ]; then echo "error: no Python $(MAIN_PYTHON) found" >&2; exit 1; fi; \
	if [ ! -x $(1)/bin/python ]; then echo "creating $(1) with $$py"; "$$py" -m venv $(1); fi
	$(NO_SRC_PATH) $(1)/bin/python -m pip install $(PIP_FLAGS) -r $(2)
	@touch $@
endef

$(BENCH_VENV)/.installed: bench/requirements.txt | system-deps
	$(call bench_venv,$(BENCH_VENV),bench/requirements.txt)

$(BENCH_OREMANJ_VENV)/.installed: bench/requirements-oremanj.txt
	$(call bench_venv,$(BENCH_OREMANJ_VENV),bench/requirements-oremanj.txt)

$(ECHOPEER): $(wildcard cmd/echopeer/*.go) go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/echopeer

bench: $(LIB) $(BENCH_VENV)/.installed $(BENCH_OREMANJ_VENV)/.installed $(ECHOPEER)
	$(NO_SRC_PATH) AIOGUEST_GO='$(GO)' $(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build dist .venv .venv-* python/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -rf bench/.venv bench/.venv-oremanj bench/.bin conformance/results/raw
	rm -f python/aioguest/libaioguest.* python/aioguest/aioguest.dll
	find . -path './.git' -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
