# presenced — the two commands a new user needs:
#   make run    start presenced on its embedded default (private PostgreSQL, MQTT :1883, HTTP :8080)
#   make test   run every test (installs the PostgreSQL server and the test tools from apt when missing)

GO        ?= go
BIN       := bin/presenced
PG_BINDIR := $(shell ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
FUZZTIME  ?= 50000x

.PHONY: all build run test test-short fuzz vet fmt postgres testdeps bench clean lint-openapi

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/presenced

# make run listens on the default ports on loopback, where anonymous MQTT
# clients are allowed (--allow-anonymous=auto); override with
# make run MQTT_ADDR=:1883 HTTP_ADDR=:8080 (then configure credentials).
MQTT_ADDR ?= 127.0.0.1:1883
HTTP_ADDR ?= 127.0.0.1:8080

run: postgres build
	./$(BIN) serve --mqtt-addr $(MQTT_ADDR) --http-addr $(HTTP_ADDR)

# postgres makes sure PostgreSQL server binaries exist (the tests and the
# embedded default need initdb and postgres), installing them from apt if not.
postgres:
	@if command -v initdb >/dev/null 2>&1 || [ -x "$(PG_BINDIR)/initdb" ]; then \
		exit 0; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries not found; installing them with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql; \
	else \
		echo "PostgreSQL server binaries not found: install PostgreSQL (initdb, postgres) or set PRESENCE_TEST_DATABASE_URL" >&2; \
		exit 1; \
	fi

# testdeps installs the programs the end-to-end tests drive (mosquitto and
# its clients, haproxy, openssl, chromium for the dashboard) from apt, only
# those whose binary is missing. Under CI=true a test fails instead of skipping when one is absent.
TESTDEPS := /usr/sbin/mosquitto:mosquitto mosquitto_pub:mosquitto-clients mosquitto_sub:mosquitto-clients haproxy:haproxy openssl:openssl chromium:chromium

testdeps:
	@missing=""; for dep in $(TESTDEPS); do \
		bin=$${dep%%:*}; pkg=$${dep#*:}; \
		if ! command -v $$bin >/dev/null 2>&1 && [ ! -x "$$bin" ] && [ ! -x "/usr/sbin/$$bin" ]; then \
			case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
		fi; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "missing test tools:$$missing; install them (or set CI= to let the tests skip)" >&2; exit 1; \
	fi; \
	echo "installing test tools with apt-get:$$missing"; \
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing

test: postgres testdeps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

# lint-openapi checks api/openapi.json with the Redocly CLI pinned in
# api/lint/package-lock.json (npm ci installs exactly that; Node.js and npm
# come with the machine). Accepted findings are in api/lint/.redocly.lint-ignore.yaml.
lint-openapi:
	cd api/lint && npm ci --no-audit --no-fund --loglevel=error && ./node_modules/.bin/redocly lint --config redocly.yaml ../openapi.json

test-short: postgres
	$(GO) test -count=1 -short ./...

# fuzz runs every Fuzz* target of the module for FUZZTIME each (go test
# -fuzz takes one target at a time). Seed corpora live in testdata/fuzz/.
# FUZZTIME is a count of executions by default, not a duration: with a
# duration, Go 1.26's fuzz coordinator can fail a target with a bare
# "context deadline exceeded" at the end of the time, having found
# nothing (golang/go#75804, fixed in Go 1.27); a count has no deadline.
# 50,000 runs the CONNECT→session target, the slowest (~1,000 execs/s
# here), for about a minute and the decoders for a few seconds.
# Minimizing each new interesting input may take up to a minute by default and
# stalls fuzzing meanwhile; a short run is better spent executing inputs.
fuzz:
	@set -e; for file in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz'); do \
		pkg=./$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; \
		done; \
	done

bench: postgres
	$(GO) test -run '^$$' -bench . -benchmem ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
