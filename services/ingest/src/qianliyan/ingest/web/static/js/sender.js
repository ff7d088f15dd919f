// Sends waiting reports and follows accepted ones until they are triaged.
//
// A report's photos are uploaded one by one first (POST /v1/photos), each kept as done
// once the store has it, and then the report names them: on a slow link a single photo
// finishes where five in one request timed out, and a retry resends only what is left.
//
// One pass at a time, and across tabs one at a time too (Web Locks), so two tabs never
// send the same report at once; if they did, the idempotency key would still make it one
// report. A 4xx is the server refusing this report: final, shown with its reasons. A 409
// (an earlier attempt still in flight), 408/429, a 5xx or no network at all: retried
// with exponential backoff, honouring Retry-After. Retries happen on a timer while the
// page is open and at once when the phone says the network is back.
//
// Reports go out in the name of whoever is signed in (the server takes the reporter from
// the session), so a report waits for the reporter who wrote it. A 401 means the session
// ended: nothing more is sent or polled until the reporter signs in again, and the report
// stays waiting, untouched; signing in starts a pass.

import {
  csrfHeaders,
  currentUser,
  ensureCsrf,
  forgetCsrf,
  isCsrfRefusal,
  sessionEnded,
  signedOut,
} from "./auth.js";
import { allReports, updateReport } from "./outbox.js";

const FIRST_RETRY_MS = 2_000;
const MAX_RETRY_MS = 60_000;
const POST_TIMEOUT_MS = 120_000; // five photos over a weak 3G link take a while
const POLL_TIMEOUT_MS = 15_000;
const FIRST_POLL_MS = 1_500;
const MAX_POLL_MS = 30_000;
const POLL_FOR_MS = 30 * 60_000; // after that a report stays "received" on this page
const RETRYABLE_4XX = new Set([408, 409, 429]);
// What the reporter is told while a report waits, for the answers that say more than
// "the server is busy".
const WAITING_BECAUSE = { 409: "stillProcessing", 429: "tooManyAttempts" };

let running = false;
let again = false;
let timer = null;

/** Start sending: now, on every `online` event, when the page is shown, and on a timer. */
export function startSender() {
  addEventListener("online", async () => {
    // The network is back: whatever was waiting goes now, not when its backoff ends.
    for (const r of await allReports()) {
      if (r.state === "waiting") await updateReport(r.id, () => ({ nextAttemptAt: 0 }));
    }
    kick();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") kick();
  });
  kick();
}

/** Run a pass now (or right after the one in progress). */
export async function kick() {
  if (running) {
    again = true;
    return;
  }
  running = true;
  clearTimeout(timer);
  let nextDue = Infinity;
  try {
    do {
      again = false;
      nextDue = await exclusively(pass);
    } while (again);
  } catch (error) {
    // The phone's storage failed under a pass (full, or its connection lost). What it
    // holds is as last written, so the pass is tried again soon: never, otherwise, until
    // something else kicked, and a waiting report would sit there unsent.
    console.error("a sending pass failed; trying again", error);
    nextDue = Date.now() + FIRST_RETRY_MS;
  } finally {
    running = false;
  }
  if (nextDue !== Infinity) {
    timer = setTimeout(kick, Math.min(Math.max(nextDue - Date.now(), 250), MAX_RETRY_MS));
  }
}

function exclusively(work) {
  return navigator.locks ? navigator.locks.request("qianliyan-outbox", work) : work();
}

/** Send or poll every report that is due, oldest first; returns when the next one is due. */
async function pass() {
  let nextDue = Infinity;
  for (let r of (await allReports()).reverse()) {
    // Holding the lock, nobody else is sending: "sending" means a closed or crashed page.
    if (r.state === "sending") r = await updateReport(r.id, () => ({ state: "waiting" }));
    // Signed out, or this report is someone else's: it waits for a sign-in, which kicks.
    if (signedOut() || !isMine(r)) continue;
    if (r.state === "waiting") {
      if (r.nextAttemptAt <= Date.now() && navigator.onLine !== false) r = await send(r);
      if (r.state === "waiting") nextDue = Math.min(nextDue, r.nextAttemptAt);
    }
    if (stillMoving(r) && Date.now() < r.pollUntil) {
      if (r.nextPollAt <= Date.now()) r = await poll(r);
      if (stillMoving(r)) nextDue = Math.min(nextDue, r.nextPollAt);
    }
  }
  return nextDue;
}

/** Whether `r` was written by the reporter signed in now (or by nobody known). */
export function isMine(r) {
  return !r.owner || r.owner === currentUser()?.username;
}

async function send(record) {
  record = await updateReport(record.id, () => ({ state: "sending" }));
  // Photos go first, one request each: over a slow link one photo fits in a request's
  // time where five together did not, and one that breaks off costs only itself. The
  // store names each by its content, so sending one again is harmless.
  if (record.photosApart) {
    for (const [index, photo] of record.photos.entries()) {
      if (photo.id) continue;
      const answer = await post("/v1/photos", photoForm(photo), {});
      if (answer.response?.status !== 201 || !answer.body?.photo_id) {
        return notThrough(record, answer, `photos[${index + 1}]`);
      }
      record = await updateReport(record.id, (r) => ({
        photos: r.photos.map((p, i) => (i === index ? { ...p, id: answer.body.photo_id } : p)),
      }));
    }
  }
  const answer = await post("/v1/reports", reportForm(record), { "Idempotency-Key": record.id });
  const { response, body } = answer;
  if (response?.status === 202 && body?.status_url) {
    const now = Date.now();
    return updateReport(record.id, () => ({
      state: "received",
      accepted: body,
      photos: [], // on the server now; free the phone's storage
      note: null,
      nextPollAt: now + FIRST_POLL_MS,
      pollDelay: FIRST_POLL_MS,
      pollUntil: now + POLL_FOR_MS,
    }));
  }
  const expired = expiredUploads(record, answer);
  if (expired.size) {
    // The server has no upload of this reporter's for them: the store let uploads go
    // that no report named in time (a week, by default), or they were made before ingest
    // kept uploads per person. The phone still has the photos, so they go up again, then
    // the report.
    await updateReport(record.id, (r) => ({
      photos: r.photos.map((p, i) => (expired.has(i) ? { ...p, id: undefined } : p)),
    }));
    return retryLater(record, { key: "photosAgain" }, null);
  }
  return notThrough(record, answer, null);
}

/** The positions of the photos whose uploads the server does not have for this reporter
 * ("no uploaded photo" for `report.photo_ids.N`). */
function expiredUploads(record, { response, body }) {
  const expired = new Set();
  if (!record.photosApart || response?.status !== 422 || !Array.isArray(body?.errors)) {
    return expired;
  }
  for (const { field, code } of body.errors) {
    const match = /^report\.photo_ids\.(\d+)$/.exec(field ?? "");
    // Only a missing upload is cured by uploading again; any other refusal is final.
    if (match && code === "photo_not_uploaded") expired.add(Number(match[1]));
  }
  return expired;
}

/** POST `form` with the session's CSRF token: `{response, body}`, or `{error}` when no
 * answer came (no network, or given up on after POST_TIMEOUT_MS). */
async function post(url, form, headers) {
  try {
    await ensureCsrf();
    const response = await fetch(url, {
      method: "POST",
      body: form,
      headers: { Accept: "application/json", ...headers, ...csrfHeaders() },
      cache: "no-store",
      signal: AbortSignal.timeout(POST_TIMEOUT_MS),
    });
    return { response, body: await readJson(response) };
  } catch (error) {
    return { error };
  }
}

/**
 * What a request that did not get the report (or one of its photos) through leaves the
 * report as: waiting to retry, waiting for a sign-in, or refused for good. `part` names
 * the photo a refusal was about (the server, sent one photo, calls it "photos[1]").
 */
function notThrough(record, { response, body, error }, part) {
  if (!response) {
    // Given up on at POST_TIMEOUT_MS: the network is there, too slow for the upload.
    const key = error?.name === "TimeoutError" ? "uploadTooSlow" : "networkDown";
    return retryLater(record, { key }, null);
  }
  if (response.status === 401) {
    // The session ended: the report waits, as it was, for the reporter to sign in again.
    sessionEnded();
    return updateReport(record.id, () => ({
      state: "waiting",
      nextAttemptAt: 0,
      note: { key: "signInNeeded" },
    }));
  }
  if (isCsrfRefusal(response, body)) {
    forgetCsrf(); // the next answer brings a fresh token; the next attempt sends it
    return retryLater(record, { key: "serverBusy", status: response.status }, null);
  }
  if (response.status >= 400 && response.status < 500 && !RETRYABLE_4XX.has(response.status)) {
    const problem = problemOf(response, body);
    if (part) problem.errors = problem.errors.map((e) => ({ ...e, field: part }));
    return updateReport(record.id, () => ({ state: "failed", problem, note: null }));
  }
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  const because = WAITING_BECAUSE[response.status];
  const note = because ? { key: because } : { key: "serverBusy", status: response.status };
  return retryLater(record, note, retryAfter);
}

/** The report; its photos by the ids their uploads got, or (a report written before
 * photos went apart) as parts of the same request. */
function reportForm(record) {
  const form = new FormData();
  if (!record.photosApart) {
    form.append("report", JSON.stringify(record.report));
    for (const photo of record.photos) {
      form.append("photos", new Blob([photo.bytes], { type: photo.type }), photo.name);
    }
    return form;
  }
  const photoIds = record.photos.map((photo) => photo.id);
  const report = photoIds.length ? { ...record.report, photo_ids: photoIds } : record.report;
  form.append("report", JSON.stringify(report));
  return form;
}

function photoForm(photo) {
  const form = new FormData();
  form.append("photo", new Blob([photo.bytes], { type: photo.type }), photo.name);
  return form;
}

function retryLater(record, note, retryAfterS) {
  const attempts = record.attempts + 1;
  const backoff = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempts - 1));
  const jittered = backoff * (0.8 + Math.random() * 0.4); // phones that lost one cell don't all return at once
  const delay = Math.max(jittered, Number.isFinite(retryAfterS) ? retryAfterS * 1000 : 0);
  return updateReport(record.id, () => ({
    state: "waiting",
    attempts,
    nextAttemptAt: Date.now() + delay,
    note,
  }));
}

// Once triaged, a report goes on to be alerted, acknowledged and resolved: the page keeps
// following it (ever more slowly) until it is resolved or POLL_FOR_MS has passed.
const TRIAGED_OR_LATER = new Set(["triaged", "alerted", "acknowledged", "resolved"]);

function stillMoving(r) {
  return r.state === "received" || (r.state === "triaged" && r.status?.status !== "resolved");
}

async function poll(record) {
  let body = null;
  try {
    const response = await fetch(statusUrl(record.accepted.status_url), {
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal: AbortSignal.timeout(POLL_TIMEOUT_MS),
    });
    // 404 means triage has not been heard of it yet: keep asking a little longer.
    if (response.ok) body = await readJson(response);
    // The session ended: ask again once the reporter has signed in.
    if (response.status === 401) sessionEnded();
  } catch {
    // No network: ask again later.
  }
  const pollDelay = Math.min(MAX_POLL_MS, record.pollDelay * 1.5);
  return updateReport(record.id, () => ({
    state: TRIAGED_OR_LATER.has(body?.status) ? "triaged" : record.state,
    status: body ?? record.status,
    pollDelay,
    nextPollAt: Date.now() + pollDelay,
  }));
}

/**
 * The page may only talk to its own origin (its CSP says so). Ingest answers the status
 * on that origin; if `status_url` names another host, ask our own for the same path.
 */
function statusUrl(statusUrlFromServer) {
  const url = new URL(statusUrlFromServer, location.href);
  return url.origin === location.origin ? url.href : url.pathname + url.search;
}

async function readJson(response) {
  const type = response.headers.get("Content-Type") ?? "";
  return type.includes("json") ? response.json() : null;
}

/** RFC 9457 problem details as the list shows them, with a fallback for other answers. */
function problemOf(response, body) {
  return {
    status: response.status,
    code: typeof body?.code === "string" ? body.code : null,
    title: body?.title ?? response.statusText,
    detail: body?.detail ?? "",
    errors: Array.isArray(body?.errors) ? body.errors : [],
  };
}
