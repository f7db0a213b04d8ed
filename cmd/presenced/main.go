// Command presenced tracks the presence of MQTT clients: it runs the bundled
// MQTT broker, carries its lifecycle events to Postgres and answers "is
// client X online?" over HTTP.
//
//	presenced serve     broker + in-process transport + consumer + API (default)
//	presenced api       the HTTP API alone, against a shared database
//	presenced broker    the MQTT broker alone, sending events through RocketMQ
//	presenced consumer  applies events from RocketMQ to the store
//	presenced migrate   apply database migrations and exit
//	presenced health    check a running presenced's /readyz (exit 0 when ready)
//	presenced version   print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if code := exitCode(err); code != 0 {
		fmt.Fprintf(os.Stderr, "presenced: %v\n", err)
		os.Exit(code)
	}
}

// run is the whole program; main only supplies the process's environment,
// so tests can call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	command := "serve"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		command, args = "help", args[1:] // the commands, not serve's flags
	} else if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		command, args = args[0], args[1:]
	}
	switch command {
	case "serve":
		return runServe(ctx, args, getenv, stderr)
	case "api":
		return runAPI(ctx, args, getenv, stderr)
	case "broker":
		return runBroker(ctx, args, getenv, stderr)
	case "consumer":
		return runConsumer(ctx, args, getenv, stderr)
	case "migrate":
		return runMigrate(ctx, args, getenv, stderr)
	case "health":
		return runHealth(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprint(stdout, versionText())
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q\n%s", command, usage)}
}

const usage = `usage: presenced <command> [flags]

commands:
  serve     run the MQTT broker, the event consumer and the HTTP API in one process (default)
  api       run the HTTP API alone against a shared database (--database-url)
  broker    run the MQTT broker alone; events go through a durable outbox to RocketMQ
  consumer  apply events from RocketMQ to the store (and check broker node leases)
  migrate   apply the database migrations and exit
  health    check that a running presenced is ready (GET /readyz), for container healthchecks
  version   print the version and the revision it was built from

Every flag has a PRESENCE_* environment variable; run "presenced serve -h" for the list.
`
