package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"
)

// composeFile is what this test reads of docker-compose.yml.
type composeFile struct {
	Services map[string]struct {
		Build       any               `yaml:"build"`
		Command     any               `yaml:"command"` // a list, or a string for the shell
		Environment map[string]string `yaml:"environment"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		StopGracePeriod string         `yaml:"stop_grace_period"`
		DependsOn       map[string]any `yaml:"depends_on"`
		Restart         string         `yaml:"restart"`
	} `yaml:"services"`
}

// TestComposeFileMatchesTheBinary checks docker-compose.yml against the
// binary without a Docker engine: every presenced service runs a real
// command whose flags and PRESENCE_* variables (with the image's ENV) make
// a valid configuration, long-running ones have a healthcheck that the
// health command accepts and a stop grace longer than the shutdown
// timeout, and every dependency waits for health or completion.
func TestComposeFileMatchesTheBinary(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose composeFile
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	imageEnv := dockerfileEnv(t)
	presencedServices := 0
	for name, svc := range compose.Services {
		for dep, cond := range svc.DependsOn {
			c, _ := cond.(map[any]any)
			if c == nil || (c["condition"] != "service_healthy" && c["condition"] != "service_completed_successfully") {
				t.Errorf("%s depends on %s without a condition service_healthy or service_completed_successfully", name, dep)
			}
		}
		if svc.Build == nil {
			if svc.Healthcheck == nil && svc.Restart == "" {
				t.Errorf("service %s has no healthcheck", name)
			}
			continue
		}
		presencedServices++
		list, _ := svc.Command.([]any)
		if len(list) == 0 {
			t.Errorf("%s: command is not a list of arguments", name)
			continue
		}
		var argv []string
		for _, a := range list {
			argv = append(argv, a.(string))
		}
		command, args := argv[0], argv[1:]
		environment := map[string]string{}
		for k, v := range imageEnv {
			environment[k] = v
		}
		for k, v := range svc.Environment {
			if !strings.HasPrefix(k, "PRESENCE_") {
				t.Errorf("%s: environment %s is not a presenced variable", name, k)
			}
			if !flagsOf(t, command)[k] {
				t.Errorf("%s: presenced %s has no flag for %s", name, command, k)
			}
			environment[k] = v
		}
		if _, err := parseServeConfig(command, args, env(environment), &bytes.Buffer{}); err != nil {
			t.Errorf("%s: presenced %s %v with its environment: %v", name, command, args, err)
		}
		if command == "migrate" {
			continue // runs once and exits
		}
		if svc.Healthcheck == nil || len(svc.Healthcheck.Test) < 3 || svc.Healthcheck.Test[0] != "CMD" ||
			svc.Healthcheck.Test[1] != "/usr/local/bin/presenced" || svc.Healthcheck.Test[2] != "health" {
			t.Errorf("%s: healthcheck is not [CMD, /usr/local/bin/presenced, health, …]", name)
		} else if err := runHealth(t.Context(), append(svc.Healthcheck.Test[3:], "-h"), env(environment), &bytes.Buffer{}, &bytes.Buffer{}); exitCode(err) != 0 {
			t.Errorf("%s: healthcheck flags %v: %v", name, svc.Healthcheck.Test[3:], err)
		}
		grace, err := time.ParseDuration(svc.StopGracePeriod)
		if err != nil || grace <= 30*time.Second {
			t.Errorf("%s: stop_grace_period %q, want longer than the 30s shutdown timeout", name, svc.StopGracePeriod)
		}
	}
	if presencedServices < 4 {
		t.Fatalf("found %d presenced services, want migrate, broker, consumer and api", presencedServices)
	}
}

// flagsOf returns the PRESENCE_* variables of a command's flags, as its -h lists them.
func flagsOf(t *testing.T, command string) map[string]bool {
	t.Helper()
	var usage bytes.Buffer
	_, _ = parseServeConfig(command, []string{"-h"}, env(nil), &usage)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(usage.String(), -1) {
		names[envName(m[1])] = true
	}
	if len(names) == 0 {
		t.Fatalf("presenced %s -h listed no flags", command)
	}
	return names
}

// dockerfileEnv returns the variables the image's ENV lines set.
func dockerfileEnv(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					vars[k] = v
				}
			}
		}
	}
	return vars
}
