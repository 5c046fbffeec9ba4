"""Sweep specs: load a YAML file, validate every part of it, expand it into trials.

A spec names the sweep, fixes some trial options, grids over others and says how to run each trial::

    name: demo                      # [A-Za-z0-9_.-]+; names the sweep's state and its rows
    description: free text
    fixed:                          # options shared by every trial (fields of svconv.config.TrialConfig)
      dataset: mnist5k
      epochs: 1
    grid:                           # the cartesian product of these axes
      method: [none, clip, division]    # an option: a list of its values
      rank: [full, 8]                   # rank: `full` (or null) is the un-compressed model
      control:                          # a linked axis (any name that is not an option): each
        - {method: clip, clip_to: 1}    #   value is a mapping that sets several options together
        - {method: clip, clip_to: 2}
    exclude:                        # drop every combination that matches one of these rules
      - {method: none, rank: 8}         # a rule matches when every option it names has that value
      - {method: [clip, division], clip_to: 2}   # (a list: any of these values)
    only:                           # if given, keep only combinations matching one of these rules
      - {rank: full}
    resources: {cpus: 1, gpus: 0.5} # per trial; a GPU fraction packs trials onto one GPU
    concurrency: 4                  # trials at once (default: as many as the resources allow)
    retries: 2                      # re-runs of a failed trial, from its last checkpoint
    reuse_workers: true             # keep Ray worker processes between trials (faster short trials)
    scheduler: {type: asha, metric: clean_acc, mode: max, grace_period: 2}   # optional early stopping
    trackers: [tensorboard, mlflow] # optional experiment trackers (see sweeps.trackers)

``scheduler`` is checked by :func:`sweeps.scheduler.check_scheduler`, ``trackers`` by
:func:`sweeps.trackers.check_trackers`.

Everything is checked before anything runs: unknown keys and options, bad values (every expanded
config goes through :meth:`TrialConfig.from_dict`), empty grids, rules that match nothing, duplicate
trials, non-finite resources, YAML aliases (a "billion laughs" bomb), specs over :data:`MAX_SPEC_BYTES` and
grids of more than ``max_trials`` combinations (default :data:`MAX_TRIALS`, counted before expanding).
Every error is a :class:`SpecError` (a ``ValueError``) whose message starts with ``FILE:LINE:``.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from svconv.config import SWEEP_NAME_RE as NAME_RE
from svconv.config import SWEEP_NAME_RULE as NAME_RULE
from svconv.config import TrialConfig
from sweeps.scheduler import SchedulerOptionError, SchedulerSpec, check_scheduler
from sweeps.trackers import TrackerOptionError, TrackerSpec, check_trackers

SPEC_KEYS = ("name", "description", "fixed", "grid", "exclude", "only", "resources", "concurrency", "retries", "reuse_workers",
             "scheduler", "trackers")
RESOURCE_KEYS = ("cpus", "gpus")
#: ``rank: full`` is accepted as a readable spelling of ``rank: null`` (no TT compression).
FULL_RANK = "full"
#: The largest spec file read, in bytes (1 MiB; the shipped specs are under 4 KiB).
MAX_SPEC_BYTES = 1 << 20
#: The most grid combinations a spec may expand to unless the caller raises it (``--max-trials``).
MAX_TRIALS = 100_000
_MAX_ERRORS = 8


class SpecError(ValueError):
    """A spec that cannot run; the message names the file, the line and the problem."""


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e4`` and ``5e-4`` as floats (YAML 1.1 wants ``1.0e+4``)."""


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")}
_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


@dataclass(frozen=True)
class Resources:
    """What one trial asks of Ray: logical CPUs and a (fraction of a) GPU."""

    cpus: float = 1.0
    gpus: float = 0.0

    def ray(self) -> dict[str, float]:
        """The dict for ``tune.with_resources``."""
        return {"cpu": self.cpus, "gpu": self.gpus}


@dataclass(frozen=True)
class Trial:
    """One expanded trial: its config, its id (the results file name) and the options the grid set."""

    config: TrialConfig
    trial_id: str
    varying: dict[str, Any]

    @property
    def label(self) -> str:
        """Short human name: the grid's options, e.g. ``method=clip rank=8``."""
        parts = [f"{k}={show_value(v)}" for k, v in self.varying.items()]
        return " ".join(parts) or self.trial_id


@dataclass(frozen=True)
class SweepSpec:
    """A validated, expanded spec."""

    name: str
    source: str  # the file it came from (or "<string>")
    text: str  # the spec's own text, kept with the sweep's state
    trials: tuple[Trial, ...]
    description: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    resources: Resources = Resources()
    concurrency: int | None = None
    retries: int = 2
    reuse_workers: bool = True
    scheduler: SchedulerSpec | None = None  # early stopping; None: every trial runs all its epochs
    trackers: tuple[TrackerSpec, ...] = ()

    def grid_options(self) -> list[str]:
        """The options that vary between trials, in spec order."""
        seen: dict[str, None] = {}
        for t in self.trials:
            seen.update(dict.fromkeys(t.varying))
        return list(seen)


def sweep_name(name: str) -> str:
    """A sweep name given on the command line, checked as a spec's ``name`` is (``NAME/`` reads as ``NAME``).

    Raises SpecError for anything else (``../x``, ``a/b``): a name is one folder under the storage root.
    """
    cleaned = name.rstrip("/") if isinstance(name, str) else name
    if not isinstance(cleaned, str) or not NAME_RE.fullmatch(cleaned):
        raise SpecError(f"sweep NAME {NAME_RULE}; got {name!r}")
    return cleaned


#: the folder of the specs shipped with svconv (package data of ``sweeps``: installed with it)
SHIPPED_SPECS = Path(__file__).resolve().parent


def shipped_specs() -> list[str]:
    """Names of the shipped specs (``demo``, ``aol``, ...), sorted: ``svconv sweep run NAME`` takes them."""
    return sorted(p.stem for p in SHIPPED_SPECS.glob("*.yaml"))


def find_spec(path: str | Path) -> Path:
    """The spec file ``path``, or else the shipped spec of that name (``demo`` or ``demo.yaml``), so that an
    installed svconv runs its specs from any folder. Raises :class:`SpecError` listing the shipped names."""
    given = Path(path)
    if given.is_file():
        return given
    shipped = SHIPPED_SPECS / (given.name if given.suffix == ".yaml" else f"{given.name}.yaml")
    if given.parent == Path(".") and shipped.is_file():
        return shipped
    raise SpecError(f"spec file {str(path)!r} not found, and it is no shipped spec; the shipped specs: "
                    f"{', '.join(shipped_specs())}")


def load_spec(path: str | Path, max_trials: int = MAX_TRIALS) -> SweepSpec:
    """Read, validate and expand the spec at ``path`` (a file, or a shipped spec's name: :func:`find_spec`);
    raises :class:`SpecError` naming file and line.

    A grid of more than ``max_trials`` combinations is refused (counted before it is expanded).
    """
    path = find_spec(path)
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}:1: the spec is {size} bytes; a spec may be at most {MAX_SPEC_BYTES} bytes")
    return parse_spec(path.read_text(), source=str(path), max_trials=max_trials)


def parse_spec(text: str, source: str = "<string>", max_trials: int = MAX_TRIALS) -> SweepSpec:
    """Validate and expand the spec in ``text`` (``source`` names it in error messages)."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}:1: the spec is {len(text)} characters; a spec may be at most {MAX_SPEC_BYTES} bytes")
    return _Parser(text, source, max_trials).parse()


# --------------------------------------------------------------------------------------------------
# YAML nodes with their lines


class _Parser:
    def __init__(self, text: str, source: str, max_trials: int = MAX_TRIALS) -> None:
        self.text = text
        self.max_trials = max_trials
        self.source = source
        self.loader = _SpecLoader(text)

    # errors -----------------------------------------------------------------------------------------
    def error(self, node: yaml.Node | None, message: str) -> SpecError:
        line = node.start_mark.line + 1 if node is not None else 1
        return SpecError(f"{self.source}:{line}: {message}")

    # node helpers -----------------------------------------------------------------------------------
    def value(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:  # e.g. a !!python/object tag that SafeLoader will not build
            raise self.error(node, f"not valid YAML: {exc.problem or exc}") from None

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping node; refuses other nodes and duplicate keys."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping (key: value lines)")
        items, seen = [], set()
        for k_node, v_node in node.value:
            key = self.value(k_node)
            if not isinstance(key, str):
                raise self.error(k_node, f"{what}: keys must be names; got {key!r}")
            if key in seen:
                raise self.error(k_node, f"{what}: {key!r} appears twice")
            seen.add(key)
            items.append((key, k_node, v_node))
        return items

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"{what} must be a single value, not a list or mapping")
        return self.value(node)

    def check_tags(self, root: yaml.Node) -> None:
        """Refuse explicit tags other than plain YAML types (``!!python/...`` and the like), wherever they are,
        and aliases (``*name``): a node met twice is an alias, refused at once, so the walk visits each
        node once and a few hundred bytes of nested aliases (a "billion laughs" bomb) cannot expand."""
        stack, seen = [root], set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                raise self.error(node, "not valid YAML: the value anchored here is used again by an alias (*name); aliases are not allowed in a spec, write the values out")
            seen.add(id(node))
            if node.tag not in _PLAIN_TAGS:
                raise self.error(node, f"not valid YAML: the tag {node.tag!r} is not allowed in a spec (plain values only)")
            if isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
            elif isinstance(node, yaml.MappingNode):
                stack.extend(n for pair in node.value for n in pair)

    def option_value(self, name: str, node: yaml.Node, where: str) -> Any:
        """A trial option's value, with ``rank: full`` read as None and ints given to float fields as floats."""
        value = self.scalar(node, f"{where} {name}")
        if name == "rank" and value == FULL_RANK:
            return None
        if _FIELD_TYPES.get(name, "").startswith("float") and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # clip_to: 1 and --clip-to 1 must give the same trial id
        return value

    def check_option(self, name: str, node: yaml.Node, where: str) -> None:
        if name not in _FIELD_TYPES:
            raise self.error(
                node, f"{where}: unknown trial option {name!r}; known options: {', '.join(_FIELD_TYPES)}"
            )

    # the spec ---------------------------------------------------------------------------------------
    def parse(self) -> SweepSpec:
        try:
            root = self.loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            raise SpecError(f"{self.source}:{line}: not valid YAML: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise SpecError(f"{self.source}: not valid YAML: {exc}") from None
        if root is None:
            raise SpecError(f"{self.source}:1: the spec is empty; it needs at least `name` and `grid`")
        self.check_tags(root)
        top = {k: (kn, vn) for k, kn, vn in self.mapping(root, "the spec")}
        for key, (k_node, _) in top.items():
            if key not in SPEC_KEYS:
                raise self.error(k_node, f"unknown spec key {key!r}; known keys: {', '.join(SPEC_KEYS)}")
        for key in ("name", "grid"):
            if key not in top:
                raise self.error(root, f"the spec needs a `{key}`")

        name = self.scalar(top["name"][1], "name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise self.error(top["name"][1], f"name {NAME_RULE}; got {name!r}")
        description = ""
        if "description" in top:
            description = str(self.scalar(top["description"][1], "description") or "")

        fixed, fixed_lines = self.parse_fixed(top.get("fixed", (None, None))[1])
        axes = self.parse_grid(top["grid"][1], fixed)
        exclude = self.parse_rules(top["exclude"][1], "exclude") if "exclude" in top else []
        only = self.parse_rules(top["only"][1], "only") if "only" in top else []
        resources = self.parse_resources(top["resources"][1]) if "resources" in top else Resources()
        concurrency = self.parse_int(top, "concurrency", default=None, minimum=1, allow_null=True)
        retries = self.parse_int(top, "retries", default=2, minimum=0)
        reuse = True
        if "reuse_workers" in top:
            reuse = self.scalar(top["reuse_workers"][1], "reuse_workers")
            if not isinstance(reuse, bool):
                raise self.error(top["reuse_workers"][1], f"reuse_workers must be true or false; got {reuse!r}")

        trials = self.expand(name, fixed, fixed_lines, axes, exclude, only, top["grid"][0])
        scheduler = self.parse_scheduler(top["scheduler"][1], trials) if "scheduler" in top else None
        trackers = self.parse_trackers(top["trackers"][1]) if "trackers" in top else ()
        return SweepSpec(
            name=name,
            source=self.source,
            text=self.text,
            trials=tuple(trials),
            description=description,
            fixed=fixed,
            resources=resources,
            concurrency=concurrency,
            retries=retries,
            reuse_workers=reuse,
            scheduler=scheduler,
            trackers=trackers,
        )

    def parse_fixed(self, node: yaml.Node | None) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
        if node is None or (isinstance(node, yaml.ScalarNode) and self.value(node) is None):
            return {}, {}
        fixed, lines = {}, {}
        for key, k_node, v_node in self.mapping(node, "fixed"):
            self.check_option(key, k_node, "fixed")
            fixed[key] = self.option_value(key, v_node, "fixed")
            lines[key] = v_node
        return fixed, lines

    def parse_grid(self, node: yaml.Node, fixed: Mapping[str, Any]) -> list[list[_Point]]:
        """Each axis: a list of points; a point sets one or more options and remembers its line."""
        items = self.mapping(node, "grid")
        if not items:
            raise self.error(node, "grid is empty: give at least one option with a list of values")
        axes, owner = [], {}  # owner: option -> the grid key that sets it
        for key, k_node, v_node in items:
            if not isinstance(v_node, yaml.SequenceNode):
                raise self.error(v_node, f"grid {key!r} must be a list of values, e.g. {key}: [a, b]")
            if not v_node.value:
                raise self.error(v_node, f"grid {key!r} is an empty list: the sweep would have no trials")
            linked = key not in _FIELD_TYPES
            points = []
            for item in v_node.value:
                if linked:
                    if not isinstance(item, yaml.MappingNode):
                        raise self.error(
                            k_node,
                            f"grid: unknown trial option {key!r} (a linked axis needs mappings of options as "
                            f"values); known options: {', '.join(_FIELD_TYPES)}",
                        )
                    values = {}
                    for opt, o_node, val_node in self.mapping(item, f"grid {key!r}"):
                        self.check_option(opt, o_node, f"grid {key!r}")
                        values[opt] = self.option_value(opt, val_node, f"grid {key!r}")
                    if not values:
                        raise self.error(item, f"grid {key!r}: an empty mapping sets nothing")
                else:
                    values = {key: self.option_value(key, item, "grid")}
                points.append(_Point(values, item))
            for opt in sorted({o for p in points for o in p.values}):
                if opt in fixed:
                    raise self.error(k_node, f"option {opt!r} is both fixed and in the grid ({key!r}); keep one")
                if opt in owner:
                    raise self.error(k_node, f"option {opt!r} is set by two grid axes ({owner[opt]!r} and {key!r})")
                owner[opt] = key
            seen: dict[str, yaml.Node] = {}
            for p in points:
                sig = repr(sorted(p.values.items(), key=lambda kv: kv[0]))
                if sig in seen:
                    raise self.error(p.node, f"grid {key!r} lists the same value twice (first at line {seen[sig].start_mark.line + 1})")
                seen[sig] = p.node
            axes.append(points)
        return axes

    def parse_rules(self, node: yaml.Node, what: str) -> list[_Rule]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list of rules, e.g. {what}: [{{method: none, rank: 8}}]")
        rules = []
        for item in node.value:
            allowed = {}
            for opt, o_node, v_node in self.mapping(item, f"{what} rule"):
                self.check_option(opt, o_node, f"{what} rule")
                if isinstance(v_node, yaml.SequenceNode):
                    if not v_node.value:
                        raise self.error(v_node, f"{what} rule: {opt!r} has an empty list of values")
                    allowed[opt] = [self.option_value(opt, n, f"{what} rule") for n in v_node.value]
                else:
                    allowed[opt] = [self.option_value(opt, v_node, f"{what} rule")]
            if not allowed:
                raise self.error(item, f"{what} rule is empty; it would match every trial")
            rules.append(_Rule(allowed, item))
        return rules

    def parse_resources(self, node: yaml.Node) -> Resources:
        values = {}
        for key, k_node, v_node in self.mapping(node, "resources"):
            if key not in RESOURCE_KEYS:
                raise self.error(k_node, f"unknown resource {key!r}; known: {', '.join(RESOURCE_KEYS)}")
            v = self.scalar(v_node, f"resources {key}")
            if not _is_number(v) or not math.isfinite(v) or v < 0 or (key == "cpus" and v == 0):
                raise self.error(v_node, f"resources {key} must be a finite number {'> 0' if key == 'cpus' else '>= 0'}; got {v!r}")
            if key == "gpus" and v > 1 and v != int(v):
                raise self.error(v_node, f"resources gpus above 1 must be a whole number; got {v!r}")
            values[key] = float(v)
        return Resources(**values)

    def parse_scheduler(self, node: yaml.Node, trials: list[Trial]) -> SchedulerSpec:
        items = self.mapping(node, "scheduler")
        values = {key: self.scalar(v_node, f"scheduler {key}") for key, _, v_node in items}
        lines = {key: (k_node, v_node) for key, k_node, v_node in items}
        try:
            return check_scheduler(values, max(t.config.epochs for t in trials))
        except SchedulerOptionError as exc:
            key_node, value_node = lines.get(exc.key, (node, node))
            raise self.error(key_node if "unknown" in str(exc) else value_node, str(exc)) from None

    def parse_trackers(self, node: yaml.Node) -> tuple[TrackerSpec, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, "trackers must be a list, e.g. trackers: [tensorboard, mlflow]")
        try:
            return check_trackers([self.value(n) for n in node.value])
        except TrackerOptionError as exc:
            raise self.error(node.value[exc.index] if exc.index is not None else node, str(exc)) from None

    def parse_int(self, top: Mapping, key: str, default: Any, minimum: int, allow_null: bool = False) -> Any:
        if key not in top:
            return default
        node = top[key][1]
        v = self.scalar(node, key)
        if v is None and allow_null:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise self.error(node, f"{key} must be an int >= {minimum}{' or null' if allow_null else ''}; got {v!r}")
        return v

    # expansion --------------------------------------------------------------------------------------
    def expand(
        self,
        sweep: str,
        fixed: dict[str, Any],
        fixed_lines: dict[str, yaml.Node],
        axes: list[list[_Point]],
        exclude: list[_Rule],
        only: list[_Rule],
        grid_node: yaml.Node,
    ) -> list[Trial]:
        count = math.prod(len(points) for points in axes)
        if count > self.max_trials:  # counted, not expanded: a 1000 x 1000 grid must not fill the memory
            sizes = " x ".join(str(len(points)) for points in axes)
            raise self.error(
                grid_node,
                f"the grid has {count} combinations ({sizes}); the limit is {self.max_trials} "
                "(raise it with --max-trials N, or split the sweep)",
            )
        combos = []
        for points in itertools.product(*axes):
            values = dict(fixed)
            for p in points:
                values.update(p.values)
            combos.append((values, points))
        # A rule that matches none of the grid's combinations is almost surely a typo in a value.
        for rule in exclude + only:
            if not any(rule.matches(_with_defaults(v)) for v, _ in combos):
                raise self.error(rule.node, f"this rule matches no combination of the grid: {rule.describe()}")
        kept = [
            (v, pts)
            for v, pts in combos
            if not any(r.matches(_with_defaults(v)) for r in exclude)
            and (not only or any(r.matches(_with_defaults(v)) for r in only))
        ]
        if not kept:
            raise self.error(grid_node, f"no trials left: the exclude/only rules remove all {len(combos)} combinations")

        trials, errors, ids = [], [], {}
        for values, points in kept:
            try:
                config = TrialConfig.from_dict(values)
            except (ValueError, TypeError) as exc:
                node = self.culprit(str(exc), values, points, fixed_lines)
                msg = self.error(node, f"trial {_describe(values, points)}: {exc}").args[0]
                if msg not in errors:
                    errors.append(msg)
                continue
            tid = config.trial_id(sweep)
            if tid in ids:
                raise self.error(points[0].node if points else grid_node, f"two grid combinations give the same trial: {_describe(values, points)}")
            ids[tid] = True
            varying = {}
            for p in points:
                varying.update(p.values)
            trials.append(Trial(config=config, trial_id=tid, varying=varying))
        if errors:
            more = f"\n... and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
            raise SpecError("\n".join(errors[:_MAX_ERRORS]) + more)
        return trials

    def culprit(self, message: str, values: Mapping[str, Any], points: tuple, fixed_lines: Mapping[str, yaml.Node]) -> yaml.Node | None:
        """The spec node that set the option a validation message names (first one named)."""
        origin: dict[str, yaml.Node] = dict(fixed_lines)
        for p in points:
            for opt in p.values:
                origin[opt] = p.node
        named = sorted(
            (m.start(), opt) for opt in origin for m in [re.search(rf"\b{re.escape(opt)}\b", message)] if m
        )
        if named:
            return origin[named[0][1]]
        if "unknown" in message or "must be" in message:
            for opt, node in origin.items():
                if repr(values.get(opt)) in message:
                    return node
        return points[0].node if points else None


@dataclass
class _Point:
    values: dict[str, Any]
    node: yaml.Node


@dataclass
class _Rule:
    allowed: dict[str, list[Any]]
    node: yaml.Node

    def matches(self, values: Mapping[str, Any]) -> bool:
        return all(_same_in(values.get(opt), vals) for opt, vals in self.allowed.items())

    def describe(self) -> str:
        return ", ".join(f"{k}={'|'.join(show_value(v) for v in vals)}" for k, vals in self.allowed.items())


def _same_in(value: Any, allowed: list[Any]) -> bool:
    # 1 == True in Python; a rule on a bool option must not match an int and vice versa
    return any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed)


def _with_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    return {**_DEFAULTS, **values}


def _describe(values: Mapping[str, Any], points: tuple) -> str:
    shown = {}
    for p in points:
        shown.update(p.values)
    return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in shown.items()) + "}"


def show_value(value: Any) -> str:
    if value is None:
        return "full"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return str(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(TrialConfig)}
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrialConfig)}


def iter_trial_dicts(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    """Each trial as ``{"trial_id", "label", "config"}`` (plain data, for Ray and for ``sweep.json``)."""
    for t in spec.trials:
        yield {"trial_id": t.trial_id, "label": t.label, "config": t.config.to_dict()}
