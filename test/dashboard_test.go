package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestDashboardFollowsPresence loads /ui in a real headless chromium at a
// phone's width, connects a real MQTT client and watches the page, without
// a reload, list it online, show its open channel, then show it offline
// with the close reason of its DISCONNECT; the page never overflows the
// phone's width and breaks no rule of its Content-Security-Policy.
func TestDashboardFollowsPresence(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	d := openDashboard(t, "http://"+p.HTTPAddr+"/ui") // the redirect to /ui/ included
	d.waitFor("the stream is live", `document.getElementById('stream-state').textContent === 'live'`)
	d.eval(`window.noReload = true`)

	// A long id: it must wrap, not widen the page.
	id := "GID_dashboard@@@a-device-with-a-rather-long-identifier-0001"
	pahoConnect(t, p.MQTTAddr, "GID_other@@@dev-2", 30*time.Second)
	client := pahoConnect(t, p.MQTTAddr, id, 30*time.Second)
	d.waitFor("both clients in the online list and the fleet count", `onlineIds().length === 2 && document.getElementById('count-online').textContent === '2'`)
	d.typeInto("#search", "GID_dash")
	d.waitFor("the prefix search to keep only "+id, fmt.Sprintf(`onlineIds().join() === %s`, jsString(id)))

	d.do(chromedp.Click(chromedp.CSS(`#online-list li`)))
	d.waitFor("the client's open channel", `text('#detail-state') === 'online' && document.querySelector('#detail-channels [data-state="open"]') !== null`)

	client.Disconnect(250) // DISCONNECT, then the socket closes: reason client_disconnect
	d.waitFor("the client offline with its close reason", fmt.Sprintf(`onlineIds().length === 0 && text('#count-online') === '1' &&
		text('#detail-state') === 'offline' &&
		text('#detail-channels .reason') === 'client_disconnect' &&
		document.querySelector('#changes li').dataset.clientId === %s &&
		text('#changes li .badge') === 'offline' && text('#changes li .reason') === 'client_disconnect'`, jsString(id)))
	if !d.eval(`window.noReload === true`) {
		t.Fatal("the page reloaded")
	}
	if !d.eval(`innerWidth === 390 && document.documentElement.scrollWidth <= innerWidth`) {
		t.Errorf("the page is %s wide, want at most the 390 px screen", d.evalString(`document.documentElement.scrollWidth + ' px at ' + innerWidth`))
	}
	d.requireNoPageErrors()
	d.screenshot()
}

// TestDashboardAsksForToken: with read tokens configured the page loads,
// asks for a token, says so when it is wrong, and with the right one
// (kept in sessionStorage) follows the stream and reads a client whose id
// is HTML, as text.
func TestDashboardAsksForToken(t *testing.T) {
	p := startServe(t, pgtest.URL(t), "--api-read-tokens", "r1")
	d := openDashboard(t, "http://"+p.HTTPAddr+"/ui/")
	d.waitFor("the token form", `!document.getElementById('token-form').hidden`)

	d.typeInto("#token-input", "wrong")
	d.do(chromedp.Click(chromedp.CSS(`#token-form button`)))
	d.waitFor("the token refused", `!document.getElementById('token-form').hidden && text('#token-error').includes('not valid')`)

	d.typeInto("#token-input", "r1")
	d.do(chromedp.Click(chromedp.CSS(`#token-form button`)))
	d.waitFor("the stream is live", `document.getElementById('token-form').hidden && text('#stream-state') === 'live'`)
	if !d.eval(`sessionStorage.getItem('presenced.token') === 'r1'`) {
		t.Fatal("the token is not in sessionStorage")
	}
	// The client connects after the stream is live: only the stream's
	// event, with the token, can bring it onto the page. Its id is markup
	// and has the characters a URL path treats specially: the page must
	// show it as text and ask for its own routes.
	id := `GID_tok@@@<img src=x onerror="window.pwned=1">/dev?1%2`
	pahoConnect(t, p.MQTTAddr, id, 30*time.Second)
	d.waitFor("the client in the online list", fmt.Sprintf(`onlineIds().join() === %s && text('#online-list .client-id') === %[1]s &&
		text('#changes li .badge') === 'online' && text('#count-online') === '1'`, jsString(id)))
	d.do(chromedp.Click(chromedp.CSS(`#online-list li`)))
	d.waitFor("the client's open channel", fmt.Sprintf(`text('#detail-id') === %s && text('#detail-state') === 'online' &&
		document.querySelector('#detail-channels [data-state="open"]') !== null`, jsString(id)))
	if !d.eval(`document.querySelector('img') === null && window.pwned === undefined`) {
		t.Fatal("a client id became markup")
	}
	d.requireNoPageErrors()
	d.screenshot()
}

// TestDashboardReconnects: when presenced restarts under the page, the
// page's stream reconnects by itself (with Last-Event-ID) and goes on
// showing changes, without a reload.
func TestDashboardReconnects(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	d := openDashboard(t, "http://"+p.HTTPAddr+"/ui/")
	d.waitFor("the stream is live", `text('#stream-state') === 'live'`)
	d.eval(`window.noReload = true`)
	p.stop()
	d.waitFor("the page to notice", `text('#stream-state') === 'reconnecting'`)
	p.start()
	d.waitFor("the stream is live again", `text('#stream-state') === 'live'`)
	pahoConnect(t, p.MQTTAddr, "GID_again@@@dev-1", 30*time.Second)
	d.waitFor("the client in the online list", `onlineIds().join() === 'GID_again@@@dev-1' && text('#changes li .badge') === 'online'`)
	if !d.eval(`window.noReload === true`) {
		t.Fatal("the page reloaded")
	}
	if resumes := d.evalString(`JSON.stringify(streamResumes)`); !d.eval(`streamResumes[0] === '' && streamResumes.slice(1).every((id) => /^[0-9]+$/.test(id))`) {
		t.Errorf("Last-Event-ID of the page's /stream requests: %s, want none on the first and a seq on each reconnect", resumes)
	}
	d.requireNoPageErrors()
}

// TestDashboardPages: the online list shows 50 clients a page, in id
// order, and pages forward and back with the API's cursors.
func TestDashboardPages(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	for i := range 51 {
		pahoConnect(t, p.MQTTAddr, fmt.Sprintf("GID_page@@@dev-%02d", i), 30*time.Second)
	}
	d := openDashboard(t, "http://"+p.HTTPAddr+"/ui/")
	d.waitFor("the first page", `onlineIds().length === 50 && onlineIds()[0] === 'GID_page@@@dev-00' &&
		text('#count-online') === '51' && !document.getElementById('page-next').disabled && document.getElementById('page-prev').disabled`)
	d.do(chromedp.Click(chromedp.CSS(`#page-next`)))
	d.waitFor("the second page", `onlineIds().join() === 'GID_page@@@dev-50' && document.getElementById('page-next').disabled`)
	d.do(chromedp.Click(chromedp.CSS(`#page-prev`)))
	d.waitFor("the first page again", `onlineIds().length === 50 && onlineIds()[49] === 'GID_page@@@dev-49'`)
	d.requireNoPageErrors()
}

// pageProbe runs in the page before its own script: it records script
// errors, Content-Security-Policy violations and how the page resumes its
// stream, and defines the helpers the tests' conditions use.
const pageProbe = `
window.pageErrors = [];
addEventListener('error', (e) => pageErrors.push('error: ' + e.message));
addEventListener('unhandledrejection', (e) => pageErrors.push('unhandled rejection: ' + e.reason));
document.addEventListener('securitypolicyviolation', (e) => pageErrors.push('CSP: ' + e.violatedDirective + ' blocked ' + e.blockedURI));
// The Last-Event-ID of every /stream request the page makes.
window.streamResumes = [];
const pageFetch = window.fetch;
window.fetch = (url, init) => {
	if (new URL(url, location.href).pathname.endsWith('/stream')) streamResumes.push((init && init.headers && init.headers['Last-Event-ID']) || '');
	return pageFetch(url, init);
};
window.onlineIds = () => [...document.querySelectorAll('#online-list li')].map((li) => li.dataset.clientId);
window.text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : null; };
`

// dashboard is one tab of a headless chromium.
type dashboard struct {
	t   *testing.T
	ctx context.Context
}

// openDashboard starts chromium (skipped when it is not installed, except
// under CI) with a 390 px wide phone viewport and loads url.
func openDashboard(t *testing.T, url string) *dashboard {
	t.Helper()
	chromium := requireProgram(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		// Loopback only: chromium never proxies loopback, and everything
		// else goes to a proxy that is not there.
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.WindowSize(390, 844),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	d := &dashboard{t: t, ctx: ctx}
	addProbe := chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pageProbe})
		return err
	})
	// The first run starts the browser, which lives as long as the
	// context of that run: so no timeout on this one.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait), addProbe); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	d.do(chromedp.Navigate(url))
	return d
}

// do runs actions in the tab, within a minute.
func (d *dashboard) do(actions ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		d.t.Fatalf("chromium: %v\n%s", err, d.state())
	}
}

// waitFor waits until the JavaScript condition holds in the page: the
// browser evaluates it on every animation frame.
func (d *dashboard) waitFor(what, condition string) {
	d.t.Helper()
	_, err := chromedp.Run(d.ctx, chromedp.Poll[bool](condition, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		d.t.Fatalf("waiting for %s: %v\n%s", what, err, d.state())
	}
}

func (d *dashboard) eval(expression string) bool {
	d.t.Helper()
	ok, err := chromedp.Run(d.ctx, chromedp.Evaluate[bool](expression))
	if err != nil {
		d.t.Fatalf("evaluate %s: %v", expression, err)
	}
	return ok
}

func (d *dashboard) evalString(expression string) string {
	d.t.Helper()
	s, err := chromedp.Run(d.ctx, chromedp.Evaluate[string](expression))
	if err != nil {
		d.t.Fatalf("evaluate %s: %v", expression, err)
	}
	return s
}

// typeInto replaces the value of an input by typing text into it.
func (d *dashboard) typeInto(selector, text string) {
	d.t.Helper()
	d.eval(fmt.Sprintf(`(document.querySelector(%s).value = '') === ''`, jsString(selector)))
	d.do(chromedp.SendKeys(chromedp.CSS(selector), text))
}

func (d *dashboard) requireNoPageErrors() {
	d.t.Helper()
	if errs := d.evalString(`pageErrors.join('\n')`); errs != "" {
		d.t.Fatalf("the page reported:\n%s", errs)
	}
}

// state describes the page for a failure report: its text and errors.
func (d *dashboard) state() string {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`'page text:\n' + document.body.innerText + '\npage errors: ' + (window.pageErrors || []).join('; ')`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return s
}

// screenshot saves the whole page as a PNG under $PRESENCED_ARTIFACTS, or
// test/artifacts (ignored by git), where a CI run leaves it behind.
func (d *dashboard) screenshot() {
	d.t.Helper()
	png, err := chromedp.Run(d.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		d.t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("PRESENCED_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Fatal(err)
	}
	path := filepath.Join(dir, strings.ReplaceAll(d.t.Name(), "/", "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		d.t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	d.t.Logf("screenshot: %s", abs)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
