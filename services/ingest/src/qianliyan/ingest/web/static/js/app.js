// The reporter's page: the form, the list of this phone's reports, and the wiring
// between them. Storage is outbox.js, sending is sender.js, photos are photos.js, who is
// signed in is auth.js. Signed out, the page shows its sign-in form instead of the report
// form (which keeps what was typed), and the list of reports stays: what waits, waits.

import {
  checkSession,
  currentUser,
  onAuthChange,
  SignInError,
  signedOut,
  signIn,
  signOut,
} from "./auth.js";
import { currentLang, t, toggleLang, translatePage } from "./i18n.js";
import {
  allReports,
  createReport,
  deleteReport,
  getReport,
  onChange,
  pruneFinished,
} from "./outbox.js";
import { MAX_PHOTOS, preparePhoto } from "./photos.js";
import { isMine, kick, startSender } from "./sender.js";

const $ = (id) => document.getElementById(id);

const form = $("report-form");
const textEl = $("text");
const signInForm = $("sign-in-form");
const signInSubmitEl = $("sign-in-submit");
const signInErrorEl = $("sign-in-error");
const submitEl = $("submit");
const formErrorEl = $("form-error");
const locationEl = $("location-toggle");
const locationStatusEl = $("location-status");

// Photos picked for the report being written: each is downscaled as soon as it is picked,
// so sending only has to wait for work already under way.
let photos = []; // [{ preview: blob URL, prepared: Promise<{name, type, bytes}> }]
let location_ = null; // { lat, lon, accuracy_m } once the phone has given a position
let creating = false;
let signingIn = false;
let checked = false; // the server has been asked who is signed in (or could not be)
let signInError = null; // {key, args} of the last failed sign-in
let prefilled = null; // the user name the page put in the sign-in form, which nobody typed

function init() {
  translatePage();
  signInForm.addEventListener("submit", submitSignIn);
  $("sign-out").addEventListener("click", signOutUnlessUnsent);
  onAuthChange(authChanged);
  $("lang-toggle").addEventListener("click", () => {
    toggleLang();
    refreshAll();
  });
  textEl.addEventListener("input", showCount);
  $("photo-camera").addEventListener("change", pickPhotos);
  $("photo-pick").addEventListener("change", pickPhotos);
  locationEl.addEventListener("click", toggleLocation);
  form.addEventListener("submit", submit);
  addEventListener("online", showNetwork);
  addEventListener("online", () => checkSession()); // it may have ended while offline
  // Back on the page: who the cookie is for may have changed meanwhile (a sign-in in
  // another tab, or the session ended), and sending waits on who it is.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    checkSession();
    // A phone keeps the page open for days: a deploy is looked for on coming back too.
    pageWorker?.update().catch(() => undefined);
    updateWhenIdle();
  });
  addEventListener("offline", showNetwork);
  onChange(scheduleRender);

  refreshAll();
  checkSession().finally(() => {
    checked = true;
    showAuth();
  });
  pruneFinished().finally(startSender);
  if ("serviceWorker" in navigator) watchReleases();
}

// A new release of the page installs in the background (sw.js); it takes over, and the
// page reloads into it, only while nothing typed would be lost. Until then the page runs
// the release it was opened with, every script of it.
let pageWorker = null; // the service worker's registration, once registered
let replaced = false; // another release's worker took this page over

function watchReleases() {
  let controlled = navigator.serviceWorker.controller !== null;
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    replaced = controlled; // the first install claims the page: that is no new release
    controlled = true;
    updateWhenIdle();
  });
  // A photo picked fires `input` before it is added: it is no reason to look.
  const typed = (event) => event.target.type === "file" || updateWhenIdle();
  form.addEventListener("input", typed);
  signInForm.addEventListener("input", typed);
  navigator.serviceWorker
    .register("/sw.js", { scope: "/" })
    .then((registration) => {
      pageWorker = registration;
      // The browser looks for a new release as the page opens: one may be installing
      // already, or have been waiting since an earlier visit.
      watchInstall(registration.installing);
      registration.addEventListener("updatefound", () => watchInstall(registration.installing));
      updateWhenIdle();
    })
    .catch((error) => {
      console.warn("service worker not registered", error);
    });
}

function watchInstall(worker) {
  worker?.addEventListener("statechange", () => {
    if (worker.state === "installed") updateWhenIdle();
  });
}

// Called whenever the page may have become idle: typing, sending, signing in, a photo
// taken off, coming back to the page, a new release installed or in control.
function updateWhenIdle() {
  if (!nothingTyped()) return;
  if (replaced) location.reload();
  else pageWorker?.waiting?.postMessage("take-over");
}

function nothingTyped() {
  const fields = [textEl, $("category"), $("place"), $("sign-in-password")];
  const username = $("sign-in-username").value;
  return (
    !creating &&
    !signingIn &&
    photos.length === 0 &&
    locationEl.getAttribute("aria-pressed") !== "true" && // a position asked for, or given
    fields.every((el) => !el.value) &&
    (!username || username === prefilled)
  );
}

function refreshAll() {
  showAuth();
  showCount();
  showNetwork();
  showLocation();
  renderPhotos();
  scheduleRender();
}

function showCount() {
  $("text-count").textContent = t("textCount", textEl.value.length, textEl.maxLength);
}

function showNetwork() {
  const online = navigator.onLine !== false;
  const el = $("network");
  el.textContent = online ? t("online") : t("offline");
  el.dataset.online = String(online);
  showAuth(); // signing in needs the network: the form says so
}

// --- signing in -------------------------------------------------------------------------

function authChanged() {
  showAuth();
  scheduleRender(); // which reports wait for a sign-in
  if (!signedOut()) kick(); // what waited for the sign-in goes now
}

/** The sign-in form or the report form, and who is signed in. */
function showAuth() {
  const user = currentUser();
  const out = signedOut();
  // Until the server has answered, a phone with nobody known shows neither form.
  signInForm.hidden = !out || (!checked && !user);
  form.hidden = out;
  $("whoami").hidden = out;
  $("whoami-name").textContent = user ? t("signedInAs", nameOf(user)) : "";
  const why = $("sign-in-why");
  const offline = navigator.onLine === false;
  why.hidden = !(user || offline);
  why.textContent = offline ? t("signInOffline") : t("signInExpired");
  const username = $("sign-in-username");
  if (out && user && !username.value) username.value = prefilled = user.username;
  if (!out && prefilled !== null && username.value === prefilled) username.value = "";
  signInErrorEl.hidden = !signInError;
  signInErrorEl.textContent = signInError ? t(signInError.key, ...signInError.args) : "";
  signInSubmitEl.disabled = signingIn;
  signInSubmitEl.textContent = signingIn ? t("signingIn") : t("signIn");
}

function nameOf(user) {
  return user.display_name && user.display_name !== user.username
    ? `${user.display_name}（${user.username}）`
    : user.username;
}

async function submitSignIn(event) {
  event.preventDefault();
  if (signingIn) return;
  const username = $("sign-in-username").value.trim();
  const password = $("sign-in-password").value;
  signInError = null;
  if (!username || !password) {
    signInError = { key: "signInMissing", args: [] };
    return showAuth();
  }
  signingIn = true;
  showAuth();
  try {
    await signIn(username, password);
    // Nothing of the sign-in stays typed: a sign-out later leaves an empty form.
    $("sign-in-password").value = "";
    $("sign-in-username").value = "";
  } catch (error) {
    if (!(error instanceof SignInError)) throw error;
    signInError = {
      wrong: { key: "signInWrong", args: [] },
      tooMany: { key: "signInTooMany", args: [error.retryAfter] },
      offline: { key: "signInOffline", args: [] },
      notReporter: { key: "signInNotReporter", args: [] },
      server: { key: "signInFailed", args: [error.status] },
    }[error.kind];
    $("sign-in-password").select();
  } finally {
    signingIn = false;
    showAuth();
    updateWhenIdle();
  }
}

// --- the form -------------------------------------------------------------------------

async function submit(event) {
  event.preventDefault();
  // A double tap fires two submits; only the first makes a report.
  if (creating) return;
  formErrorEl.hidden = true;
  if (textEl.value.length === 0) return showFormError(t("textRequired"));

  creating = true;
  submitEl.disabled = true;
  submitEl.textContent = t("preparing");
  const occurredAt = new Date().toISOString(); // when the reporter sent it, not when it got through
  try {
    // No reporter_id: the server takes the reporter from the session it is sent in.
    const report = { text: textEl.value, occurred_at: occurredAt };
    const category = $("category").value;
    const place = $("place").value.trim();
    if (category) report.category = category;
    if (place) report.place = place;
    if (location_) report.location = location_;
    const prepared = await Promise.all(photos.map((photo) => photo.prepared));
    try {
      await createReport(report, prepared, currentUser()?.username ?? null);
    } catch (stored) {
      // What was typed stays in the form; the reporter is told why, in their language.
      console.error("the report could not be kept on the phone", stored);
      throw new Error(t(stored?.name === "QuotaExceededError" ? "storageFull" : "storageFailed"));
    }
    clearForm();
    // Show the reporter their report, at the top of the list, with its state.
    $("list-heading").scrollIntoView({ behavior: "smooth" });
    navigator.storage?.persist?.(); // ask the browser not to evict reports still waiting
    kick();
  } catch (error) {
    showFormError(error instanceof Error ? error.message : String(error));
  } finally {
    creating = false;
    submitEl.disabled = false;
    submitEl.textContent = t("send");
  }
  updateWhenIdle(); // the form is clear once the report is kept
}

function showFormError(message) {
  formErrorEl.textContent = message;
  formErrorEl.hidden = false;
}

function clearForm() {
  textEl.value = "";
  $("category").value = "";
  $("place").value = "";
  for (const photo of photos) URL.revokeObjectURL(photo.preview);
  photos = [];
  location_ = null;
  locationEl.setAttribute("aria-pressed", "false");
  refreshAll();
}

function pickPhotos(event) {
  const files = [...event.target.files];
  event.target.value = ""; // so picking the same photo again still fires `change`
  const room = MAX_PHOTOS - photos.length;
  if (files.length > room) showFormError(t("tooManyPhotos"));
  for (const file of files.slice(0, Math.max(room, 0))) {
    addPhoto(URL.createObjectURL(file), preparePhoto(file, photos.length + 1));
  }
  renderPhotos();
}

function addPhoto(preview, prepared) {
  photos.push({ preview, prepared });
}

function renderPhotos() {
  const list = $("photo-previews");
  list.replaceChildren(
    ...photos.map((photo, index) => {
      const img = document.createElement("img");
      img.src = photo.preview;
      img.alt = "";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", t("removePhoto"));
      remove.addEventListener("click", () => {
        URL.revokeObjectURL(photo.preview);
        photos.splice(index, 1);
        renderPhotos();
        updateWhenIdle();
      });
      return element("li", {}, img, remove);
    }),
  );
}

function toggleLocation() {
  if (location_ || locationEl.getAttribute("aria-pressed") === "true") {
    location_ = null;
    locationEl.setAttribute("aria-pressed", "false");
    showLocation();
    return updateWhenIdle();
  }
  if (!navigator.geolocation) return showLocation(t("locationUnsupported"));
  locationEl.setAttribute("aria-pressed", "true");
  showLocation(t("locating"));
  navigator.geolocation.getCurrentPosition(
    (position) => {
      if (locationEl.getAttribute("aria-pressed") !== "true") return; // cancelled meanwhile
      const { latitude, longitude, accuracy } = position.coords;
      location_ = { lat: latitude, lon: longitude, accuracy_m: Math.round(accuracy) };
      showLocation();
    },
    (error) => {
      locationEl.setAttribute("aria-pressed", "false");
      showLocation(t("locationFailed", error.message || error.code));
      updateWhenIdle();
    },
    { enableHighAccuracy: true, timeout: 20_000, maximumAge: 60_000 },
  );
}

function showLocation(message) {
  locationEl.textContent = location_ ? t("locationOn") : t("attachLocation");
  locationStatusEl.textContent =
    message ?? (location_ ? t("located", location_.accuracy_m ?? "?") : "");
}

// --- the list of reports --------------------------------------------------------------

let renderQueued = false;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(async () => {
    renderQueued = false;
    const reports = await allReports();
    $("reports").replaceChildren(...reports.map(reportItem));
    $("empty").hidden = reports.length > 0;
  });
}

function reportItem(r) {
  const time = new Intl.DateTimeFormat(currentLang() === "zh" ? "zh-CN" : "en-GB", {
    dateStyle: "short",
    timeStyle: "short",
  }).format(new Date(r.createdAt));
  const meta = [
    r.report.place,
    r.report.category && t(`cat.${r.report.category}`),
    r.photoCount && t("photoCount", r.photoCount),
  ].filter(Boolean);

  const li = element(
    "li",
    { className: `report state-${r.state}`, "data-id": r.id, "data-state": r.state },
    element(
      "div",
      { className: "head" },
      element("span", { className: "badge" }, t(`state.${r.state}`)),
      element("time", { dateTime: r.createdAt }, time),
    ),
    element("p", { className: "text" }, r.report.text),
  );
  if (meta.length) li.append(element("p", { className: "meta" }, meta.join(" · ")));
  if (r.state === "waiting" && !isMine(r)) {
    li.append(element("p", { className: "note" }, t("waitingForOwner", r.owner)));
  } else if (r.state === "waiting" && signedOut()) {
    li.append(element("p", { className: "note" }, t("waitingForSignIn")));
  } else if (r.state === "waiting" && r.note) {
    const why = r.note.key === "serverBusy" ? t("serverBusy", r.note.status) : t(r.note.key);
    li.append(element("p", { className: "note" }, t("retryNote", why)));
  }
  if (r.state === "triaged") li.append(...triageDetails(r.status));
  if (r.state === "failed") li.append(...problemDetails(r));
  return li;
}

function triageDetails(status) {
  const severity = status.severity ?? "info";
  const parts = [
    element("p", { className: `stage stage-${status.status}` }, t(`stage.${status.status}`)),
    element(
      "p",
      { className: `severity sev-${severity}` },
      t("severity", t(`sev.${severity}`)),
    ),
  ];
  const reasons = (status.reasons ?? []).map((reason) =>
    element("li", {}, reason.summary ?? String(reason)),
  );
  if (reasons.length) parts.push(element("ul", { className: "reasons" }, ...reasons));
  return parts;
}

function problemDetails(r) {
  const { problem } = r;
  const parts = [element("p", { className: "problem" }, problemText(problem))];
  const errors = problem.errors.map((e) => element("li", {}, fieldProblemText(e)));
  if (errors.length) parts.push(element("ul", { className: "problem-errors" }, ...errors));
  // Another reporter's refused report is theirs to edit or remove: edited here it would be
  // sent as whoever is signed in, and removed they would never learn it was refused.
  if (!isMine(r)) {
    parts.push(element("p", { className: "note" }, t("failedForOwner", r.owner)));
    return parts;
  }
  const edit = element("button", { type: "button", className: "button secondary" }, t("edit"));
  edit.addEventListener("click", () => editAgain(r.id));
  const dismiss = element("button", { type: "button", className: "button secondary" }, t("dismiss"));
  dismiss.addEventListener("click", () => deleteReport(r.id));
  parts.push(element("div", { className: "row" }, edit, dismiss));
  return parts;
}

/** The server's refusal in the reader's language where the page knows its code, else in
 * the server's own words. */
function problemText(problem) {
  const known = problem.code && ownWords(`problem.${problem.code}`);
  return known || problem.detail || problem.title || String(problem.status);
}

function fieldProblemText(error) {
  const known = error.code && ownWords(`err.${error.code}`, error.context ?? {});
  return known ? `${fieldLabel(error.field)}：${known}` : `${error.field}: ${error.message}`;
}

/** The page's words for `key`, or null where it has none (an English page, say, which
 * shows the server's own). Asked through `t` alone: a cached older i18n.js, loaded beside
 * a newer app.js on a slow link, has no other export this needs. */
function ownWords(key, ...args) {
  const words = t(key, ...args);
  return words === key ? null : words;
}

/** A field as the form names it: "report.text" is the description, "photos[2]" and
 * "report.photo_ids.1" the second photo (uploaded with the report, or before it). */
function fieldLabel(field) {
  const photo = /^(?:photos\[(\d+)\]|report\.photo_ids\.(\d+))$/.exec(field);
  if (photo) return t("field.photo", photo[1] ? Number(photo[1]) : Number(photo[2]) + 1);
  return ownWords(`field.${field.split(".").slice(0, 2).join(".")}`) ?? field;
}

/** Sign out; with reports of this reporter's not sent yet, only once they agree: after
 * it, only they, signed in again, can send them (a shift change hands the phone on). */
async function signOutUnlessUnsent() {
  const unsent = (await allReports()).filter(
    (r) => (r.state === "waiting" || r.state === "sending") && r.owner === currentUser()?.username,
  ).length;
  if (unsent && !confirm(t("signOutUnsent", unsent))) return;
  await signOut();
}

/** Put a refused report back into the form; sending it again makes a new report. */
async function editAgain(id) {
  const r = await getReport(id);
  if (!r) return;
  textEl.value = r.report.text;
  $("category").value = r.report.category ?? "";
  $("place").value = r.report.place ?? "";
  for (const photo of r.photos.slice(0, MAX_PHOTOS - photos.length)) {
    const blob = new Blob([photo.bytes], { type: photo.type });
    addPhoto(URL.createObjectURL(blob), Promise.resolve(photo));
  }
  await deleteReport(id);
  refreshAll();
  textEl.focus();
}

/** A DOM element; text children are set as text, never parsed as HTML. */
function element(tag, attributes, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name in el && !name.startsWith("data-")) el[name] = value;
    else el.setAttribute(name, value);
  }
  el.append(...children);
  return el;
}

init();
