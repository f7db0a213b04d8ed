package mqttbroker

import (
	"testing"
	"time"
)

// waitUntil polls cond until it holds and fails the test if it does not
// within 5 s: a bound for a stuck test, not a timing the test relies on.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConnectionsFinished waits until srv holds no connection. A
// connection is forgotten (removeConn) only at the end of finish, after
// the last event it will ever emit, so this is the barrier behind which a
// test may assert that some event did not come.
func waitConnectionsFinished(t *testing.T, srv *testServer) {
	t.Helper()
	waitUntil(t, "every connection to finish", func() bool { return srv.Stats().Connections == 0 })
}
