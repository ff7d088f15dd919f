"""A count in a query is written in digits, as its schema says."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from qianliyan.shared.text import WholeNumber

COUNT: TypeAdapter[int] = TypeAdapter(WholeNumber)


@pytest.mark.parametrize(("written", "read"), [("50", 50), ("007", 7), ("-3", -3), (12, 12)])
def test_a_count_in_digits_is_read(written: object, read: int) -> None:
    assert COUNT.validate_python(written) == read


@pytest.mark.parametrize("written", ["1.0", "1e2", " 5", "5 ", "+5", "５", "0x10", "", "ten"])
def test_a_count_written_otherwise_is_refused_with_an_example(written: str) -> None:
    # Pydantic alone reads "1.0", "+5" and " 5" as whole numbers.
    with pytest.raises(ValidationError, match="must be a whole number such as 50"):
        COUNT.validate_python(written)
