# The front door: `make demo` runs the main job, `make test` runs every test.
# Both set up .venv on first use and are quick the second time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BROWSER := $(VENV)/.browser
FONTS := $(VENV)/.fonts
MODEL_ARGS ?= --synthetic 60000 --epochs 40 --time-budget 30 --seed 1 --quantize

.PHONY: demo test setup model general-model clean

demo: $(INSTALLED) $(BROWSER)
	$(BIN)/solver demo

test: $(INSTALLED) $(BROWSER) $(FONTS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(INSTALLED) $(BROWSER) $(FONTS)

# The shipped models and profiles live inside the package (solver/shipped/), so that a wheel
# carries them; `solver` looks in ./models and ./site_profiles first, then there.
SHIPPED := solver/shipped/models

# Rebuild the shipped demo model (about 30 minutes on 2 CPU cores).
model: $(INSTALLED)
	$(BIN)/solver train --site example --out $(SHIPPED)/example $(MODEL_ARGS)

# Rebuild the shipped general model: 200 looks drawn at random (solver/training/profiles/general.yaml,
# written by `python -m solver.training.general --looks 200 --seed 1 --write ...`), the starting
# point for a new site and a pre-labeller. These are the shipped model's settings (80 minutes on
# 2 CPU cores, drawing included); it was still improving when its budget ended.
GENERAL_ARGS ?= --synthetic 150000 --epochs 1000 --patience 1000 --time-budget 85 --seed 1 --quantize
general-model: $(INSTALLED)
	$(BIN)/solver train --site solver/training/profiles/general.yaml --out $(SHIPPED)/general $(GENERAL_ARGS)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,test]'
	touch $@

# Fonts for look-alikes (`solver synth fit` chooses among them by weight, serifs and width):
# Debian's free font packages when root, else a hint; the fit works without them.
$(FONTS): $(INSTALLED)
	$(BIN)/python -m solver.fonts --install --quiet
	touch $@

# Playwright's own Chromium where it can be downloaded, else a system one.
$(BROWSER): $(INSTALLED)
	$(BIN)/solver browser install
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
