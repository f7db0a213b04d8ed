// presenced dashboard. It reads the API it is served by (one directory up
// from /ui/, so it also works behind a proxy that adds a path prefix) and
// follows /stream. Every value from the API reaches the page through
// textContent or a text node, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'presenced.token';
  const PAGE_SIZE = 50;
  const MAX_CHANGES = 50; // lines kept in the live changes list
  // No byte for this long (the server sends a heartbeat every 15 s by
  // default) means the stream is dead even if the socket is not: reconnect.
  const STREAM_SILENCE_MS = 45000;
  const MAX_RETRY_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const apiURL = (path) => new URL('../' + path, location.href);

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  const list = { prefix: '', cursors: [''], page: 0, next: '' };
  let selected = '';

  // AuthError is a 401 or 403: the page needs a (different) token.
  class AuthError extends Error {}

  function headers(accept) {
    const h = { Accept: accept };
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  async function problemDetail(resp) {
    try {
      const p = await resp.json();
      return p.detail || p.title || resp.statusText;
    } catch {
      return resp.statusText;
    }
  }

  async function getJSON(path) {
    const resp = await fetch(apiURL(path), { headers: headers('application/json'), cache: 'no-store' });
    if (resp.status === 401 || resp.status === 403) throw new AuthError(await problemDetail(resp));
    if (!resp.ok) throw new Error(resp.status + ': ' + await problemDetail(resp));
    return resp.json();
  }

  // el builds an element; strings among children become text nodes.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined && c !== '') e.append(c);
    return e;
  }

  const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '–');
  const fmtCount = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString());
  function fmtDuration(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  const badge = (state) => el('span', { class: 'badge', 'data-state': state, text: state });

  // ---- errors and the token ----

  // errorFrom is the load whose failure the error line shows: its next
  // success clears it.
  let errorFrom = '';
  function showError(err, from) {
    if (err instanceof AuthError) {
      askToken(err.message);
      return;
    }
    errorFrom = from;
    $('error').textContent = String(err.message || err);
    $('error').hidden = false;
  }

  function askToken(detail) {
    stream.stop();
    setStreamState('error', 'token needed');
    $('token-form').hidden = false;
    $('token-error').textContent = token ? detail : '';
    $('token-error').hidden = !token;
    $('token-input').focus();
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token-input').value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    $('token-form').hidden = true;
    start();
  });

  // ---- refreshing: at most one load per key at a time, and at most one
  // more queued behind it, so a burst of changes costs few requests and an
  // older answer never overwrites a newer one ----

  const jobs = new Map();
  function schedule(key, load, delay) {
    let job = jobs.get(key);
    if (!job) jobs.set(key, (job = { timer: 0, running: false, again: false }));
    if (job.running) {
      job.again = true;
      return;
    }
    if (job.timer) return;
    job.timer = setTimeout(async () => {
      job.timer = 0;
      job.running = true;
      try {
        await load();
        if (errorFrom === key) $('error').hidden = true;
      } catch (err) {
        showError(err, key);
      }
      job.running = false;
      if (job.again) {
        job.again = false;
        schedule(key, load, delay);
      }
    }, delay);
  }
  function refreshAll() {
    schedule('stats', loadStats, 0);
    schedule('list', loadList, 0);
    if (selected) schedule('detail', loadDetail, 0);
  }

  // ---- fleet counts ----

  async function loadStats() {
    const s = await getJSON('stats');
    $('count-online').textContent = fmtCount(s.onlineClients);
    $('count-channels').textContent = fmtCount(s.openChannels);
    $('count-known').textContent = fmtCount(s.knownClients);
    $('count-events').textContent = fmtCount(s.eventsStored);
    // The store's counts are cached by the server for a few seconds.
    $('counted-at').textContent = 'Known clients and events counted ' + fmtTime(s.eventsCountedAt);
  }

  // ---- the online list: keyset pages of GET /clients ----

  async function loadList() {
    const q = new URLSearchParams({ state: 'online', limit: String(PAGE_SIZE) });
    if (list.prefix) q.set('prefix', list.prefix);
    if (list.cursors[list.page]) q.set('cursor', list.cursors[list.page]);
    const page = await getJSON('clients?' + q);
    if (page.items.length === 0 && list.page > 0) {
      // Everyone on this page went offline: show the one before.
      list.page--;
      return loadList();
    }
    const items = page.items.map((c) => {
      const li = el('li', { 'data-client-id': c.clientId, 'data-selected': String(c.clientId === selected) },
        el('span', { class: 'client-id', text: c.clientId }),
        el('span', { class: 'meta', text: (c.openChannels > 1 ? c.openChannels + ' channels · ' : '') + 'since ' + fmtTime(c.since) }));
      li.addEventListener('click', () => select(c.clientId));
      return li;
    });
    $('online-list').replaceChildren(...items);
    $('online-empty').hidden = items.length > 0;
    list.next = page.nextCursor || '';
    $('page-first').disabled = $('page-prev').disabled = list.page === 0;
    $('page-next').disabled = !list.next;
  }

  function turnPage(to) {
    if (to > list.page) list.cursors[to] = list.next;
    list.page = to;
    list.cursors.length = to + 1;
    schedule('list', loadList, 0);
  }
  $('page-first').addEventListener('click', () => turnPage(0));
  $('page-prev').addEventListener('click', () => turnPage(Math.max(0, list.page - 1)));
  $('page-next').addEventListener('click', () => turnPage(list.page + 1));

  let searchTimer = 0;
  $('search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      list.prefix = $('search').value;
      list.page = 0;
      list.cursors = [''];
      schedule('list', loadList, 0);
    }, 250);
  });

  // ---- one client: state, uptime bar, channels, refused connects ----

  function select(clientID) {
    selected = clientID;
    history.replaceState(null, '', '#' + encodeURIComponent(clientID));
    for (const li of $('online-list').children) li.dataset.selected = String(li.dataset.clientId === clientID);
    $('detail-id').textContent = clientID;
    $('detail').hidden = false;
    schedule('detail', loadDetail, 0);
    $('detail').scrollIntoView({ block: 'nearest' });
  }

  $('detail-close').addEventListener('click', () => {
    selected = '';
    history.replaceState(null, '', location.pathname + location.search);
    $('detail').hidden = true;
  });

  async function loadDetail() {
    const id = selected;
    if (!id) return;
    const base = 'clients/' + encodeURIComponent(id);
    const [status, channels, refused, spans] = await Promise.all([
      getJSON(base + '/online'), getJSON(base + '/channels?limit=50'),
      getJSON(base + '/refused?limit=20'), getJSON(base + '/presence')]);
    if (id !== selected) return; // another client was picked meanwhile
    const state = $('detail-state');
    state.dataset.state = status.state;
    state.textContent = status.state;
    renderBar(spans);
    $('detail-channels').replaceChildren(...channels.items.map(channelItem));
    if (channels.items.length === 0) $('detail-channels').append(el('li', { class: 'hint', text: 'No channels stored.' }));
    $('detail-refused').replaceChildren(...refused.items.map(refusedItem));
    if (refused.items.length === 0) $('detail-refused').append(el('li', { class: 'hint', text: 'None.' }));
  }

  function renderBar(p) {
    const from = Date.parse(p.from), span = Date.parse(p.to) - from;
    const bar = $('detail-bar');
    bar.replaceChildren(...p.intervals.map((iv) => {
      const s = el('span', { title: fmtTime(iv.from) + ' – ' + (iv.ongoing ? 'now' : fmtTime(iv.to)) });
      // CSSOM properties, which the page's CSP allows (style attributes it does not).
      s.style.left = ((Date.parse(iv.from) - from) / span) * 100 + '%';
      s.style.width = Math.max(0.3, ((Date.parse(iv.to) - Date.parse(iv.from)) / span) * 100) + '%';
      return s;
    }));
    $('detail-uptime').textContent = (p.uptime * 100).toFixed(1) + '% online';
  }

  function channelItem(c) {
    const where = [c.clientIp, c.node && 'node ' + c.node, c.username && 'user ' + c.username].filter(Boolean).join(' · ');
    if (c.open) {
      return el('li', { 'data-channel-id': c.channelId }, badge('open'), ' connected ' + fmtTime(c.connectAt),
        el('span', { class: 'when', text: where }));
    }
    const closed = c.tcpcleanAt ? 'closed ' + fmtTime(c.tcpcleanAt) : 'disconnected ' + fmtTime(c.disconnectAt);
    const lasted = c.durationMs !== undefined ? ' after ' + fmtDuration(c.durationMs) : '';
    return el('li', { 'data-channel-id': c.channelId }, badge('closed'), ' ',
      el('span', { class: 'reason', text: c.reason || 'no reason' }),
      c.closedBy ? ' by ' + c.closedBy : '',
      el('span', { class: 'when', text: 'connected ' + fmtTime(c.connectAt) + ', ' + closed + lasted }),
      el('span', { class: 'when', text: where }));
  }

  function refusedItem(r) {
    return el('li', {}, badge('refused'), ' code ' + r.returnCode + ' ',
      el('span', { class: 'reason', text: r.reason }),
      el('span', { class: 'when', text: fmtTime(r.time) + ' · ' + [r.clientIp, r.username && 'user ' + r.username].filter(Boolean).join(' · ') }));
  }

  // ---- live changes ----

  function onChange(c) {
    const li = el('li', { 'data-client-id': c.clientId }, badge(c.state), ' ',
      el('span', { class: 'client-id', text: c.clientId }),
      c.event && c.event.reason ? el('span', { class: 'reason', text: ' ' + c.event.reason }) : null,
      el('span', { class: 'when', text: fmtTime(c.event && c.event.time ? c.event.time : Date.now()) }));
    li.addEventListener('click', () => select(c.clientId));
    const changes = $('changes');
    changes.prepend(li);
    while (changes.children.length > MAX_CHANGES) changes.lastElementChild.remove();
    // Lists are refetched rather than patched: the answers stay the
    // server's, and a burst of changes costs one request per second.
    schedule('stats', loadStats, 1000);
    schedule('list', loadList, 300);
    if (c.clientId === selected) schedule('detail', loadDetail, 300);
  }

  function setStreamState(state, text) {
    const b = $('stream-state');
    b.dataset.state = state;
    b.textContent = text || state;
  }

  // ---- /stream: Server-Sent Events read over fetch, which (unlike
  // EventSource) can send the Authorization header ----

  // SSEParser implements the event stream interpretation of the HTML
  // standard (lines ending in CR, LF or CRLF; fields event, data, id,
  // retry; comments), fed with decoded text chunks.
  class SSEParser {
    constructor(onEvent, onRetry) {
      this.onEvent = onEvent;
      this.onRetry = onRetry;
      this.buf = '';
      this.type = '';
      this.data = [];
      this.lastId = '';
    }

    push(chunk) {
      this.buf += chunk;
      const eol = /\r\n|\r|\n/g;
      let start = 0;
      for (let m; (m = eol.exec(this.buf)) !== null;) {
        // A CR at the very end may be the first half of a CRLF.
        if (m[0] === '\r' && m.index === this.buf.length - 1) break;
        this.line(this.buf.slice(start, m.index));
        start = eol.lastIndex;
      }
      this.buf = this.buf.slice(start);
    }

    line(l) {
      if (l === '') return this.dispatch();
      if (l[0] === ':') return undefined;
      const colon = l.indexOf(':');
      const field = colon < 0 ? l : l.slice(0, colon);
      let value = colon < 0 ? '' : l.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') this.type = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id' && !value.includes('\0')) this.lastId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) this.onRetry(Number(value));
      return undefined;
    }

    dispatch() {
      const type = this.type || 'message', data = this.data;
      this.type = '';
      this.data = [];
      if (data.length > 0) this.onEvent({ type, data: data.join('\n'), id: this.lastId });
    }
  }

  const stream = {
    ctrl: null,
    lastEventId: '',
    retryMs: 2000, // the server's retry: field replaces it
    failures: 0,

    start() {
      this.stop();
      this.ctrl = new AbortController();
      this.run(this.ctrl.signal);
    },

    stop() {
      if (this.ctrl) this.ctrl.abort();
      this.ctrl = null;
    },

    // run connects, reads until the stream ends, and reconnects with
    // Last-Event-ID after a backoff that grows with consecutive failures.
    async run(signal) {
      while (!signal.aborted) {
        try {
          await this.read(signal);
        } catch (err) {
          if (signal.aborted) return;
          if (err instanceof AuthError) {
            askToken(err.message);
            return;
          }
          this.failures++;
        }
        if (signal.aborted) return;
        const wait = Math.min(MAX_RETRY_MS, this.retryMs * 2 ** Math.min(this.failures, 4)) * (0.8 + Math.random() * 0.4);
        setStreamState('connecting', 'reconnecting');
        await new Promise((resolve) => {
          const t = setTimeout(resolve, wait);
          signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
        });
      }
    },

    async read(signal) {
      const conn = new AbortController();
      const abort = () => conn.abort();
      signal.addEventListener('abort', abort, { once: true });
      let silence = setTimeout(abort, STREAM_SILENCE_MS);
      try {
        const h = headers('text/event-stream');
        if (this.lastEventId) h['Last-Event-ID'] = this.lastEventId;
        const resp = await fetch(apiURL('stream'), { headers: h, cache: 'no-store', signal: conn.signal });
        if (resp.status === 401 || resp.status === 403) throw new AuthError(await problemDetail(resp));
        if (!resp.ok || !resp.body) throw new Error('stream: ' + resp.status + ' ' + await problemDetail(resp));
        const parser = new SSEParser((ev) => this.dispatch(ev, parser), (ms) => { this.retryMs = ms; });
        parser.lastId = this.lastEventId;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          clearTimeout(silence);
          silence = setTimeout(abort, STREAM_SILENCE_MS);
          parser.push(value);
        }
      } finally {
        clearTimeout(silence);
        signal.removeEventListener('abort', abort);
      }
    },

    dispatch(ev, parser) {
      this.lastEventId = ev.id;
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return; // not one of ours
      }
      switch (ev.type) {
        case 'ready':
          // Subscribed: whatever changes from now on arrives as events,
          // so state fetched now (or before) plus the events is complete.
          this.failures = 0;
          setStreamState('live');
          refreshAll();
          break;
        case 'online':
        case 'offline':
          onChange(data);
          break;
        case 'reset':
          // The changes since our id are lost: refetch, follow afresh.
          this.lastEventId = parser.lastId = '';
          refreshAll();
          break;
        default:
      }
    },
  };

  function start() {
    refreshAll();
    stream.start();
  }

  if (location.hash.length > 1) {
    try {
      select(decodeURIComponent(location.hash.slice(1)));
    } catch {
      // a hash that is not an encoded client id: ignore it
    }
  }
  start();
})();
