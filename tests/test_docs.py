"""Docs that cannot go stale silently: README.md and docs/*.md are read and every reference they
make to the repository is checked against it.

- every repository path they name (``src/...``, ``tests/...``, ``benchmarks/...``,
  ``config/...``, ``docs/...``, ``scripts/...``, ``simulators/...``) exists (a ``*`` or a
  ``{placeholder}`` must match at least one file);
- every relative link resolves, to a file and, with ``#anchor``, to a heading of that file;
- every ``gridwatch <command>`` they show is a command of the CLI, and every ``--option``
  written after it is an option of that command;
- every name in the README's Tour exists: ``module.function`` and ``Class.method`` in the
  source (read with ``ast``, nothing is imported), settings such as ``ingest.fsync_every_ms`` in
  the settings model, and a bare name as a module, class, function or attribute of the package;
- every ``gridwatch.module.name`` they name exists (``ast`` again), and every ``make target``;
- every setting they name (``engine.epoch_s``, ``GRIDWATCH_MQTT__PORT``) is in the settings
  model, and every other ``GRIDWATCH_*`` variable is read somewhere in the repository;
- every settings table (``| key | default | meaning |`` under a heading naming a settings
  section) names real settings with their real defaults, and the detection manual's figures
  (``stuck_readings`` (16)) are the detectors' defaults;
- every ``--option`` shown after ``benchmarks/<name>.py`` is spelled in that script;
- every manual of docs/ is linked from docs/index.md and from the README's list;
- the map in docs/index.md ("where does a change belong") places every kind of change with
  files that exist and the tests to touch.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

from gridwatch._settings import Settings
from gridwatch.cli import app

REPO = Path(__file__).resolve().parents[1]
#: Where each part of the package lives (pyproject.toml's package-dir).
ROOTS = {"gridwatch": REPO / "src", "gridwatch.simulators": REPO / "simulators"}
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP_DIRS = ("src", "tests", "benchmarks", "config", "docs", "scripts", "simulators")

#: Names in the Tour that belong to a library, not to gridwatch: checked by importing them.
EXTERNAL = {
    "client": "paho.mqtt.client:Client",
    "KMeans": "river.cluster:KMeans",
    "TestingSource": "bytewax.testing:TestingSource",
}


# --------------------------------------------------------------------------- reading markdown


@dataclass
class Doc:
    path: Path
    text: str
    #: Inline code spans outside fenced blocks, with their line numbers.
    spans: list[tuple[int, str]] = field(default_factory=list)
    #: Lines of fenced code blocks, with their line numbers.
    code: list[tuple[int, str]] = field(default_factory=list)
    #: Lines outside fenced blocks, with their line numbers.
    prose: list[tuple[int, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.path.relative_to(REPO))


SPAN = re.compile(r"(`+)(.+?)\1")
MULTILINE_SPAN = re.compile(r"(`+)((?:(?!\n\s*\n)[^`])+?)\1")


def read_doc(path: Path) -> Doc:
    doc = Doc(path, path.read_text(encoding="utf-8"))
    fence: str | None = None
    for no, line in enumerate(doc.text.splitlines(), 1):
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            else:
                doc.code.append((no, line))
            continue
        doc.prose.append((no, line))
    # Code spans, also one that wraps a line (read as one line), within a paragraph.
    text = "\n".join(line for _, line in doc.prose)
    for m in MULTILINE_SPAN.finditer(text):
        no = doc.prose[text.count("\n", 0, m.start())][0]
        doc.spans.append((no, " ".join(m.group(2).split())))
    return doc


@cache
def docs() -> list[Doc]:
    return [read_doc(p) for p in DOCS]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Doc) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in doc.prose:
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    out.update(re.findall(r'<a\s+(?:name|id)="([^"]+)"', doc.text))
    return out


# --------------------------------------------------------------------------- repository paths

PATH = re.compile(
    r"(?<![\w./~-])((?:" + "|".join(TOP_DIRS) + r")/(?:[\w./*<>-]|\{[^}\s]*\})*)")


def path_exists(ref: str) -> bool:
    """Whether ``ref`` names something in the repository: ``{a,b}`` must all exist,
    ``{name}``, ``<name>`` and ``*`` must match at least one file."""
    ref = re.sub(r"\.{3}$", "", ref).rstrip(".,:;")
    alternatives = re.search(r"\{([^{}]*,[^{}]*)\}", ref)
    if alternatives:
        head, tail = ref[:alternatives.start()], ref[alternatives.end():]
        return all(path_exists(head + alt + tail) for alt in alternatives.group(1).split(","))
    pattern = re.sub(r"\{[^}]*\}|<[^>]*>", "*", ref)
    if "*" in pattern:
        return any(REPO.glob(pattern.rstrip("/")))
    return (REPO / pattern).exists()


def named_paths(doc: Doc) -> Iterator[tuple[int, str]]:
    for no, line in doc.prose + doc.code:
        # A link's target is checked as a link, relative to its file; a URL is not ours.
        line = re.sub(r"\]\([^)]*\)|https?://\S+", "]", line)
        for m in PATH.finditer(line):
            yield no, m.group(1).rstrip(".,:;")


def test_every_named_path_exists() -> None:
    missing = [f"{d.name}:{no}: {ref}" for d in docs() for no, ref in named_paths(d)
               if not path_exists(ref)]
    assert missing == []


def test_the_path_check_catches_a_missing_path() -> None:
    doc = Doc(REPO / "x.md", "")
    doc.prose = [(1, "See `src/ingest/_journal.py` and src/ingest/_nothing.py, "
                     "tests/*/conftest.py"),
                 (2, "the [link](src/not_checked_here.py) and https://example.org/src/x.py")]
    refs = [ref for _, ref in named_paths(doc)]
    assert refs == ["src/ingest/_journal.py", "src/ingest/_nothing.py", "tests/*/conftest.py"]
    assert [path_exists(r) for r in refs] == [True, False, True]
    assert path_exists("config/templates/{kind}.{lang}.j2")
    assert path_exists("config/tags/{basic,usage}.yaml")
    assert not path_exists("config/tags/{basic,usual}.yaml")
    assert not path_exists("config/templates/{kind}.fr.j2")


# --------------------------------------------------------------------------- relative links

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(doc: Doc) -> Iterator[tuple[int, str]]:
    """(line, target) of every link outside code, also of one whose text wraps a line."""
    text = "\n".join(SPAN.sub("", line) for _, line in doc.prose)
    for m in LINK.finditer(text):
        yield doc.prose[text.count("\n", 0, m.start(1))][0], m.group(1)


def broken_links(doc: Doc) -> Iterator[str]:
    for no, target in links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (doc.path.parent / file).resolve() if file else doc.path
        if not dest.exists():
            yield f"{doc.name}:{no}: {target} (no such file)"
        elif anchor and dest.suffix == ".md" and anchor not in anchors(read_doc(dest)):
            yield f"{doc.name}:{no}: {target} (no such heading)"


def test_every_relative_link_resolves() -> None:
    assert [b for d in docs() for b in broken_links(d)] == []


def test_the_link_check_catches_a_broken_link() -> None:
    doc = Doc(REPO / "docs" / "x.md", "")
    doc.prose = [(1, "[ok](ingest.md#the-journal) [gone](ingest.md#no-such-part) "
                     "[nofile](nothing.md) [web](https://example.org/x) [up](../README.md)"),
                 (2, "a link [whose text"), (3, "wraps](ingest.md#no-such-either) a line")]
    assert "the-journal" in anchors(read_doc(REPO / "docs" / "ingest.md"))
    assert list(broken_links(doc)) == [
        "docs/x.md:1: ingest.md#no-such-part (no such heading)",
        "docs/x.md:1: nothing.md (no such file)",
        "docs/x.md:3: ingest.md#no-such-either (no such heading)"]


def test_anchor_slugs_follow_github() -> None:
    assert slug("Tour: one reading through the code") == "tour-one-reading-through-the-code"
    assert slug("`gridwatch run` and the journal's files") == "gridwatch-run-and-the-journals-files"
    assert slug("Where does a change belong?") == "where-does-a-change-belong"


# --------------------------------------------------------------------------- commands

ROOT_COMMAND = typer.main.get_command(app)
COMMAND = re.compile(r"(?:^|[\s;&|(`$]|\.venv/bin/)gridwatch\s+(?=[a-z<\[.-])")
STOP = {"|", "||", "&&", ";", ">", ">>", "2>&1", "&", "#", "\\"}


def command_lines(doc: Doc) -> Iterator[tuple[int, str]]:
    """Each ``gridwatch ...`` shown in a code span or a code block, from ``gridwatch`` on;
    a block's lines ending in a backslash are joined first."""
    for no, span in doc.spans:
        for m in COMMAND.finditer(span):
            yield no, span[m.end():]
    pending: tuple[int, str] | None = None
    for no, line in doc.code:
        if pending is not None:
            no, line = pending[0], pending[1] + " " + line.strip()
            pending = None
        if line.rstrip().endswith("\\"):
            pending = (no, line.rstrip()[:-1].rstrip())
            continue
        for m in COMMAND.finditer(line):
            yield no, line[m.end():]


def check_command(words: str) -> str | None:
    """What is wrong with ``gridwatch <words>``, or None."""
    try:
        parts = shlex.split(words, comments=True)
    except ValueError:
        parts = words.split()
    cmd: Any = ROOT_COMMAND
    path = "gridwatch"
    for word in parts:
        if word in STOP:
            return None  # the end of the command
        word = word.replace("\\|", "|").strip("[]")
        group = isinstance(getattr(cmd, "commands", None), dict)
        if word.startswith(("<", "...", "$", "{")) or word.endswith("…"):
            if group:
                return None  # a placeholder for the command
            continue  # a placeholder for a value
        if group and word and not word.startswith("-"):
            # ``a|b|c``: several commands shown at once, each must exist.
            missing = [w for w in word.split("|") if w not in cmd.commands]
            if missing:
                return f"{path} has no command {missing[0]!r}"
            cmd, path = cmd.commands[word.split("|")[0]], f"{path} {word}"
            continue
        if word.startswith("--") and len(word) > 2:
            name = word.split("=", 1)[0]
            known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
            if name not in known:
                return f"{path} has no option {name}"
    return None


def test_every_command_shown_exists() -> None:
    wrong = []
    for d in docs():
        for no, words in command_lines(d):
            problem = check_command(words)
            if problem:
                wrong.append(f"{d.name}:{no}: {problem}")
    assert wrong == []


def test_the_command_check_catches_a_stale_command() -> None:
    assert check_command("run --config config/gridwatch.yaml") is None
    assert check_command("alerts list --help") is None
    assert check_command("tags <command>") is None
    assert check_command("users add|passwd [--password-stdin]") is None
    assert check_command(r"journal stats\|deadletters") is None
    assert check_command("runn") == "gridwatch has no command 'runn'"
    assert check_command("tags list|explian") == "gridwatch tags has no command 'explian'"
    assert check_command("tags list [--dimensoin D]") == (
        "gridwatch tags list has no option --dimensoin")
    assert check_command("alerts lst") == "gridwatch alerts has no command 'lst'"
    assert check_command("run --no-such-flag 3") == "gridwatch run has no option --no-such-flag"
    doc = Doc(REPO / "x.md", "")
    doc.spans = [(1, "gridwatch replay x.jsonl")]
    doc.code = [(2, "$ .venv/bin/gridwatch simulate --fleet config/fleets/demo.yaml \\"),
                (3, "    --rate 10 | head"), (4, "pip install gridwatch")]
    assert list(command_lines(doc)) == [
        (1, "replay x.jsonl"),
        (2, "simulate --fleet config/fleets/demo.yaml --rate 10 | head")]


# --------------------------------------------------------------------------- the Tour's names


@dataclass
class Module:
    name: str  # dotted, e.g. gridwatch.ingest._journal
    tree: ast.Module


def _modules() -> dict[str, Module]:
    out = {}
    for pkg, root in ROOTS.items():
        for file in sorted(root.rglob("*.py")):
            rel = file.relative_to(root).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            if pkg == "gridwatch" and rel and rel[0] == "simulators":
                continue
            name = ".".join((pkg, *rel))
            out[name] = Module(name, ast.parse(file.read_text(encoding="utf-8")))
    return out


MODULES = _modules()


def _bound(tree: ast.AST) -> set[str]:
    """Names a module (or a class body) binds at its top level."""
    names: set[str] = set()
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        if isinstance(node, ast.Assign | ast.AnnAssign) \
                and isinstance(node.value, ast.Dict | ast.List):
            # A package's exports: ``__all__ = [...]`` and lazily imported ``_EXPORTS = {...}``.
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id in ("__all__", "_EXPORTS"):
                items = node.value.keys if isinstance(node.value, ast.Dict) else node.value.elts
                names.update(k.value for k in items
                             if isinstance(k, ast.Constant) and isinstance(k.value, str))
    return names


def _classes() -> dict[str, list[ast.ClassDef]]:
    out: dict[str, list[ast.ClassDef]] = {}
    for mod in MODULES.values():
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, []).append(node)
    return out


CLASSES = _classes()


def class_members(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Methods and attributes of every class of that name: its body, ``self.x = ...`` in its
    methods, and what its bases in the package define."""
    members: set[str] = set()
    for cls in CLASSES.get(name, []):
        members |= _bound(cls)
        for node in ast.walk(cls):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Name) and node.value.id == "self":
                members.add(node.attr)
        for base in cls.bases:
            base_name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
            if base_name and base_name not in seen | {name}:
                members |= class_members(base_name, seen | {name})
    return members


def modules_named(head: str) -> list[Module]:
    """Modules a doc may mean by ``head``: a dotted path under gridwatch (``ingest._journal``)
    or its last part (``_engine``)."""
    return [m for n, m in MODULES.items()
            if n in (f"gridwatch.{head}", f"gridwatch.simulators.{head}")
            or n.rsplit(".", 1)[-1] == head]


def _external(name: str) -> Any:
    mod, _, attr = EXTERNAL[name].partition(":")
    return getattr(importlib.import_module(mod), attr)


def _setting(parts: list[str]) -> bool:
    model: Any = Settings
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        model = fields[part].annotation
    return True


def resolves(ref: str) -> bool:
    """Whether a dotted or bare name of the Tour exists."""
    parts = ref.split(".")
    if len(parts) == 1:
        return ref in ALL_NAMES or ref in EXTERNAL
    if _setting(parts):
        return True
    if parts[0] in EXTERNAL:
        obj = _external(parts[0])
        for part in parts[1:]:
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    # The longest leading part that names a module, then names bound in it, then members.
    for cut in range(len(parts) - 1, 0, -1):
        for mod in modules_named(".".join(parts[:cut])):
            rest = parts[cut:]
            if rest[0] not in _bound(mod.tree):
                continue
            if len(rest) == 1 or all(r in class_members(rest[0]) for r in rest[1:2]):
                return True
    # A class anywhere in the package, then its member.
    return parts[0] in CLASSES and len(parts) == 2 and parts[1] in class_members(parts[0])


def _all_names() -> set[str]:
    """Every module, class, function and method of the package, and what modules and classes
    bind at their top level or on ``self`` (local variables do not count)."""
    names = {n.rsplit(".", 1)[-1] for n in MODULES}
    for mod in MODULES.values():
        names |= _bound(mod.tree)
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.ClassDef):
                names |= class_members(node.name) | {node.name}
    return names


ALL_NAMES = _all_names()
NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def section(doc: Doc, heading: str) -> list[tuple[int, str]]:
    """The prose lines under the ``## heading`` starting with ``heading``, up to the next."""
    out: list[tuple[int, str]] = []
    inside = False
    for no, line in doc.prose:
        if line.startswith("## "):
            inside = line[3:].startswith(heading)
            continue
        if inside:
            out.append((no, line))
    return out


def tour_names() -> list[tuple[int, str]]:
    readme = docs()[0]
    lines = {no for no, _ in section(readme, "Tour")}
    names = []
    for no, span in readme.spans:
        if no not in lines:
            continue
        span = re.sub(r"\(\)$", "", span)
        if NAME.fullmatch(span):
            names.append((no, span))
    return names


def test_the_tour_names_only_what_exists() -> None:
    names = tour_names()
    assert len(names) > 30  # the Tour was found and read
    assert [f"README.md:{no}: {ref}" for no, ref in names if not resolves(ref)] == []


@pytest.mark.parametrize("ref", [
    "_engine.run_engine", "cli.run", "ingest.Collector._on_message", "Collector._process",
    "Decoder.decode_message", "ingest.fsync_every_ms", "stream.build_flow", "client.ack",
    "ingest._journal.Journal", "Journal", "_faults", "KMeans"])
def test_names_that_exist_resolve(ref: str) -> None:
    assert resolves(ref)


@pytest.mark.parametrize("ref", [
    "_engine.run_engines", "cli.walk", "ingest.Collecter._on_message", "Collector._proces",
    "Decoder.decode", "ingest.fsync_every_hour", "stream.build", "client.acknowledge",
    "ingest._journal.Journals", "Jornal", "_fautls", "Kmeans"])
def test_names_that_do_not_exist_fail(ref: str) -> None:
    assert not resolves(ref)


# --------------------------------------------------------------------------- dotted names, make

QUALIFIED = re.compile(r"gridwatch(?:\.[A-Za-z_]\w*)+")
FILE_SUFFIXES = {"yaml", "yml", "md", "py", "toml", "j2", "json", "csv", "jsonl", "sqlite", "db",
                 "secret", "txt", "html", "pdf", "png", "svg"}


def qualified_exists(ref: str) -> bool:
    """Whether ``gridwatch.a.b.c`` is a module of the package, or a name bound in one (a
    package's lazy exports count), or a member of a class bound in one."""
    parts = ref.split(".")[1:]
    for cut in range(len(parts), -1, -1):
        name = ".".join(("gridwatch", *parts[:cut]))
        mod = MODULES.get(name)
        if mod is None:
            continue
        rest = parts[cut:]
        if not rest:
            return True
        if rest[0] not in _bound(mod.tree):
            return False
        return len(rest) == 1 or (len(rest) == 2 and rest[1] in class_members(rest[0]))
    return False


def qualified_names(doc: Doc) -> Iterator[tuple[int, str]]:
    for no, span in doc.spans:
        for m in QUALIFIED.finditer(span):
            if m.group(0).rsplit(".", 1)[-1] not in FILE_SUFFIXES:
                yield no, m.group(0)


def test_every_qualified_name_exists() -> None:
    named = [(d.name, no, ref) for d in docs() for no, ref in qualified_names(d)]
    assert len(named) > 20
    assert [f"{n}:{no}: {ref}" for n, no, ref in named if not qualified_exists(ref)] == []


@pytest.mark.parametrize(("ref", "exists"), [
    ("gridwatch.ingest", True), ("gridwatch.ingest._journal.Journal", True),
    ("gridwatch.ingest.Journal", True), ("gridwatch.alerts._stages.dedup", True),
    ("gridwatch.models.MeterState.step", True), ("gridwatch.simulators._fleet.Fleet", True),
    ("gridwatch.ingest._jornal", False), ("gridwatch.ingest.Jornal", False),
    ("gridwatch.models.MeterState.stepp", False), ("gridwatch.nothing", False)])
def test_qualified_names_resolve(ref: str, exists: bool) -> None:
    assert qualified_exists(ref) is exists


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w.-]+)\s*:(?!=)", text, re.M))


def test_every_make_target_shown_exists() -> None:
    shown = [(d.name, no, m.group(1)) for d in docs() for no, text in d.spans + d.code
             for m in re.finditer(r"(?:^|[\s;&|(`$])make\s+([\w-]+)", text)]
    assert len(shown) > 5
    targets = make_targets()
    assert {"test", "test-fast", "setup"} <= targets
    assert [f"{n}:{no}: make {t}" for n, no, t in shown if t not in targets] == []


# --------------------------------------------------------------------------- settings

SECTIONS = set(Settings.model_fields)
SETTING = re.compile(r"(?<![\w./-])(?:" + "|".join(SECTIONS)
                     + r")(?:\.[a-z_][a-z0-9_]*)+(?![\w(/-])")
ENV = re.compile(r"\bGRIDWATCH_[A-Z0-9_]+")
#: Settings the docs name as removed; a settings file that still sets one is refused.
REMOVED = {"engine.snapshot_every_s"}


def setting_problem(ref: str) -> str | None:
    """What is wrong with a setting named as ``section.key`` or ``GRIDWATCH_SECTION__KEY``."""
    if ref.startswith("GRIDWATCH_"):
        if "__" in ref:
            parts = ref.removeprefix("GRIDWATCH_").lower().split("__")
            return None if _setting(parts) else "no such setting"
        return None if ref in SOURCE_TEXT else "read nowhere in the repository"
    if ref in REMOVED or ref.rsplit(".", 1)[-1] in FILE_SUFFIXES or _setting(ref.split(".")):
        return None
    # ``ingest.decode`` names the package's function, not a setting.
    return None if qualified_exists(f"gridwatch.{ref}") else "no such setting"


def _source_text() -> str:
    files = [*REPO.glob("src/**/*.py"), *REPO.glob("simulators/**/*.py"),
             *REPO.glob("tests/**/*.py"), *REPO.glob("benchmarks/*.py"),
             *REPO.glob("scripts/*"), REPO / "Makefile"]
    return "\n".join(f.read_text(encoding="utf-8") for f in files
                     if f.is_file() and f != Path(__file__))


SOURCE_TEXT = _source_text()


def test_every_setting_named_exists() -> None:
    named = [(d.name, no, m.group(0)) for d in docs() for no, span in d.spans
             for pattern in (SETTING, ENV) for m in pattern.finditer(span)]
    assert len(named) > 30
    wrong = [f"{n}:{no}: {ref} ({problem})" for n, no, ref in named
             if (problem := setting_problem(ref))]
    assert wrong == []


@pytest.mark.parametrize(("ref", "problem"), [
    ("engine.epoch_s", None), ("ingest.fsync_every_ms", None), ("alerts.sqlite", None),
    ("GRIDWATCH_MQTT__PORT", None), ("GRIDWATCH_CONFIG", None),
    ("detection.z_threshold", "no such setting"), ("GRIDWATCH_MQTT__PROT", "no such setting"),
    ("GRIDWATCH_NO_SUCH_SWITCH", "read nowhere in the repository")])
def test_the_setting_check(ref: str, problem: str | None) -> None:
    assert setting_problem(ref) == problem


@pytest.mark.parametrize("ref", sorted(REMOVED))
def test_a_removed_setting_is_refused_by_name(ref: str) -> None:
    section, key = ref.split(".")
    with pytest.raises(ValueError, match=f"{key} was removed"):
        Settings(**{section: {key: 1}})


# --------------------------------------------------------------------------- the map

#: The kinds of change docs/index.md must place.
KINDS = {"a new payload field", "a new detector", "a new alert channel", "a new tag",
         "a new page", "a new setting", "a new benchmark"}


def change_map() -> dict[str, list[str]]:
    """The rows of docs/index.md's "Where does a change belong" table: change → cells."""
    index = read_doc(REPO / "docs" / "index.md")
    rows = [line for _, line in section(index, "Where does a change belong")
            if line.startswith("| ") and not line.startswith("| change ")]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    return {c[0]: c[1:] for c in cells}


def test_the_index_places_every_kind_of_change() -> None:
    table = change_map()
    assert sorted(KINDS - set(table)) == []
    for kind, (code, tests, manual) in table.items():
        code_paths = [m.group(1) for m in PATH.finditer(code)]
        test_paths = [m.group(1) for m in PATH.finditer(tests)]
        assert code_paths, f"{kind}: no file to change"
        assert all(path_exists(p.rstrip(".,:;")) for p in code_paths + test_paths), kind
        assert kind == "a new benchmark" or any(p.startswith("tests/") for p in test_paths), \
            f"{kind}: no test named"
        assert LINK.search(manual) or "manual" in manual, f"{kind}: no manual named"


# --------------------------------------------------------------------------- manuals, benchmarks


def linked_manuals(doc: Doc) -> set[str]:
    """The manuals linked between a doc's ``<!-- links: ... -->`` and ``<!-- end of links -->``
    comments, as paths from the repository root."""
    block = doc.text.split("<!-- links:", 1)[1].split("<!-- end of links -->", 1)[0]
    return {str((doc.path.parent / m.group(1)).resolve().relative_to(REPO))
            for m in LINK.finditer(block)}


def test_every_manual_is_in_the_index_and_the_readme() -> None:
    manuals = {str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")} - {"docs/index.md"}
    assert len(manuals) > 10
    assert sorted(manuals ^ linked_manuals(read_doc(REPO / "docs" / "index.md"))) == []
    assert sorted(manuals ^ linked_manuals(read_doc(REPO / "README.md"))) == []


BENCH = re.compile(r"benchmarks/(\w+)\.py((?:\s+[^\s|;&#>`]+)*)")


def benchmark_options(name: str) -> set[str]:
    """Every ``--option`` string the benchmark script spells (argparse's add_argument)."""
    tree = ast.parse((REPO / "benchmarks" / f"{name}.py").read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and re.fullmatch(r"--[\w-]+", n.value)}


def benchmark_problems(text: str) -> Iterator[str]:
    for m in BENCH.finditer(text):
        name, args = m.group(1), m.group(2)
        if not (REPO / "benchmarks" / f"{name}.py").exists():
            continue  # a missing script is the path check's
        for opt in re.findall(r"(?<!\S)(--[\w-]+)", args):
            if opt not in benchmark_options(name) | {"--help"}:
                yield f"benchmarks/{name}.py has no option {opt}"


def test_every_benchmark_option_shown_exists() -> None:
    shown = [(d.name, no, text) for d in docs() for no, text in d.spans + d.code
             if BENCH.search(text)]
    assert len(shown) > 10
    assert [f"{n}:{no}: {p}" for n, no, text in shown for p in benchmark_problems(text)] == []


def test_the_benchmark_check_catches_a_stale_option() -> None:
    assert list(benchmark_problems("python benchmarks/dataflow.py --only flow --full")) == []
    assert list(benchmark_problems("benchmarks/dataflow.py --olny flow  # --not-this")) == [
        "benchmarks/dataflow.py has no option --olny"]


# --------------------------------------------------------------------------- documented defaults


def _literal(cell: str) -> Any:
    """A table cell or a parenthesised figure as a value: a number, ``true``/``false`` or one
    backquoted literal; None when the cell describes rather than states (``unset``, ``–``)."""
    cell = cell.strip()
    m = re.fullmatch(r"`([^`]*)`|([-\d.]+)", cell)
    if not m:
        return None
    text = m.group(1) if m.group(1) is not None else m.group(2)
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        return text


def _same(doc_value: Any, real: Any) -> bool:
    """Whether a documented default is the real one; a figure of another kind (``1 GiB`` for
    bytes, an example URL for an unset value, a summary of a nested section) is not compared."""
    if isinstance(doc_value, bool) or isinstance(real, bool):
        return doc_value is real
    if isinstance(real, int | float):
        return not isinstance(doc_value, float) or float(real) == doc_value
    if isinstance(real, str | Path):
        return str(real) == str(doc_value)
    return True


def settings_tables() -> Iterator[tuple[str, int, str, str, str]]:
    """(doc, line, section, key, default cell) of every row of a settings table: a table under
    a heading that names a settings section in backquotes (``Settings (`web` section)``)."""
    for d in docs():
        section_name = None
        header = ""
        for no, line in d.prose:
            if (m := re.match(r"#+ (.*)", line)) is not None:
                found = re.search(r"`(" + "|".join(SECTIONS) + r"):?`", m.group(1))
                section_name = found.group(1) if found and "etting" in m.group(1) else None
                continue
            if line.startswith("| ") and not line.startswith("| `") \
                    and not re.fullmatch(r"[|\s:-]+", line):
                header = line.split("|")[1].strip()  # a table of settings has "key" first
                continue
            if section_name is None or header != "key" or not line.startswith("| `"):
                continue
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            keys = re.findall(r"`([^`]+)`", cells[0])
            values = re.split(r",\s*(?![^`]*`\s*[,}])", cells[1]) if len(cells) > 1 else []
            pair = len(values) == len(keys)
            for i, key in enumerate(keys):
                yield d.name, no, section_name, key, values[i] if pair else ""


def default_problems(section_name: str, key: str, cell: str) -> str | None:
    model = getattr(Settings(), section_name)
    field_name = re.split(r"[.\[]", key)[0]
    if field_name not in type(model).model_fields:
        return f"{section_name}.{field_name} is no setting"
    doc_value = _literal(cell)
    real = getattr(model, field_name)
    if doc_value is not None and not _same(doc_value, real):
        return f"{section_name}.{field_name}: the docs say {cell}, the default is {real!r}"
    return None


def test_every_settings_table_names_real_settings_and_their_defaults() -> None:
    rows = list(settings_tables())
    assert len(rows) > 40
    assert {s for _, _, s, _, _ in rows} >= {"alerts", "influx", "web"}
    wrong = [f"{n}:{no}: {p}" for n, no, s, k, c in rows if (p := default_problems(s, k, c))]
    assert wrong == []


def test_the_default_check_catches_a_drifted_default() -> None:
    assert default_problems("web", "session_ttl_s", "43200") is None
    assert default_problems("web", "cookie_secure", "`false`") is None
    assert default_problems("influx", "api", "`v2`") is None
    assert default_problems("web", "db", "the router's `alerts.state_db`") is None
    assert default_problems("web", "session_ttl_s", "3600") == (
        "web.session_ttl_s: the docs say 3600, the default is 43200.0")
    assert default_problems("web", "cookie_secure", "`true`") is not None
    assert default_problems("web", "session_ttl", "43200") == "web.session_ttl is no setting"
    assert default_problems("influx", "spool_max_bytes", "`1 GiB`") is None  # not compared
    assert default_problems("influx", "api", "`v1`") is not None


DETECTION_FIGURE = re.compile(r"`([a-z_]+)` \((-?[\d.]+)(?: ?(s|days))?\)")


def detection_figures() -> Iterator[tuple[int, str, float, Any]]:
    """(line, setting, the figure the detection manual gives, the default) for every
    ``name`` (figure) of its detector sections that names a detection setting."""
    from gridwatch.models import DetectionSettings
    from gridwatch.models._config import ClassPolicy

    defaults = DetectionSettings()
    doc = read_doc(REPO / "docs" / "detection.md")
    for no, line in section(doc, "Per-meter state"):
        for m in DETECTION_FIGURE.finditer(line):
            name, figure, unit = m.group(1), float(m.group(2)), m.group(3)
            if name in DetectionSettings.model_fields:
                real = getattr(defaults, name)
            elif name in ClassPolicy.model_fields:
                real = ClassPolicy.model_fields[name].default
            else:
                continue
            yield no, name, figure * (86_400 if unit == "days" else 1), real


def test_the_detection_manual_gives_the_defaults() -> None:
    figures = list(detection_figures())
    assert len(figures) > 15
    assert [f"detection.md:{no}: {name} ({figure:g}), default {real}"
            for no, name, figure, real in figures if float(real) != figure] == []
