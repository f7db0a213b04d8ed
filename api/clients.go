package api

import (
	"context"
	"net/http"
	"net/netip"
	"strings"

	"github.com/presenced/presenced/presence"
)

// handleListClients answers GET /clients?state=&prefix=&limit=&cursor=
// (and the online filters node=, username=, address=, connectedFrom=,
// connectedTo=):
// clients in client id order, keyset-paginated. state is online (the
// default; from the view, which holds every online client), offline
// (clients the store has channels of and none open) or all (from the
// store, answered by the view); prefix selects a group, e.g. GID_x@@@.
func (s *Server) handleListClients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var problems presence.Problems
	lq := presence.ListQuery{Prefix: q.Get("prefix")}
	state := q.Get("state")
	switch state {
	case "", "online", "offline", "all":
	default:
		problems.Add(presence.FieldErrorf("state", "must be online, offline or all"))
	}
	if len(lq.Prefix) > presence.MaxClientIDBytes {
		problems.Add(presence.FieldErrorf("prefix", "is longer than %d bytes", presence.MaxClientIDBytes))
	}
	limit, err := queryLimit(q)
	problems.Add(err)
	lq.Limit = limit
	if c := q.Get("cursor"); c != "" {
		lq.After, err = decodeIDCursor(c)
		problems.Add(err)
	}
	// Filters on the open channels: online listings only.
	lq.Node = q.Get("node")
	from, err := queryTime(q, "connectedFrom")
	problems.Add(err)
	to, err := queryTime(q, "connectedTo")
	problems.Add(err)
	if !from.IsZero() {
		lq.ConnectedFrom = presence.Millis(from)
	}
	if !to.IsZero() {
		lq.ConnectedTo = presence.Millis(to)
	}
	lq.Username = q.Get("username")
	if len(lq.Username) > presence.MaxClientIDBytes {
		problems.Add(presence.FieldErrorf("username", "is longer than %d bytes", presence.MaxClientIDBytes))
	}
	if a := q.Get("address"); a != "" {
		lq.Network, err = parseNetwork(a)
		problems.Add(err)
	}
	if lq.Filtered() && state != "" && state != "online" {
		problems.Add(presence.FieldErrorf("state", "node, username, address, connectedFrom and connectedTo filter online clients (by their open channels): use them with state=online"))
	}
	if err := problems.Err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.viewCurrent(w, r) {
		return
	}
	var out page[presence.Status]
	if state == "" || state == "online" {
		items, more := s.deps.Live.View.List(lq)
		out.Items = items
		if more {
			out.NextCursor = encodeIDCursor(items[len(items)-1].ClientID)
		}
	} else {
		ctx, cancel := s.storeContext(r.Context())
		defer cancel()
		items, last, err := s.listStored(ctx, lq, state == "offline")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out.Items = items
		if last != "" {
			out.NextCursor = encodeIDCursor(last)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// maxListScans bounds the store pages one offline listing reads to fill
// its page: past it the page is returned short, with a cursor after the
// last client looked at, so a mostly online prefix cannot make one
// request scan it all.
const maxListScans = 8

// listStored lists clients from the store, each answered by the view
// (online state) and the store (last event time of a client the view does
// not hold). offlineOnly skips clients the view holds with an open
// channel. last is the cursor of the next page, "" at the end.
func (s *Server) listStored(ctx context.Context, lq presence.ListQuery, offlineOnly bool) (items []presence.Status, last string, err error) {
	items = []presence.Status{}
	after := lq.After
	for range maxListScans {
		want := lq.Limit - len(items) + 1 // one more tells whether more follow
		stored, err := s.deps.Clients.ClientPage(ctx, lq.Prefix, after, want)
		if err != nil {
			return nil, "", err
		}
		for _, c := range stored {
			if len(items) == lq.Limit {
				return items, after, nil
			}
			after = c.ClientID
			st, held := s.deps.Live.View.Lookup(c.ClientID)
			if offlineOnly && st.OpenChannels > 0 {
				continue
			}
			if !held && c.LastEventAt > 0 {
				t := presence.FromMillis(c.LastEventAt)
				st.LastEventAt = &t
			}
			items = append(items, st)
		}
		if len(stored) < want {
			return items, "", nil // the store has no more
		}
	}
	return items, after, nil
}

// parseNetwork reads the address filter: a CIDR prefix (10.1.0.0/16,
// 2001:db8::/32) or a single address.
func parseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, presence.FieldErrorf("address", "must be an IP address or a CIDR prefix like 10.1.0.0/16: %v", err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, presence.FieldErrorf("address", "must be an IP address or a CIDR prefix like 10.1.0.0/16: %v", err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
