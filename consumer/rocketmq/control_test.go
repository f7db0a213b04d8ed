package rocketmq_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer/rocketmq"
	"github.com/presenced/presenced/presence"
)

// kickLog records the commands a control consumer handed to Kick.
type kickLog struct {
	mu   sync.Mutex
	cmds []rocketmq.KickCommand
}

func (l *kickLog) kick(_ context.Context, k rocketmq.KickCommand) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds = append(l.cmds, k)
}

func (l *kickLog) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, k := range l.cmds {
		ids = append(ids, k.CommandID)
	}
	return ids
}

func startControl(t *testing.T, e *env, topic string, log *kickLog) (*rocketmq.ControlConsumer, *background) {
	t.Helper()
	c, err := rocketmq.NewControlConsumer(rocketmq.ControlConfig{
		NameServers: []string{e.namesrv}, Group: e.name("control"), Topic: topic,
		Kick: log.kick, Log: testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, runInBackground(t, c.Run)
}

func newPublisher(t *testing.T, e *env) *rocketmq.Publisher {
	t.Helper()
	p, err := rocketmq.NewPublisher(rocketmq.PublisherConfig{NameServers: []string{e.namesrv}, ProducerGroup: e.name("publisher")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func kickCommand(id string, expiresIn time.Duration) rocketmq.KickCommand {
	now := time.Now()
	return rocketmq.KickCommand{CommandID: id, ClientID: "GID_k@@@dev-1", ChannelID: fmt.Sprintf("%032x", 7), Node: "broker-a",
		IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(expiresIn).UnixMilli()}
}

// TestEveryControlConsumerReceivesEveryKick: broadcasting consumption —
// two broker nodes in one group each get every command; expired commands
// and messages that are no command reach neither's Kick.
func TestEveryControlConsumerReceivesEveryKick(t *testing.T) {
	e := newEnv(t)
	topic := e.name("control")
	var logA, logB kickLog
	a, runA := startControl(t, e, topic, &logA)
	b, runB := startControl(t, e, topic, &logB)
	pub := newPublisher(t, e)
	// Consumers start reading at their start time; a first command may
	// race their first pull, so send until both have one.
	ctx := context.Background()
	waitFor(t, 20*time.Second, "both consumers to receive a first command", func() bool {
		if err := pub.SendKick(ctx, topic, kickCommand("warmup", time.Minute)); err != nil {
			t.Logf("send: %v", err)
		}
		return len(logA.ids()) > 0 && len(logB.ids()) > 0
	})
	if err := pub.SendKick(ctx, topic, kickCommand("expired", -time.Second)); err != nil {
		t.Fatal(err)
	}
	newRawProducer(t, e).send(topic, rocketmq.TagKick, []byte(`{"commandId":"x"}`))
	if err := pub.SendKick(ctx, topic, kickCommand("last", time.Minute)); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*kickLog{"a": &logA, "b": &logB} {
		waitFor(t, 10*time.Second, "consumer "+name+" to receive the last command", func() bool {
			return slices.Contains(l.ids(), "last")
		})
		for _, id := range l.ids() {
			if id != "warmup" && id != "last" {
				t.Fatalf("consumer %s was handed %q: %v", name, id, l.ids())
			}
		}
	}
	for name, c := range map[string]*rocketmq.ControlConsumer{"a": a, "b": b} {
		waitFor(t, 10*time.Second, "consumer "+name+" to count the expired and the invalid command", func() bool {
			return c.Stats.Expired.Load() == 1 && c.Stats.Invalid.Load() == 1
		})
	}
	// The client's local offsets of broadcasting consumers go once they stop.
	for _, bg := range []*background{runA, runB} {
		if err := bg.stop(); err != nil {
			t.Fatal(err)
		}
	}
	groupDir := filepath.Join(os.Getenv("HOME"), ".rocketmq_client_go", e.name("control"))
	if _, err := os.Stat(groupDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("local offsets left in %s: %v", groupDir, err)
	}
}

// TestRefusedConnectsReachApplyRefused: refused connects a publisher
// sends (tag "refused") are handed to ApplyRefused, not to Apply; one
// that is not valid is rejected like any poison message.
func TestRefusedConnectsReachApplyRefused(t *testing.T) {
	e := newEnv(t)
	topic := e.name("events")
	pub := newPublisher(t, e)
	refused := []presence.RefusedConnect{
		{ClientID: "GID_r@@@dev-1", Time: time.Now().UnixMilli(), ReturnCode: 4, Reason: "bad user name or password", ClientIP: "127.0.0.1:5000", Username: "u", Node: "broker-a"},
		{ClientID: "GID_r@@@dev-2", Time: time.Now().UnixMilli(), ReturnCode: 5, Reason: "not authorized", ClientIP: "127.0.0.1:5001", Node: "broker-a"},
	}
	if err := pub.SendRefused(context.Background(), topic, refused); err != nil {
		t.Fatal(err)
	}
	newRawProducer(t, e).send(topic, rocketmq.TagRefused, []byte(`{"clientId":"GID_r@@@dev-3","returnCode":0}`))

	st := newStore()
	var mu sync.Mutex
	var got []presence.RefusedConnect
	c := startConsumerWith(t, e, st, rocketmq.ConsumerConfig{Topics: []string{topic},
		ApplyRefused: func(_ context.Context, rc []presence.RefusedConnect) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, rc...)
			return nil
		}})
	waitFor(t, 20*time.Second, "two refused connects stored and one rejected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, rejected := st.counts()
		return len(got) == 2 && rejected == 1
	})
	mu.Lock()
	defer mu.Unlock()
	for i, rc := range got {
		if rc.ClientID != refused[i].ClientID && rc.ClientID != refused[1-i].ClientID {
			t.Fatalf("stored %+v", got)
		}
	}
	if applied, _ := st.counts(); applied != 0 || c.Stats.Refused.Load() != 2 {
		t.Fatalf("applied %d lifecycle events, counted %d refused; want 0 and 2", applied, c.Stats.Refused.Load())
	}
	if !strings.Contains(st.rejected[0].reason, "returnCode") {
		t.Fatalf("rejected for %q, want the return code named", st.rejected[0].reason)
	}
}

func TestDecodeKickAndRefused(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"commandId":"c","clientId":"a","channelId":"ch","node":"n","expiresAt":1}`, true},
		{`{"commandId":"c","clientId":"","channelId":"ch","node":"n","expiresAt":1}`, false},
		{`{"commandId":"c","clientId":"a","channelId":"ch","node":"","expiresAt":1}`, false},
		{`{"commandId":"c","clientId":"a","channelId":"ch","node":"n"}`, false},
		{`not json`, false},
	} {
		if _, err := rocketmq.DecodeKick([]byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("DecodeKick(%s): %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
	long := strings.Repeat("x", 600)
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"clientId":"a","time":1,"returnCode":4,"reason":"r","clientIp":"1.2.3.4:5"}`, true},
		{`{"clientId":"a","time":1,"returnCode":6}`, false},
		{`{"clientId":"a","time":0,"returnCode":4}`, false},
		{`{"clientId":"","time":1,"returnCode":4}`, false},
		{`{"clientId":"a","time":1,"returnCode":4,"reason":"` + long + `"}`, false},
	} {
		if _, err := rocketmq.DecodeRefused([]byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("DecodeRefused(%.80s): %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
	if k := (rocketmq.KickCommand{ExpiresAt: 1000}); !k.Expired(time.UnixMilli(1001)) || k.Expired(time.UnixMilli(1000)) {
		t.Error("Expired: want true only after expiresAt")
	}
}
