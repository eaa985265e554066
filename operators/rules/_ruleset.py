"""Rules files: load, validate every rule up front, and evaluate the whole set on a batch.

A rules file is all-or-nothing: one bad rule refuses the file, so a half-applied edit can
never reach production (the hot reloader then keeps the previous rules).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from operators.exceptions import RuleError
from operators.rules._compiler import CompiledExpression, compile_expression
from operators.rules._frame import Batch, Frame
from operators.rules._hits import ACTIONS, Action, FiredRule, RuleHits
from operators.rules._schema import DEFAULT_SCHEMA, ColumnSchema

__all__ = ["DEFAULT_RULES_PATH", "MAX_RULES", "Mode", "Rule", "RuleSet"]

#: The rules shipped with fraudstream, a sensible starting point for a new deployment.
DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
#: Most rules one file may hold; far above any sane file, low enough to bound load time.
MAX_RULES = 500
_MAX_FILE_BYTES = 1 << 20

Mode = Literal["active", "shadow"]
_MODES: tuple[Mode, ...] = ("active", "shadow")
# Rule ids travel in RuleHit messages (an Identifier there) and become metric labels.
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_REASON = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_REQUIRED = ("id", "description", "expression", "action", "reason")
_KEYS = frozenset((*_REQUIRED, "mode"))


@dataclass(frozen=True, slots=True)
class Rule:
    """One checked, compiled rule. Build it with :meth:`RuleSet.from_specs` or a file."""

    id: str
    description: str
    expression: CompiledExpression = field(repr=False)
    action: Action
    reason: str
    mode: Mode = "active"

    @property
    def shadow(self) -> bool:
        """Shadow rules are evaluated and reported but never change a decision."""
        return self.mode == "shadow"

    @property
    def hit(self) -> FiredRule:
        """How this rule is reported when it fires."""
        return FiredRule(self.id, self.reason, self.action, self.shadow)


class RuleSet:
    """An immutable, validated set of rules, evaluated together on one shared batch frame.

    ``fingerprint`` (sha256 of the source text) identifies the version in logs and
    lets the reloader skip a rewrite that did not change anything.
    """

    __slots__ = ("_hits", "_numeric", "_strings", "fingerprint", "rules", "schema", "source")

    def __init__(
        self,
        rules: Sequence[Rule],
        schema: ColumnSchema = DEFAULT_SCHEMA,
        *,
        source: str = "<memory>",
        fingerprint: str = "",
    ) -> None:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise RuleError(f"{source}: rule {rule.id!r}: duplicate id", rule_id=rule.id)
            seen.add(rule.id)
        self.rules = tuple(rules)
        self.schema = schema
        self.source = source
        self.fingerprint = fingerprint
        self._hits = tuple(rule.hit for rule in self.rules)
        self._numeric = sorted({c for r in self.rules for c in r.expression.numeric_columns})
        self._strings = sorted({c for r in self.rules for c in r.expression.string_columns})

    @classmethod
    def from_specs(
        cls,
        specs: Sequence[Mapping[str, Any]],
        schema: ColumnSchema = DEFAULT_SCHEMA,
        *,
        source: str = "<memory>",
        fingerprint: str = "",
    ) -> RuleSet:
        """Check and compile rules given as mappings (the parsed ``rules:`` list)."""
        if len(specs) > MAX_RULES:
            raise RuleError(f"{source}: more than {MAX_RULES} rules")
        rules = [_compile_rule(spec, index, schema, source) for index, spec in enumerate(specs)]
        return cls(rules, schema, source=source, fingerprint=fingerprint)

    @classmethod
    def from_yaml(
        cls, text: str, schema: ColumnSchema = DEFAULT_SCHEMA, *, source: str = "<memory>"
    ) -> RuleSet:
        """Parse a rules document (see ``default_rules.yaml`` for the format)."""
        fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise RuleError(f"{source}: not valid YAML{where}: {problem}") from None
        return cls.from_specs(
            _rule_specs(document, source), schema, source=source, fingerprint=fingerprint
        )

    @classmethod
    def from_file(cls, path: str | Path, schema: ColumnSchema = DEFAULT_SCHEMA) -> RuleSet:
        """Load a rules file; any problem (unreadable, bad YAML, bad rule) is a RuleError."""
        return cls.from_yaml(read_rules_text(Path(path)), schema, source=str(path))

    @classmethod
    def default(cls, schema: ColumnSchema = DEFAULT_SCHEMA) -> RuleSet:
        """Load the rules shipped with fraudstream."""
        return cls.from_file(DEFAULT_RULES_PATH, schema)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __getitem__(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def columns(self) -> frozenset[str]:
        """Every column some rule reads: the batch must provide at least these."""
        return frozenset((*self._numeric, *self._strings))

    def evaluate(self, batch: Batch, n_rows: int | None = None) -> RuleHits:
        """Evaluate every rule (active and shadow) on a batch of column arrays.

        Missing columns or mismatched lengths raise BatchError; missing values never raise.
        """
        frame = Frame.from_batch(batch, self._numeric, self._strings, n_rows)
        matrix = np.empty((len(self.rules), frame.n_rows), dtype=np.bool_)
        with np.errstate(all="ignore"):
            for index, rule in enumerate(self.rules):
                matrix[index] = rule.expression.evaluate_frame(frame)
        return RuleHits(self._hits, matrix)


def read_rules_text(path: Path) -> str:
    """Read a rules file as UTF-8, refusing huge files before reading them."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RuleError(f"{path}: cannot read the rules file: {exc.strerror or exc}") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise RuleError(f"{path}: the rules file is larger than {_MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(f"{path}: not UTF-8 (byte {exc.start})") from None


def _rule_specs(document: Any, source: str) -> list[Mapping[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RuleError(f"{source}: expected a mapping with a 'rules:' list")
    unknown = sorted(str(key) for key in document if key not in ("version", "rules"))
    if unknown:
        raise RuleError(f"{source}: unknown top-level keys {unknown} (allowed: version, rules)")
    if document.get("version", 1) != 1:
        raise RuleError(f"{source}: unsupported version {document['version']!r} (expected 1)")
    return list(document["rules"])


def _compile_rule(spec: Any, index: int, schema: ColumnSchema, source: str) -> Rule:
    raw_id = spec.get("id") if isinstance(spec, Mapping) else None
    label = repr(raw_id) if isinstance(raw_id, str) and raw_id else f"#{index + 1}"
    rule_id = raw_id if isinstance(raw_id, str) else None

    def refuse(problem: str) -> RuleError:
        return RuleError(f"{source}: rule {label}: {problem}", rule_id=rule_id)

    if not isinstance(spec, Mapping):
        raise refuse("must be a mapping with id, description, expression, action, reason")
    unknown = sorted(str(key) for key in spec if key not in _KEYS)
    if unknown:
        raise refuse(f"unknown keys {unknown} (allowed: {', '.join(sorted(_KEYS))})")
    missing = [key for key in _REQUIRED if key not in spec]
    if missing:
        raise refuse(f"missing {', '.join(missing)}")
    for key in (*_REQUIRED, "mode"):
        if key in spec and not isinstance(spec[key], str):
            raise refuse(f"{key!r} must be a string, got {type(spec[key]).__name__}")
    if not _RULE_ID.match(spec["id"]):
        raise refuse("id must be 1-64 letters, digits or ._:- and start with a letter or digit")
    if spec["action"] not in ACTIONS:
        raise refuse(f"unknown action {spec['action']!r} (allowed: {', '.join(ACTIONS)})")
    mode = spec.get("mode", "active")
    if mode not in _MODES:
        raise refuse(f"unknown mode {mode!r} (allowed: active, shadow)")
    if not _REASON.match(spec["reason"]):
        raise refuse("reason must be an upper-case code such as CARD_TESTING")
    try:
        expression = compile_expression(spec["expression"], schema, rule_id=spec["id"])
    except RuleError as exc:
        raise RuleError(f"{source}: {exc}", rule_id=spec["id"]) from None
    return Rule(
        id=spec["id"],
        description=spec["description"],
        expression=expression,
        action=spec["action"],
        reason=spec["reason"],
        mode=mode,
    )
