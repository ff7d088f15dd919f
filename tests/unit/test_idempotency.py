"""What a possibly repeated submission gets, from the ledger rows its keys name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from qianliyan.ingest.domain.idempotency import (
    KeyReused,
    Proceed,
    Replay,
    StillInFlight,
    Submission,
    SubmissionKeys,
    answer_before_photos,
    decide,
    fingerprint_as_sent,
    retried_submission,
    submission_keys,
)
from qianliyan.ingest.domain.reports import ReportForm

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def filed(
    key: str,
    client_report_key: str | None = None,
    *,
    fingerprint: str = "same",
    accepted: bool = False,
    lease_left: timedelta = timedelta(seconds=-1),
    sent_fingerprint: str | None = None,
    response: dict[str, str] | None = None,
) -> Submission:
    return Submission(
        idempotency_key=key,
        client_report_key=client_report_key,
        fingerprint=fingerprint,
        sent_fingerprint=sent_fingerprint,
        report_id=uuid4(),
        event_id=uuid4(),
        received_at=NOW - timedelta(minutes=1),
        state="accepted" if accepted else "in_flight",
        lease_until=NOW + lease_left,
        response=(response or {"report_id": "r"}) if accepted else None,
    )


def test_each_key_is_scoped_to_its_reporter_and_either_may_be_missing() -> None:
    both = submission_keys(reporter_id="w-1", header_key="h", client_report_id="c")
    assert both == SubmissionKeys(header="w-1\x1fh", client_report="w-1\x1fc")
    assert both.primary == "w-1\x1fh"
    assert both.distinct == ["w-1\x1fc", "w-1\x1fh"]
    only_id = submission_keys(reporter_id="w-1", header_key=None, client_report_id="c")
    assert only_id is not None and only_id.primary == "w-1\x1fc"
    assert only_id.distinct == ["w-1\x1fc"]
    same = submission_keys(reporter_id="w-1", header_key="c", client_report_id="c")
    assert same is not None and same.distinct == ["w-1\x1fc"]
    assert submission_keys(reporter_id="w-1", header_key=None, client_report_id=None) is None


def test_a_retry_found_by_its_report_id_under_a_fresh_header_gets_the_first_answer() -> None:
    first = filed("w-1\x1fh1", "w-1\x1fc", accepted=True)
    keys = SubmissionKeys(header="w-1\x1fh2", client_report="w-1\x1fc")
    assert decide([first], keys, fingerprint="same", now=NOW) == Replay({"report_id": "r"})


def test_an_abandoned_claim_is_taken_over_and_a_live_one_waited_for() -> None:
    keys = SubmissionKeys(header=None, client_report="w-1\x1fc")
    abandoned = filed("w-1\x1fc", "w-1\x1fc")
    assert decide([abandoned], keys, fingerprint="same", now=NOW) == Proceed(abandoned)
    live = filed("w-1\x1fc", "w-1\x1fc", lease_left=timedelta(seconds=30))
    assert decide([live], keys, fingerprint="same", now=NOW) == StillInFlight()


def test_a_key_used_for_other_content_names_the_field_it_came_in() -> None:
    other = filed("w-1\x1fh", "w-1\x1fc-old", fingerprint="other")
    by_header = SubmissionKeys(header="w-1\x1fh", client_report="w-1\x1fc-new")
    assert decide([other], by_header, fingerprint="same", now=NOW) == KeyReused(("header",))
    by_id = SubmissionKeys(header="w-1\x1fh-new", client_report="w-1\x1fc-old")
    assert decide([other], by_id, fingerprint="same", now=NOW) == KeyReused(("client_report",))
    # The header alone names it: a report id not sent is no match for a row without one.
    header_only = filed("w-1\x1fh", fingerprint="other")
    bare = SubmissionKeys(header="w-1\x1fh", client_report=None)
    assert decide([header_only], bare, fingerprint="same", now=NOW) == KeyReused(("header",))
    # The namespace is one: a header equal to another submission's report id finds it.
    crossed = SubmissionKeys(header="w-1\x1fc-old", client_report=None)
    assert decide([other], crossed, fingerprint="same", now=NOW) == KeyReused(("header",))


def test_a_header_and_a_report_id_that_name_two_other_reports_are_both_refused() -> None:
    keys = SubmissionKeys(header="w-1\x1fh", client_report="w-1\x1fc")
    rows = [filed("w-1\x1fh", fingerprint="one"), filed("w-1\x1fc", "w-1\x1fc", fingerprint="two")]
    assert decide(rows, keys, fingerprint="same", now=NOW) == KeyReused(("header", "client_report"))


def test_of_two_submissions_named_the_one_with_the_same_content_is_retried() -> None:
    # A row filed under its header before report ids were keys, and the second report a
    # retry under a fresh header then filed: a retry with both keys gets the first.
    keys = SubmissionKeys(header="w-1\x1fh", client_report="w-1\x1fc")
    first = filed("w-1\x1fh", accepted=True)
    second = filed("w-1\x1fh2", "w-1\x1fc", accepted=True, response={"report_id": "second"})
    assert decide([first, second], keys, fingerprint="same", now=NOW) == Replay({"report_id": "r"})
    assert retried_submission([first, second], "same") == first
    other = filed("w-1\x1fh", fingerprint="other")
    assert decide([other, second], keys, fingerprint="same", now=NOW) == Replay(
        {"report_id": "second"}
    )


def test_one_value_sent_as_both_keys_is_named_once_when_refused() -> None:
    keys = SubmissionKeys(header="w-1\x1fc", client_report="w-1\x1fc")
    other = filed("w-1\x1fc", "w-1\x1fc", fingerprint="other")
    assert decide([other], keys, fingerprint="same", now=NOW) == KeyReused(("header",))


def test_a_retry_is_answered_before_its_photos_only_when_sent_as_the_accepted_one() -> None:
    form = ReportForm(text="站台积水", client_report_id="c")
    sent = fingerprint_as_sent(form, [b"\xff\xd8one", b"\xff\xd8two"])
    assert sent == fingerprint_as_sent(form, [b"\xff\xd8one", b"\xff\xd8two"])
    assert sent != fingerprint_as_sent(form, [b"\xff\xd8two", b"\xff\xd8one"])
    keys = SubmissionKeys(header="w-1\x1fh2", client_report="w-1\x1fc")
    accepted = filed("w-1\x1fh1", "w-1\x1fc", accepted=True, sent_fingerprint=sent)
    assert answer_before_photos([accepted], keys, sent) == Replay({"report_id": "r"})
    assert answer_before_photos([accepted], keys, "other bytes") is None
    # Not yet answered, filed before photos were fingerprinted so, named twice, or not yet
    # holding the report id: the photos are decoded and `decide` answers.
    in_flight = filed("w-1\x1fc", "w-1\x1fc", sent_fingerprint=sent)
    assert answer_before_photos([in_flight], keys, sent) is None
    unknown = filed("w-1\x1fc", "w-1\x1fc", accepted=True)
    assert answer_before_photos([unknown], keys, sent) is None
    twice = [accepted, filed("w-1\x1fh2", accepted=True)]
    assert answer_before_photos(twice, keys, sent) is None
    without_id = filed("w-1\x1fh2", accepted=True, sent_fingerprint=sent)
    assert answer_before_photos([without_id], keys, sent) is None
    by_header_only = SubmissionKeys(header="w-1\x1fh2", client_report=None)
    assert answer_before_photos([without_id], by_header_only, sent) == Replay({"report_id": "r"})


def test_a_retry_whose_photos_another_build_prepares_otherwise_is_still_the_retry() -> None:
    """The same photos, sent again, prepared by a replica whose image libraries encode
    them into other bytes (a rolling upgrade): a retry, not a key reused."""
    keys = SubmissionKeys(header=None, client_report="w-1\x1fc")
    abandoned = filed("w-1\x1fc", "w-1\x1fc", fingerprint="prepared-old", sent_fingerprint="sent")

    def retried(sent: str | None) -> object:
        return decide([abandoned], keys, fingerprint="prepared-new", now=NOW, sent_fingerprint=sent)

    assert retried("sent") == Proceed(abandoned)
    assert retried("other") == KeyReused(("client_report",))
    assert retried(None) == KeyReused(("client_report",))
