package main

import (
	"fmt"
	"sync"
)

// components runs the long-lived parts of a process, each in its own
// goroutine, and reports the first that fails; Wait waits for all of them.
// No goroutine is started without an owner that waits for it.
type components struct {
	wg     sync.WaitGroup
	failed chan error
}

func newComponents() *components { return &components{failed: make(chan error, 16)} }

// run starts fn; an error other than a server's "closed" is reported on
// Failed, prefixed with name.
func (c *components) run(name string, fn func() error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := ignoreClosed(fn()); err != nil {
			select {
			case c.failed <- fmt.Errorf("%s: %w", name, err):
			default: // the first failure is what matters
			}
		}
	}()
}

// Failed delivers the failures of components.
func (c *components) Failed() <-chan error { return c.failed }

// Wait waits for every component to return.
func (c *components) Wait() { c.wg.Wait() }
