// The live feed: the alerts that match the filters, kept current by the stream.
//
// A new stream starts "from now", so the list is read again each time a fresh stream
// opens; changes that arrive while it loads are merged by version (the higher wins), so
// nothing falls between the two. A blip is resumed by the browser itself (EventSource
// sends Last-Event-ID and the server replays what was missed); a stream the browser gave
// up on (the server answered with an error), or one the network took away while the
// browser went offline, is opened afresh.
//
// A stream the browser gave up on may have been refused for want of a session (EventSource
// cannot say): the page asks who is signed in, and a 401 there pauses the feed until the
// dispatcher signs in again.

import { ApiError, listAlerts, me, STREAM_URL } from "./api.js";

export const SEVERITY_RANK = { info: 1, minor: 2, major: 3, critical: 4 };
const MAX_ALERTS = 1000; // a list longer than this needs a filter, not a scrollbar
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 15_000;

export const STATUS_FILTERS = {
  active: ["open", "acknowledged"],
  open: ["open"],
  acknowledged: ["acknowledged"],
  resolved: ["resolved"],
  all: [],
};

/** The feed's order, as the server's: most severe first, then the one whose latest
 * report came in last (however long ago its phone captured it), then by id. */
export function compareAlerts(a, b) {
  const rank = (SEVERITY_RANK[b.severity] ?? 0) - (SEVERITY_RANK[a.severity] ?? 0);
  if (rank) return rank;
  // Never in yet (an incident left without reports) sorts last, as the server's
  // '-infinity'; compared, not subtracted, since two of those would give NaN.
  const at = (alert) => (alert.last_received_at ? Date.parse(alert.last_received_at) : -Infinity);
  const received = (at(b) > at(a)) - (at(b) < at(a));
  if (received) return received;
  return a.incident_id < b.incident_id ? 1 : a.incident_id > b.incident_id ? -1 : 0;
}

function matches(alert, { statuses, minSeverity, unit }) {
  if (statuses.length && !statuses.includes(alert.status)) return false;
  if (minSeverity && (SEVERITY_RANK[alert.severity] ?? 0) < SEVERITY_RANK[minSeverity]) {
    return false;
  }
  return !unit || (alert.units ?? [alert.unit]).includes(unit); // any report's unit
}

/**
 * Follow the feed. `onChange({alerts, arrivals, loaded, truncated, error})` gets the
 * matching alerts in order after every change; `arrivals` are [alert, previous] pairs
 * for changes that came live (not from a first load or a filter change).
 * `onConnection(state, since)`: "connecting" | "live" | "reconnecting", and since when
 * the page has been without a stream.
 */
export function startFeed({ filter, onChange, onConnection }) {
  let current = filter;
  let shown = new Map(); // incident_id -> summary, only those matching the filters
  const seen = new Map(); // incident_id -> the newest summary known, matching or not
  let loaded = false; // a list has been read for the current filters
  let started = false; // a list has been read at all: changes from now on are news
  let truncated = false;
  let error = null;
  let loading = null; // {generation, buffer} while a list is being read
  let generation = 0;
  let retryList = null;

  let source = null;
  let reconnectTimer = null;
  let retryDelay = FIRST_RETRY_MS;
  let state = null;
  let downSince = null;
  let paused = false; // signed out: nothing is read until `resume`

  function publish(arrivals = []) {
    onChange({
      alerts: [...shown.values()].sort(compareAlerts),
      arrivals,
      loaded,
      truncated,
      error,
    });
  }

  function setState(next) {
    if (next === "live") downSince = null;
    else if (state === "live") downSince = new Date();
    state = next;
    onConnection(state, downSince);
  }

  /** Keep `alert` if it is newer than what is known; true when it was. */
  function remember(alert) {
    const known = seen.get(alert.incident_id);
    if (known && known.version >= alert.version) return false;
    seen.set(alert.incident_id, alert);
    return true;
  }

  function receive(alert) {
    const previous = seen.get(alert.incident_id) ?? null;
    if (!remember(alert)) return;
    if (loading) loading.buffer.set(alert.incident_id, alert);
    if (matches(alert, current)) shown.set(alert.incident_id, alert);
    else shown.delete(alert.incident_id);
    publish(started ? [[alert, previous]] : []);
  }

  /** Read the whole list for the current filters, then merge what the stream brought. */
  async function load({ live }) {
    clearTimeout(retryList);
    const mine = { generation: ++generation, buffer: new Map() };
    loading = mine;
    const found = new Map();
    let cursor = null;
    try {
      do {
        const page = await listAlerts(current, cursor);
        if (mine.generation !== generation) return; // a newer load took over
        for (const alert of page.alerts) found.set(alert.incident_id, alert);
        cursor = page.next_cursor;
      } while (cursor && found.size < MAX_ALERTS);
    } catch (failure) {
      if (mine.generation !== generation) return;
      loading = null;
      if (paused) return; // the session ended: `resume` reads the list again
      error = failure instanceof ApiError ? failure : new ApiError(0, { detail: String(failure) });
      publish();
      retryList = setTimeout(() => load({ live }), 5_000);
      return;
    }
    loading = null;
    const before = shown;
    const arrivals = [];
    shown = new Map();
    for (const alert of found.values()) {
      const previous = seen.get(alert.incident_id) ?? null;
      if (remember(alert) && live && started && !before.has(alert.incident_id)) {
        arrivals.push([alert, previous]);
      }
    }
    // The newest known version of everything listed, and of what the stream brought
    // meanwhile (a change committed after the list was read).
    for (const id of new Set([...found.keys(), ...mine.buffer.keys()])) {
      const alert = seen.get(id);
      if (matches(alert, current)) shown.set(id, alert);
    }
    truncated = Boolean(cursor);
    error = null;
    loaded = true;
    started = true;
    publish(arrivals);
  }

  function connect() {
    clearTimeout(reconnectTimer);
    source?.close();
    const stream = new EventSource(STREAM_URL);
    source = stream;
    let fresh = true;
    stream.addEventListener("open", () => {
      if (source !== stream) return;
      retryDelay = FIRST_RETRY_MS;
      setState("live");
      if (fresh) {
        // This stream started from now: read the list again for what happened before.
        fresh = false;
        load({ live: true });
      }
    });
    stream.addEventListener("alert", (event) => {
      if (source === stream) receive(JSON.parse(event.data));
    });
    stream.addEventListener("error", () => {
      if (source !== stream) return;
      if (state !== "connecting") setState("reconnecting");
      // CONNECTING: the browser resumes by itself. CLOSED: it gave up (an error answer).
      if (stream.readyState === EventSource.CLOSED) {
        clearTimeout(reconnectTimer);
        reconnectTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
        // Refused for want of a session? A 401 here pauses the feed (through the page).
        me().catch(() => undefined);
      }
    });
  }

  // The browser knows before the stream does: a connection cut by a network change can
  // look open for minutes (no TCP reset ever comes), so it is dropped and made again.
  addEventListener("offline", () => {
    if (paused) return;
    source?.close();
    source = null;
    setState("reconnecting");
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, retryDelay); // in case "online" never comes
  });
  addEventListener("online", () => {
    if (paused) return;
    retryDelay = FIRST_RETRY_MS;
    connect();
  });

  setState("connecting");
  connect();
  load({ live: false }); // the first paint need not wait for the stream

  return {
    /** Show the alerts matching `filter` instead: the list is read again. */
    setFilter(filter_) {
      current = filter_;
      loaded = false;
      shown = new Map([...shown].filter(([, alert]) => matches(alert, current)));
      publish();
      load({ live: false });
    },
    /** Stop reading (the session ended): no stream, no list, until `resume`. */
    pause() {
      if (paused) return;
      paused = true;
      generation += 1; // a list being read is dropped
      loading = null;
      clearTimeout(reconnectTimer);
      clearTimeout(retryList);
      source?.close();
      source = null;
      setState("signedOut");
    },
    /** Signed in again: a fresh stream, and the list read again for what was missed. */
    resume() {
      if (!paused) return;
      paused = false;
      retryDelay = FIRST_RETRY_MS;
      setState("connecting");
      connect();
    },
    /** The newest summary known of an incident, matching the filters or not. */
    known(incidentId) {
      return seen.get(incidentId) ?? null;
    },
  };
}
