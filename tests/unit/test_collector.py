"""The cycle collector as every service's process sets it up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from qianliyan.shared.collector import YOUNG_GENERATION, settle_long_lived_objects


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_the_young_generation_is_larger() -> None:
    _, middle, old = gc.get_threshold()
    settle_long_lived_objects()
    assert gc.get_freeze_count() > 1000  # this process's modules and test machinery
    assert gc.get_threshold() == (YOUNG_GENERATION, middle, old)


@pytest.mark.usefixtures("restored_collector")
def test_cycles_are_still_collected() -> None:
    settle_long_lived_objects()

    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.collect()
    before = sum(isinstance(o, Node) for o in gc.get_objects())
    for _ in range(3 * YOUNG_GENERATION):
        Node()
    assert sum(isinstance(o, Node) for o in gc.get_objects()) - before < 3 * YOUNG_GENERATION
