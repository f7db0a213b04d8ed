package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// component is one long-lived part of a process, as the lifecycle runs it.
// Every field is optional.
type component struct {
	name string
	// start runs synchronously, in order: a component starts only once
	// every component before it has started.
	start func() error
	// run is the component's work; it returns when stop made it, or when
	// its context ends. An error other than a server's "closed" stops the
	// whole process.
	run func(ctx context.Context) error
	// stop ends the component gracefully and releases what it holds,
	// returning by the deadline of its context; then run's context is
	// cancelled and run is waited for. It must be safe to call when start
	// or run never ran. Without stop, cancelling run's context is the stop.
	stop func(ctx context.Context) error
	// critical: an error from stop means something accepted could not
	// be made durable, so the process must exit non-zero.
	critical bool
}

// lifecycle is the one start/stop skeleton of every command: components
// are added in dependency order as they are built, started in that order,
// and stopped in reverse — so whatever is stopped can still rely on what
// was started before it (the broker's last events reach the outbox, the
// consumer drains it into the database, the database stops last). Every
// goroutine it starts is waited for.
type lifecycle struct {
	log    *slog.Logger
	parts  []*runningPart
	failed chan error
}

type runningPart struct {
	component
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned (or never ran)
}

func newLifecycle(log *slog.Logger) *lifecycle {
	return &lifecycle{log: log, failed: make(chan error, 1)}
}

// add appends a component; it starts with run.
func (l *lifecycle) add(c component) { l.parts = append(l.parts, &runningPart{component: c}) }

// addListener adds a listener to be closed at the end, in case the server
// that owns it never ran.
func (l *lifecycle) addListener(name string, ln net.Listener) {
	l.add(component{name: name, stop: func(context.Context) error {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}})
}

// abort stops what was added so far (nothing has started) and returns
// err: the early return of a command that could not be built.
func (l *lifecycle) abort(err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(err, l.stopFrom(ctx, len(l.parts)-1))
}

// run starts every component, waits until ctx ends or a component fails,
// then stops them all in reverse order within shutdownWait. It returns the
// failure, if any, joined with the errors of critical stops.
func (l *lifecycle) run(ctx context.Context, shutdownWait time.Duration) error {
	var runErr error
	for i, p := range l.parts {
		if err := l.startPart(p); err != nil {
			runErr = fmt.Errorf("start %s: %w", p.name, err)
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWait)
			defer cancel()
			return errors.Join(runErr, l.stopFrom(shutdownCtx, i-1))
		}
	}
	select {
	case <-ctx.Done():
		l.log.Info("shutting down", "cause", context.Cause(ctx))
	case runErr = <-l.failed:
		l.log.Error("component failed; shutting down", "err", runErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWait)
	defer cancel()
	return errors.Join(runErr, l.stopFrom(shutdownCtx, len(l.parts)-1))
}

func (l *lifecycle) startPart(p *runningPart) error {
	if p.start != nil {
		if err := p.start(); err != nil {
			return err
		}
	}
	if p.run == nil {
		return nil
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		if err := ignoreClosed(p.run(runCtx)); err != nil && runCtx.Err() == nil {
			select {
			case l.failed <- fmt.Errorf("%s: %w", p.name, err):
			default: // the first failure is what matters
			}
		}
	}()
	return nil
}

// stopFrom stops parts[last], parts[last-1], …, parts[0]: each one's stop
// runs, then its run is cancelled and waited for.
func (l *lifecycle) stopFrom(ctx context.Context, last int) error {
	var critical []error
	for i := last; i >= 0; i-- {
		p := l.parts[i]
		var err error
		if p.stop != nil {
			err = p.stop(ctx)
		}
		if p.done != nil {
			p.cancel()
			<-p.done
		}
		if err = ignoreClosed(err); err != nil {
			l.log.Error("component stopped with an error", "component", p.name, "err", err)
			if p.critical {
				critical = append(critical, fmt.Errorf("stop %s: %w", p.name, err))
			}
		}
	}
	return errors.Join(critical...)
}
