"""The photo store: a private S3-compatible bucket, objects addressed by their sha256.

The `minio` client is synchronous, so every call runs in a worker thread to keep the
event loop free for other requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from datetime import timedelta

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, CopySource, Filter
from minio.error import S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

from qianliyan.shared.settings import StorageSettings


def photo_key(sha256: str) -> str:
    """Where the photo with this content hash lives; identical bytes share one object."""
    return f"photos/{sha256[:2]}/{sha256}"


def preview_key(sha256: str) -> str:
    """Where the downscaled preview of that photo lives."""
    return f"previews/{sha256[:2]}/{sha256}.jpg"


UPLOADS_PREFIX = "uploads/"
UPLOAD_EXPIRY_RULE = "expire-unreferenced-uploads"


def staged_photo_key(sha256: str) -> str:
    """Where a photo uploaded on its own waits until a report references it."""
    return f"{UPLOADS_PREFIX}{sha256}"


def staged_preview_key(sha256: str) -> str:
    """Where that photo's preview waits."""
    return f"{UPLOADS_PREFIX}{sha256}.preview.jpg"


def staged_metadata_key(sha256: str, uploader: str) -> str:
    """Where what ingest learned of that photo (size, EXIF place and time) waits for the
    one who uploaded it (`policy.uploader`), whose reports alone may name the upload: a
    photo's id is its hash, which others can come to know (two people uploading the same
    photo each have theirs)."""
    return f"{UPLOADS_PREFIX}{sha256}.{hashlib.sha256(uploader.encode()).hexdigest()[:32]}.json"


def _client(settings: StorageSettings, endpoint: str) -> Minio:
    return Minio(
        endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key.get_secret_value(),
        secure=settings.secure,
        region=settings.region,
        http_client=_connections(settings),
    )


def _connections(settings: StorageSettings) -> urllib3.PoolManager:
    """The pool minio makes for itself, but with waits a request can afford.

    minio's own waits five minutes for each read and retries five times, so a store
    that stopped answering without closing its connections (a paused machine, a
    dropped route) held a report for half an hour and a worker thread with it. Here a
    refused connection is retried briefly, as a restarting store needs, and a failed
    read once: urllib3 counts a reset connection (a store restarting mid-request, a
    kept-alive connection it had closed) as a failed read too. A store that stays
    silent costs two read timeouts; then it is unavailable, and the phone retries.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=5, read=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
        ),
    )


class PhotoStore:
    """Puts and reads photo objects; one instance per service, built at start-up."""

    def __init__(self, settings: StorageSettings) -> None:
        if not settings.secret_key.get_secret_value():
            raise ValueError(
                "the object store's secret key is not set (…_STORAGE__SECRET_KEY); "
                "`qianliyan stack up` generates one for the local stack"
            )
        self.bucket = settings.bucket
        self._client = _client(settings, settings.endpoint)
        # Signing is local arithmetic, so links can name the address browsers use even
        # when the services reach the store by another one (a compose network, say).
        self._signer = _client(settings, settings.public_endpoint or settings.endpoint)
        self._link_ttl = timedelta(seconds=settings.link_ttl_s)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` at `key`; returns once the store has durably written it."""
        await asyncio.to_thread(
            self._client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
        )

    async def copy(self, source_key: str, target_key: str) -> None:
        """Copy an object inside the bucket, server-side (the bytes never leave the store)."""
        await asyncio.to_thread(
            self._client.copy_object, self.bucket, target_key, CopySource(self.bucket, source_key)
        )

    async def get(self, key: str) -> bytes:
        """The bytes stored at `key`."""

        def read() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(read)

    async def exists(self, key: str) -> bool:
        """Whether an object is stored at `key`."""
        try:
            await asyncio.to_thread(self._client.stat_object, self.bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
                return False
            raise
        return True

    def signed_url(self, key: str) -> str:
        """A link to one object that works for `link_ttl_s`; the bucket stays private."""
        return self._signer.presigned_get_object(self.bucket, key, expires=self._link_ttl)

    async def is_reachable(self) -> bool:
        """Whether the store answers and the bucket exists (for readiness checks)."""
        try:
            return await asyncio.to_thread(self._client.bucket_exists, self.bucket)
        except Exception:
            return False

    async def ensure_bucket(self, *, upload_retention_days: int) -> bool:
        """Create the private bucket if missing, and (re)state its expiry of stale uploads.

        The store itself deletes uploads no report referenced, by a lifecycle rule, so no
        sweeper of ours has to run. True when the bucket was created now.
        """
        created = False
        if not await asyncio.to_thread(self._client.bucket_exists, self.bucket):
            try:
                await asyncio.to_thread(self._client.make_bucket, self.bucket)
                created = True
            except S3Error as exc:
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
        expiry = LifecycleConfig(
            [
                Rule(
                    ENABLED,
                    rule_filter=Filter(prefix=UPLOADS_PREFIX),
                    rule_id=UPLOAD_EXPIRY_RULE,
                    expiration=Expiration(days=upload_retention_days),
                )
            ]
        )
        await asyncio.to_thread(self._client.set_bucket_lifecycle, self.bucket, expiry)
        return created


async def ensure_bucket(settings: StorageSettings) -> bool:
    """Create the photo bucket if it is missing (used by stack set-up)."""
    store = PhotoStore(settings)
    return await store.ensure_bucket(upload_retention_days=settings.upload_retention_days)
