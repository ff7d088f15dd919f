"""What answering a phone's retry costs ingest in CPU, before and after its photos.

    uv run python -m bench.retry_cost [--photos 5] [--rounds 15]

A retry is answered from the submission ledger. Its photos as sent are hashed first
(`fingerprint_as_sent`); only when that finds nothing are they decoded and prepared
(`prepare_photo`, then `fingerprint`), as a first attempt's are. This prints the median
CPU time of each over the bench's photos of about 500 KB, with no server involved.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from bench.photos import photo_set
from qianliyan.ingest.domain.idempotency import fingerprint, fingerprint_as_sent
from qianliyan.ingest.domain.photos import PhotoLimits, prepare_photo
from qianliyan.ingest.domain.reports import ReportForm

LIMITS = PhotoLimits(max_bytes=20_000_000, max_pixels=50_000_000)


def median_cpu_ms(work: Callable[[], object], rounds: int) -> float:
    """The median CPU time of `work` over `rounds` runs, in milliseconds."""
    spent = []
    for _ in range(rounds):
        began = time.process_time()
        work()
        spent.append(time.process_time() - began)
    return statistics.median(spent) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=5, help="photos a report (default 5)")
    parser.add_argument("--rounds", type=int, default=15, help="runs of each (default 15)")
    args = parser.parse_args(argv)
    photos = [photo.data for photo in photo_set(args.photos)]
    form = ReportForm(text="站台积水", client_report_id="phone-1")

    def as_prepared() -> str:
        prepared = [prepare_photo(i, data, LIMITS) for i, data in enumerate(photos, start=1)]
        return fingerprint(form, [photo.sha256 for photo in prepared])

    sent = median_cpu_ms(lambda: fingerprint_as_sent(form, photos), args.rounds)
    decoded = median_cpu_ms(as_prepared, args.rounds)
    size_kb = sum(map(len, photos)) / len(photos) / 1024
    print(f"a retry of {len(photos)} photos of {size_kb:.0f} KB on average, CPU at the median:")
    print(f"  answered as sent (hashing the bytes):       {sent:7.1f} ms")
    print(f"  answered once decoded (as a first attempt): {decoded:7.1f} ms")
    print(f"  ratio: {decoded / sent:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
