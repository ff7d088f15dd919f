// The reporter page's service worker, hand-written and small on purpose: it only keeps the
// page shell (HTML, CSS, JS, vendored libraries) so the page opens with no network.
// Reports themselves never pass through here — the page keeps them in IndexedDB and
// sends them itself — and neither does any other /v1/ request.
//
// One worker is one release of the page: ingest fills in the release's name and its files
// as it serves this script (`qianliyan.ingest.web`), so a deploy is a new worker. The page
// is answered from its release's cache, whole, so it never runs a new app.js beside an old
// sender.js, as it could when each file fell back to its cached copy on its own. A new
// release waits until a page of the old one has nothing typed, then takes over (app.js).

const RELEASE = "__RELEASE__";
const SHELL = ["__SHELL__"];
const CACHE = `qianliyan-shell-${RELEASE}`;
const RELEASE_HEADER = "X-Qianliyan-Release";

self.addEventListener("install", (event) => {
  event.waitUntil(keepRelease());
});

// Every file is fetched before any is kept, so a release is kept whole or not at all. A
// file of another release (a deploy under way, or old and new ingest behind one balancer)
// fails the install: the browser tries again at its next update check.
async function keepRelease() {
  const answers = await Promise.all(
    SHELL.map(async (path) => {
      // Past the HTTP cache: a revalidated copy would be an old body under a new header
      // whenever a deploy kept a file's size and time.
      const response = await fetch(path, { cache: "reload" });
      const release = response.headers.get(RELEASE_HEADER);
      if (!response.ok || release !== RELEASE) {
        throw new Error(`${path} answered ${response.status} of release ${release}, not ${RELEASE}`);
      }
      return [path, response];
    }),
  );
  try {
    const cache = await caches.open(CACHE);
    await Promise.all(answers.map(([path, response]) => cache.put(path, response)));
  } catch (error) {
    await caches.delete(CACHE); // storage full, say: no half of a release is left behind
    throw error;
  }
}

// The page asks once nothing typed would be lost by reloading it into this release.
self.addEventListener("message", (event) => {
  if (event.data === "take-over") self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const isShell = url.pathname === "/" || url.pathname.startsWith("/static/");
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !isShell) return;
  event.respondWith(fromRelease(event.request, url.pathname));
});

async function fromRelease(request, path) {
  const cache = await caches.open(CACHE);
  // A file missing from the cache (the browser evicted it) comes from the network.
  return (await cache.match(path, { ignoreSearch: true })) ?? fetch(request);
}
