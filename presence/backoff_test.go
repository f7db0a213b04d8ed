package presence

import (
	"testing"
	"time"
)

func TestBackoffDoublesUpToMaxAndResets(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if b.Failures() != 6 {
		t.Fatalf("Failures() = %d, want 6", b.Failures())
	}
	b.Reset()
	if d := b.Next(); d != 100*time.Millisecond {
		t.Fatalf("after Reset the wait is %v, want the minimum", d)
	}
}

func TestBackoffZeroValueAndOverflow(t *testing.T) {
	var b Backoff
	if d := b.Next(); d != 10*time.Millisecond {
		t.Fatalf("zero value starts at %v, want 10ms", d)
	}
	for range 100 { // far past the shift width: must stay at the cap
		b.Next()
	}
	if d := b.Next(); d != 2*time.Second {
		t.Fatalf("after many failures the wait is %v, want the 2s cap", d)
	}
}
