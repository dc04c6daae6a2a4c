# kubemind: the two commands a new user needs are `make demo` and `make test`.
CARGO ?= cargo
FUZZ_SECONDS ?= 60
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
## the image the manifests name; make deploy IMAGE=… installs another
IMAGE ?= ghcr.io/kubemind/kubemind:$(VERSION)
## default, custom-only (beside KEDA), external-only (beside prometheus-adapter), prometheus,
## cert-manager, generated, per-process (per-process GPU attribution, hostPID)
OVERLAY ?= default

.PHONY: all build demo standalone test lint modules manifests alerts certs image deploy undeploy bench soak fuzz clean

all: build

build:
	$(CARGO) build --locked

## demo: the failure kubemind exists for, replayed with simulated GPUs, Triton and HPAs;
## the run is also drawn to docs/demo.svg (the picture in README)
demo: build
	target/debug/kubemind demo --svg docs/demo.svg

## standalone: the standalone adapter on example values, read with kubectl
standalone: build
	tests/standalone-demo.sh

## test: formatting, lints (which also compile the bench), manifests, unit, property and
## integration tests (needs kubectl and python3)
test: lint modules manifests
	$(CARGO) test --locked

## modules: draw the module graph of src/ and check that imports point one way (no cycle,
## no role importing another's insides, no library file included from tests/)
modules:
	python3 tests/module-graph.py

## manifests: render apiservice/ with kubectl kustomize and validate for Kubernetes 1.33-1.37
manifests:
	tests/validate-manifests.sh

## alerts: promtool check and unit-test the alert rules (also run by `make test`)
alerts:
	promtool check rules apiservice/alerts/kubemind-rules.yaml
	promtool test rules tests/alerts/kubemind-rules.test.yaml

## certs: a CA, the serving Secret and a caBundle overlay in apiservice/generated/
certs:
	apiservice/certs.sh apiservice/generated

## lint: rustfmt and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## image: the container image from Containerfile, tagged IMAGE, with podman or docker
## (whichever is installed; ENGINE=… to choose)
ENGINE ?= $(shell command -v podman || command -v docker)
image:
	@test -n "$(ENGINE)" || { echo "make image needs podman or docker"; exit 1; }
	$(ENGINE) build -f Containerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) .

## deploy: kubemind preflight (refuses to take over KEDA's or prometheus-adapter's APIService),
## then kubectl apply -k the OVERLAY with IMAGE; DRY_RUN=1 prints what it would apply instead
deploy: build
	apiservice/deploy.sh $(OVERLAY) $(IMAGE) $(if $(DRY_RUN),--dry-run,)

## undeploy: kubectl delete -k the OVERLAY
undeploy:
	apiservice/deploy.sh $(OVERLAY) $(IMAGE) delete

## bench: the adapter's serving latency, throughput and memory, and the exporter's memory and
## CPU (release and the image's dist build side by side) and the image's size, the direct and
## Prometheus paths (1,000,000 series backfilled), and one adapter scraping 1,000 exporters,
## against the budget in docs/architecture.md
bench:
	$(CARGO) build --locked --profile dist --bin kubemind
	$(CARGO) bench --locked --bench adapter_load
	KUBEMIND_IMAGE=$(IMAGE) $(CARGO) bench --locked --bench exporter_load
	$(CARGO) bench --locked --bench prometheus_paths
	$(CARGO) bench --locked --bench fleet

## soak: the adapter for SOAK_MINUTES (10) at SOAK_RATE (5000) req/s of a realistic mix while
## its values change every second, after SOAK_FLOOR_MINUTES (1) of the same against the floor;
## per-minute p50/p99 and RSS; fails past the budget
soak:
	$(CARGO) bench --locked --bench soak

## fuzz: each parser's fuzz target for FUZZ_SECONDS (needs cargo-fuzz; stable toolchain via RUSTC_BOOTSTRAP)
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in $$(RUSTC_BOOTSTRAP=1 cargo fuzz list); do \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	$(CARGO) clean
