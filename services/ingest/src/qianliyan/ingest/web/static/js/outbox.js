// The reports kept on the phone (IndexedDB, through the `idb` library): every report is
// written here first and sent from here, so a reload, a crash or a dead network loses
// nothing. Photos are stored as bytes, already downscaled, so every retry sends exactly
// the same report — the server's idempotency check compares photos by their sha256.

import { openDB } from "../vendor/idb/index.js";

const DB_NAME = "qianliyan-reporter";
const STORE = "reports";

// Finished reports are kept this long so the reporter can see what happened to them.
const KEEP_FINISHED_MS = 7 * 24 * 3600 * 1000;

const listeners = new Set();

const dbPromise = openDB(DB_NAME, 1, {
  upgrade(db) {
    const store = db.createObjectStore(STORE, { keyPath: "id" });
    store.createIndex("createdAt", "createdAt");
  },
});

/**
 * A new report, waiting to be sent. `id` is its idempotency key, made once here and
 * never again: it is the `Idempotency-Key` header and `client_report_id` of every attempt.
 * `owner` is the user name of the reporter who wrote it: it is sent only in their session.
 */
export async function createReport(report, photos, owner = null) {
  const id = newId();
  const record = {
    id,
    owner,
    createdAt: report.occurred_at,
    report: { ...report, client_report_id: id },
    photos, // [{ name, type, bytes: ArrayBuffer, id: once uploaded on its own }]
    photoCount: photos.length,
    // Photos are uploaded one by one, then the report names them. A report kept from
    // before sends them inside its own request, as its first attempts did: the server
    // tells a retry from a new report by what was sent.
    photosApart: true,
    state: "waiting",
    attempts: 0,
    nextAttemptAt: 0,
    note: null, // why the last attempt did not get through: { key, status? }
    accepted: null, // the 202 body
    status: null, // what GET status_url last said
    problem: null, // the problem details of a final refusal
  };
  await (await dbPromise).put(STORE, record);
  changed();
  return record;
}

/** A random UUID; randomUUID exists only on HTTPS, getRandomValues everywhere. */
function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Every report, newest first. */
export async function allReports() {
  const all = await (await dbPromise).getAllFromIndex(STORE, "createdAt");
  return all.reverse();
}

export async function getReport(id) {
  return (await dbPromise).get(STORE, id);
}

/** Apply `change` to the stored report `id` in one transaction; returns the new record. */
export async function updateReport(id, change) {
  const db = await dbPromise;
  const tx = db.transaction(STORE, "readwrite");
  const record = await tx.store.get(id);
  if (!record) {
    await tx.done;
    return undefined;
  }
  const next = { ...record, ...change(record) };
  await tx.store.put(next);
  await tx.done;
  changed();
  return next;
}

export async function deleteReport(id) {
  await (await dbPromise).delete(STORE, id);
  changed();
}

/** Drop finished reports older than a week, so photos don't fill the phone. */
export async function pruneFinished(now = Date.now()) {
  const db = await dbPromise;
  const tx = db.transaction(STORE, "readwrite");
  for await (const cursor of tx.store) {
    const { state, createdAt } = cursor.value;
    const finished = state === "triaged" || state === "failed" || state === "received";
    if (finished && now - Date.parse(createdAt) > KEEP_FINISHED_MS) await cursor.delete();
  }
  await tx.done;
}

/** Call `listener` after any change, to redraw the list. */
export function onChange(listener) {
  listeners.add(listener);
}

function changed() {
  for (const listener of listeners) listener();
}
