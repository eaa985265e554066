"""Write the JSON Schema of every message into ``schemas/json/``.

Run ``python -m schemas.export`` after changing a message; a test fails while the files
and the code disagree, so non-Python producers always see the real contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.messages import Decision, Label, Message, ModelUpdate, Transaction

__all__ = ["JSON_DIR", "MESSAGES", "export_json_schemas", "json_schema"]

JSON_DIR = Path(__file__).parent / "json"
MESSAGES: tuple[type[Message], ...] = (Transaction, Decision, Label, ModelUpdate)


def json_schema(model: type[Message]) -> dict[str, Any]:
    """The JSON Schema of a message as it appears on the wire."""
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://fraudstream.dev/schemas/{model.topic_role}.schema.json"
    return schema


def render(model: type[Message]) -> str:
    """The exact text of a schema file (stable key order, trailing newline)."""
    return json.dumps(json_schema(model), indent=2, sort_keys=True) + "\n"


def export_json_schemas(directory: Path = JSON_DIR) -> list[Path]:
    """Write one ``<name>.schema.json`` per message and return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in MESSAGES:
        path = directory / f"{model.__name__.lower()}.schema.json"
        path.write_text(render(model))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in export_json_schemas():
        print(written_path)
