"""A rule file that does not parse or does not make sense is refused, naming the line."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qianliyan.triage.__main__ import cli as triage_cli
from qianliyan.triage.domain.rules import RuleFileError, parse_rules
from qianliyan.triage.rulebook import RuleBook

GOOD = """\
version: "1"
places:
  - kind: yard
    patterns: ['站场']
rules:
  - id: fire
    summary: Fire
    keywords: [火灾]
    severity: critical
"""


def refused(text: str) -> RuleFileError:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(textwrap.dedent(text))
    return caught.value


def test_a_good_file_loads() -> None:
    assert parse_rules(GOOD).version == "1"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (GOOD.replace("severity: critical", "severity: catastrophic"), 9, "rules.0.severity"),
        (GOOD.replace("    keywords: [火灾]\n", "    keywords: [火灾\n"), 9, "not valid YAML"),
        (GOOD.replace("['站场']", "['站场(']"), 4, "not a valid regex"),
        (
            GOOD + "  - id: fire\n    summary: again\n    keywords: [x]\n    severity: minor\n",
            10,
            "rules.1.id: rule id 'fire' is used twice (first by rules.0)",
        ),
        (
            GOOD.replace("    severity: critical", "    severity: critical\n    raise_by: 1"),
            6,
            "exactly one of 'severity' or 'raise_by'",
        ),
        (
            GOOD.replace("    keywords: [火灾]\n", "    place_kinds: [tunnel]\n"),
            8,
            "place kinds ['tunnel']",
        ),
        # A second `rules:` pasted at the end would silently drop every rule above it.
        (
            GOOD + "rules:\n  - id: crowd\n    summary: Crowd\n    keywords: [拥挤]\n"
            "    severity: minor\n",
            10,
            "'rules' appears twice in one place (first at line 5)",
        ),
        (
            GOOD.replace("    severity: critical", "    severity: critical\n    keywords: [x]"),
            10,
            "'keywords' appears twice in one place (first at line 8)",
        ),
        # A typo is named as one, not by what its missing key leaves wrong.
        (
            GOOD.replace("    keywords: [火灾]\n", "    keyword: [火灾]\n    unless: [无火灾]\n"),
            8,
            "rules.0.keyword: unknown key 'keyword' (did you mean 'keywords'?)",
        ),
        (GOOD.replace("  - kind: yard", "  - kinds: yard"), 3, "(did you mean 'kind'?)"),
        (GOOD.replace("    summary: Fire", "\tsummary: Fire"), 7, "a tab at column 1: YAML"),
        (GOOD.replace("Fire", "Fi\x07re"), 7, "a control character (U+0007) at column 16"),
        ('version: "1"\nrules: &all [*all]\n', 2, "an alias (*name) refers to itself"),
        (GOOD.replace("    keywords: [火灾]\n", ""), 6, "at least one condition"),
        (
            GOOD.replace("    keywords: [火灾]\n", "    hours: 'nights'\n"),
            8,
            "hours must look like",
        ),
        (
            GOOD.replace("    keywords: [火灾]\n", "    hours: '25-6'\n"),
            8,
            "(from 22:00 to 06:00), each 0 to 24",
        ),
        (
            GOOD.replace("    keywords: [火灾]\n", "    hours: '6-6'\n"),
            8,
            "empty window",
        ),
        (
            GOOD.replace('version: "1"', 'version: "1"\ntimezone: Mars/Olympus'),
            2,
            "unknown time zone",
        ),
        ("- just a list\n", 1, "must be a mapping"),
        # Read as the number 1.1 and the date 2026-12-07, not as written.
        (GOOD.replace('version: "1"', "version: 1.10"), 1, "write the version in quotes"),
        (GOOD.replace('version: "1"', "version: 2026-12-07"), 1, "and 1.10 as 1.1"),
        (GOOD.replace("[火灾]", "[火灾, '　']"), 8, "is only spaces: it would be found in every"),
        (
            GOOD.replace("    keywords: [火灾]\n", "    keywords: [火灾]\n    unless: [' ']\n"),
            9,
            "is only spaces",
        ),
        (
            GOOD.replace(
                "    keywords: [火灾]\n", "    keywords: [火灾]\n    unless: [没有冒烟]\n"
            ),
            9,
            "rules.0.unless: '没有冒烟' holds none of the rule's keywords",
        ),
        (
            GOOD.replace("    keywords: [火灾]\n", "    keywords: [火灾]\n    unless: [火灾]\n"),
            9,
            "'火灾' is a keyword itself: it would turn the keyword off",
        ),
    ],
)
def test_mistakes_are_refused_with_their_line(text: str, line: int, message: str) -> None:
    error = refused(text)
    assert error.line == line, str(error)
    assert message in str(error)
    assert str(error).startswith(f"line {line}: ")


def test_a_bad_edit_keeps_the_last_good_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    book = RuleBook(path)
    assert book.current().version == "1"

    path.write_text(GOOD.replace("severity: critical", "severity: nope"), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    assert book.current().version == "1"
    assert book.last_error is not None and "rules.yaml, line 9: rules.0.severity" in book.last_error

    path.write_text(GOOD.replace('version: "1"', 'version: "2"'), encoding="utf-8")
    os.utime(path, ns=(2, 2))
    assert book.current().version == "2"
    assert book.last_error is None


def test_a_bad_file_at_start_up_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text('version: "1"\nrules: []\n', encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"rules\.yaml, line 2: rules: List should have"):
        RuleBook(path)


def test_an_edit_saved_as_gbk_is_refused_naming_its_line(tmp_path: Path) -> None:
    """An editor saving the Chinese keywords in GBK: refused, and the last good rules stay
    (the decode error used to escape and stop triage)."""
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    book = RuleBook(path)
    path.write_bytes(GOOD.replace('version: "1"', 'version: "2"').encode("gbk"))
    os.utime(path, ns=(1, 1))
    assert book.current().version == "1"
    assert book.last_error is not None
    assert "rules.yaml, line 4: not UTF-8 text: save the file as UTF-8" in book.last_error


def test_a_file_of_aliases_of_aliases_is_read_once_through() -> None:
    """Forty levels of two aliases each name one list 2**40 times: looked at once per
    node, the file is refused at once (its rules are not rules), not after centuries."""
    levels = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    text = 'version: "1"\n' + "\n".join(levels) + "\nrules: *a39\n"
    error = refused(text)
    assert "a0" in str(error) or "rules" in str(error)


def test_a_file_far_too_large_is_refused_unread(tmp_path: Path) -> None:
    """The wrong file, or a log pasted in: parsing megabytes of YAML would stall triage."""
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    book = RuleBook(path)
    path.write_text(GOOD + "#" * (3 * 1024 * 1024), encoding="utf-8")
    os.utime(path, ns=(1, 1))
    assert book.current().version == "1"
    assert book.last_error is not None
    assert "more than the 2,097,152 such a file can be" in book.last_error


def test_a_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(GOOD.encode("utf-8-sig"))
    assert RuleBook(path).current().version == "1"


def test_a_file_gone_is_refused_and_the_last_good_rules_stay(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    book = RuleBook(path)
    path.unlink()
    assert book.current().version == "1"
    assert book.last_error is not None and "cannot read" in book.last_error


def test_retriage_with_a_file_saved_as_gbk_says_so_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(GOOD.encode("gbk"))
    result = CliRunner().invoke(triage_cli, ["retriage", str(path)])
    assert result.exit_code == 2
    assert f"{path}: line 4: not UTF-8 text: save the file as UTF-8" in result.output
