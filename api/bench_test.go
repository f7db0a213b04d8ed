package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

// benchServer is the API over a view of clients known clients (one open
// channel each), without a database: the routes benchmarked here never
// touch it.
func benchServer(b *testing.B, clients int) *Server {
	b.Helper()
	live := NewLive(100_000, 0)
	states := make([]presence.ChannelState, clients)
	for i := range states {
		id := fmt.Sprintf("GID_bench@@@dev-%d", i)
		states[i] = presence.ChannelState{ClientID: id, ChannelID: "ch-" + id, Open: true, ConnectAt: 1732240000123, LastEventAt: 1732240000123, Seq: int64(i + 1)}
	}
	live.Load(states, int64(clients))
	return New(Config{Logger: quiet}, Deps{Live: live})
}

func BenchmarkOnline(b *testing.B) {
	s := benchServer(b, 100_000)
	req := httptest.NewRequest(http.MethodGet, "/clients/GID_bench@@@dev-4242/online", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkOnlineBatch1000(b *testing.B) {
	s := benchServer(b, 100_000)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"GID_bench@@@dev-%d"`, i*97)
	}
	body := `{"clientIds":[` + strings.Join(ids, ",") + `]}`
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/clients/online", strings.NewReader(body)))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkListClientsPage(b *testing.B) {
	s := benchServer(b, 100_000)
	req := httptest.NewRequest(http.MethodGet, "/clients?limit=100&prefix=GID_bench", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
