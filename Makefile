# edge-appliance: `make run` serves the demo, `make test` runs the whole suite. Both are safe to rerun.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CACHE  := .cache
DATA   := data
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Every Debian package the tests use, named explicitly: installs use --no-install-recommends, so a
# package another one only recommends (gcc -> libc6-dev) must be in this list itself.
APT_PACKAGES := python3-venv gcc libc6-dev make git chromium mosquitto shellcheck
APT_INSTALL  := $(SUDO) apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600

.PHONY: run run-serial test lint typecheck pytest demo bench system-deps screenshots clean help

help:
	@echo "make run    - install into .venv, prepare the demo, serve http://127.0.0.1:8080"
	@echo "make test   - install dev tools, run ruff, mypy --strict and the whole pytest suite"
	@echo "make bench  - run 'appliance bench' and write docs/benchmarks.md"
	@echo "make bench-peers - MLServer and the appliance under the same KServe v2 load (docs/benchmarks.md)"
	@echo "make screenshots - refresh docs/screenshots/ from the browser tests"

# Debian/Ubuntu packages the project needs; installed only when missing (dpkg state "installed").
define apt_ensure
	@missing=""; for p in $(1); do \
	  [ "$$(dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null)" = installed ] || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && $(APT_INSTALL) $$missing; fi
endef

system-deps:
	$(call apt_ensure,$(APT_PACKAGES))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(MAKE) system-deps && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

# Three distributions, installed editable: the appliance (the runtime the device gets), firmware-bridge
# (its serial protocol, a dependency) and tools/ (demo, bench, load generator: never on the device).
# Reinstall whenever a pyproject.toml changes (the stamp is older than it).
PYPROJECTS := pyproject.toml firmware-bridge/pyproject.toml tools/pyproject.toml
$(VENV)/.runtime: $(PYPROJECTS) | $(BIN)/python
	$(BIN)/pip install -q -e ./firmware-bridge -e . -e ./tools
	touch $@

$(VENV)/.dev: $(PYPROJECTS) $(VENV)/.runtime
	$(BIN)/pip install -q -e ./firmware-bridge -e '.[dev]' -e ./tools
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/appliance demo prepare --data-dir $(DATA) --cache-dir $(CACHE)

run: demo
	$(BIN)/appliance serve --config $(DATA)/config.toml

# The serial demo: the firmware-bridge simulator on a virtual serial port (a pty) feeds accelerometer
# windows and photo-eye triggers to the appliance, which classifies them and answers RESULT/IO_SET.
SERIAL_DATA := data-serial
run-serial: $(VENV)/.runtime
	$(BIN)/appliance demo prepare --serial --data-dir $(SERIAL_DATA) --cache-dir $(CACHE)
	$(BIN)/python -m firmware_bridge.simulator --create-pty --port $(SERIAL_DATA)/ttyFB0 --mode cycle \
	  --rate 5 --trigger-every 3 --log-level WARNING & sim=$$!; \
	trap 'kill $$sim 2>/dev/null' EXIT INT TERM; \
	$(BIN)/appliance serve --config $(SERIAL_DATA)/config.toml

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

pytest: system-deps $(VENV)/.dev
	$(BIN)/python -m pytest

test: lint typecheck pytest

# The browser tests write their screenshots to build/screenshots; this refreshes docs/screenshots.
screenshots: system-deps $(VENV)/.dev
	APPLIANCE_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/e2e/test_ui.py -q

bench: $(VENV)/.dev
	$(call apt_ensure,wrk)
	$(BIN)/appliance bench --model face,selfie --cache-dir $(CACHE) --notes docs/benchmarks-notes.md \
	  --report docs/benchmarks.md
	$(BIN)/appliance bench --model face,selfie --threads 1 --workers 2 --concurrency 4 --cache-dir $(CACHE) \
	  --report docs/benchmarks.md --append

# The peers: MLServer 1.7 in its own venv (uvloop<0.22: with 0.22+ its inference worker dies at start,
# SeldonIO/MLServer#2286), serving the same .tflite, under the same KServe v2 load as the appliance.
MLSERVER_VENV := .venv-mlserver
.PHONY: bench-peers
$(MLSERVER_VENV)/bin/mlserver:
	$(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install -q 'mlserver==1.7.1' 'ai-edge-litert==2.3.0' 'numpy==2.4.6' 'uvloop<0.22'
bench-peers: $(VENV)/.dev $(MLSERVER_VENV)/bin/mlserver
	$(BIN)/appliance bench --peers $(MLSERVER_VENV) --model face --cache-dir $(CACHE) --report docs/benchmarks.md

# NPU host tools: rknn-toolkit2 pins numpy<=1.26 and pulls torch (venv 5.6 GB installed, 6.7 GB with
# TensorFlow), so it lives in its own venv and is never part of .venv or `make test`. Converting .tflite
# sources also needs TensorFlow 2.14 (make rknn-tools RKNN_TFLITE=1); ONNX sources need nothing more.
# test-rknn installs it: the face-detector gate tests convert the .tflite face model.
RKNN_VENV    := .venv-rknn
RKNN_PYTHON  ?= python3.11
RKNN_TOOLKIT := rknn-toolkit2==2.5.0
RKNN_EXTRA    = $(if $(RKNN_TFLITE),tensorflow-cpu==2.14.1)
.PHONY: rknn-tools test-rknn
$(RKNN_VENV)/bin/python:
	$(RKNN_PYTHON) -m venv $(RKNN_VENV)
	$(RKNN_VENV)/bin/python -m pip install -q --upgrade pip
rknn-tools: | $(RKNN_VENV)/bin/python
	$(RKNN_VENV)/bin/pip install -q $(RKNN_TOOLKIT) $(RKNN_EXTRA)
test-rknn: RKNN_TFLITE = 1
test-rknn: rknn-tools $(VENV)/.dev
	APPLIANCE_RKNN_VENV=$(CURDIR)/$(RKNN_VENV) $(BIN)/python -m pytest tests/test_rknn_toolkit.py -m toolkit -v

# The device image (docs/flash.md, images/README.md). Downloads are cached in IMAGE_CACHE between runs.
# mmdebstrap only recommends arch-test (it needs it to run a foreign-arch chroot) and mount; gpg is
# what it uses to read the archive keyring; qemu-system-arm only recommends the UEFI firmware.
# The signed RAUC bundle: rauc (`rauc bundle`) only suggests squashfs-tools (mksquashfs), which it
# needs; openssl makes the development signing key; u-boot-tools (mkimage) the rock5b boot.scr;
# openssh-client (ssh, ssh-keygen) runs `systemctl restart` inside the booted test image.
IMAGE_APT   := mmdebstrap arch-test mount gpg debian-archive-keyring qemu-user-static qemu-system-arm \
               qemu-efi-aarch64 fdisk e2fsprogs dosfstools mtools xz-utils util-linux python3-venv git \
               ca-certificates shellcheck rauc squashfs-tools openssl u-boot-tools openssh-client
IMAGE_CACHE ?= /var/cache/edge-appliance
BOARD       ?= qemu-virt
.PHONY: image image-test image-deps

image-deps:
	$(call apt_ensure,$(IMAGE_APT))

image: image-deps
	$(SUDO) ./build_image.sh --board $(BOARD) --cache $(IMAGE_CACHE)

# Builds the qemu-virt image and signed bundles, boots it under qemu-system-aarch64, sets the admin
# password over HTTP, runs an inference over REST, then the A/B update: v2 over REST -> reboot -> slot
# B marked good; a broken v3 falls back to v2 by itself; unsigned/foreign-key bundles refused.
image-test: image-deps $(VENV)/.dev
	$(SUDO) env IMAGE_TEST=1 APPLIANCE_IMAGE_CACHE=$(IMAGE_CACHE) $(BIN)/python -m pytest -m image \
	  tests/e2e/test_image_boot.py -rA
	@cat build/image-test/timings.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
