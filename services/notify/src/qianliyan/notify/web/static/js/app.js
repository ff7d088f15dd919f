// The dispatcher's page: the live feed on the left, the chosen alert on the right.
//
// feed.js keeps the list current (stream plus list, merged by version); api.js talks to
// notify; this module renders and acts. An action carries the version the dispatcher
// was shown, so a change they did not see is a 409 and never silently overwritten: the
// page then reloads the alert and says what changed. The open alert follows the feed by
// itself, except while the dispatcher is writing an action on it: then a change is
// announced, not applied under their eyes.
//
// Every call is made as the person signed in (a session cookie); actions are recorded
// under them. When the session ends (any 401) the feed pauses and the sign-in dialog
// comes back over the page, which keeps what it shows and what was being written.

import {
  act,
  alertDetail,
  ApiError,
  endPendingSignOut,
  me,
  onSignedOut,
  signIn,
  signOut,
} from "./api.js";
import { element, replaceKeepingFocus } from "./dom.js";
import { SEVERITY_RANK, STATUS_FILTERS, startFeed } from "./feed.js";
import { has, t, toggleLang, translatePage } from "./i18n.js";
import { clock, duration, full, relative } from "./time.js";

const DESK_ROLES = ["dispatcher", "manager"];
const SEVERITIES = ["critical", "major", "minor", "info"];
// Which actions each status allows (as notify's domain/actions.py decides).
const ACTIONS = {
  open: ["acknowledge", "assign", "note", "override_severity", "resolve"],
  acknowledged: ["assign", "note", "override_severity", "resolve"],
  resolved: ["note", "reopen"],
};
// The timeline entries a person's action makes; every other entry is the system's (a
// report, its triage, the alert being sent).
const ACTION_EVENTS = new Set([
  "AlertAcknowledged",
  "AlertAssigned",
  "AlertNoteAdded",
  "SeverityOverridden",
  "AlertResolved",
  "AlertReopened",
]);
// What each action asks for besides who and which version.
const FORMS = {
  assign: [{ name: "assignee", label: "field.assignee", hint: "hint.assignee", max: 200 }],
  note: [{ name: "note", label: "field.note", hint: "hint.note", max: 2000, long: true }],
  override_severity: [
    { name: "severity", label: "field.severity", choices: SEVERITIES },
    { name: "reason", label: "field.reason", max: 500 },
  ],
  resolve: [
    {
      name: "resolution",
      label: "field.resolution",
      hint: "hint.resolution",
      max: 2000,
      long: true,
    },
  ],
  reopen: [{ name: "reason", label: "field.reopenReason", max: 500 }],
};
const LATE_AFTER_MS = 5 * 60_000; // a report that took longer to arrive sat on a phone
const STALE_LINKS_MS = 10 * 60_000; // photo links are signed for 15 minutes
const WAIT_FOR_VERSION_MS = 10_000;
const WATCH_TOLD_MS = 10_000; // how often an alert being sent out is read again
const SIGN_OUT_RETRY_MS = 5_000;
const $ = (id) => document.getElementById(id);

const view = {
  alerts: [],
  loaded: false,
  truncated: false,
  error: null,
  connection: "connecting",
  downSince: null,
  fresh: new Set(), // new critical alerts not yet looked at, oldest first
  selected: null, // incident id
  detail: null, // the alert as last read, what actions act on
  changed: new Set(), // timeline entries that came with the last reload of the same alert
  detailError: null,
  loadingDetail: false,
  busy: false, // an action is being sent or awaited
  openForm: null, // the action whose form is shown
  // {kind: "ok" | "info" | "error" | "conflict", text, extra?: [lines]}: each a string or a
  // function giving one in the language of the moment.
  message: null,
  drafts: new Map(), // `${incident}:${action}` -> {field: value}: typing survives re-renders
  user: null, // who is signed in: {username, display_name, roles, units}
  signedOut: false, // the server said the session is over (or there never was one)
  signOutPending: false, // signed out here, the server not told yet: its session still works
  signingIn: false,
  signInError: null, // {key, args}
};
let feed = null;
let signOutRetry = null;

function init() {
  translatePage();
  const params = new URLSearchParams(location.search);
  const status = params.get("status");
  $("filter-status").value = status in STATUS_FILTERS ? status : "active";
  $("filter-severity").value = SEVERITY_RANK[params.get("min_severity")]
    ? params.get("min_severity")
    : "";
  $("filter-unit").value = params.get("unit") ?? "";
  view.selected = params.get("alert");
  lastFilter = JSON.stringify(currentFilter());

  $("lang-toggle").addEventListener("click", () => {
    toggleLang();
    renderAll();
  });
  $("sign-in-form").addEventListener("submit", submitSignIn);
  // The page is of no use signed out: Escape does not close the sign-in.
  $("sign-in-dialog").addEventListener("cancel", (event) => event.preventDefault());
  $("sign-out").addEventListener("click", signOutHere);
  window.addEventListener("online", () => view.signOutPending && sendPendingSignOut());
  onSignedOut(sessionEnded);
  $("filter-status").addEventListener("change", filtersChanged);
  $("filter-severity").addEventListener("change", filtersChanged);
  $("filter-unit").addEventListener("change", filtersChanged);
  $("filter-unit").addEventListener("input", debounce(filtersChanged, 500));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    filtersChanged();
  });
  $("filter-clear").addEventListener("click", () => {
    $("filter-status").value = "active";
    $("filter-severity").value = "";
    $("filter-unit").value = "";
    filtersChanged();
  });
  $("new-alerts-show").addEventListener("click", () => {
    const newest = [...view.fresh].at(-1);
    if (newest) select(newest, { focus: true });
  });
  $("alerts").addEventListener("keydown", moveSelection);

  setInterval(refreshTimes, 30_000);
  renderAll();
  checkSession();
}

function renderAll() {
  renderHeader();
  renderList();
  renderDetail();
  renderSignIn();
}

// --- who is signed in --------------------------------------------------------------------

async function checkSession() {
  if (!(await sendPendingSignOut())) {
    view.signedOut = true; // nobody is signed in here until the server has heard it
    return renderAll();
  }
  try {
    signedIn(await me());
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    if (failure.status === 401) return; // sessionEnded has asked for a sign-in
    // No answer (or a broken one): try again shortly; the page cannot start without it.
    view.connection = "connecting";
    renderHeader();
    setTimeout(checkSession, 3_000);
  }
}

/** Start (or resume) the page as `user`. */
function signedIn(user) {
  view.user = user;
  view.signedOut = false;
  view.signOutPending = false;
  clearTimeout(signOutRetry);
  view.signInError = null;
  if ($("sign-in-dialog").open) $("sign-in-dialog").close();
  if (!feed) {
    feed = startFeed({
      filter: currentFilter(),
      onChange: feedChanged,
      onConnection: connectionChanged,
    });
  } else {
    feed.resume();
  }
  if (view.selected && (!view.detail || view.detailError)) loadDetail(view.selected);
  else if (view.detail) {
    followSelected();
    watchTold(); // what was sent out while signed out changed no version
  }
  renderAll();
}

/** A 401 from anywhere: the session is over; ask for a sign-in, keep everything else. */
function sessionEnded() {
  if (view.signedOut) return;
  view.signedOut = true;
  feed?.pause();
  clearTimeout(toldWatch);
  renderAll();
}

async function signOutHere() {
  view.user = null;
  view.signedOut = false; // not "ended": nothing to say about an expiry
  sessionEnded();
  noteSignOut(await signOut());
}

/** Send again a sign-out the server has not heard (offline, or it failed); whether none
 * is left pending. Until it is heard, the page says so and tries every few seconds. */
async function sendPendingSignOut() {
  clearTimeout(signOutRetry);
  const ended = await endPendingSignOut();
  noteSignOut(ended);
  return ended;
}

function noteSignOut(ended) {
  view.signOutPending = !ended;
  if (!ended) signOutRetry = setTimeout(sendPendingSignOut, SIGN_OUT_RETRY_MS);
  renderSignIn();
}

function renderSignIn() {
  const dialog = $("sign-in-dialog");
  if (view.signedOut && !dialog.open) {
    if (view.user && !$("sign-in-username").value) $("sign-in-username").value = view.user.username;
    dialog.showModal();
    $(view.user ? "sign-in-password" : "sign-in-username").focus();
  }
  const pending = $("sign-out-pending");
  pending.hidden = !view.signOutPending;
  pending.textContent = view.signOutPending ? t("signOutPending") : "";
  const why = $("sign-in-why");
  why.textContent = view.user ? t("signInExpired") : t("signInHint");
  const error = $("sign-in-error");
  error.hidden = !view.signInError;
  error.textContent = view.signInError ? t(view.signInError.key, ...view.signInError.args) : "";
  $("sign-in-submit").disabled = view.signingIn;
  $("sign-in-submit").textContent = view.signingIn ? t("signingIn") : t("signIn");
}

async function submitSignIn(event) {
  event.preventDefault();
  if (view.signingIn) return;
  const username = $("sign-in-username").value.trim();
  const password = $("sign-in-password").value;
  view.signInError = null;
  if (!username || !password) {
    view.signInError = { key: "signInMissing", args: [] };
    return renderSignIn();
  }
  view.signingIn = true;
  clearTimeout(signOutRetry); // the sign-in sends a sign-out still due first itself
  renderSignIn();
  try {
    const user = await signIn(username, password);
    if (!user.roles.some((role) => DESK_ROLES.includes(role))) {
      noteSignOut(await signOut());
      view.signInError = { key: "signInNotDispatch", args: [] };
      return;
    }
    $("sign-in-password").value = "";
    signedIn(user);
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    view.signInError =
      failure.status === 401 || failure.status === 422
        ? { key: "signInWrong", args: [] }
        : failure.status === 429
          ? { key: "signInTooMany", args: [failure.retryAfter ?? 60] }
          : failure.offline
            ? { key: "signInOffline", args: [] }
            : { key: "signInFailed", args: [failure.status] };
    $("sign-in-password").select();
    sendPendingSignOut(); // the old session's cookie is still here: keep ending it
  } finally {
    view.signingIn = false;
    renderSignIn();
  }
}


// --- filters -----------------------------------------------------------------------------

function currentFilter() {
  return {
    statuses: STATUS_FILTERS[$("filter-status").value] ?? STATUS_FILTERS.active,
    minSeverity: $("filter-severity").value || null,
    unit: $("filter-unit").value.trim() || null,
  };
}

let lastFilter = "";

function filtersChanged() {
  const filter = currentFilter();
  const key = JSON.stringify(filter);
  if (key === lastFilter) return;
  lastFilter = key;
  rememberInUrl();
  feed?.setFilter(filter);
}

/** The filters and the chosen alert in the address, so a reload or a link shows the same. */
function rememberInUrl() {
  const params = new URLSearchParams();
  if ($("filter-status").value !== "active") params.set("status", $("filter-status").value);
  if ($("filter-severity").value) params.set("min_severity", $("filter-severity").value);
  if ($("filter-unit").value.trim()) params.set("unit", $("filter-unit").value.trim());
  if (view.selected) params.set("alert", view.selected);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

function debounce(fn, ms) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

// --- the feed ------------------------------------------------------------------------------

function feedChanged({ alerts, arrivals, loaded, truncated, error }) {
  Object.assign(view, { alerts, loaded, truncated, error });
  for (const [alert, previous] of arrivals) {
    // A critical alert nobody has taken in hand yet: new, or newly critical.
    const newlyCritical = !previous || previous.severity !== "critical";
    if (
      alert.severity === "critical" &&
      alert.status === "open" &&
      newlyCritical &&
      alert.incident_id !== view.selected
    ) {
      view.fresh.delete(alert.incident_id);
      view.fresh.add(alert.incident_id);
    }
  }
  const shown = new Map(alerts.map((alert) => [alert.incident_id, alert]));
  for (const id of view.fresh) {
    const alert = shown.get(id);
    if (!alert || alert.severity !== "critical" || alert.status !== "open") view.fresh.delete(id);
  }
  renderHeader();
  renderList();
  followSelected();
}

function connectionChanged(state, since) {
  view.connection = state;
  view.downSince = since;
  renderHeader();
  renderStale();
}

function renderHeader() {
  const critical = view.alerts.filter((a) => a.severity === "critical" && a.status !== "resolved");
  const open = view.alerts.filter((a) => a.status === "open");
  $("count-critical").textContent = t("countCritical", critical.length);
  $("count-critical").dataset.count = String(critical.length);
  $("count-open").textContent = t("countOpen", open.length);

  const connection = $("connection");
  connection.textContent = t(`conn.${view.connection}`);
  connection.title = view.connection === "live" ? t("conn.liveTitle") : "";
  document.body.dataset.connection = view.connection;

  const user = view.user;
  $("whoami").hidden = !user;
  $("sign-out").hidden = !user || view.signedOut;
  if (user) {
    const role = user.roles.includes("dispatcher") ? "dispatcher" : "manager";
    $("whoami").textContent = t(`role.${role}`, user.display_name || user.username);
    $("whoami").title = user.username;
  }

  const fresh = [...view.fresh];
  document.title = fresh.length ? t("titleNew", fresh.length) : t("title");
  const banner = $("new-alerts");
  banner.hidden = fresh.length === 0;
  if (fresh.length) {
    const newest = view.alerts.find((a) => a.incident_id === fresh.at(-1));
    const text = t("newAlerts", fresh.length, placeOf(newest));
    if ($("new-alerts-text").textContent !== text) $("new-alerts-text").textContent = text;
  }
}

function renderStale() {
  const stale = $("feed-stale");
  stale.hidden = !view.downSince;
  if (view.downSince) stale.textContent = t("staleSince", clock(view.downSince.toISOString()));
}

/** The incident's units, the first report's (which its alert is routed by) first. */
function unitsText(alert) {
  const others = (alert.units ?? []).filter((unit) => unit !== alert.unit);
  return [alert.unit, ...others].filter(Boolean).join("、");
}

function placeOf(alert) {
  return alert?.place || alert?.unit || t("noPlace");
}

function severityLabel(severity) {
  return severity ? t(`sev.${severity}`) : t("sev.none");
}

function renderList() {
  renderStale();
  const error = $("feed-error");
  error.hidden = !view.error;
  if (view.error) error.textContent = t("loadFailed", view.error.message);
  $("feed-empty").hidden = !view.loaded || view.alerts.length > 0;
  $("list-count").textContent = view.loaded ? t("listCount", view.alerts.length) : "";
  $("feed-more").hidden = !view.truncated;
  if (view.truncated) $("feed-more").textContent = t("listTruncated", view.alerts.length);
  $("alerts").setAttribute("aria-busy", String(!view.loaded));
  replaceKeepingFocus($("alerts"), ...view.alerts.map(alertRow));

  const units = new Set(view.alerts.flatMap((a) => a.units ?? [a.unit]).filter(Boolean));
  const known = $("known-units");
  if (known.options.length !== units.size) {
    known.replaceChildren(...[...units].sort().map((unit) => element("option", { value: unit })));
  }
}

function alertRow(alert) {
  const id = alert.incident_id;
  const isNew = view.fresh.has(id);
  const selected = id === view.selected;
  const severity = alert.severity ?? "none";
  const button = element(
    "button",
    {
      type: "button",
      className: "alert-row",
      "aria-current": selected ? "true" : null,
      "data-focus-key": id,
      tabIndex: selected || (!view.selected && alert === view.alerts[0]) ? 0 : -1,
    },
    element(
      "span",
      { className: "cell cell-severity" },
      element("span", { className: `sev sev-${severity}` }, severityLabel(alert.severity)),
      isNew && element("span", { className: "new-badge" }, t("newBadge")),
    ),
    element(
      "span",
      { className: "cell" },
      element("span", { className: `status status-${alert.status}` }, t(`status.${alert.status}`)),
    ),
    element(
      "span",
      { className: "cell cell-place" },
      alert.headline && element("span", { className: "headline", title: alert.headline }, alert.headline),
      element("span", { className: "place" }, alert.place || t("noPlace")),
      alert.unit && element("span", { className: "unit" }, unitsText(alert)),
    ),
    element("span", { className: "cell cell-count" }, t("reportCount", alert.report_count)),
    timeCell(alert.opened_at),
    timeCell(alert.last_received_at), // the feed's order: when something last came in
    element("span", { className: "cell cell-assignee" }, alert.assignee || t("nobody")),
  );
  button.addEventListener("click", () => select(id));
  return element(
    "li",
    {
      className: [
        "alert",
        `sev-${severity}`,
        `status-${alert.status}`,
        isNew && "is-new",
        selected && "is-selected",
      ]
        .filter(Boolean)
        .join(" "),
      "data-incident-id": id,
      "data-severity": severity,
      "data-status": alert.status,
      "data-new": String(isNew),
    },
    button,
  );
}

function timeCell(iso) {
  return element(
    "span",
    { className: "cell cell-time", title: full(iso) },
    element("span", { className: "rel", "data-rel-time": iso ?? "" }, relative(iso)),
    element("span", { className: "abs" }, clock(iso)),
  );
}

function refreshTimes() {
  for (const el of document.querySelectorAll("[data-rel-time]")) {
    el.textContent = relative(el.dataset.relTime || null);
  }
}

/** Up and down arrows move through the list, as in any desk application's list. */
function moveSelection(event) {
  if (!["ArrowDown", "ArrowUp", "Home", "End"].includes(event.key)) return;
  const rows = [...$("alerts").querySelectorAll(".alert-row")];
  if (!rows.length) return;
  event.preventDefault();
  const at = rows.indexOf(document.activeElement);
  const next = {
    ArrowDown: Math.min(at + 1, rows.length - 1),
    ArrowUp: Math.max(at - 1, 0),
    Home: 0,
    End: rows.length - 1,
  }[event.key];
  rows[next].focus();
  rows[next].click();
}

// --- the chosen alert -----------------------------------------------------------------------

function select(incidentId, { focus = false } = {}) {
  view.fresh.delete(incidentId);
  if (view.selected !== incidentId) {
    view.selected = incidentId;
    view.detail = null;
    view.message = null;
    view.openForm = null;
    rememberInUrl();
    loadDetail(incidentId);
  }
  renderHeader();
  renderList();
  renderDetail();
  if (focus) {
    const row = $("alerts").querySelector(`[data-incident-id="${CSS.escape(incidentId)}"] button`);
    row?.scrollIntoView({ block: "nearest" });
    row?.focus({ preventScroll: true });
  }
}

async function loadDetail(incidentId) {
  view.loadingDetail = true;
  view.detailError = null;
  renderDetail();
  try {
    const detail = await alertDetail(incidentId);
    if (view.selected !== incidentId) return null;
    showDetail(detail);
    return detail;
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    if (view.selected === incidentId) view.detailError = failure;
    return null;
  } finally {
    if (view.selected === incidentId) {
      view.loadingDetail = false;
      renderDetail();
    }
  }
}

/** Show `detail`; the timeline entries it adds to the alert shown before, if any. */
function showDetail(detail) {
  const before = view.detail?.incident_id === detail.incident_id ? view.detail : null;
  if (before && detail.version < before.version) return []; // an answer overtaken by another
  keepPhotoLinks(detail);
  const known = new Set((before?.timeline ?? []).map(entryKey));
  const added = before ? detail.timeline.filter((entry) => !known.has(entryKey(entry))) : [];
  view.changed = new Set(added.map(entryKey));
  view.detail = detail;
  view.detailError = null;
  watchTold();
  return added;
}

let toldWatch = null;

/** While the open alert may be being sent out (unacknowledged: the alerter raises,
 * escalates and retries only those), read it again now and then: telling people leaves the
 * incident's version as it was, so the feed does not announce it. Not while the dispatcher
 * writes an action on it, nor while the page is out of sight. */
function watchTold() {
  clearTimeout(toldWatch);
  const d = view.detail;
  if (!d || d.status !== "open" || view.signedOut) return;
  toldWatch = setTimeout(() => {
    if (view.selected !== d.incident_id) return;
    if (composing() || document.hidden) watchTold();
    else refreshDetail();
  }, WATCH_TOLD_MS);
}

function entryKey(entry) {
  return JSON.stringify([entry.occurred_at, entry.event_type, entry.actor, entry.detail]);
}

// Photo links are signed anew on every read; reusing the ones already shown (while they
// are valid) keeps a reload from fetching and flashing every photo again.
const signedLinks = new Map(); // object_key -> {url, preview_url, signedAt}

function keepPhotoLinks(detail) {
  for (const report of detail.reports ?? []) {
    for (const photo of report.photos ?? []) {
      const kept = signedLinks.get(photo.object_key);
      if (kept && Date.now() - kept.signedAt < STALE_LINKS_MS) {
        Object.assign(photo, { url: kept.url, preview_url: kept.preview_url });
        photo.signedAt = kept.signedAt;
      } else {
        photo.signedAt = Date.now();
        signedLinks.set(photo.object_key, {
          url: photo.url,
          preview_url: photo.preview_url,
          signedAt: photo.signedAt,
        });
      }
    }
  }
}

/** Keep the open alert current, unless the dispatcher is writing an action on it. */
function followSelected() {
  if (detailIsBehind() && !composing()) refreshDetail();
  renderDetailNotice();
}

/** Whether an action form on the open alert has something typed or chosen in it. */
function composing() {
  if (!view.detail || !view.openForm) return false;
  const draft = view.drafts.get(`${view.detail.incident_id}:${view.openForm}`) ?? {};
  return Object.values(draft).some(Boolean);
}

let refreshing = false;
let refreshAgain = false;

/** Read the open alert again without a loading state; one read at a time. */
async function refreshDetail() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  const incidentId = view.selected;
  try {
    do {
      refreshAgain = false;
      const detail = await alertDetail(incidentId);
      if (view.selected !== incidentId || view.busy) return;
      showDetail(detail);
      renderDetail();
    } while (refreshAgain);
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    renderDetailNotice(); // the notice offers a reload by hand
    watchTold(); // and the deliveries are read again when the network is back
  } finally {
    refreshing = false;
  }
}

/** Whether the feed knows a newer version of the shown alert than the one on screen. */
function detailIsBehind() {
  if (!view.detail || view.busy) return false;
  const known = feed?.known(view.detail.incident_id);
  return Boolean(known && known.version > view.detail.version);
}

function renderDetailNotice() {
  const notice = $("detail-notice");
  if (!notice) return;
  notice.hidden = !detailIsBehind();
}

function renderDetail() {
  const body = $("detail-body");
  $("detail-placeholder").hidden = Boolean(view.selected);
  body.hidden = !view.selected;
  if (!view.selected) return body.replaceChildren();
  if (!view.detail) {
    const parts = [];
    if (view.detailError) {
      const retry = element("button", { type: "button", className: "button" }, t("retry"));
      retry.addEventListener("click", () => loadDetail(view.selected));
      parts.push(
        element(
          "p",
          { className: "error", role: "alert" },
          t("detailFailed", view.detailError.message),
        ),
        retry,
      );
    } else {
      parts.push(element("p", { className: "hint" }, t("loadingDetail")));
    }
    return body.replaceChildren(...parts);
  }
  const d = view.detail;
  replaceKeepingFocus(
    body,
    detailHead(d),
    noticeBar(),
    messageBar(),
    actionBar(d),
    facts(d),
    toldSection(d),
    reportsSection(d),
    timelineSection(d),
  );
  body.dataset.incidentId = d.incident_id;
  body.dataset.status = d.status;
  body.dataset.version = String(d.version);
}

function detailHead(d) {
  const severity = d.severity ?? "none";
  return element(
    "header",
    { className: "detail-head" },
    element("span", { className: `sev sev-big sev-${severity}` }, severityLabel(d.severity)),
    element(
      "div",
      { className: "detail-title" },
      element("h2", { id: "detail-heading" }, d.place || d.unit || t("noPlace")),
      element(
        "p",
        { className: "sub" },
        [
          unitsText(d),
          `${t("incident")} ${d.incident_id.slice(0, 8)}`,
          `${t("fact.version")} ${d.version}`,
        ]
          .filter(Boolean)
          .join(" · "),
      ),
    ),
    element(
      "span",
      { className: `status status-big status-${d.status}`, id: "detail-status" },
      t(`status.${d.status}`),
    ),
  );
}

function noticeBar() {
  const reload = element("button", { type: "button", className: "button" }, t("reload"));
  reload.addEventListener("click", async () => {
    view.message = null;
    await loadDetail(view.selected);
  });
  return element(
    "div",
    { id: "detail-notice", className: "notice", role: "status", hidden: !detailIsBehind() },
    element("span", {}, t("changedElsewhere")),
    reload,
  );
}

function messageBar() {
  const message = view.message;
  if (!message) return null;
  return element(
    "div",
    {
      id: "detail-message",
      className: `message message-${message.kind}`,
      role: message.kind === "error" || message.kind === "conflict" ? "alert" : "status",
    },
    element("p", {}, textOf(message.text)),
    ...(message.extra ?? []).map((line) =>
      element("p", { className: "message-extra" }, textOf(line)),
    ),
  );
}

function textOf(text) {
  return typeof text === "function" ? text() : text;
}

function actionBar(d) {
  const allowed = ACTIONS[d.status] ?? ["note"];
  const buttons = allowed.map((action) => {
    const immediate = !FORMS[action];
    const button = element(
      "button",
      {
        type: "button",
        className: [
          "button",
          action === "acknowledge" && "primary",
          view.openForm === action && "pressed",
        ]
          .filter(Boolean)
          .join(" "),
        disabled: view.busy,
        "data-action": action,
        "data-focus-key": `action:${action}`,
        "aria-expanded": immediate ? null : String(view.openForm === action),
      },
      view.busy && immediate ? t("working") : t(`act.${action}`),
    );
    button.addEventListener("click", () => {
      if (immediate) return perform(action, {});
      view.openForm = view.openForm === action ? null : action;
      renderDetail();
      $("detail-body").querySelector(".action-form [data-focus-key]")?.focus();
    });
    return button;
  });
  const section = element(
    "section",
    { className: "actions", "aria-label": t("actions") },
    element("div", { className: "action-buttons" }, ...buttons),
  );
  if (view.openForm && allowed.includes(view.openForm))
    section.append(actionForm(d, view.openForm));
  return section;
}

function actionForm(d, action) {
  const key = `${d.incident_id}:${action}`;
  const draft = view.drafts.get(key) ?? {};
  const fields = FORMS[action].map((field) => {
    let control;
    if (field.choices) {
      control = element(
        "select",
        { name: field.name, required: true },
        ...field.choices.map((severity) =>
          element(
            "option",
            { value: severity, selected: (draft[field.name] ?? d.severity) === severity },
            t(`sev.${severity}`),
          ),
        ),
      );
    } else {
      control = element(field.long ? "textarea" : "input", {
        name: field.name,
        required: true,
        maxLength: field.max,
        rows: field.long ? 3 : null,
        placeholder: field.hint ? t(field.hint) : null,
        value: draft[field.name] ?? "",
      });
    }
    control.dataset.focusKey = `form:${action}:${field.name}`;
    return element("label", { className: "field" }, element("span", {}, t(field.label)), control);
  });
  const submit = element(
    "button",
    { type: "submit", className: "button primary", disabled: view.busy },
    view.busy ? t("working") : t(`act.${action}`),
  );
  const form = element(
    "form",
    { className: "action-form", "data-action": action, noValidate: true },
    ...fields,
    element("div", { className: "row" }, submit),
  );
  form.addEventListener("input", () => view.drafts.set(key, formValues(form)));
  form.addEventListener("change", () => view.drafts.set(key, formValues(form)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = formValues(form);
    const missing = FORMS[action].find((field) => !values[field.name]);
    if (missing) {
      view.message = { kind: "error", text: () => t("required", t(missing.label)) };
      renderDetail();
      form.elements[missing.name]?.focus();
      return;
    }
    perform(action, values);
  });
  return form;
}

function formValues(form) {
  const values = {};
  for (const [name, value] of new FormData(form)) values[name] = String(value).trim();
  return values;
}

/** Send `action` on the version shown; then show the alert once the read model has it. */
async function perform(action, fields) {
  if (view.busy || !view.detail) return;
  const { incident_id: incidentId, version } = view.detail;
  view.busy = true;
  view.message = null;
  renderDetail();
  try {
    const accepted = await act(incidentId, {
      action,
      expected_version: version,
      ...fields,
    });
    view.drafts.delete(`${incidentId}:${action}`);
    if (view.selected !== incidentId) return;
    view.openForm = null;
    view.message = { kind: "info", text: () => t("sent") };
    renderDetail();
    const updated = await waitForVersion(incidentId, accepted.incident_version);
    if (view.selected !== incidentId) return;
    if (updated) showDetail(updated);
    view.message = updated
      ? { kind: "ok", text: () => t("done", t(`act.${action}`)) }
      : { kind: "info", text: () => t("notYetShown") };
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    if (view.selected !== incidentId) return;
    view.message = await explain(failure, incidentId, version);
  } finally {
    view.busy = false;
    if (view.selected === incidentId) {
      renderDetail();
      renderList();
      followSelected(); // what happened meanwhile, by others
      watchTold(); // a read it skipped while the action was busy
    }
  }
}

/** What to tell the dispatcher about a refused or failed action. */
async function explain(failure, incidentId, sentVersion) {
  const { problem } = failure;
  const detail = problemText(problem, failure.status);
  if (failure.status === 409) {
    // Stale, or not possible in the incident's status: either way, show what is true now.
    let fresh = null;
    try {
      fresh = await alertDetail(incidentId);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    }
    const before = view.detail?.incident_id === incidentId ? view.detail : null;
    const added = fresh && view.selected === incidentId ? showDetail(fresh) : [];
    if (fresh && fresh.version !== sentVersion) {
      // What changed, newest last, from the timeline.
      const changes = added
        .slice(-3)
        .map(
          (e) => () =>
            t("changeLine", clock(e.occurred_at), e.actor || t("system"), timelineText(e)),
        );
      const byPerson = added.some((e) => ACTION_EVENTS.has(e.event_type));
      // A person's action says itself on the timeline; what came in may say more (the
      // report's place or text arriving after its triage leaves no entry).
      const seen = before && !byPerson ? changedFacts(before, fresh) : [];
      const lines = [...changes, ...seen];
      return {
        kind: "conflict",
        text: () => t(byPerson ? "conflict" : "conflictNews"),
        extra: lines.length ? lines : [() => t("conflictUnseen")],
      };
    }
    return { kind: "error", text: () => t("refused", detail) };
  }
  if (failure.offline) return { kind: "error", text: () => t("networkError") };
  if (failure.status === 401) return { kind: "error", text: () => t("needSignIn") };
  if (failure.status >= 500) return { kind: "error", text: () => t("serverError", failure.status) };
  const errors = (problem.errors ?? []).map((e) => `${e.field}: ${e.message}`);
  return { kind: "error", text: detail, extra: errors };
}

/** What the dispatcher sees of the alert that differs between `before` and `after`, as
 * lines to show (each a function giving it in the language of the moment). */
function changedFacts(before, after) {
  const shown = (d) => ({
    "fact.severity": severityLabel(d.severity),
    "fact.place": d.place || t("nobody"),
    "fact.unit": unitsText(d) || t("nobody"),
    "fact.reports": String(d.report_count),
    "fact.assignee": d.assignee || t("nobody"),
  });
  const [was, now] = [shown(before), shown(after)];
  const lines = Object.keys(was)
    .filter((label) => was[label] !== now[label])
    .map((label) => () => t("changedFact", t(label), was[label], now[label]));
  const content = (d) => JSON.stringify((d.reports ?? []).map((r) => [r.text, r.photos?.length]));
  if (!lines.length && content(before) !== content(after)) lines.push(() => t("changedReports"));
  return lines;
}

/** The server's refusal in the dispatcher's language where the page knows its code, else
 * in the server's own words. */
function problemText(problem, status) {
  const key = `problem.${problem.code}`;
  if (problem.code && has(key)) return t(key);
  return problem.detail || problem.title || `HTTP ${status}`;
}

/** The alert once the read model has reached `version` (the action is projected), or null. */
async function waitForVersion(incidentId, version) {
  const deadline = Date.now() + WAIT_FOR_VERSION_MS;
  let pause = 100;
  while (Date.now() < deadline) {
    try {
      const detail = await alertDetail(incidentId);
      if (detail.version >= version) return detail;
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 1_000);
  }
  return null;
}

function facts(d) {
  const rows = [];
  const fact = (label, ...value) =>
    rows.push(
      element(
        "div",
        { className: "fact" },
        element("dt", {}, t(label)),
        element("dd", {}, ...value),
      ),
    );
  const severityParts = [severityLabel(d.severity)];
  if (d.override_severity) {
    const override = t(
      "fact.override",
      severityLabel(d.override_severity),
      d.overridden_by ?? "?",
      d.override_reason ?? "",
    );
    severityParts.push(element("span", { className: "muted" }, ` · ${override}`));
    severityParts.push(
      element(
        "span",
        { className: "muted" },
        ` · ${t("fact.ruleSeverity", severityLabel(d.rule_severity))}`,
      ),
    );
  }
  fact("fact.severity", ...severityParts);
  fact("fact.opened", timeText(d.opened_at));
  fact("fact.latest", timeText(d.last_report_at));
  fact("fact.reports", String(d.report_count));
  fact("fact.assignee", d.assignee || t("nobody"));
  fact(
    "fact.acknowledged",
    d.acknowledged_by ? t("byAt", d.acknowledged_by, clock(d.acknowledged_at)) : t("nobody"),
  );
  if (d.resolved_by) {
    fact(
      "fact.resolved",
      t("byAt", d.resolved_by, clock(d.resolved_at)),
      d.resolution ? ` · ${d.resolution}` : "",
    );
  }
  return element("dl", { className: "facts" }, ...rows);
}

function timeText(iso) {
  return element(
    "time",
    { dateTime: iso ?? "", title: full(iso) },
    `${clock(iso)} · `,
    element("span", { "data-rel-time": iso ?? "" }, relative(iso)),
  );
}

function reportsSection(d) {
  const reports = d.reports ?? [];
  return element(
    "section",
    { className: "reports", "aria-labelledby": "reports-heading" },
    element("h3", { id: "reports-heading" }, `${t("reports")} (${reports.length})`),
    element(
      "ol",
      { className: "report-list" },
      ...reports.map((r, i) => reportCard(r, i, reports.length)),
    ),
  );
}

function reportCard(r, index, total) {
  const severity = r.severity ?? "none";
  const late =
    r.captured_at && r.received_at ? Date.parse(r.received_at) - Date.parse(r.captured_at) : 0;
  const when = element(
    "p",
    { className: "when" },
    element(
      "time",
      { dateTime: r.captured_at ?? "", title: full(r.captured_at) },
      `${t("captured")} ${clock(r.captured_at)}`,
    ),
    ", ",
    element(
      "time",
      { dateTime: r.received_at ?? "", title: full(r.received_at) },
      `${t("received")} ${clock(r.received_at)}`,
    ),
    late > LATE_AFTER_MS && element("span", { className: "late" }, t("delayed", duration(late))),
  );
  const meta = [
    r.reporter_id &&
      `${t("reporter")} ${r.reporter_id}${r.reporter_via ? t("via", r.reporter_via) : ""}`,
    r.category && (has(`cat.${r.category}`) ? t(`cat.${r.category}`) : r.category),
    r.place && `${t("place")} ${r.place}`,
    r.unit && `${t("unit")} ${r.unit}`,
    r.location &&
      t(
        "location",
        r.location.lat?.toFixed(5),
        r.location.lon?.toFixed(5),
        r.location.accuracy_m && Math.round(r.location.accuracy_m),
      ),
  ].filter(Boolean);
  return element(
    "li",
    { className: `report sev-${severity}`, "data-report-id": r.report_id },
    element(
      "div",
      { className: "report-head" },
      element("span", { className: `sev sev-${severity}` }, severityLabel(r.severity)),
      element("span", { className: "report-n" }, t("reportN", index + 1, total)),
      when,
    ),
    element("p", { className: "report-text" }, r.text || t("noText")),
    meta.length && element("p", { className: "report-meta" }, meta.join(" · ")),
    r.photos?.length && photoStrip(r),
    reasonsList(r),
  );
}

function photoStrip(report) {
  return element(
    "ul",
    { className: "photos", "aria-label": t("photos") },
    ...report.photos.map((photo, i) => {
      const caption = [
        photo.width && photo.height ? `${photo.width}×${photo.height}` : null,
        photo.taken_at ? t("photoTaken", clock(photo.taken_at)) : null,
      ].filter(Boolean);
      const link = element(
        "a",
        {
          href: photo.url,
          target: "_blank",
          rel: "noopener noreferrer",
          className: "photo",
          "aria-label": t("openPhoto", i + 1),
          title: caption.join(" · "),
        },
        element("img", {
          src: photo.preview_url || photo.url,
          alt: t("openPhoto", i + 1),
          loading: "lazy",
          decoding: "async",
        }),
      );
      link.addEventListener("click", (event) => openPhoto(event, photo, report.report_id, i));
      return element(
        "li",
        {},
        link,
        caption.length && element("span", { className: "photo-caption" }, caption.join(" · ")),
      );
    }),
  );
}

/** Photo links are signed for a while only: an old page fetches fresh ones first. */
async function openPhoto(event, photo, reportId, index) {
  if (Date.now() - photo.signedAt < STALE_LINKS_MS) return; // the link still works
  event.preventDefault();
  try {
    const fresh = await alertDetail(view.selected);
    const again = fresh.reports.find((r) => r.report_id === reportId)?.photos[index];
    if (again) window.open(again.url, "_blank", "noopener,noreferrer");
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    view.message = { kind: "error", text: () => t("detailFailed", failure.message) };
    renderDetail();
  }
}

function reasonsList(report) {
  const reasons = report.reasons ?? [];
  const items = reasons.map((reason) =>
    element(
      "li",
      { className: "reason" },
      element("span", { className: "reason-summary" }, reason.summary ?? reason.rule_id),
      reason.rule_id && element("code", { className: "rule-id" }, reason.rule_id),
      ...(reason.evidence ?? []).map((evidence) =>
        element("mark", { className: "evidence", title: t("evidence") }, evidence),
      ),
    ),
  );
  return element(
    "div",
    { className: "reasons" },
    element(
      "p",
      { className: "reasons-head" },
      t("reasons"),
      report.rule_set_version &&
        element("span", { className: "muted" }, ` · ${t("ruleSet", report.rule_set_version)}`),
    ),
    items.length
      ? element("ul", {}, ...items)
      : element("p", { className: "muted" }, t("noReasons")),
  );
}

/** Whom the current round's alert has reached, step by step: a delivery that failed is
 * someone the dispatcher may have to call. */
function toldSection(d) {
  const deliveries = (d.deliveries ?? []).filter((x) => x.round === d.alert_round);
  const counts = { delivered: 0, retrying: 0, stopped: 0, failed: 0 };
  for (const delivery of deliveries) counts[toldState(delivery, d)] += 1;
  return element(
    "section",
    { className: "told", "aria-labelledby": "told-heading" },
    element("h3", { id: "told-heading" }, t("told")),
    deliveries.length
      ? element("p", { className: "told-summary" }, t("told.summary", counts))
      : element("p", { className: "muted" }, t("told.nobody")),
    deliveries.length
      ? element("ul", { className: "told-list" }, ...deliveries.map((x) => toldRow(x, d)))
      : null,
  );
}

/** How a delivery stands as the dispatcher should read it: a retry the alerter will not
 * make (it tells and retries only unacknowledged alerts) is "stopped", not "retrying". */
function toldState(x, d) {
  return x.outcome === "retrying" && d.status !== "open" ? "stopped" : x.outcome;
}

function toldRow(x, d) {
  const who = x.recipient_name ? `${x.recipient_name} (${x.recipient})` : x.recipient;
  const how = [
    x.channel,
    x.step > 0 ? t("told.escalation", x.step) : t("told.first"),
    x.severity && severityLabel(x.severity),
  ];
  const stands = toldState(x, d);
  const error = x.last_error ?? "";
  const state = {
    delivered: () => t("told.delivered", clock(x.updated_at)),
    failed: () => t("told.failed", x.attempts, error),
    stopped: () => t("told.stopped", x.attempts, t(`status.${d.status}`), error),
    retrying: () => t("told.retrying", x.attempts, clock(x.next_attempt_at), error),
  }[stands]();
  return element(
    "li",
    { className: `told-row told-${stands}`, "data-recipient": x.recipient },
    element("span", { className: "told-who" }, who),
    element("span", { className: "told-how" }, how.filter(Boolean).join(" · ")),
    element("span", { className: "told-state" }, state),
  );
}

function timelineSection(d) {
  const entries = [...(d.timeline ?? [])].reverse(); // newest first: what just happened on top
  return element(
    "section",
    { className: "timeline", "aria-labelledby": "timeline-heading" },
    element("h3", { id: "timeline-heading" }, t("timeline")),
    element(
      "ol",
      {},
      ...entries.map((entry) =>
        element(
          "li",
          {
            "data-event-type": entry.event_type,
            className: view.changed.has(entryKey(entry)) ? "is-changed" : "",
          },
          element(
            "time",
            { dateTime: entry.occurred_at, title: full(entry.occurred_at) },
            clock(entry.occurred_at),
          ),
          element("span", { className: "actor" }, entry.actor || t("system")),
          element("span", { className: "what" }, timelineText(entry)),
        ),
      ),
    ),
  );
}

function timelineText({ event_type: type, detail }) {
  const key = `ev.${type}`;
  if (!has(key)) return type;
  const shown = { ...detail };
  if (shown.severity) shown.severity = severityLabel(shown.severity);
  // Another action on the same version came first in the log: this one changed nothing.
  if (detail.superseded_by) return t("ev.superseded", detail.acted_on_version, t(key, shown));
  // Another action landed first and left a status this one no longer applies to.
  if (detail.refused) return t("ev.refused", t(`status.${detail.status_then}`), t(key, shown));
  return t(key, shown);
}

init();
