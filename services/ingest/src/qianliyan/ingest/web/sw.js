// The reporter page's service worker, hand-written and small on purpose: it only keeps the
// page shell (HTML, CSS, JS, vendored libraries) so the page opens with no network.
// Reports themselves never pass through here — the page keeps them in IndexedDB and
// sends them itself — and neither does any other /v1/ request.
//
// Network first (so a deploy is picked up at once), falling back to the cache when the
// network fails or is too slow to wait for on a weak link.

const CACHE = "qianliyan-shell-v2";
const SHELL = [
  "/",
  "/static/css/app.css",
  "/static/js/app.js",
  "/static/js/auth.js",
  "/static/js/i18n.js",
  "/static/js/outbox.js",
  "/static/js/photos.js",
  "/static/js/sender.js",
  "/static/vendor/idb/index.js",
  "/static/vendor/browser-image-compression/browser-image-compression.mjs",
  "/static/vendor/browser-image-compression/browser-image-compression.js",
  "/static/manifest.webmanifest",
  "/static/icon.svg",
];
const NETWORK_WAIT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
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
  event.respondWith(networkFirst(event, url.pathname === "/" ? "/" : event.request));
});

function networkFirst(event, cacheKey) {
  const fromNetwork = fetch(event.request);
  // Registered now, while the event is live: the cache is refreshed even when the cached
  // copy was the one the page got.
  event.waitUntil(
    fromNetwork
      .then((response) => {
        if (!response.ok) return undefined;
        const copy = response.clone(); // before the page starts reading the body
        return caches.open(CACHE).then((cache) => cache.put(cacheKey, copy));
      })
      .catch(() => undefined),
  );
  return answer(fromNetwork, cacheKey);
}

async function answer(fromNetwork, cacheKey) {
  const cached = () => caches.match(cacheKey, { ignoreSearch: true });
  // Whichever comes first: a fresh answer, or the cached one once the network is slow.
  const slow = new Promise((resolve) => setTimeout(resolve, NETWORK_WAIT_MS)).then(cached);
  try {
    const response = await Promise.race([fromNetwork, slow]);
    if (response && response.ok) return response;
    return (await cached()) ?? response ?? (await fromNetwork);
  } catch {
    const fallback = await cached();
    if (fallback) return fallback;
    throw new Error("offline, and this part of the page is not cached yet");
  }
}
