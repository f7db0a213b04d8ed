package api

import (
	"context"
	"net/http"

	"github.com/presenced/presenced/presence"
)

// clientItems is the body of the routes that list one client's records
// from the store (channels, refused connects).
type clientItems[T any] struct {
	ClientID string `json:"clientId"`
	Items    []T    `json:"items"`
}

// handleChannels answers GET /clients/{clientId}/channels?limit=: every
// connection of the client with its evidence, open ones first, then the
// most recently active; at most limit (default 100, up to 1000). A client
// the store never heard of has no channels (200, empty).
//
// Where the process holds the broker (presenced serve), the open channel
// its broker holds also carries the session's live counts.
func (s *Server) handleChannels(w http.ResponseWriter, r *http.Request) {
	writeClientItems(s, w, r, s.channelsWithLive)
}

func (s *Server) channelsWithLive(ctx context.Context, clientID string, limit int) ([]presence.Channel, error) {
	channels, err := s.deps.Channels.Channels(ctx, clientID, limit)
	if err != nil || s.deps.Sessions == nil {
		return channels, err
	}
	channelID, counts, ok := s.deps.Sessions.SessionCounts(clientID)
	if !ok {
		return channels, nil
	}
	for i := range channels {
		if channels[i].Open && channels[i].ChannelID == channelID {
			channels[i].Live = &counts
		}
	}
	return channels, nil
}

// writeClientItems answers a GET of one client's records: the validated
// {clientId}, ?limit=, and read's page of them.
func writeClientItems[T any](s *Server, w http.ResponseWriter, r *http.Request,
	read func(ctx context.Context, clientID string, limit int) ([]T, error)) {
	clientID, err := s.clientIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := queryLimit(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items, err := read(r.Context(), clientID, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, clientItems[T]{ClientID: clientID, Items: items})
}
