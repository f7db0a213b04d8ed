package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var ctx = context.Background()

const baseTime = int64(1_732_240_000_000)

// ev builds a valid event; at is an offset in ms from baseTime.
func ev(client, channel string, typ presence.EventType, at int64) presence.Event {
	e := presence.Event{ClientID: client, ChannelID: channel, Type: typ, Time: baseTime + at,
		ClientIP: "203.0.113.7:52311", Node: "broker-a", Epoch: "e1"}
	if typ == presence.EventTCPClean {
		e.Reason = presence.ReasonClientClosed
	}
	if typ == presence.EventConnect {
		e.Username, e.Keepalive = "user", 60
	}
	return e
}

func withReason(e presence.Event, r presence.Reason) presence.Event { e.Reason = r; return e }

func mustApply(t testing.TB, s *pgstore.Store, events ...presence.Event) pgstore.ApplyResult {
	t.Helper()
	res, err := s.Apply(ctx, events)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func mustOnline(t testing.TB, s *pgstore.Store, clientID string) presence.Status {
	t.Helper()
	st, err := s.Online(ctx, clientID)
	if err != nil {
		t.Fatalf("Online(%q): %v", clientID, err)
	}
	return st
}

// ruleOnline evaluates the rule of DESIGN.md on the set of events, in Go,
// as the reference the store must agree with.
func ruleOnline(events []presence.Event) (online bool, open int) {
	sets := map[string]*presence.ChannelEvents{}
	for _, e := range events {
		if sets[e.ChannelID] == nil {
			sets[e.ChannelID] = &presence.ChannelEvents{}
		}
		sets[e.ChannelID].Add(e.Type)
	}
	var all []presence.ChannelEvents
	for _, c := range sets {
		all = append(all, *c)
		if c.Open() {
			open++
		}
	}
	return presence.Online(all), open
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

// TestRuleOnSets delivers the events of each case in every order, one per
// batch and all in one batch, and checks the store agrees with the rule and
// with the expected outcome.
func TestRuleOnSets(t *testing.T) {
	s := pgtest.NewStore(t)
	const c = presence.EventConnect
	const d = presence.EventDisconnect
	const x = presence.EventTCPClean
	tests := []struct {
		name       string
		events     []presence.Event // client "cl", channels "old"/"new"/…
		wantOnline bool
		wantOpen   int
	}{
		{"connect", []presence.Event{ev("cl", "a", c, 0)}, true, 1},
		{"disconnect without tcpclean stays online", []presence.Event{ev("cl", "a", c, 0), ev("cl", "a", d, 5)}, true, 1},
		{"connect and tcpclean", []presence.Event{ev("cl", "a", c, 0), ev("cl", "a", x, 5)}, false, 0},
		{"full lifecycle", []presence.Event{ev("cl", "a", c, 0), ev("cl", "a", d, 5), ev("cl", "a", x, 6)}, false, 0},
		{"disconnect alone", []presence.Event{ev("cl", "a", d, 0)}, false, 0},
		{"tcpclean alone", []presence.Event{ev("cl", "a", x, 0)}, false, 0},
		{"duplicates", []presence.Event{ev("cl", "a", c, 0), ev("cl", "a", c, 0), ev("cl", "a", x, 5), ev("cl", "a", x, 5)}, false, 0},
		{"takeover", []presence.Event{
			ev("cl", "old", c, 0),
			withReason(ev("cl", "old", x, 10), presence.ReasonTakeover),
			ev("cl", "new", c, 10),
		}, true, 1},
		{"takeover, then the new channel closes", []presence.Event{
			ev("cl", "old", c, 0),
			withReason(ev("cl", "old", x, 10), presence.ReasonTakeover),
			ev("cl", "new", c, 10),
			ev("cl", "new", x, 20),
		}, false, 0},
		{"many channels, one open", []presence.Event{
			ev("cl", "a", c, 0), ev("cl", "a", x, 1), ev("cl", "b", c, 2), ev("cl", "b", x, 3), ev("cl", "c", c, 4),
		}, true, 1},
		{"two open channels", []presence.Event{ev("cl", "a", c, 0), ev("cl", "b", c, 1)}, true, 2},
	}
	for ti, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			online, open := ruleOnline(tt.events)
			if online != tt.wantOnline || open != tt.wantOpen {
				t.Fatalf("test case disagrees with presence.Online: online=%v open=%d", online, open)
			}
			orders := permutations(len(tt.events))
			if len(orders) > 120 {
				orders = orders[:120]
			}
			for pi, order := range orders {
				for _, oneBatch := range []bool{false, true} {
					// Each delivery gets its own client and channels.
					prefix := fmt.Sprintf("t%d-p%d-%v-", ti, pi, oneBatch)
					client := prefix + "cl"
					var batch []presence.Event
					for _, i := range order {
						e := tt.events[i]
						e.ClientID, e.ChannelID = client, prefix+e.ChannelID
						batch = append(batch, e)
					}
					if oneBatch {
						mustApply(t, s, batch...)
					} else {
						for _, e := range batch {
							mustApply(t, s, e)
						}
					}
					st := mustOnline(t, s, client)
					if st.Online != tt.wantOnline || st.OpenChannels != tt.wantOpen {
						t.Fatalf("order %v (one batch: %v): online=%v open=%d, want online=%v open=%d",
							order, oneBatch, st.Online, st.OpenChannels, tt.wantOnline, tt.wantOpen)
					}
					wantState := presence.StateOffline
					if tt.wantOnline {
						wantState = presence.StateOnline
					}
					if st.State != wantState {
						t.Fatalf("order %v: state %s, want %s", order, st.State, wantState)
					}
				}
			}
		})
	}
}

func TestTCPCleanBeforeConnectCreatesClosedChannel(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, withReason(ev("cl", "ch", presence.EventTCPClean, 50), presence.ReasonKeepaliveTimeout))
	chans, err := s.Channels(ctx, "cl", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 1 || chans[0].Open || chans[0].TCPCleanAt == nil || chans[0].ConnectAt != nil ||
		chans[0].Reason != presence.ReasonKeepaliveTimeout || chans[0].ClosedBy != "broker" {
		t.Fatalf("channel from a lone tcpclean: %+v", chans)
	}
	mustApply(t, s, ev("cl", "ch", presence.EventConnect, 0))
	if st := mustOnline(t, s, "cl"); st.Online {
		t.Fatalf("a late connect reopened a closed channel: %+v", st)
	}
	chans, _ = s.Channels(ctx, "cl", 10)
	if chans[0].ConnectAt == nil || chans[0].DurationMillis == nil || *chans[0].DurationMillis != 50 {
		t.Fatalf("after the late connect: %+v", chans[0])
	}
}

// state is everything Apply writes, for comparing stores.
func state(t testing.TB, s *pgstore.Store) string {
	t.Helper()
	var out string
	err := s.Pool().QueryRow(ctx, `SELECT
		(SELECT coalesce(string_agg(format('%s/%s/%s/%s/%s', channel_id, event_type, client_id, time, reason), ',' ORDER BY channel_id, event_type), '') FROM events)
		|| '|' ||
		(SELECT coalesce(string_agg(format('%s/%s/%s/%s/%s/%s/%s/%s/%s/%s/%s/%s', channel_id, client_id, client_ip, node, epoch,
			connect_at, disconnect_at, tcpclean_at, has_connect, has_disconnect, has_tcpclean, reason), ',' ORDER BY channel_id), '') FROM channels)`).Scan(&out)
	if err != nil {
		t.Fatalf("read state: %v", err)
	}
	return out
}

func TestApplyTwiceSameState(t *testing.T) {
	s := pgtest.NewStore(t)
	batch := []presence.Event{
		ev("a", "a1", presence.EventConnect, 0), ev("a", "a1", presence.EventDisconnect, 1),
		ev("a", "a2", presence.EventConnect, 2), ev("b", "b1", presence.EventTCPClean, 3),
		ev("b", "b1", presence.EventConnect, 1),
	}
	first := mustApply(t, s, batch...)
	if len(first.Applied) != len(batch) || first.Duplicates != 0 {
		t.Fatalf("first apply: %d applied, %d duplicates", len(first.Applied), first.Duplicates)
	}
	before := state(t, s)
	second := mustApply(t, s, batch...)
	if len(second.Applied) != 0 || second.Duplicates != len(batch) {
		t.Fatalf("second apply: %d applied, %d duplicates; want 0, %d", len(second.Applied), second.Duplicates, len(batch))
	}
	if after := state(t, s); after != before {
		t.Fatalf("state changed by a repeated batch:\nbefore %s\nafter  %s", before, after)
	}
}

func TestAppliedEvents(t *testing.T) {
	s := pgtest.NewStore(t)
	clean := true
	connect := ev("a", "z-last", presence.EventConnect, 0)
	connect.CleanSession = &clean
	batch := []presence.Event{connect, ev("a", "a-first", presence.EventConnect, 1), connect, ev("a", "a-first", presence.EventTCPClean, 2)}
	res := mustApply(t, s, batch...)
	if len(res.Applied) != 3 || res.Duplicates != 1 {
		t.Fatalf("duplicates within a batch: %d applied, %d duplicates; want 3, 1", len(res.Applied), res.Duplicates)
	}
	for i, a := range res.Applied {
		if a.Seq <= 0 || a.AppliedAt.IsZero() {
			t.Fatalf("applied[%d] has no seq or applied_at: %+v", i, a)
		}
		if i > 0 && a.Seq <= res.Applied[i-1].Seq {
			t.Fatalf("applied not in seq order: %d after %d", a.Seq, res.Applied[i-1].Seq)
		}
	}
	var found bool
	for _, a := range res.Applied {
		if a.ChannelID == "z-last" {
			found = a.CleanSession != nil && *a.CleanSession && a.Username == "user" && a.Keepalive == 60
		}
	}
	if !found {
		t.Fatalf("applied events lost details: %+v", res.Applied)
	}
}

// Several appliers deliver overlapping, shuffled batches of the same
// events at once (as redelivering consumers would): every event is stored
// exactly once and the result is the same as a single applier's.
func TestConcurrentOverlappingApply(t *testing.T) {
	s := pgtest.NewStore(t)
	var all []presence.Event
	for i := range 300 {
		client := fmt.Sprintf("client-%d", i%40)
		ch := fmt.Sprintf("ch-%03d", i)
		all = append(all, ev(client, ch, presence.EventConnect, int64(i)))
		if i%3 != 0 {
			all = append(all, ev(client, ch, presence.EventTCPClean, int64(i)+100))
		}
		if i%5 == 0 {
			all = append(all, ev(client, ch, presence.EventDisconnect, int64(i)+50))
		}
	}
	const workers = 6
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied = map[presence.Key]int{}
		errs    = make(chan error, workers)
	)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			events := slices.Clone(all)
			rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
			for len(events) > 0 {
				n := min(len(events), 1+rng.IntN(80))
				res, err := s.Apply(ctx, events[:n])
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, a := range res.Applied {
					applied[a.Key()]++
				}
				mu.Unlock()
				events = events[n:]
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Apply: %v", err)
	}
	if len(applied) != len(all) {
		t.Fatalf("%d distinct events reported applied, want %d", len(applied), len(all))
	}
	for k, n := range applied {
		if n != 1 {
			t.Fatalf("event %v reported applied %d times", k, n)
		}
	}
	reference := pgtest.NewStore(t)
	mustApply(t, reference, all...)
	if got, want := state(t, s), state(t, reference); got != want {
		t.Fatalf("concurrent appliers diverged from a single one:\ngot  %s\nwant %s", got, want)
	}
}

func TestApplyInvalidDataIsAnError(t *testing.T) {
	s := pgtest.NewStore(t)
	bad := ev("a\x00b", "ch", presence.EventConnect, 0) // PostgreSQL text cannot hold NUL
	_, err := s.Apply(ctx, []presence.Event{bad})
	if code := presence.ErrorCode(err); code != presence.EINVALID {
		t.Fatalf("Apply of data the database refuses: %v (code %q), want code %q", err, code, presence.EINVALID)
	}
	wrongType := ev("a", "ch", "bogus", 0)
	if _, err := s.Apply(ctx, []presence.Event{wrongType}); presence.ErrorCode(err) != presence.EINVALID {
		t.Fatalf("Apply of an unknown event type: %v, want EINVALID", err)
	}
	// The store still works afterwards.
	mustApply(t, s, ev("a", "ch", presence.EventConnect, 0))
}

func TestApplyOnClosedStoreIsUnavailable(t *testing.T) {
	s := pgtest.NewStore(t)
	s.Close()
	_, err := s.Apply(ctx, []presence.Event{ev("a", "ch", presence.EventConnect, 0)})
	if presence.ErrorCode(err) != presence.EUNAVAILABLE {
		t.Fatalf("Apply on a closed store: %v, want EUNAVAILABLE", err)
	}
}

func TestOpenUnreachableIsUnavailable(t *testing.T) {
	_, err := pgstore.Open(ctx, "postgres://nobody@127.0.0.1:1/x?connect_timeout=2")
	if presence.ErrorCode(err) != presence.EUNAVAILABLE {
		t.Fatalf("Open of an unreachable server: %v, want EUNAVAILABLE", err)
	}
	if msg := presence.ErrorMessage(err); msg != "database unavailable" {
		t.Fatalf("client message %q reveals internals", msg)
	}
}

// TestOpenOfAMalformedURLNeverQuotesItsPassword: the password is kept out
// of the error in every form a URL can carry it, where pgconn's own
// redaction misses some.
func TestOpenOfAMalformedURLNeverQuotesItsPassword(t *testing.T) {
	for _, url := range []string{
		"postgres://u:S3CRET@127.0.0.1:1/x?sslmode=bogus",
		"postgres://u@127.0.0.1:1/x?password=S3CRET&sslmode=bogus",
		"host=127.0.0.1 password = S3CRET sslmode=bogus",
		"host=127.0.0.1 password='S3CRET' sslmode=bogus",
	} {
		_, err := pgstore.Open(ctx, url)
		if presence.ErrorCode(err) != presence.EINVALID {
			t.Fatalf("Open(%q): %v, want EINVALID", url, err)
		}
		if strings.Contains(err.Error(), "S3CRET") {
			t.Fatalf("Open of a malformed URL quotes its password: %v", err)
		}
		if !strings.Contains(err.Error(), "sslmode") {
			t.Fatalf("Open(%q): %v, want the reason (sslmode) named", url, err)
		}
	}
}
