// Notify's HTTP API as this page uses it. Every failure is an ApiError: status 0 when no
// answer came (no network, a timeout), otherwise the answer's status and its RFC 9457
// problem details ({title, detail, errors?}).

const TIMEOUT_MS = 15_000;
export const PAGE_SIZE = 200;

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

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { Accept: "application/json", ...options.headers },
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
  if (!response.ok) throw new ApiError(response.status, body ?? { title: response.statusText });
  return body;
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
