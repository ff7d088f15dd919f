// Notify's HTTP API as this page uses it. Every failure is an ApiError: status 0 when no
// answer came (no network, a timeout), otherwise the answer's status and its RFC 9457
// problem details ({title, detail, errors?}).
//
// The page is signed in by an HttpOnly session cookie the browser sends by itself. A 401
// from any call means that session ended: `onSignedOut` hears of it, and the page asks
// for a sign-in again. Calls that change something carry the CSRF token (the readable
// `qly_csrf` cookie, sent back as a header); a token the server no longer takes is
// dropped, a fresh one fetched, and the call made once more.

const TIMEOUT_MS = 15_000;
export const PAGE_SIZE = 200;
const CSRF_COOKIE = "qly_csrf";
const CSRF_HEADER = "x-csrf-token";
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
// A sign-out the server has not confirmed, kept across reloads (the reporter's page keeps
// its own the same way).
const SIGN_OUT_KEY = "qly.signOutPending";

let signedOutListener = () => {};
// A sign-out and a sign-in never overlap: a DELETE sent during a sign-in could carry the
// new session's cookie and end it, or clear the cookie the sign-in just set.
let signingOut = null; // the sign-out being sent, if one is
let signingIn = null; // the sign-in being sent, if one is (never rejects)

/** Call `listener` whenever the server answers 401: the session has ended. */
export function onSignedOut(listener) {
  signedOutListener = listener;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
  }

  get offline() {
    return this.status === 0;
  }
}

// `signIn`: the sign-in itself (no CSRF token needed yet, and a 401 is a wrong password);
// `quiet`: a 401 is expected and not news (signing out of an ended session).
async function request(path, options = {}, { retried = false, signIn = false, quiet = false } = {}) {
  const unsafe = UNSAFE.has((options.method ?? "GET").toUpperCase());
  if (unsafe && !signIn) await ensureCsrf();
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: {
        Accept: "application/json",
        ...(unsafe && !signIn ? csrfHeaders() : {}),
        ...options.headers,
      },
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new ApiError(0, { detail: error?.message || String(error) });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null; // a proxy's HTML error page, say: the status still says what happened
  }
  if (response.ok) return body;
  const failure = new ApiError(response.status, body ?? { title: response.statusText });
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  if (Number.isFinite(retryAfter)) failure.retryAfter = retryAfter;
  if (unsafe && !retried && response.status === 403 && body?.title === "CSRF check failed") {
    forgetCsrf();
    return request(path, options, { retried: true, quiet });
  }
  if (response.status === 401 && !signIn && !quiet) signedOutListener(failure);
  throw failure;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return null;
}

function csrfHeaders() {
  const token = cookie(CSRF_COOKIE);
  return token ? { [CSRF_HEADER]: token } : {};
}

/** Any answer from the server sets the CSRF cookie when the browser lacks it. */
async function ensureCsrf() {
  if (cookie(CSRF_COOKIE)) return;
  try {
    await fetch("/v1/auth/me", { cache: "no-store", signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch {
    // The call itself will say what is wrong with the network.
  }
}

function forgetCsrf() {
  document.cookie = `${CSRF_COOKIE}=; Max-Age=0; path=/; SameSite=Strict`;
}

/** Who is signed in: {username, display_name, roles, units}; a 401 ApiError when nobody. */
export function me() {
  return request("/v1/auth/me");
}

/** Sign this page in; the answer is who, and the session cookie comes with it. */
export async function signIn(username, password) {
  // A sign-out still due goes first, with the old session's cookie: tried once here, as
  // the sign-in carries that cookie too, and the server ends the session it replaces.
  await endPendingSignOut();
  const attempt = request(
    "/v1/auth/session",
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    },
    { signIn: true },
  ).then((user) => {
    // The cookie is this sign-in's now: the session signed out of is no longer this desk's.
    localStorage.removeItem(SIGN_OUT_KEY);
    return user;
  });
  signingIn = attempt.catch(() => undefined);
  try {
    return await attempt;
  } finally {
    signingIn = null;
  }
}

/** Sign this browser out: whether the server has ended the session (if not, it is sent
 * again by `endPendingSignOut`). */
export async function signOut() {
  localStorage.setItem(SIGN_OUT_KEY, "1");
  await signingOut; // one on its way may carry an older cookie: this one is sent after it
  return endPendingSignOut();
}

/** Send a sign-out the server has not heard yet; whether none is left pending. Until
 * the server has ended the session, its cookie (HttpOnly: only the server can end it)
 * still signs this browser in, for whoever sits down at the desk next. */
export async function endPendingSignOut() {
  await signingIn; // after it, the key says whether a sign-out is still due
  if (!localStorage.getItem(SIGN_OUT_KEY)) return true;
  signingOut ??= sendSignOut().finally(() => {
    signingOut = null;
  });
  return signingOut;
}

async function sendSignOut() {
  try {
    await request("/v1/auth/session", { method: "DELETE" }, { quiet: true });
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    // 401: no session was left to end (it expired, or an earlier sign-out got through).
    if (failure.status !== 401) return false;
  }
  localStorage.removeItem(SIGN_OUT_KEY);
  return true;
}

/** One page of the feed: {alerts, next_cursor}. */
export function listAlerts({ statuses, minSeverity, unit }, cursor = null) {
  const query = new URLSearchParams();
  for (const status of statuses) query.append("status", status);
  if (minSeverity) query.set("min_severity", minSeverity);
  if (unit) query.set("unit", unit);
  query.set("limit", String(PAGE_SIZE));
  if (cursor) query.set("cursor", cursor);
  return request(`/v1/alerts?${query}`);
}

/** An alert with its incident's reports, photo links, reasons and timeline. */
export function alertDetail(incidentId) {
  return request(`/v1/alerts/${encodeURIComponent(incidentId)}`);
}

/** Send a dispatcher's action; the answer is {event_id, incident_version}. */
export function act(incidentId, body) {
  return request(`/v1/incidents/${encodeURIComponent(incidentId)}/actions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The stream of feed changes (Server-Sent Events named `alert`). */
export const STREAM_URL = "/v1/alerts/stream";
