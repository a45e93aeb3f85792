"""Tune searchers that hand out dgl_ray trial configs: one contract, versioned state.

Every searcher is a :class:`PlanSearcher` (a :class:`ray.tune.search.Searcher`): the sweep command,
the dry run, the manifest and the runner read only its contract (``kind``, ``size``, ``members``,
``plan_configs()``, ``describe()``, ``pack(size_for)``, ``group_sizes`` and typed read-only views).
Its state is a dataclass (:class:`GridState`, :class:`ChainedState`, :class:`BoundaryState`) that
``get_state()`` returns as a versioned plain dict and ``set_state()`` reads back through
:func:`migrate_state`, the one place that knows older stored forms. ``save(path)``/``restore(path)``
pickle it; Tune calls them through ``Tuner.restore``: a restored sweep neither loses nor repeats a
trial the searcher already handed out. Use them with ``TuneConfig(num_samples=-1)``: they end the
sweep by returning ``Searcher.FINISHED``.

Packing: a searcher may hand out several trials as ONE Tune trial, ``{"group": [member config, ...]}``
with the members' shared fields once at the top (``trainable.pack_group``), which the trainable
trains as one population (``dgl_ray.batched``). Every member keeps its own ``plan_id``; the searcher
learns each member's outcome from that member's last row (``on_trial_result`` sees every result, a
grouped trial's holding one row per member, ``trainable.result_rows``; ``on_trial_complete`` only the
Tune trial's last result) and settles a Tune trial's members together, once all of them have ended
(for chained plans: after the trial exported every member's checkpoint) or when the Tune trial
completes or errors (a member without a final row then counts as errored). ``plan.pack_plan`` sets
the group sizes (``pack``); unpacked, every searcher hands out one trial per Tune trial. A packed config
may hold more members than slots (``{"group": [...], "slots": G}``, ``_slots_for``): the queued members
take the slots that decided or finished members free (docs/PACKING.md, "Refilled slots").

- :class:`GridSearcher`: a fixed list of configs (λ ladders x seeds x η x width x ...), in the order the
  plan gives (e.g. every λ of seed 0 first, so partial results already show the whole curve).
- :class:`ChainedSearcher`: preparation trials first (ordered/collapse checkpoints); when one completes
  and passes its acceptance rule (e.g. ordered init error <= 0.30), its follow-up trials are emitted
  with the parent's checkpoint as ``init_checkpoint``.
- :class:`BoundarySearcher`: adaptive; proposes whole populations of λ (continuous in a range, and
  across η or width in two dimensions) where a Bayesian logistic model of P(H | λ) learns most about λ_c
  and the coexistence width (:class:`dgl_ray.design.BoundaryDesign`), until a budget or a precision target.
"""
from __future__ import annotations

import bisect
import copy
import dataclasses
import json
import math
import operator
import pickle
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from ray.tune.search import Searcher

from ..boundary import fit_boundary
from ..design import BoundaryDesign, run_cost
from .. import paper
from ..batched import group_configs
from ..config import TrialConfig, shape_key
from ..errors import ConfigError
from ..rows import ENDED_STATUSES, group_slots, pack_group, result_rows, split_config, unpack_group

FINISHED = Searcher.FINISHED
# a grid with early decisions packs this many times the group size into a Tune trial, the group size
# being its slots: decided members end early, and their slots take queued members instead of idling
QUEUE_FACTOR = 2
# a member's last row has one of these statuses ("error": the trainable's fatal error row; "decided": stopped
# early with its branch, which is its outcome for a searcher)
ENDED = ENDED_STATUSES


def trial_fields(cfg: dict) -> dict:
    """The trial fields of a Tune config (labels, run-time keys and the init checkpoint left out):
    what decides whether trials can share one population."""
    t = split_config(cfg)[0]
    t.pop("init_checkpoint", None)      # the parent's file: per member, and it may not exist yet
    return t


class Shapes:
    """Resolved TrialConfigs of Tune configs, once per shape (configs that differ only in seed and λ
    resolve alike): only the model and the population key are read from them."""

    def __init__(self):
        self._memo: dict = {}

    def __call__(self, cfg: dict):
        k = shape_key(cfg)            # the whole Tune config's shape (labels too): no split per config
        if k not in self._memo:
            self._memo[k] = TrialConfig.from_dict(trial_fields(cfg))
        return self._memo[k]


def pack_indices(trials: list, sizes: dict) -> list[list[int]]:
    """Indices of ``trials`` (resolved TrialConfigs) in groups that one population can train
    (``dgl_ray.batched.group_configs``: equal SHARED fields and V2-ness), at most ``sizes[model]``
    each (1 for a model not named), in plan order inside and across groups (by first member)."""
    groups = []
    for model in dict.fromkeys(t.model for t in trials):
        size = int(sizes.get(model, 1))
        if size < 1:
            raise ValueError(f"group size {size} for {model}: must be >= 1")
        idx = [i for i, t in enumerate(trials) if t.model == model]
        groups += [[idx[j] for j in g] for g in group_configs([trials[i] for i in idx], max_size=size)]
    return sorted(groups, key=lambda g: g[0])


# ---- plan ids ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanId:
    """A trial's id in its plan, typed: ``kind`` is g (grid member), p (preparation run), c (follow-up
    of preparation ``index``, its ``child``-th) or b (adaptive proposal). ``str()`` is the wire form
    that configs, rows and the searcher state hold (``g00003``, ``p0001``, ``c0001_002``, ``b00007``)."""
    kind: str
    index: int
    child: int | None = None

    def __str__(self) -> str:
        if self.kind == "c":
            return f"c{self.index:04d}_{self.child:03d}"
        return f"{self.kind}{self.index:04d}" if self.kind == "p" else f"{self.kind}{self.index:05d}"


# ---- the dry run's table of a plan's fields ------------------------------------------------------

def _short(v) -> str:
    if isinstance(v, (list, dict)):
        t = json.dumps(v)
        return t if len(t) <= 60 else t[:57] + "..."
    return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def axes_lines(cfgs) -> list[str]:
    """One line per config field: its values in plan order (the first and last few of many)."""
    if not cfgs:
        return ["  (none)"]
    seen: dict = {}          # key -> {value (or its JSON text when unhashable): value}, in plan order
    for c in cfgs:
        for k, v in c.items():
            d = seen.get(k)
            if d is None:
                d = seen[k] = {}
            try:
                d.setdefault(v, v)
            except TypeError:   # lists/dicts (schedules)
                d.setdefault(json.dumps(v, sort_keys=True, default=str), v)
    out = []
    for k, d in seen.items():
        if k in ("plan_id",):
            continue
        vals = list(dict.fromkeys(_short(v) for v in d.values()))
        if any(k not in c for c in cfgs):
            vals.append("None")
        shown = ", ".join(vals) if len(vals) <= 6 else f"{', '.join(vals[:3])}, ..., {', '.join(vals[-2:])}"
        out.append(f"  {k:<18} {len(vals):>4} value{'s' if len(vals) > 1 else ' '}: {shown}")
    return out


# ---- state ---------------------------------------------------------------------------------------

# The stored form's version. 1: the pickled dicts {"cls", "state"} of the releases up to December 2026
# (no "version" key); 2: {"cls", "version", "state"} with the fields of the dataclasses below; 3: the
# adaptive search holds a BoundaryDesign's state and its proposals' (λ, axis value, seed) instead of
# λ per plan id and H/L scores per λ.
STATE_VERSION = 3


@dataclass
class SearcherState:
    """What every searcher keeps: live (Tune trial id -> its members' plan ids), ended (plan id -> the
    member's last row, the fields read here, while its Tune trial still runs), done (plan id -> its
    metric) and errored (plan ids): the settled members."""
    live: dict = field(default_factory=dict)
    ended: dict = field(default_factory=dict)
    done: dict = field(default_factory=dict)
    errored: list = field(default_factory=list)


@dataclass
class GridState(SearcherState):
    configs: list = field(default_factory=list)     # the Tune configs, packed groups included
    next: int = 0                                   # Tune configs handed out


@dataclass
class Preparation:
    """One preparation run of a chained plan: its Tune config, its acceptance rule ``(op, threshold)``
    or None, the follow-up configs, and its best-k selection group (None: accepted on its own)."""
    config: dict
    accept: tuple | None
    children: list
    group: str | None = None


@dataclass
class Stage:
    """A chained plan's stage as a family gives it: ``(prep, accept, children[, group])``."""
    prep: dict
    accept: tuple | None
    children: list
    group: str | None = None


@dataclass
class ChainedState(SearcherState):
    preps: list = field(default_factory=list)       # Preparation
    next_prep: int = 0                              # index into prep_groups (one each when unpacked)
    queue: list = field(default_factory=list)       # (plan id, config) of children ready to run
    accepted: list = field(default_factory=list)    # (plan id, error)
    rejected: list = field(default_factory=list)    # (plan id, error)
    reasons: dict = field(default_factory=dict)     # rejected plan id -> why
    select: dict = field(default_factory=dict)      # group -> (k, "min"|"max")
    held: dict = field(default_factory=dict)        # group -> [(plan id, error)] passed, awaiting selection
    prep_groups: list | None = None                 # preparation runs per Tune trial (None: one each)
    child_sizes: dict = field(default_factory=dict)  # model -> children per Tune trial


@dataclass
class BoundaryState(SearcherState):
    base: dict = field(default_factory=dict)
    budget: int = 0
    max_ahead: int = 2
    grid0: list = field(default_factory=list)       # the start λ (the initial design; the plan's stand-in configs)
    n_init: int | None = None                       # trials of the initial design (None: start λ x n0)
    group_size: int = 1
    design: dict = field(default_factory=dict)      # the BoundaryDesign's state: range, axis, every outcome
    proposals: dict = field(default_factory=dict)   # plan id -> [λ, axis value or None, seed], every proposal in order
    known_seeds: list = field(default_factory=list)  # seeds of the results the search started from (never reused)
    target_sd: float | None = None                  # stop once SD(λ_c) <= this and the width is known to ± width_rel
    width_rel: float = 0.25
    queued: int | None = None                       # populations' worth of trials per Tune trial with early
                                                    # decisions (None: a state saved before: QUEUED_POPULATIONS)


def migrate_state(saved: dict, cls_name: str) -> dict:
    """A stored searcher state, any version, as the current form's field dict for ``cls_name``.

    Version 1 (no "version"): ``live`` values were one plan id before packing; ``ended`` and the
    chained plan's ``reasons``/``prep_groups`` may be missing; progress now rebuilt from the rest is
    dropped (grid ``next_member``; chained ``tune_trials``; adaptive ``issued``, ``seeds``, ``pending``,
    ``grid``). A version newer than this code reads is refused in one line."""
    version = saved.get("version", 1)
    if saved.get("cls") != cls_name:
        raise ValueError(f"searcher state of {saved.get('cls')} cannot restore a {cls_name}")
    if not isinstance(version, int) or version > STATE_VERSION:
        raise ValueError(f"searcher state version {version!r} was written by a newer dgl_ray (this one reads "
                         f"versions 1 to {STATE_VERSION}); resume the sweep with the version that started it")
    state = dict(saved["state"])
    if version == 1:
        state["live"] = {t: ([p] if isinstance(p, str) else list(p)) for t, p in state["live"].items()}
        state.setdefault("ended", {})
        if "grid" in state and not state.get("grid0"):
            state["grid0"] = state["grid"]          # an adaptive state saved before grid0 was kept
        for gone in ("next_member", "tune_trials", "issued", "seeds", "pending", "grid"):
            state.pop(gone, None)
        if "preps" in state:
            state["preps"] = [dict(p, group=p.get("group")) for p in state["preps"]]
    if version < 3 and cls_name == "BoundarySearcher":
        state = _boundary_v3(state)
    return state


def _boundary_v3(state: dict) -> dict:
    """An adaptive state of versions 1-2 in version 3's form: each proposal's seed as those versions gave it
    (the base seed plus the proposals at that λ before it), the H/L scores as outcomes of a one-dimensional
    design over the λ it tried (a score 1.0 is "H": the trap was not told apart)."""
    lam_of, scores = state.pop("lam_of", {}), state.pop("outcomes", {})
    seed0, at = int(state.get("base", {}).get("seed", 0)), Counter()
    proposals = {}
    for pid, lam in lam_of.items():
        proposals[pid] = [lam, None, seed0 + at[lam]]
        at[lam] += 1
    tried = [*state.get("grid0", []), *lam_of.values(), *scores]
    lo, hi = (min(tried), max(tried)) if tried else (0.0, 1.0)
    design = BoundaryDesign(lo, max(hi, lo + 0.01))
    for lam, sc in scores.items():
        for v in sc:
            design.add(lam, "H" if v >= 0.5 else "not_H")
    return dict(state, proposals=proposals, design=design.get_state())


class PlanSearcher(Searcher):
    """The contract every dgl_ray searcher keeps; the sweep command and the runner read only this.

    - ``kind``: the manifest's ``plan_kind`` (stored values: never renamed); ``takes_order``: whether
      ``--order`` applies; ``exact_members``: whether every one of ``members`` runs (a grid) rather
      than at most that many
    - ``size``: Tune trials; ``members``: (λ, seed) trials of the plan (at most, for chained plans)
    - ``plan_configs()``: the Tune configs it will (or may) hand out (validation, fingerprint, estimate)
    - ``describe()``: the dry run's lines of its plan
    - ``pack(size_for)``: before the first suggest, pack into populations; ``size_for(resolved trial
      configs) -> {model: size}`` is a :class:`dgl_ray.tune.plan.SizeRule` (its ``text(sizes)``,
      ``device`` and ``auto`` phrase the notes); returns the notes. ``group_sizes``: the sizes it
      packed with, as the manifest records them
    - ``get_state()``/``set_state()``: the versioned state (``State``), older forms via :func:`migrate_state`

    Subclasses implement ``_next()`` (one ``(plan_id, config)`` or a list of them: a group, one Tune
    trial) and ``_complete(plan_id, result, error)``, called once per member when its outcome is known."""

    kind = ""
    takes_order = False
    exact_members = False
    State = SearcherState

    def __init__(self, metric: str = "test_error", mode: str = "min"):
        super().__init__(metric=metric, mode=mode)
        self._state = self.State()
        self._group_sizes: dict = {}

    # -- state --
    def get_state(self) -> dict:
        return {"cls": type(self).__name__, "version": STATE_VERSION, "state": self._to_fields()}

    def _to_fields(self) -> dict:
        # shallow: pickle copies the nested configs (dataclasses.asdict would walk 100k plan configs per save)
        return {f.name: getattr(self._state, f.name) for f in dataclasses.fields(self._state)}

    def set_state(self, state: dict) -> None:
        # a copy: the state read is never shared with its writer (get_state hands out the live fields)
        self._state = self._from_fields(copy.deepcopy(migrate_state(state, type(self).__name__)))
        self._rebuild()

    def _from_fields(self, fields: dict):
        return self.State(**fields)

    def _rebuild(self) -> None:
        """Rebuild what is derived from the state (after set_state)."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def __setstate__(self, d: dict) -> None:
        # a searcher pickled whole by an older release (Tune's tuner.pkl): its state was a plain dict
        self.__dict__.update(d)
        self.__dict__.setdefault("_group_sizes", {})
        if isinstance(self._state, dict):
            self.set_state({"cls": type(self).__name__, "state": self._state})

    # -- views --
    @property
    def done(self) -> dict:
        """Plan id -> metric of the members that finished."""
        return dict(self._state.done)

    @property
    def errored(self) -> list:
        """Plan ids of the members that errored (or ended without a last row)."""
        return list(self._state.errored)

    @property
    def group_sizes(self) -> dict:
        return dict(self._group_sizes)

    @property
    def members(self) -> int:
        """(λ, seed) trials of the plan (at most, for chained plans)."""
        return sum(len(c.get("group", [c])) for c in self.plan_configs())

    def plan_configs(self) -> list[dict]:
        """The configs this searcher will (or may) hand out, for validation and --dry-run."""
        return []

    def describe(self) -> list[str]:
        raise NotImplementedError

    def pack(self, size_for) -> list[str]:
        raise NotImplementedError

    # -- Tune's Searcher interface --
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True   # configs come from the plan, not from param_space

    def suggest(self, trial_id: str):
        if trial_id in self._state.live:
            raise ValueError(f"suggest({trial_id!r}): that Tune trial already holds plan trials "
                             f"{self._state.live[trial_id]}; every Tune trial id is asked once")
        nxt = self._next()
        if nxt is None or nxt is FINISHED:
            return nxt
        items = nxt if isinstance(nxt, list) else [nxt]
        if not items:
            raise RuntimeError(f"{type(self).__name__}._next() handed out an empty group")
        self._state.live[trial_id] = [pid for pid, _ in items]
        cfgs = []
        for pid, cfg in items:
            c = copy.deepcopy(cfg)
            c["plan_id"] = pid
            cfgs.append(c)
        return cfgs[0] if len(cfgs) == 1 else pack_group(cfgs, slots=self._slots_for([pid for pid, _ in items]))

    def _note_end(self, members: list, result: dict) -> None:
        """Keep a member's last row (status completed, diverged or error) until its Tune trial settles;
        a row reported again (a trial retried or resumed from a checkpoint) replaces it. A grouped Tune
        trial reports its members' rows of one epoch as one result (trainable.result_rows reads both)."""
        for row in result_rows(result):
            pid = row.get("plan_id")
            if pid in members and row.get("status") in ENDED:
                self._state.ended[pid] = {"status": row["status"], self.metric: row.get(self.metric),
                                          "test_error": row.get("test_error"), "epoch": row.get("epoch"),
                                          "decided_branch": row.get("decided_branch")}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        members = self._state.live.get(trial_id)
        if not members or not result:
            return
        self._note_end(members, result)
        if all(pid in self._state.ended for pid in members):
            # every member has its last row: the trainable reports the last one after it wrote every
            # member's checkpoint (and exported it), so children may start from them now
            self._settle(trial_id, error=False)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        members = self._state.live.get(trial_id)
        if members is None:
            return          # settled already (all members ended), or not ours
        if result and not error:
            if (len(members) == 1 and "status" not in result and self.metric in result
                    and result.get("plan_id", members[0]) == members[0]):
                # a single trial's last result with the metric but no status (a caller's own dict): its
                # outcome. (A result without the metric, e.g. Tune's bookkeeping only, is no outcome.)
                self._state.ended[members[0]] = {"status": "completed", self.metric: result.get(self.metric),
                                                 "test_error": result.get("test_error"),
                                                 "epoch": result.get("epoch")}
            else:
                self._note_end(members, result)
        self._settle(trial_id, error)

    def _settle(self, trial_id: str, error: bool) -> None:
        """Each member of a finished Tune trial, once: its last row, or errored when it has none (the
        Tune trial errored or ended before that member did)."""
        s = self._state
        members = s.live.pop(trial_id)
        for pid in members:
            end = s.ended.pop(pid, None)
            if pid in s.done or pid in s.errored:
                continue                  # never twice (a member handed out again after a restore)
            if end is None or end["status"] == "error":
                s.errored.append(pid)
                self._complete(pid, dict(end or {}, trial_error=error), True)
            else:
                s.done[pid] = end.get(self.metric)
                self._complete(pid, dict(end, trial_error=error), False)

    # subclass hooks
    def _next(self):
        raise NotImplementedError

    def _slots_for(self, plan_ids: list[str]) -> int | None:
        """The slots of the Tune trial that ``_next`` handed out with these members: fewer than the
        members when some queue for the slots that decided or finished members free (None: a slot each)."""
        return None

    def _complete(self, plan_id: str, result: dict, error: bool) -> None:
        pass

    @property
    def _shapes(self) -> Shapes:
        if "_shape_memo" not in self.__dict__:
            self._shape_memo = Shapes()
        return self._shape_memo

    def _unpacked_note(self, size_for) -> list[str]:
        """The note of a plan that stays one trial per Tune trial: said only when that was the default."""
        return [f"one trial per Tune trial (default group size 1 on {size_for.device})"] if size_for.auto else []


class GridSearcher(PlanSearcher):
    """Emit ``configs`` (a list of Tune config dicts) in order, once each."""

    kind = "grid"
    takes_order = True
    exact_members = True
    State = GridState

    def __init__(self, configs: list[dict], metric: str = "test_error", mode: str = "min"):
        super().__init__(metric, mode)
        self._state.configs = [dict(c) for c in configs]
        self._rebuild()

    def _rebuild(self) -> None:
        # members handed out before Tune config ``next``: a member's plan id is its place in the plan
        self._first_member = [0]
        for c in self._state.configs:
            self._first_member.append(self._first_member[-1] + len(c.get("group", [c])))

    @property
    def size(self) -> int:
        return len(self._state.configs)

    @property
    def configs(self) -> list[dict]:
        """The Tune configs in plan order (a packed group is one)."""
        return list(self._state.configs)

    @property
    def member_configs(self) -> list[dict]:
        """Every member's config, groups unpacked, in plan order."""
        return [m for c in self._state.configs for m in unpack_group(c)]

    def plan_configs(self) -> list[dict]:
        return self._state.configs

    def describe(self) -> list[str]:
        cfgs = self.member_configs
        return [f"{len(cfgs)} trials (grid)", *axes_lines(cfgs)]

    def pack(self, size_for) -> list[str]:
        if self._state.next:
            raise RuntimeError("GridSearcher.pack() after trials were handed out: pack a plan before it runs")
        cfgs = self._state.configs
        trial_cfgs = [self._shapes(c) for c in cfgs]     # only model and the group key are read from these
        sizes = size_for(trial_cfgs)
        self._group_sizes = dict(sizes)
        if max(sizes.values()) <= 1:
            return ([f"one trial per Tune trial (default group size 1 for {', '.join(sizes)} on {size_for.device})"]
                    if size_for.auto else [])
        # with early decisions a Tune trial holds QUEUE_FACTOR x G members in G slots: a decided or
        # finished member's slot takes the next one (docs/PACKING.md, "Refilled slots")
        queued = any(t.decide_early is not None for t in trial_cfgs)
        factor = QUEUE_FACTOR if queued else 1
        groups = pack_indices(trial_cfgs, {m: factor * g for m, g in sizes.items()})
        self._state.configs = [
            cfgs[g[0]] if len(g) == 1 else
            pack_group([cfgs[i] for i in g], slots=sizes[trial_cfgs[g[0]].model] if queued else None)
            for g in groups]
        self._rebuild()
        return [f"{len(cfgs)} trials packed into {len(self._state.configs)} Tune trials (group size "
                f"{size_for.text(sizes)} on {size_for.device})"
                + (f", up to {factor}x as many members queued for the slots decided runs free" if queued else "")]

    def _next(self):
        s = self._state
        if s.next >= len(s.configs):
            return FINISHED
        i = s.next
        s.next += 1
        m = self._first_member[i]
        return [(str(PlanId("g", m + j)), mc) for j, mc in enumerate(unpack_group(s.configs[i]))]

    def _slots_for(self, plan_ids: list[str]) -> int | None:
        # a grid member's plan id is its place in the plan: the Tune config that holds it
        return group_slots(self._state.configs[bisect.bisect_right(self._first_member, int(plan_ids[0][1:])) - 1])


class ChainedSearcher(PlanSearcher):
    """Preparation trials, then the follow-ups of each accepted one.

    ``stages`` is a list of :class:`Stage` or ``(prep_config, accept, children[, group])`` tuples:
    ``prep_config`` is a Tune config (its ``export_checkpoint`` is set here), ``accept`` is ``None`` or
    ``(op, threshold)`` on the prep trial's final ``test_error`` with op one of ``<=, <, >=, >`` (the
    paper's rules: ordered init ``<= 0.30``, collapse checkpoint ``>= 0.40``, trap ``>= 0.85``), and
    ``children`` is a list of Tune configs that get ``init_checkpoint`` (the parent's exported
    checkpoint), ``parent`` and ``init_error``. ``group`` names a best-k selection (Tβ2 v3):
    ``select = {group: (k, "min"|"max")}`` keeps, once every preparation run of the group is done, the
    k that pass ``accept`` with the lowest ("min") or highest ("max") error; the others are rejected
    ("not best k"). Preparation trials are emitted before any child; a child is emitted as soon as its
    parent passes.

    Packed (``pack``): preparation trials go out in populations of up to the group size (members
    that ``group_configs`` allows together, plan order kept), and the children ready at one moment
    (of one accepted parent or of several) go out together, up to the children's group size: a
    ready child never waits for more to come. Each child keeps its own ``init_checkpoint``.
    """

    kind = "ChainedSearcher"
    State = ChainedState
    OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}

    def __init__(self, stages: list, chain_dir: str, metric: str = "test_error", mode: str = "min",
                 select: dict | None = None):
        super().__init__(metric, mode)
        select = dict(select or {})
        for g, (k, how) in select.items():
            if how not in ("min", "max") or int(k) < 1:
                raise ValueError(f"selection {g!r}: ({k!r}, {how!r}); expected (k >= 1, 'min' or 'max')")
        preps = []
        for i, stage in enumerate(stages):
            st = stage if isinstance(stage, Stage) else Stage(*stage)
            if st.accept is not None and st.accept[0] not in self.OPS:
                raise ValueError(f"acceptance op {st.accept[0]!r}; allowed: {', '.join(self.OPS)}")
            if st.accept is not None and not (isinstance(st.accept[1], (int, float)) and 0 <= st.accept[1] <= 1):
                raise ConfigError(f"acceptance threshold {st.accept[0]} {st.accept[1]!r}: an error threshold must "
                                  f"be a number in [0, 1]")
            p = dict(st.prep)
            p.setdefault("role", "prep")
            p["export_checkpoint"] = f"{chain_dir.rstrip('/')}/prep{i:04d}.pt"
            preps.append(Preparation(p, st.accept, [dict(c) for c in st.children],
                                     st.group if st.group in select else None))
        self._state.preps = preps
        self._state.select = select
        self._rebuild()

    def _to_fields(self) -> dict:
        return dict(super()._to_fields(), preps=[dataclasses.asdict(p) for p in self._state.preps])

    def _from_fields(self, fields: dict):
        fields = dict(fields, preps=[Preparation(**p) for p in fields.get("preps", [])])
        return self.State(**fields)

    def _rebuild(self) -> None:
        s = self._state
        self._prep_index = {str(PlanId("p", i)): i for i in range(len(s.preps))}
        self._tune_trials = None if s.prep_groups is None else self._count_tune_trials()

    # -- views --
    @property
    def preparations(self) -> list[Preparation]:
        """The preparation runs in plan order (copies: the plan is changed only by update_preparations)."""
        return copy.deepcopy(self._state.preps)

    @property
    def selections(self) -> dict:
        """Best-k selection group -> (k, "min"|"max")."""
        return dict(self._state.select)

    @property
    def accepted(self) -> list:
        """(plan id, error) of the preparation runs accepted so far, in order."""
        return list(self._state.accepted)

    @property
    def prep_groups(self) -> list | None:
        """Preparation runs (indices) per Tune trial once packed; None when one each."""
        return copy.deepcopy(self._state.prep_groups)

    def update_preparations(self, **fields) -> None:
        """Set ``fields`` in every preparation run's config, before the plan runs (a family's variant)."""
        if self._state.next_prep:
            raise RuntimeError("update_preparations() after trials were handed out")
        for p in self._state.preps:
            p.config.update(fields)

    def summary(self) -> dict:
        s = self._state
        return {"preps": len(s.preps), "accepted": len(s.accepted), "rejected": len(s.rejected)}

    def rejections(self) -> dict:
        """Rejected preparation runs by reason: acceptance rule, error, or best-k selection."""
        out: dict = {}
        for pid, _ in self._state.rejected:
            r = self._state.reasons.get(pid, "acceptance")
            out[r] = out.get(r, 0) + 1
        return out

    # -- the contract --
    @property
    def size(self) -> int:
        """Tune trials if every preparation run is accepted (unpacked: one per trial; packed: an estimate)."""
        return self._tune_trials or self.members

    @property
    def members(self) -> int:
        """(λ, seed) trials if every preparation run is accepted."""
        return sum(1 + len(p.children) for p in self._state.preps)

    def plan_configs(self) -> list[dict]:
        return [p.config for p in self._state.preps] + [c for p in self._state.preps for c in p.children]

    def describe(self) -> list[str]:
        preps = self._state.preps
        kids = [c for p in preps for c in p.children]
        acc = {str(p.accept) for p in preps}
        return [f"{len(preps)} preparation trials (acceptance {', '.join(sorted(acc))}), "
                f"up to {len(kids)} follow-up trials: {self.members} trials at most",
                "preparation:", *axes_lines([p.config for p in preps]),
                "follow-ups:", *axes_lines(kids)]

    def pack(self, size_for) -> list[str]:
        preps = [self._shapes(p.config) for p in self._state.preps]
        kids = [self._shapes(c) for p in self._state.preps for c in p.children]
        prep_sizes, child_sizes = size_for(preps), size_for(kids)
        # the resolved sizes are what the manifest stores: a --resume that would pack otherwise is named
        self._group_sizes = {**{f"prep:{m}": v for m, v in prep_sizes.items()},
                             **{f"child:{m}": v for m, v in child_sizes.items()}}
        if max([*prep_sizes.values(), *child_sizes.values()]) <= 1:
            return self._unpacked_note(size_for)
        self.pack_sizes(prep_sizes, child_sizes)
        return [f"{len(preps)} preparation trials packed into {len(self._state.prep_groups)} Tune trials (group "
                f"size {size_for.text(prep_sizes)} on {size_for.device}); follow-ups packed as they become "
                f"ready, the children ready at one time together (group size {size_for.text(child_sizes)}): "
                f"about {self.size} Tune trials if every preparation trial is accepted"]

    def pack_sizes(self, prep_sizes: dict, child_sizes: dict) -> None:
        """Hand out preparation trials and ready children as populations of up to ``prep_sizes[model]``
        and ``child_sizes[model]`` trials per Tune trial (1 = one each). Before the first suggest."""
        s = self._state
        if s.next_prep or s.live or s.done or s.errored:
            raise RuntimeError("ChainedSearcher.pack() after trials were handed out: pack a plan before it runs")
        for what, sizes in (("preparation", prep_sizes), ("children", child_sizes)):
            bad = {m: v for m, v in sizes.items() if int(v) < 1}
            if bad:
                raise ValueError(f"{what} group sizes {bad}: each must be >= 1")
        s.prep_groups = pack_indices([self._shapes(p.config) for p in s.preps], prep_sizes)
        s.child_sizes = {m: int(v) for m, v in child_sizes.items()}
        self._rebuild()

    def _count_tune_trials(self) -> int:
        """Tune trials if every preparation run is accepted and the children of one preparation
        population become ready together (an estimate: children ready at other times pack apart)."""
        s = self._state
        n = len(s.prep_groups)
        for g in s.prep_groups:
            kids = [self._shapes(c) for i in g for c in s.preps[i].children]
            n += len(pack_indices(kids, s.child_sizes)) if kids else 0
        return n

    def _next(self):
        s = self._state
        groups = s.prep_groups or [[i] for i in range(len(s.preps))]
        if s.next_prep < len(groups):
            g = groups[s.next_prep]
            s.next_prep += 1
            return [(str(PlanId("p", i)), s.preps[i].config) for i in g]
        if s.queue:
            return self._ready_children()
        if s.live:
            return None        # wait: a running parent may still add children
        return FINISHED

    def _ready_children(self):
        """The first queued child and the queued children that may share its population."""
        s = self._state
        q = s.queue
        if not s.child_sizes or max(s.child_sizes.values()) <= 1:
            return q.pop(0)
        first = pack_indices([self._shapes(c) for _, c in q], s.child_sizes)[0]
        taken = set(first)
        s.queue = [item for i, item in enumerate(q) if i not in taken]
        return [q[i] for i in first]

    def _complete(self, plan_id: str, result: dict, error: bool) -> None:
        i = self._prep_index.get(plan_id)
        if i is None:
            return                      # a follow-up: nothing hangs on it
        prep = self._state.preps[i]
        err = result.get("test_error")
        # a preparation run whose Tune trial errored is rejected even if its own last row came: the
        # trial failed before its final report, so its exported checkpoint cannot be trusted
        error = error or bool(result.get("trial_error"))
        ok = not error and err is not None and not (isinstance(err, float) and math.isnan(err))
        if ok and prep.accept is not None:
            op, thr = prep.accept
            ok = self.OPS[op](float(err), float(thr))
        if not ok:
            self._state.rejected.append((plan_id, err))
            self._state.reasons[plan_id] = "error" if error else "acceptance"
            if prep.group is not None:
                self._state.held.setdefault(prep.group, [])
                self._select(prep.group)
            return
        if prep.group is not None:
            self._state.held.setdefault(prep.group, []).append((plan_id, float(err)))
            self._select(prep.group)
            return
        self._accept(i, err)

    def _select(self, group) -> None:
        """Once every preparation run of ``group`` is done, accept its k best, reject the rest."""
        s = self._state
        members = [str(PlanId("p", i)) for i, p in enumerate(s.preps) if p.group == group]
        rejected = {pid for pid, _ in s.rejected}
        held = s.held.get(group, [])
        if len(held) + sum(pid in rejected for pid in members) < len(members):
            return
        k, how = s.select[group]
        ranked = sorted(held, key=lambda pe: pe[1], reverse=(how == "max"))
        for pid, err in ranked[:k]:
            self._accept(self._prep_index[pid], err)
        for pid, err in ranked[k:]:
            s.rejected.append((pid, err))
            s.reasons[pid] = f"not best {k}"
        s.held[group] = []

    def _accept(self, i: int, err) -> None:
        prep = self._state.preps[i]
        plan_id = str(PlanId("p", i))
        self._state.accepted.append((plan_id, err))
        for j, child in enumerate(prep.children):
            c = dict(child)
            c.update(init_checkpoint=prep.config["export_checkpoint"], parent=plan_id, init_error=err)
            c.setdefault("role", "child")
            self._state.queue.append((str(PlanId("c", i, j)), c))


# --------------------------------------------------------------------------------------------------
# adaptive boundary search
# --------------------------------------------------------------------------------------------------

class BoundaryPolicy:
    """The version-2 adaptive rule (one λ at a time on a grid), kept as the baseline that
    ``benchmarks/boundary_search.py`` and ``benchmarks/design_replay.py`` compare against; the searcher
    runs :class:`dgl_ray.design.BoundaryDesign`.

    Start: ``n0`` seeds at every λ of a coarse grid. Then, batch after batch, give the next seeds to
    the λ whose outcomes are most split (largest binomial variance p(1-p) of the H fraction, with a
    Beta(1,1) prior, divided by (n+1) so that well-sampled points yield), and open midpoints (down to
    ``min_step``) between neighbours whose H fractions straddle 1/2. Outcome: 1 (H) if error >= H,
    else 0, the rule of :func:`dgl_ray.analysis.critical_point`'s logistic fit, so both give the same λ_c
    (``L`` is kept for callers that want the three-way branch)."""

    def __init__(self, lambdas, n0: int = 2, min_step: float = 0.01, L: float = paper.L_MAX, H: float = paper.H_MIN):
        self.grid = sorted(round(float(v), 10) for v in lambdas)
        self.n0, self.min_step, self.L, self.H = n0, float(min_step), L, H

    def score(self, v: float) -> float:
        return 1.0 if v >= self.H else 0.0

    def propose(self, outcomes: dict, pending: dict, exclude=()) -> float:
        """Next λ given ``outcomes`` {λ: [scores]} and ``pending`` {λ: count of running trials};
        λ in ``exclude`` are never proposed (a replay whose pool at that λ is used up)."""
        counts = {lam: len(outcomes.get(lam, [])) + pending.get(lam, 0) for lam in self.grid}
        for lam in self.grid:                                 # the initial design first
            if counts[lam] < self.n0:
                return lam
        fr = {lam: (sum(outcomes.get(lam, [])) + 1) / (len(outcomes.get(lam, [])) + 2) for lam in self.grid}
        for a, b in zip(self.grid[:-1], self.grid[1:]):       # refine where the H fraction crosses 1/2
            if (fr[a] - 0.5) * (fr[b] - 0.5) < 0 and b - a > self.min_step * 1.5:
                mid = round(round((a + b) / 2 / self.min_step) * self.min_step, 10)
                if a < mid < b and mid not in self.grid:
                    self.grid = sorted(self.grid + [mid])
                    return mid
        # with a fitted boundary: greedy D-optimal design for the logistic model (λ_c and its slope,
        # hence the coexistence width, together): the next λ maximises p(1-p) x' I^-1 x, x = (1, (λ-λc)/w),
        # I the Fisher information of the trials so far (running ones included)
        xs = [lam for lam, sc in outcomes.items() for v in sc]
        ys = [v for lam, sc in outcomes.items() for v in sc]
        est = fit_boundary(xs, ys, n_boot=0)
        cands = [lam for lam in self.grid if lam not in exclude] or self.grid
        if not math.isnan(est["lambda_c"]):
            c = est["lambda_c"]
            w = max(est["width"] / (2 * math.log(9)), 1e-4)

            def feat(lam):
                z = max(-30.0, min(30.0, (lam - c) / w))
                p = 1 / (1 + math.exp(-z))
                return p * (1 - p), np.array([1.0, z])
            info = np.eye(2) * 1e-6
            for lam in self.grid:
                q, x = feat(lam)
                info += counts[lam] * q * np.outer(x, x)
            inv = np.linalg.inv(info)

            def gain(lam):
                q, x = feat(lam)
                return q * float(x @ inv @ x)
            return max(cands, key=gain)
        return max(cands, key=lambda lam: fr[lam] * (1 - fr[lam]) / (counts[lam] + 1))




# With early decisions on a GPU, a packed adaptive Tune trial carries this many populations' worth of
# trials: the slots of decided members take the queued ones, so the freed device time trains the next
# proposals (a GPU's epoch takes about as long for a few members as for G). On CPUs a population's epoch
# time falls with its members (measured: 3.13x for 5 of 25 members, docs/PACKING.md; 0.36 s -> 0.15 s for
# 3 of 25 live, docs/SWEEPS.md "Time to answer"), so a population that drops its decided members' slots
# (dgl_ray.batched.BatchedTrials) frees that time by itself, and one population per Tune trial keeps the
# proposals close to the outcomes (the queued ones were chosen a population earlier; measured live: more
# trials to the same answer).
QUEUED_POPULATIONS = 2


def outcome_of_row(row: dict) -> str | None:
    """A member's boundary outcome from its last row: a decided member's ``decided_branch``, else the
    outcome of its final error (:func:`dgl_ray.paper.outcome_of`); None without one (diverged, no error)."""
    if row.get("status") == "decided":
        return row.get("decided_branch")
    err = row.get("test_error")
    if err is None or (isinstance(err, float) and math.isnan(err)):
        return None
    return paper.outcome_of(float(err))


class BoundarySearcher(PlanSearcher):
    """Adaptive λ-boundary search within a budget of trials, on a :class:`dgl_ray.design.BoundaryDesign`.

    λ is continuous in [``lo``, ``hi``]; ``axis`` ("eta" or "width", the config key) with ``axis_values``
    makes it two-dimensional (λ_c smooth across the axis). ``base`` is the Tune config shared by all
    trials; every trial gets a fresh seed (the smallest from the base seed on that no proposal and no
    ``known`` result used). ``known``: results already in the sweep's folder, dicts {"lambda", "outcome",
    "seed", <axis>: value}; they enter the design (in one dimension only those of the base's η and width)
    and the search starts without an initial design. Otherwise the initial design puts ``n0`` seeds at
    each λ of ``start`` (and each axis value). Then every round proposes one whole population (G trials,
    the group size) at once, each point informative given the outcomes and every pending trial, with at
    most ``max_ahead`` Tune trials ahead of the results. It stops at the budget, or once SD(λ_c) <=
    ``target_sd`` and the width's 95% interval is within ± ``width_rel`` (at every axis value).

    A member's outcome: "T", "H" or "not_H" from its final error; a decided member's ``decided_branch``;
    a diverged or errored member has none (its trial is spent)."""

    kind = "BoundarySearcher"
    State = BoundaryState

    def __init__(self, base: dict, lo: float, hi: float, budget: int, *, axis: str | None = None,
                 axis_values=(), target_sd: float | None = None, width_rel: float = 0.25, known=(), start=(),
                 n0: int = 0, max_ahead: int = 2, candidates=None, metric: str = "test_error", mode: str = "min"):
        super().__init__(metric, mode)
        if int(budget) < 1 or int(max_ahead) < 1 or int(n0) < 0:
            raise ValueError(f"BoundarySearcher: budget {budget}, max_ahead {max_ahead}, n0 {n0}: budget and "
                             f"max_ahead must be >= 1, n0 >= 0")
        if target_sd is not None and not target_sd > 0:
            raise ConfigError(f"--target-sd={target_sd}: must be > 0 (the SD of λ_c at which the search stops)")
        if not 0 < width_rel:
            raise ConfigError(f"width_rel={width_rel}: must be > 0")
        design = BoundaryDesign(lo, hi, axis=axis, axis_values=axis_values, candidates=candidates,
                                seed=int(base.get("seed", 0)))
        design.aim(target_sd, width_rel)            # with a target, trials go where the binding one gains most
        s = self._state
        s.base, s.budget, s.max_ahead = dict(base), int(budget), int(max_ahead)
        s.target_sd, s.width_rel = target_sd, float(width_rel)
        s.grid0 = sorted(round(float(v), 10) for v in start) or [
            round(float(v), 4) for v in np.linspace(design.lo, design.hi, 5)]
        s.known_seeds = sorted({int(k["seed"]) for k in known if k.get("seed") is not None})
        for k in known:
            if self._models(k, design):
                design.add(k["lambda"], k["outcome"], None if axis is None else k[axis], cost=k.get("cost", 1.0))
        s.n_init = 0 if design.n or not start else len(s.grid0) * int(n0) * max(1, len(design.axis_values))
        s.design = design.get_state()
        self._design = design

    def _models(self, rec: dict, design) -> bool:
        """Whether a result ({"lambda", <axis>: value, "eta", "width", ...}) is of a cell the design models:
        two dimensions, at one of its axis values; one, of the base's η and width (a folder may hold others)."""
        base = self._state.base
        for key in ("eta", "width"):
            v = rec.get(key)
            if key == design.axis:
                if v is None or float(v) not in design.axis_values:
                    return False
            elif v is not None and base.get(key) is not None and float(v) != float(base[key]):
                return False
        return True

    def models(self, rec: dict) -> bool:
        """Whether the result ``rec`` (a row or a known result) is of a cell this search models."""
        return self._models(rec, self._design)

    def empty_design(self) -> BoundaryDesign:
        """A design of this search's range and axis without outcomes (to estimate from a sweep's rows)."""
        return BoundaryDesign.from_state(dict(self._design.get_state(), outcomes=[]))

    def _rebuild(self) -> None:
        s = self._state
        self._design = BoundaryDesign.from_state(s.design)
        if s.n_init is None:                # a state saved before it was kept
            s.n_init = len(s.grid0) * 2

    def _to_fields(self) -> dict:
        return dict(super()._to_fields(), design=self._design.get_state())

    def __getstate__(self) -> dict:
        # Tune pickles the searcher whole (tuner.pkl): its design goes as its state, not its grid (megabytes)
        d = dict(self.__dict__)
        d["_state"] = dataclasses.replace(self._state, design=d.pop("_design").get_state())
        return d

    def __setstate__(self, d: dict) -> None:
        st = d.get("_state")
        if dataclasses.is_dataclass(st) and not hasattr(st, "proposals"):
            d = dict(d, _state=dict(vars(st)))      # pickled whole by a version-2 release: migrate its fields
        super().__setstate__(d)
        if "_design" not in self.__dict__:
            self._rebuild()

    # -- views --
    @property
    def base(self) -> dict:
        return dict(self._state.base)

    @property
    def budget(self) -> int:
        return self._state.budget

    @property
    def max_ahead(self) -> int:
        return self._state.max_ahead

    @property
    def axis(self) -> str | None:
        return self._design.axis

    @property
    def group_size(self) -> int:
        """Trials per Tune trial (1: unpacked)."""
        return self._state.group_size

    def _key(self, lam, x):
        return lam if x is None else (lam, x)

    @property
    def outcomes(self) -> dict:
        """λ (two dimensions: (λ, axis value)) -> outcomes of its settled and known trials (1.0: H or T, 0.0: not H)."""
        return {self._key(lam, x): [0.0] * c["not_H"] + [1.0] * (c["H"] + c["T"])
                for (lam, x), c in self._design.outcomes().items()}

    @property
    def pending(self) -> dict:
        """λ (two dimensions: (λ, axis value)) -> trials proposed there and not settled (every point proposed)."""
        s = self._state
        out: dict = {}
        for pid, (lam, x, _) in s.proposals.items():
            k = self._key(lam, x)
            out[k] = out.get(k, 0) + (pid not in s.done and pid not in s.errored)
        return out

    @property
    def seeds(self) -> list[int]:
        """Every seed used: the known results' and the proposals', in that order."""
        return [*self._state.known_seeds, *(seed for _, _, seed in self._state.proposals.values())]

    def summary(self) -> dict:
        """The design's estimate (:meth:`dgl_ray.design.BoundaryDesign.summary`)."""
        return self._design.summary()

    def reached(self) -> bool:
        """Whether the target (``target_sd``, ``width_rel``) is reached; False without a target."""
        s = self._state
        return s.target_sd is not None and self._design.reached(s.target_sd, s.width_rel)

    @property
    def design_chunk(self) -> int:
        """Trials per Tune trial of the initial design: ``max_ahead`` populations at most, G each."""
        s = self._state
        n_init = min(s.n_init, s.budget)
        return max(1, min(s.group_size, -(-n_init // max(1, s.max_ahead))))

    # -- the contract --
    @property
    def size(self) -> int:
        """Tune trials at most: the budget unpacked; packed, the design's populations plus full ones after it."""
        s = self._state
        if s.group_size <= 1:
            return s.budget
        n_init = min(s.n_init, s.budget)
        return -(-n_init // self.design_chunk) + -(-(s.budget - n_init) // self.per_trial)

    @property
    def members(self) -> int:
        return self._state.budget

    def plan_configs(self) -> list[dict]:
        """``budget`` configs in the initial design's order (λ of the start grid, next seed; axis values
        innermost): the searcher's real λ and seeds depend on the outcomes; these stand for them in
        validation, the storage estimate and the fingerprint."""
        s = self._state
        seed0 = int(s.base.get("seed", 0))
        xs = self._design.axis_values
        if not xs:
            return [{**s.base, "lambda": s.grid0[k % len(s.grid0)], "seed": seed0 + k // len(s.grid0)}
                    for k in range(s.budget)]
        cells = [(lam, x) for lam in s.grid0 for x in xs]
        return [{**s.base, "lambda": cells[k % len(cells)][0], self.axis: cells[k % len(cells)][1],
                 "seed": seed0 + k // len(cells)} for k in range(s.budget)]

    def describe(self) -> list[str]:
        s, d = self._state, self._design
        where = (f"λ in [{d.lo:g}, {d.hi:g}]" if d.axis is None else
                 f"λ in [{d.lo:g}, {d.hi:g}] x {d.axis} {', '.join(f'{v:g}' for v in d.axis_values)} (λ_c smooth in {d.axis})")
        init = (f"initial design {s.grid0} x {s.n_init // len(s.grid0)} trials" if s.n_init
                else f"no initial design ({d.n} known outcomes)" if d.n else "no initial design")
        stop = (f"stops at SD(λ_c) <= {s.target_sd:g} with the width within ±{s.width_rel:.0%}"
                if s.target_sd is not None else "no precision target (runs the whole budget)")
        return [f"adaptive boundary search: budget {self.members} trials, {where}; {init}; then D-optimal "
                f"batches on a Bayesian logistic posterior of λ_c and the width; {stop}",
                *axes_lines([s.base])]

    def pack(self, size_for) -> list[str]:
        sizes = size_for([self._shapes(c) for c in self.plan_configs()])
        self._group_sizes = dict(sizes)
        if max(sizes.values()) <= 1:
            return self._unpacked_note(size_for)
        self.pack_sizes(sizes)
        self._state.queued = QUEUED_POPULATIONS if size_for.on_gpu else 1
        g, ahead = self.per_trial, self._state.max_ahead
        init = f"the initial design in Tune trials of up to {self.design_chunk}, then " if self._state.n_init else ""
        queued = (f", each Tune trial's trials beyond its {self._state.group_size} slots queued for the slots "
                  f"that early decisions free" if g > self._state.group_size else
                  ", a population shrinking as early decisions end its members (on CPUs: its epochs speed up)"
                  if self._state.base.get("decide_early") is not None else "")
        return [f"adaptive trials packed: {init}each "
                f"round proposes up to {g} x {ahead} trials{queued} (group size {size_for.text(sizes)} on "
                f"{size_for.device}; {ahead} Tune trials ahead of the results): at most {self.size} Tune trials "
                f"for {self.members} trials"]

    def pack_sizes(self, sizes: dict) -> None:
        """Populations of up to ``sizes[model]`` trials per Tune trial (1 = one each). Before the first suggest."""
        s = self._state
        if s.proposals:
            raise RuntimeError("BoundarySearcher.pack() after trials were handed out: pack a plan before it runs")
        model = self._shapes(self.plan_configs()[0]).model
        g = int(sizes.get(model, 1))
        if g < 1:
            raise ValueError(f"group size {g} for {model}: must be >= 1")
        s.group_size = g

    @property
    def per_trial(self) -> int:
        """Trials per Tune trial after the initial design: the group size, or with early decisions
        (``decide_early`` in the base config) QUEUED_POPULATIONS times it, the trials beyond the slots
        queued to take the slots that decided members free (``slots`` of the packed config, rows.pack_group)."""
        s = self._state
        g, queued = s.group_size, QUEUED_POPULATIONS if s.queued is None else s.queued
        return g * queued if g > 1 and s.base.get("decide_early") is not None else g

    def suggest(self, trial_id: str):
        cfg = super().suggest(trial_id)
        if isinstance(cfg, dict) and len(cfg.get("group", ())) > self._state.group_size:
            cfg["slots"] = self._state.group_size       # the members beyond the slots wait in its queue
        return cfg

    def _next(self):
        s = self._state
        issued = len(s.proposals)
        n_init = min(s.n_init, s.budget)
        if issued >= s.budget:
            return FINISHED if not s.live else None
        if issued < n_init:
            k = min(self.design_chunk, n_init - issued)
            xs = self._design.axis_values or (None,)
            cells = [(lam, x) for lam in s.grid0 for x in xs]
            points = [cells[i % len(cells)] for i in range(issued, issued + k)]
        else:
            # a batch barrier keeps the design adaptive: at most max_ahead Tune trials ahead of the results
            if len(s.live) >= s.max_ahead:
                return None
            if self.reached():
                return FINISHED if not s.live else None
            k = min(self.per_trial, s.budget - issued)
            pending = [(lam, x) for pid, (lam, x, _) in s.proposals.items()
                       if pid not in s.done and pid not in s.errored]
            points = self._design.propose(k, pending)
        return [self._issue(lam, x) for lam, x in points]

    def _issue(self, lam: float, x):
        """One trial at (λ, x) with the next fresh seed."""
        s = self._state
        used = set(self.seeds)
        seed = int(s.base.get("seed", 0))
        while seed in used:
            seed += 1
        pid = str(PlanId("b", len(s.proposals)))
        s.proposals[pid] = [float(lam), x, seed]
        cfg = dict(s.base)
        cfg.update({"lambda": float(lam), "seed": seed})
        if x is not None:
            cfg[self.axis] = x
        return pid, cfg

    def _complete(self, plan_id: str, result: dict, error: bool) -> None:
        prop = self._state.proposals.get(plan_id)
        if prop is None or error:
            return
        outcome = outcome_of_row(result)
        if outcome is not None:
            self._design.add(prop[0], outcome, prop[1], cost=self._cost_of(result))

    def _cost_of(self, result: dict) -> float:
        """A settled member's cost for the design: the fraction of its epochs it trained (a decided member
        less than 1, so the design learns where answers come cheap); 1 without an epoch to go by."""
        epoch, epochs = result.get("epoch"), self._state.base.get("epochs")
        if result.get("status") != "decided" or not epoch or not epochs:
            return 1.0
        return run_cost(epoch, epochs)
