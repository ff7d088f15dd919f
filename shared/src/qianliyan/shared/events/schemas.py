"""JSON Schemas of the event contracts, generated from the models and checked in.

`python -m qianliyan.shared.events.schemas` rewrites them; a unit test fails when a
model changed and its schema was not regenerated, so a contract change shows in review.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qianliyan.shared.events.codec import registered_types

SCHEMA_DIR = Path(__file__).with_name("schemas")


def generated_schemas() -> dict[str, str]:
    """File name -> schema text, for every registered event class."""
    result: dict[str, str] = {}
    for cls in registered_types():
        name = f"{cls.type_name()}.v{cls.type_version()}.schema.json"
        schema = cls.model_json_schema(mode="serialization")
        result[name] = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    return result


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema, and remove files of contracts that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = generated_schemas()
    for stale in directory.glob("*.schema.json"):
        if stale.name not in wanted:
            stale.unlink()
    written = []
    for name, text in wanted.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas():
        sys.stdout.write(f"wrote {path}\n")
