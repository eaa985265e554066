"""Declarative fraud rules: a safe expression language, vectorised evaluation, hot reload.

Rules live in a YAML file (``default_rules.yaml`` shows the format), are type-checked
against a :class:`ColumnSchema` when loaded, and run on whole batches of column arrays.
No rule text is ever executed as Python.
"""

from operators.rules._compiler import (
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    CompiledExpression,
    compile_expression,
)
from operators.rules._frame import Batch
from operators.rules._hits import ACTIONS, Action, FiredRule, RuleHits
from operators.rules._reload import ReloadingRules
from operators.rules._report import RuleStats, rule_report
from operators.rules._ruleset import DEFAULT_RULES_PATH, MAX_RULES, Mode, Rule, RuleSet
from operators.rules._schema import DEFAULT_SCHEMA, ColumnSchema

__all__ = [
    "ACTIONS",
    "DEFAULT_RULES_PATH",
    "DEFAULT_SCHEMA",
    "MAX_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "MAX_RULES",
    "Action",
    "Batch",
    "ColumnSchema",
    "CompiledExpression",
    "FiredRule",
    "Mode",
    "ReloadingRules",
    "Rule",
    "RuleHits",
    "RuleSet",
    "RuleStats",
    "compile_expression",
    "rule_report",
]
