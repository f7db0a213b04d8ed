package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"time"
)

// uiFiles is the dashboard served at /ui/: plain HTML, CSS and JavaScript,
// no framework and nothing fetched from elsewhere.
//
//go:embed ui/index.html ui/app.js ui/app.css
var uiFiles embed.FS

// uiPolicy locks the page to its own origin: scripts, styles and data
// only from presenced itself (no inline script, so data that reached the
// DOM can never run), never framed, no base or form targets.
const uiPolicy = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func uiContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	}
	return "application/octet-stream"
}

// handleUIFile serves one embedded file of the dashboard. The ETag is the
// content's digest, computed once: the names are not versioned, so
// browsers revalidate on every load (no-cache) and get 304 until an
// upgrade changes the file.
func (s *Server) handleUIFile(name string) http.HandlerFunc {
	body, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		panic("api: dashboard file missing from the embed: " + name) // a build error, not a runtime one
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	contentType := uiContentType(name)
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		// Client ids in the URL of a request the page makes stay here.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		// ServeContent answers If-None-Match with 304 and Range requests.
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	}
}

// redirectToUI sends /ui to /ui/, so the page's relative links (ui/app.js,
// ../stats) resolve under its directory. The Location is relative, which
// keeps working behind a proxy that mounts presenced under a path prefix.
func (s *Server) redirectToUI(w http.ResponseWriter, r *http.Request) {
	target := "ui/"
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusMovedPermanently)
}
