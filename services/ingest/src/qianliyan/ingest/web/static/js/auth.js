// Who is signed in on this phone. The session itself is an HttpOnly cookie (`qly_session`)
// that this script never sees; what it keeps is who that session is for, so the page can
// open offline as that reporter. A 401 from any API call means the session ended: the page
// asks for a sign-in again, and everything waiting stays waiting until then.
//
// Requests that change something also carry the CSRF token: the value of the readable
// `qly_csrf` cookie, sent back as the `x-csrf-token` header (double submit). Any answer
// from the server sets that cookie when the browser lacks it.

const USER_KEY = "qly.user"; // {username, display_name, roles} of the last sign-in
// Set from a sign-out until the server has ended that session. The cookie is HttpOnly, so
// only the server can end it: a sign-out the server did not hear (offline, an error) would
// otherwise be undone by the next check, and a shared phone would send the next worker's
// reports as the last one's.
const SIGN_OUT_KEY = "qly.signOutPending";
const SIGN_OUT_RETRY_MS = 5_000;
const CSRF_COOKIE = "qly_csrf";
const CSRF_HEADER = "x-csrf-token";
const TIMEOUT_MS = 15_000;

const listeners = new Set();
// A sign-out and a sign-in never overlap: a DELETE sent during a sign-in could carry the
// new session's cookie and end it, or clear the cookie the sign-in just set.
let signingOut = null; // the sign-out being sent, if one is
let signingIn = null; // the sign-in being sent, if one is (never rejects)
let signOutRetry = null;
// "unknown" until the server has said (or the page is offline), "signedIn", "signedOut".
let status = "unknown";
let user = readUser();

function readUser() {
  try {
    const saved = JSON.parse(localStorage.getItem(USER_KEY) ?? "null");
    return saved && typeof saved.username === "string" ? saved : null;
  } catch {
    return null;
  }
}

function set(nextStatus, nextUser) {
  status = nextStatus;
  user = nextUser;
  if (user) localStorage.setItem(USER_KEY, JSON.stringify(user));
  else localStorage.removeItem(USER_KEY);
  for (const listener of listeners) listener();
}

// Another tab (or the installed app's window) signing in or out changes whom the shared
// cookie speaks for: this tab follows at once, or it would send its waiting reports, and
// any typed under the old name, as the new reporter's.
addEventListener("storage", (event) => {
  if (event.key !== USER_KEY && event.key !== null) return;
  const next = readUser();
  if (next?.username === user?.username) return;
  // Not `set`: the other tab has written the key already, and writing it back here would
  // undo its sign-out.
  status = next ? "unknown" : "signedOut";
  user = next ?? user; // signed out there, the name stays to prefill the sign-in
  for (const listener of listeners) listener();
  if (next) checkSession();
});

/** Call `listener` whenever who is signed in changes. */
export function onAuthChange(listener) {
  listeners.add(listener);
}

/** The reporter this phone is signed in as (possibly last known, when offline), or null. */
export function currentUser() {
  return user;
}

/** Whether the server said the session is over: nothing is sent until a new sign-in. */
export function signedOut() {
  return status === "signedOut" || (status === "unknown" && !user);
}

/** The session ended (a 401 from the server): ask for a sign-in, keep the name to prefill. */
export function sessionEnded() {
  if (status === "signedOut") return;
  set("signedOut", user);
}

/** Ask the server who is signed in; offline, the last known reporter stays. A sign-out
 * the server has not heard yet is sent first, and until it is, nobody is signed in. */
export async function checkSession() {
  if (!(await endPendingSignOut())) return;
  let response;
  try {
    response = await fetch("/v1/auth/me", {
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    return; // no network: the server cannot say, and the page goes on as it was
  }
  if (response.status === 401) return sessionEnded();
  if (!response.ok) return;
  const me = await response.json();
  set("signedIn", { username: me.username, display_name: me.display_name, roles: me.roles });
}

export class SignInError extends Error {
  /** `kind`: "wrong" | "tooMany" | "offline" | "server" | "notReporter". */
  constructor(kind, { retryAfter = null, status = null } = {}) {
    super(kind);
    this.kind = kind;
    this.retryAfter = retryAfter;
    this.status = status;
  }
}

/** Sign in with a user name and password; throws a SignInError saying why not. */
export async function signIn(username, password) {
  // A sign-out still due goes first, with the old session's cookie: tried once here, as
  // the sign-in carries that cookie too, and the server ends the session it replaces.
  await endPendingSignOut({ retry: false });
  const posting = postSignIn(username, password);
  signingIn = posting.catch(() => undefined);
  let response;
  try {
    response = await posting;
  } catch (failure) {
    endPendingSignOut(); // the old session's cookie is still here: keep ending it
    throw failure;
  } finally {
    signingIn = null;
  }
  const me = await response.json();
  if (!me.roles.includes("reporter")) {
    await signOut().catch(() => undefined);
    throw new SignInError("notReporter");
  }
  set("signedIn", { username: me.username, display_name: me.display_name, roles: me.roles });
}

async function postSignIn(username, password) {
  let response;
  try {
    response = await fetch("/v1/auth/session", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username, password }),
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    throw new SignInError("offline");
  }
  if (response.status === 401 || response.status === 422) throw new SignInError("wrong");
  if (response.status === 429) {
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    throw new SignInError("tooMany", { retryAfter: Number.isFinite(retryAfter) ? retryAfter : 60 });
  }
  if (!response.ok) throw new SignInError("server", { status: response.status });
  // The cookie is this sign-in's now: the session signed out of is no longer this phone's.
  localStorage.removeItem(SIGN_OUT_KEY);
  return response;
}

/** Sign out here now, and on the server (the session stops working everywhere) as soon
 * as it can be told: offline, or refused for a moment, it is sent again every few
 * seconds, when the network returns and on every check. */
export async function signOut() {
  localStorage.setItem(SIGN_OUT_KEY, "1");
  set("signedOut", null);
  await signingOut; // one on its way may carry an older cookie: this one is sent after it
  await endPendingSignOut();
}

/** Send a sign-out the server has not heard yet; whether none is left pending. Until it
 * is heard, it is tried again every few seconds (unless `retry` is false). */
async function endPendingSignOut({ retry = true } = {}) {
  clearTimeout(signOutRetry);
  await signingIn; // after it, the key says whether a sign-out is still due
  if (!localStorage.getItem(SIGN_OUT_KEY)) return true;
  signingOut ??= endSessionOnServer().finally(() => {
    signingOut = null;
  });
  const ended = await signingOut;
  if (!ended && retry) {
    clearTimeout(signOutRetry);
    signOutRetry = setTimeout(endPendingSignOut, SIGN_OUT_RETRY_MS);
  }
  return ended;
}

/** Whether the server has ended the session this phone signed out of. */
async function endSessionOnServer() {
  try {
    await ensureCsrf();
    const response = await fetch("/v1/auth/session", {
      method: "DELETE",
      headers: csrfHeaders(),
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    // 401: no session was left to end (it expired, or a sign-out got through before).
    if (!response.ok && response.status !== 401) return false;
  } catch {
    return false; // no network: sent again when it returns
  }
  localStorage.removeItem(SIGN_OUT_KEY);
  return true;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return null;
}

/** The CSRF header for a request that changes something. */
export function csrfHeaders() {
  const token = cookie(CSRF_COOKIE);
  return token ? { [CSRF_HEADER]: token } : {};
}

/** Make sure the CSRF cookie is there: any answer from the server sets it when absent. */
export async function ensureCsrf() {
  if (cookie(CSRF_COOKIE)) return;
  await fetch("/v1/auth/me", { cache: "no-store", signal: AbortSignal.timeout(TIMEOUT_MS) });
}

/** Whether an answer is the CSRF check's refusal (a stale token: get a new one, retry). */
export function isCsrfRefusal(response, body) {
  return response.status === 403 && body?.title === "CSRF check failed";
}

/** Drop the CSRF cookie the server refused, so the next answer sets a fresh one. */
export function forgetCsrf() {
  document.cookie = `${CSRF_COOKIE}=; Max-Age=0; path=/; SameSite=Strict`;
}
