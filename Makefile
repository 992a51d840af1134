# Two commands for a fresh machine with only Python: `make run` and `make test`.
# Both create .venv and install the CPU build of torch *before* the rest, so pip never
# resolves a multi-GB CUDA build on a machine without a GPU.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install clean mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'  # ray: CI runs the real execution=ray tests
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## run the default experiment (pass overrides with ARGS="evaluator=loss gate=off")
	$(BIN)/rsi-loop $(ARGS)

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest -q $(ARGS)

mutation: $(STAMP)  ## mutation testing of the core (docs/mutation.md); long: not part of `make test`
	$(BIN)/python -m pip install --quiet 'mutmut==3.8.1'
	rm -f mutants/mutmut-stats.json  # mutmut never adds tests written since its stats were taken: retake them
	WANDB_MODE=disabled $(BIN)/mutmut run --max-children 2 > mutants.log 2>&1 || (tail -c 2000 mutants.log; exit 1)
	$(BIN)/python .ci/mutation_report.py

clean:
	rm -rf $(VENV) outputs multirun mutants mutants.log
