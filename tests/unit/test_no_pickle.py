"""No code path can unpickle: the packages never import or call a pickle-style loader.

Models arrive from the registry, the ``model-updates`` topic and Redis; a pickle among
them would be code execution. ONNX graphs and JSON are the only formats loaded, and this
scan of the source (the AST, so comments and strings do not count) keeps it that way.

One exception, listed in :data:`_ALLOWED` with its reason: the scorer's Bytewax recovery
snapshots (``operators/stateful.py``), which Bytewax itself stores pickled too. They are
written and read only by the scorer, in its own recovery directory (mode 0700), never
taken from the registry, a topic or Redis.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "operators", "streams", "models")

#: Modules whose mere import is refused: each one's purpose is (un)pickling.
_BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal"}
#: Calls refused by their dotted tail, whatever the module was imported as.
_BANNED_CALLS = {
    ("pickle", "loads"),
    ("pickle", "load"),
    ("pickle", "Unpickler"),
    ("joblib", "load"),
    ("pandas", "read_pickle"),
    ("pd", "read_pickle"),
    ("torch", "load"),
    ("marshal", "loads"),
    ("marshal", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "unsafe_load_all"),
    ("yaml", "full_load"),
    ("yaml", "full_load_all"),
}
_SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    """``a.b.c`` as ("a", "b", "c"); () for anything that is not a plain dotted name."""
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return (*head, node.attr) if head else ()
    return ()


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def pickle_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every import or call in ``source`` that could unpickle, as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] in _BANNED_MODULES
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if module.split(".")[0] in _BANNED_MODULES:
                found.append(f"{node.lineno}: from {module} import ...")
            elif module == "joblib" and "load" in names:
                found.append(f"{node.lineno}: from joblib import load")
            elif module == "torch" and "load" in names:
                found.append(f"{node.lineno}: from torch import load")
            elif module == "pandas" and "read_pickle" in names:
                found.append(f"{node.lineno}: from pandas import read_pickle")
            elif module == "yaml" and names & {"unsafe_load", "full_load", "UnsafeLoader"}:
                found.append(f"{node.lineno}: from yaml import {sorted(names)}")
        elif isinstance(node, ast.Call):
            found += _call_uses(node)
    return found


def _call_uses(call: ast.Call) -> list[str]:
    name = _dotted(call.func)
    line = call.lineno
    if len(name) >= 2 and name[-2:] in _BANNED_CALLS:
        return [f"{line}: {'.'.join(name)}()"]
    if name[-1:] == ("read_pickle",):
        return [f"{line}: read_pickle()"]
    allow_pickle = _keyword(call, "allow_pickle")
    if allow_pickle is not None and not (
        isinstance(allow_pickle, ast.Constant) and allow_pickle.value is False
    ):
        return [f"{line}: {'.'.join(name) or 'call'}(allow_pickle=...)"]
    if name[-2:] in {("yaml", "load"), ("yaml", "load_all")}:
        loader = _keyword(call, "Loader")
        if loader is None and len(call.args) >= 2:
            loader = call.args[1]
        if loader is None or _dotted(loader)[-1:] not in {(n,) for n in _SAFE_YAML_LOADERS}:
            return [f"{line}: {'.'.join(name)}() without a safe Loader"]
    return []


#: file -> (the exact uses allowed there, without line numbers; why).
_ALLOWED: dict[str, tuple[set[str], str]] = {
    "operators/stateful.py": (
        {"import pickle", "pickle.loads()"},
        "Bytewax recovery snapshots: the scorer's own, in its 0700 recovery directory",
    ),
}


def _without_line(use: str) -> str:
    return use.split(": ", 1)[1]


def _sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_the_scan_covers_every_package():
    assert {path.relative_to(ROOT).parts[0] for path in _sources()} == set(PACKAGES)
    assert len(_sources()) > 100


def test_no_package_can_unpickle():
    found = {
        str(path.relative_to(ROOT)): {_without_line(use) for use in uses}
        for path in _sources()
        if (uses := pickle_uses(path.read_text(encoding="utf-8"), str(path)))
    }
    offenders = {
        name: uses - _ALLOWED.get(name, (set(), ""))[0]
        for name, uses in found.items()
        if uses - _ALLOWED.get(name, (set(), ""))[0]
    }
    assert offenders == {}
    # an allowance that is no longer needed must go, so the list stays the truth
    assert {name: _ALLOWED[name][0] for name in found if name in _ALLOWED} == {
        name: allowed for name, (allowed, _why) in _ALLOWED.items()
    }
    assert found.keys() <= _ALLOWED.keys()


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "import cPickle as p",
        "from pickle import loads",
        "import dill",
        "import cloudpickle",
        "import marshal",
        "from _pickle import Unpickler",
        "import joblib\njoblib.load('m.pkl')",
        "from joblib import load",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
        "import numpy as np\nnp.load('a.npy', allow_pickle=flag)",
        "import pandas as pd\npd.read_pickle('f')",
        "frame = something.read_pickle('f')",
        "import torch\ntorch.load('m.pt')",
        "import yaml\nyaml.load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.Loader)",
        "import yaml\nyaml.load(text, yaml.UnsafeLoader)",
        "import yaml\nyaml.unsafe_load(text)",
        "import yaml\nyaml.full_load(text)",
        "from yaml import unsafe_load",
        "import pickle as p\np.loads(b'')",
    ],
)
def test_each_way_to_unpickle_is_caught(source: str):
    assert pickle_uses(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nnp.load('a.npy')",
        "import numpy as np\nnp.load('a.npy', allow_pickle=False)",
        "import yaml\nyaml.safe_load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.load(text, yaml.CSafeLoader)",
        "import orjson\norjson.loads(b'{}')",
        "# import pickle  (a comment)\ntext = 'pickle.loads'",
        "import onnxruntime as ort\nort.InferenceSession(data)",
    ],
)
def test_safe_loaders_pass(source: str):
    assert pickle_uses(source) == []
