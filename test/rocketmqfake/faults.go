package rocketmqfake

import (
	"fmt"
	"time"
)

// Target selects which server a fault applies to.
type Target int

const (
	// Both is the zero value: the name server and the broker.
	Both Target = iota
	Namesrv
	Broker
)

func (t Target) matches(k serverKind) bool {
	switch t {
	case Namesrv:
		return k == serverNamesrv
	case Broker:
		return k == serverBroker
	}
	return true
}

// Fault describes what to do to matching requests. The zero Fault matches
// every request and does nothing. Actions apply in order: Delay, then one
// of Drop, CloseConn or Error; with none of those the request is then
// handled normally (a pure delay).
//
// Beware Error on GET_CONSUMER_LIST_BY_GROUP (which a fault without Codes
// includes): rocketmq-client-go reads any error answer as an empty consumer
// list and drops all its queues until its next 20 s rebalance. Transport
// failures (Drop, CloseConn, Pause) do not have that effect.
type Fault struct {
	Target Target
	// Codes limits the fault to these request codes (Req* constants);
	// empty means every code.
	Codes []int16
	// Delay holds the request this long before acting on it.
	Delay time.Duration
	// Drop swallows the request: no response, the client times out (3 s
	// for sends, 30 s for pulls in rocketmq-client-go).
	Drop bool
	// CloseConn closes the connection the request came on, unanswered.
	CloseConn bool
	// Error answers with this response code (e.g. ResSystemBusy,
	// ResServiceNotAvailable) instead of handling the request.
	Error int16
	// Times limits the fault to this many matching requests; 0 means until
	// cleared.
	Times int
}

func (fl Fault) String() string {
	return fmt.Sprintf("{target=%d codes=%v delay=%s drop=%t close=%t error=%d times=%d}",
		fl.Target, fl.Codes, fl.Delay, fl.Drop, fl.CloseConn, fl.Error, fl.Times)
}

// FaultID identifies an injected fault.
type FaultID int

type faultRule struct {
	Fault
	id   FaultID
	left int // remaining uses when Times > 0
}

// Inject adds a fault; the first injected fault that matches a request
// applies to it. It returns an id for ClearFault.
func (f *Fake) Inject(fl Fault) FaultID {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextFaultID++
	f.faults = append(f.faults, &faultRule{Fault: fl, id: f.nextFaultID, left: fl.Times})
	return f.nextFaultID
}

// ClearFault removes one fault.
func (f *Fake) ClearFault(id FaultID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.faults {
		if r.id == id {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults removes every fault (Pause and RefuseConnections are separate).
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// matchFaultLocked returns the first fault matching the request and uses
// up one of its Times. Caller holds f.mu.
func (f *Fake) matchFaultLocked(k serverKind, code int16) *faultRule {
	for i, r := range f.faults {
		if !r.Target.matches(k) {
			continue
		}
		if len(r.Codes) > 0 {
			hit := false
			for _, c := range r.Codes {
				if c == code {
					hit = true
					break
				}
			}
			if !hit {
				continue
			}
		}
		if r.Times > 0 {
			r.left--
			if r.left <= 0 {
				f.faults = append(f.faults[:i], f.faults[i+1:]...)
			}
		}
		return r
	}
	return nil
}

// Pause makes both servers go silent, as if the RocketMQ processes were
// frozen (SIGSTOP) or the network black-holed: requests are neither
// processed nor answered and nothing is written, yet connections stay open
// and the kernel keeps accepting new ones and buffering requests. Resume
// handles what arrived meanwhile, late: a send whose client already timed
// out (3 s per attempt) and retried is then stored too, so expect
// duplicates, as with a real broker. Pulls time out client-side after 30 s.
// A peer that closed its connection during the pause is noticed on Resume.
func (f *Fake) Pause() {
	f.mu.Lock()
	if f.resumeAt != nil {
		f.resumeAt.Stop()
		f.resumeAt = nil
	}
	f.mu.Unlock()
	f.gate.pause()
}

// Resume ends a Pause.
func (f *Fake) Resume() {
	f.mu.Lock()
	if f.resumeAt != nil {
		f.resumeAt.Stop()
		f.resumeAt = nil
	}
	f.mu.Unlock()
	f.gate.resume()
}

// Paused reports whether the fake is paused.
func (f *Fake) Paused() bool { return f.gate.isPaused() }

// UnreachableFor pauses the fake and resumes it after d.
func (f *Fake) UnreachableFor(d time.Duration) {
	f.Pause()
	f.mu.Lock()
	f.resumeAt = time.AfterFunc(d, f.gate.resume)
	f.mu.Unlock()
}

// DropConnections closes every client connection now, without answering
// anything in flight (long-polling pulls included: the Go client then waits
// out its 30 s pull timeout for those queues). Listeners stay open, so
// clients reconnect on their next request. Group membership is kept (see
// Options.ClientExpiry).
func (f *Fake) DropConnections() {
	f.closeAllConns()
}

// RefuseConnections closes (true) or reopens (false) the listeners on the
// same ports. Established connections are not touched; combine with
// DropConnections for "the broker is gone".
func (f *Fake) RefuseConnections(refuse bool) error {
	f.lifecycle.Lock()
	defer f.lifecycle.Unlock()
	f.mu.Lock()
	if !f.running || f.refusing == refuse {
		f.mu.Unlock()
		return nil
	}
	if refuse {
		f.refusing = true
		f.closeListenersLocked()
		f.mu.Unlock()
		return nil
	}
	nsAddr, brAddr := f.nsAddr, f.brAddr
	f.mu.Unlock()
	nsLn, err := listenRetry(nsAddr)
	if err != nil {
		return err
	}
	brLn, err := listenRetry(brAddr)
	if err != nil {
		nsLn.Close()
		return err
	}
	f.mu.Lock()
	f.nsLn, f.brLn, f.refusing = nsLn, brLn, false
	f.mu.Unlock()
	f.serve(nsLn, serverNamesrv)
	f.serve(brLn, serverBroker)
	return nil
}
