// Photos are downscaled on the phone before they are stored or sent: a 12-megapixel
// camera photo becomes a few hundred kilobytes, which is what a weak mobile link can
// carry. browser-image-compression does the decoding, EXIF orientation and resizing,
// in a web worker that loads the library's own copy from this server (not its CDN).

import imageCompression from "../vendor/browser-image-compression/browser-image-compression.mjs";

export const MAX_PHOTOS = 5;

const OPTIONS = {
  maxWidthOrHeight: 2048,
  initialQuality: 0.85,
  fileType: "image/jpeg",
  preserveExif: false, // the report carries its own location; EXIF would leak more
  useWebWorker: true,
  libURL: new URL(
    "../vendor/browser-image-compression/browser-image-compression.js",
    import.meta.url,
  ).href,
};

/**
 * `file` downscaled, as `{ name, type, bytes }` ready for IndexedDB. A photo the browser
 * cannot decode is kept as it is, so the server can say why it refuses it.
 */
export async function preparePhoto(file, position) {
  let prepared = file;
  try {
    prepared = await imageCompression(file, OPTIONS);
  } catch (error) {
    console.warn("could not downscale photo", position, error);
  }
  const type = prepared.type || file.type || "application/octet-stream";
  const extension = type === "image/jpeg" ? "jpg" : type.split("/")[1] || "bin";
  return { name: `photo-${position}.${extension}`, type, bytes: await prepared.arrayBuffer() };
}
