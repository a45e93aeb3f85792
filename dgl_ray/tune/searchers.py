"""Tune searchers that hand out dgl_ray trial configs, with a save/restore contract.

All three are :class:`ray.tune.search.Searcher` subclasses. Their whole state is one picklable dict
(``_state``) written by ``save(path)`` and read back by ``restore(path)``, which Tune calls through
``Tuner.restore``: a restored sweep neither loses nor repeats a trial the searcher already handed out.
Use them with ``TuneConfig(num_samples=-1)``: they end the sweep by returning ``Searcher.FINISHED``.

Packing: a searcher may hand out several trials as ONE Tune trial, ``{"group": [member config, ...]}``
with the members' shared fields once at the top (``trainable.pack_group``), which the trainable trains as one population (``dgl_ray.batched``). Every member keeps its own
``plan_id``; the searcher learns each member's outcome from that member's last row (``on_trial_result``
sees every result, a grouped trial's holding one row per member, ``trainable.result_rows``;
``on_trial_complete`` only the Tune trial's last result) and settles a Tune trial's
members together, once all of them have ended (for chained plans: after the trial exported every
member's checkpoint) or when the Tune trial completes or errors (a member without a final row then
counts as errored). ``cli.group_trials`` sets the group sizes (``pack``); unpacked, every searcher
hands out one trial per Tune trial as before.

- :class:`GridSearcher`: a fixed list of configs (λ ladders x seeds x η x width x ...), in the order the
  plan gives (e.g. every λ of seed 0 first, so partial results already show the whole curve).
- :class:`ChainedSearcher`: preparation trials first (ordered/collapse checkpoints); when one completes
  and passes its acceptance rule (e.g. ordered init error <= 0.30), its follow-up trials are emitted
  with the parent's checkpoint as ``init_checkpoint``.
- :class:`BoundarySearcher`: adaptive; spends a budget of trials where outcomes are split between the
  branches (more seeds, finer λ), and estimates λ_c and the coexistence width with bootstrap CIs.
"""
from __future__ import annotations

import copy
import math
import operator
import pickle

import numpy as np
from ray.tune.search import Searcher

from ..boundary import fit_boundary
from ..errors import ConfigError
from ..rows import pack_group, result_rows, split_config, unpack_group

FINISHED = Searcher.FINISHED
# a member's last row has one of these statuses ("error": the trainable's fatal error row)
ENDED = ("completed", "diverged", "error")


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
        from ..config import TrialConfig, shape_key
        k = shape_key(cfg)            # the whole Tune config's shape (labels too): no split per config
        if k not in self._memo:
            self._memo[k] = TrialConfig.from_dict(trial_fields(cfg))
        return self._memo[k]


def pack_indices(trials: list, sizes: dict) -> list[list[int]]:
    """Indices of ``trials`` (resolved TrialConfigs) in groups that one population can train
    (``dgl_ray.batched.group_configs``: equal SHARED fields and V2-ness), at most ``sizes[model]``
    each (1 for a model not named), in plan order inside and across groups (by first member)."""
    from ..batched import group_configs
    groups = []
    for model in dict.fromkeys(t.model for t in trials):
        size = int(sizes.get(model, 1))
        if size < 1:
            raise ValueError(f"group size {size} for {model}: must be >= 1")
        idx = [i for i, t in enumerate(trials) if t.model == model]
        groups += [[idx[j] for j in g] for g in group_configs([trials[i] for i in idx], max_size=size)]
    return sorted(groups, key=lambda g: g[0])


class _StateSearcher(Searcher):
    """Searcher whose state is the dict ``self._state``; subclasses implement ``_next()`` (one
    ``(plan_id, config)`` or a list of them: a group, one Tune trial) and ``_complete(plan_id, result,
    error)``, called once per member when its outcome is known."""

    def __init__(self, metric: str = "test_error", mode: str = "min"):
        super().__init__(metric=metric, mode=mode)
        # live: Tune trial id -> its members' plan ids; ended: plan id -> the member's last row (the
        # fields read here) while its Tune trial still runs; done / errored: settled members
        self._state: dict = {"live": {}, "done": {}, "errored": [], "ended": {}}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True   # configs come from the plan, not from param_space

    def suggest(self, trial_id: str):
        if trial_id in self._state["live"]:
            raise ValueError(f"suggest({trial_id!r}): that Tune trial already holds plan trials "
                             f"{self._state['live'][trial_id]}; every Tune trial id is asked once")
        nxt = self._next()
        if nxt is None or nxt is FINISHED:
            return nxt
        items = nxt if isinstance(nxt, list) else [nxt]
        if not items:
            raise RuntimeError(f"{type(self).__name__}._next() handed out an empty group")
        self._state["live"][trial_id] = [pid for pid, _ in items]
        cfgs = []
        for pid, cfg in items:
            c = copy.deepcopy(cfg)
            c["plan_id"] = pid
            cfgs.append(c)
        return cfgs[0] if len(cfgs) == 1 else pack_group(cfgs)

    def _note_end(self, members: list, result: dict) -> None:
        """Keep a member's last row (status completed, diverged or error) until its Tune trial settles;
        a row reported again (a trial retried or resumed from a checkpoint) replaces it. A grouped Tune
        trial reports its members' rows of one epoch as one result (trainable.result_rows reads both)."""
        for row in result_rows(result):
            pid = row.get("plan_id")
            if pid in members and row.get("status") in ENDED:
                self._state["ended"][pid] = {"status": row["status"], self.metric: row.get(self.metric),
                                             "test_error": row.get("test_error"), "epoch": row.get("epoch")}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        members = self._state["live"].get(trial_id)
        if not members or not result:
            return
        self._note_end(members, result)
        if all(pid in self._state["ended"] for pid in members):
            # every member has its last row: the trainable reports the last one after it wrote every
            # member's checkpoint (and exported it), so children may start from them now
            self._settle(trial_id, error=False)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        members = self._state["live"].get(trial_id)
        if members is None:
            return          # settled already (all members ended), or not ours
        if result and not error:
            if (len(members) == 1 and "status" not in result and self.metric in result
                    and result.get("plan_id", members[0]) == members[0]):
                # a single trial's last result with the metric but no status (a caller's own dict): its
                # outcome. (A result without the metric, e.g. Tune's bookkeeping only, is no outcome.)
                self._state["ended"][members[0]] = {"status": "completed", self.metric: result.get(self.metric),
                                                    "test_error": result.get("test_error"),
                                                    "epoch": result.get("epoch")}
            else:
                self._note_end(members, result)
        self._settle(trial_id, error)

    def _settle(self, trial_id: str, error: bool) -> None:
        """Each member of a finished Tune trial, once: its last row, or errored when it has none (the
        Tune trial errored or ended before that member did)."""
        s = self._state
        members = s["live"].pop(trial_id)
        for pid in members:
            end = s["ended"].pop(pid, None)
            if pid in s["done"] or pid in s["errored"]:
                continue                  # never twice (a member handed out again after a restore)
            if end is None or end["status"] == "error":
                s["errored"].append(pid)
                self._complete(pid, dict(end or {}, trial_error=error), True)
            else:
                s["done"][pid] = end.get(self.metric)
                self._complete(pid, dict(end, trial_error=error), False)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"cls": type(self).__name__, "state": self._state}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            saved = pickle.load(f)
        if saved.get("cls") != type(self).__name__:
            raise ValueError(f"searcher state of {saved.get('cls')} cannot restore a {type(self).__name__}")
        state = saved["state"]
        # a state saved before packing: one plan id per Tune trial, no buffered member rows
        state["live"] = {t: ([p] if isinstance(p, str) else list(p)) for t, p in state["live"].items()}
        state.setdefault("ended", {})
        self._state = state

    # subclass hooks
    def _next(self):
        raise NotImplementedError

    def _complete(self, plan_id: str, result: dict, error: bool) -> None:
        pass

    def plan_configs(self) -> list[dict]:
        """The configs this searcher will (or may) hand out, for validation and --dry-run."""
        return []

    @property
    def n_done(self) -> int:
        return len(self._state["done"])

    @property
    def members(self) -> int:
        """(λ, seed) trials of the plan (at most, for chained plans)."""
        return sum(len(c.get("group", [c])) for c in self.plan_configs())

    @property
    def _shapes(self) -> Shapes:
        if "_shape_memo" not in self.__dict__:
            self._shape_memo = Shapes()
        return self._shape_memo


class GridSearcher(_StateSearcher):
    """Emit ``configs`` (a list of Tune config dicts) in order, once each."""

    def __init__(self, configs: list[dict], metric: str = "test_error", mode: str = "min"):
        super().__init__(metric, mode)
        self._state.update(configs=[dict(c) for c in configs], next=0)

    @property
    def size(self) -> int:
        return len(self._state["configs"])

    def plan_configs(self) -> list[dict]:
        return self._state["configs"]

    def _next(self):
        s = self._state
        if s["next"] >= len(s["configs"]):
            return FINISHED
        i = s["next"]
        if "next_member" not in s:     # a state saved before packing: members handed out so far
            s["next_member"] = sum(len(c.get("group", [c])) for c in s["configs"][:i])
        group = unpack_group(s["configs"][i])
        m = s["next_member"]
        s["next"] += 1
        s["next_member"] = m + len(group)
        # a member's plan id is its place in the unpacked plan, whatever the packing
        return [(f"g{m + j:05d}", mc) for j, mc in enumerate(group)]


class ChainedSearcher(_StateSearcher):
    """Preparation trials, then the follow-ups of each accepted one.

    ``stages`` is a list of ``(prep_config, accept, children)``: ``prep_config`` is a Tune config (its
    ``export_checkpoint`` is set here), ``accept`` is ``None`` or ``(op, threshold)`` on the prep trial's
    final ``test_error`` with op one of ``<=, <, >=, >`` (the paper's rules: ordered init ``<= 0.30``,
    collapse checkpoint ``>= 0.40``, trap ``>= 0.85``), and ``children`` is a list of Tune configs that
    get ``init_checkpoint`` (the parent's exported checkpoint), ``parent`` and ``init_error``.
    Preparation trials are emitted before any child; a child is emitted as soon as its parent passes.

    Packed (``pack``): preparation trials go out in populations of up to the group size (members
    that ``group_configs`` allows together, plan order kept), and the children ready at one moment
    (of one accepted parent or of several) go out together, up to the children's group size: a
    ready child never waits for more to come. Each child keeps its own ``init_checkpoint``.
    """

    OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}

    def __init__(self, stages: list[tuple[dict, tuple | None, list[dict]]], chain_dir: str,
                 metric: str = "test_error", mode: str = "min", select: dict | None = None):
        super().__init__(metric, mode)
        # best-k-of-n (Tβ2 v3): a stage may name a group as 4th element; select = {group: (k, "min"|"max")}
        # keeps, once every preparation run of the group is done, the k that pass ``accept`` with the
        # lowest ("min") or highest ("max") error; the others are rejected ("not best k").
        select = dict(select or {})
        for g, (k, how) in select.items():
            if how not in ("min", "max") or int(k) < 1:
                raise ValueError(f"selection {g!r}: ({k!r}, {how!r}); expected (k >= 1, 'min' or 'max')")
        preps = []
        for i, stage in enumerate(stages):
            prep, accept, children = stage[:3]
            group = stage[3] if len(stage) > 3 else None
            if accept is not None and accept[0] not in self.OPS:
                raise ValueError(f"acceptance op {accept[0]!r}; allowed: {', '.join(self.OPS)}")
            if accept is not None and not (isinstance(accept[1], (int, float)) and 0 <= accept[1] <= 1):
                raise ConfigError(f"acceptance threshold {accept[0]} {accept[1]!r}: an error threshold must be "
                                  f"a number in [0, 1]")
            p = dict(prep)
            p.setdefault("role", "prep")
            p["export_checkpoint"] = f"{chain_dir.rstrip('/')}/prep{i:04d}.pt"
            preps.append({"config": p, "accept": accept, "children": [dict(c) for c in children],
                          "group": group if group in select else None})
        # next_prep indexes prep_groups (None: one preparation trial per Tune trial)
        self._state.update(preps=preps, next_prep=0, queue=[], accepted=[], rejected=[],
                           select=select, held={}, reasons={}, prep_groups=None, child_sizes={},
                           tune_trials=None)

    def pack(self, prep_sizes: dict, child_sizes: dict) -> None:
        """Hand out preparation trials and ready children as populations of up to ``prep_sizes[model]``
        and ``child_sizes[model]`` trials per Tune trial (1 = one each). Before the first suggest."""
        s = self._state
        if s["next_prep"] or s["live"] or s["done"] or s["errored"]:
            raise RuntimeError("ChainedSearcher.pack() after trials were handed out: pack a plan before it runs")
        for what, sizes in (("preparation", prep_sizes), ("children", child_sizes)):
            bad = {m: v for m, v in sizes.items() if int(v) < 1}
            if bad:
                raise ValueError(f"{what} group sizes {bad}: each must be >= 1")
        shapes = self._shapes
        s["prep_groups"] = pack_indices([shapes(p["config"]) for p in s["preps"]], prep_sizes)
        s["child_sizes"] = {m: int(v) for m, v in child_sizes.items()}
        # Tune trials if every preparation run is accepted and the children of one preparation
        # population become ready together (an estimate: children ready at other times pack apart)
        n = len(s["prep_groups"])
        for g in s["prep_groups"]:
            kids = [shapes(c) for i in g for c in s["preps"][i]["children"]]
            n += len(pack_indices(kids, s["child_sizes"])) if kids else 0
        s["tune_trials"] = n

    @property
    def size(self) -> int:
        """Tune trials if every preparation run is accepted (unpacked: one per trial; packed: an estimate)."""
        return self._state.get("tune_trials") or self.members

    @property
    def members(self) -> int:
        """(λ, seed) trials if every preparation run is accepted."""
        return sum(1 + len(p["children"]) for p in self._state["preps"])

    def plan_configs(self) -> list[dict]:
        return [p["config"] for p in self._state["preps"]] + [c for p in self._state["preps"] for c in p["children"]]

    def _next(self):
        s = self._state
        groups = s.get("prep_groups") or [[i] for i in range(len(s["preps"]))]
        if s["next_prep"] < len(groups):
            g = groups[s["next_prep"]]
            s["next_prep"] += 1
            return [(f"p{i:04d}", s["preps"][i]["config"]) for i in g]
        if s["queue"]:
            return self._ready_children()
        if s["live"]:
            return None        # wait: a running parent may still add children
        return FINISHED

    def _ready_children(self):
        """The first queued child and the queued children that may share its population."""
        s = self._state
        q = s["queue"]
        sizes = s.get("child_sizes") or {}
        if not sizes or max(sizes.values()) <= 1:
            return q.pop(0)
        first = pack_indices([self._shapes(c) for _, c in q], sizes)[0]
        taken = set(first)
        s["queue"] = [item for i, item in enumerate(q) if i not in taken]
        return [q[i] for i in first]

    def _complete(self, plan_id: str, result: dict, error: bool) -> None:
        if not plan_id.startswith("p"):
            return
        i = int(plan_id[1:])
        prep = self._state["preps"][i]
        err = result.get("test_error")
        # a preparation run whose Tune trial errored is rejected even if its own last row came: the
        # trial failed before its final report, so its exported checkpoint cannot be trusted
        error = error or bool(result.get("trial_error"))
        ok = not error and err is not None and not (isinstance(err, float) and math.isnan(err))
        if ok and prep["accept"] is not None:
            op, thr = prep["accept"]
            ok = self.OPS[op](float(err), float(thr))
        if not ok:
            self._state["rejected"].append((plan_id, err))
            self._state.setdefault("reasons", {})[plan_id] = "error" if error else "acceptance"
            group = prep.get("group")
            if group is not None:
                self._state["held"].setdefault(group, [])
                self._select(group)
            return
        group = prep.get("group")
        if group is not None:
            self._state["held"].setdefault(group, []).append((plan_id, float(err)))
            self._select(group)
            return
        self._accept(plan_id, err)

    def _select(self, group) -> None:
        """Once every preparation run of ``group`` is done, accept its k best, reject the rest."""
        s = self._state
        members = [f"p{i:04d}" for i, p in enumerate(s["preps"]) if p.get("group") == group]
        rejected = {pid for pid, _ in s["rejected"]}
        held = s["held"].get(group, [])
        if len(held) + sum(pid in rejected for pid in members) < len(members):
            return
        k, how = s["select"][group]
        ranked = sorted(held, key=lambda pe: pe[1], reverse=(how == "max"))
        for pid, err in ranked[:k]:
            self._accept(pid, err)
        for pid, err in ranked[k:]:
            s["rejected"].append((pid, err))
            s["reasons"][pid] = f"not best {k}"
        s["held"][group] = []

    def _accept(self, plan_id: str, err) -> None:
        i = int(plan_id[1:])
        prep = self._state["preps"][i]
        self._state["accepted"].append((plan_id, err))
        for j, child in enumerate(prep["children"]):
            c = dict(child)
            c.update(init_checkpoint=prep["config"]["export_checkpoint"], parent=plan_id, init_error=err)
            c.setdefault("role", "child")
            self._state["queue"].append((f"c{i:04d}_{j:03d}", c))

    def summary(self) -> dict:
        s = self._state
        return {"preps": len(s["preps"]), "accepted": len(s["accepted"]), "rejected": len(s["rejected"])}

    def rejections(self) -> dict:
        """Rejected preparation runs by reason: acceptance rule, error, or best-k selection."""
        out: dict = {}
        for pid, _ in self._state["rejected"]:
            r = self._state.get("reasons", {}).get(pid, "acceptance")
            out[r] = out.get(r, 0) + 1
        return out


# --------------------------------------------------------------------------------------------------
# adaptive boundary search
# --------------------------------------------------------------------------------------------------

class BoundaryPolicy:
    """The adaptive rule, Ray-free (the searcher and the offline benchmark share it).

    Start: ``n0`` seeds at every λ of a coarse grid. Then, batch after batch, give the next seeds to
    the λ whose outcomes are most split (largest binomial variance p(1-p) of the H fraction, with a
    Beta(1,1) prior, divided by (n+1) so that well-sampled points yield), and open midpoints (down to
    ``min_step``) between neighbours whose H fractions straddle 1/2. Outcome: 1 (H) if error >= H,
    else 0, the rule of :func:`dgl_ray.analysis.critical_point`'s logistic fit, so both give the same λ_c
    (``L`` is kept for callers that want the three-way branch)."""

    def __init__(self, lambdas, n0: int = 2, min_step: float = 0.01, L: float = 0.20, H: float = 0.40):
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


class BoundarySearcher(_StateSearcher):
    """Adaptive λ-boundary search within a budget of trials.

    ``max_ahead``: after the initial design, at most this many Tune trials run ahead of the results (set
    it to the number of Tune trials the cluster runs at once). ``base`` is the Tune config shared by all
    trials (η, epochs, model, ...); trial k gets λ from :class:`BoundaryPolicy` and the next unused seed
    at that λ. ``estimate()`` gives λ_c and the coexistence width with bootstrap CIs from the completed
    trials.

    Packed (``pack``): every Tune trial is a population of up to the group size G, so each round
    proposes a batch of up to G x ``max_ahead`` trials, one λ at a time with the proposals so far
    counted as pending (the policy spreads a batch where it gains most, not G copies of one λ). The
    initial design goes out in ``max_ahead`` populations at most G each, so that every worker starts."""

    def __init__(self, base: dict, lambdas, budget: int, n0: int = 2, min_step: float = 0.01,
                 L: float = 0.20, H: float = 0.40, max_ahead: int = 2, metric: str = "test_error",
                 mode: str = "min"):
        super().__init__(metric, mode)
        if int(budget) < 1 or int(max_ahead) < 1 or int(n0) < 1:
            raise ValueError(f"BoundarySearcher: budget {budget}, max_ahead {max_ahead}, n0 {n0}: each must be >= 1")
        self.policy = BoundaryPolicy(lambdas, n0, min_step, L, H)
        self._state.update(base=dict(base), budget=int(budget), issued=0, outcomes={}, pending={}, max_ahead=max_ahead,
                           seeds={}, lam_of={}, grid=list(self.policy.grid),
                           grid0=list(self.policy.grid), n_init=len(self.policy.grid) * self.policy.n0,
                           group_size=1)

    def pack(self, sizes: dict) -> None:
        """Populations of up to ``sizes[model]`` trials per Tune trial (1 = one each). Before the first suggest."""
        s = self._state
        if s["issued"]:
            raise RuntimeError("BoundarySearcher.pack() after trials were handed out: pack a plan before it runs")
        model = self._shapes(self.plan_configs()[0]).model
        g = int(sizes.get(model, 1))
        if g < 1:
            raise ValueError(f"group size {g} for {model}: must be >= 1")
        s["group_size"] = g

    def _design_chunk(self) -> int:
        """Trials per Tune trial of the initial design: ``max_ahead`` populations at most, G each."""
        s = self._state
        n_init = min(s.get("n_init", len(self.policy.grid) * self.policy.n0), s["budget"])
        return max(1, min(s.get("group_size", 1), -(-n_init // max(1, s.get("max_ahead", 2)))))

    @property
    def size(self) -> int:
        """Tune trials: the budget unpacked; packed, the design's populations plus full ones after it."""
        s = self._state
        g = s.get("group_size", 1)
        if g <= 1:
            return s["budget"]
        n_init = min(s.get("n_init", 0), s["budget"])
        return -(-n_init // self._design_chunk()) + -(-(s["budget"] - n_init) // g)

    @property
    def members(self) -> int:
        return self._state["budget"]

    def plan_configs(self) -> list[dict]:
        """``budget`` configs in the initial design's order (λ of the start grid, next seed): the
        searcher's real λ and seeds depend on the outcomes; these stand for them in validation, the
        storage estimate and the fingerprint."""
        s = self._state
        grid = s.get("grid0") or s["grid"]
        seed0 = int(s["base"].get("seed", 0))
        return [{**s["base"], "lambda": grid[k % len(grid)], "seed": seed0 + k // len(grid)}
                for k in range(s["budget"])]

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.policy.grid = list(self._state["grid"])

    def _next(self):
        s = self._state
        if s["issued"] >= s["budget"]:
            return FINISHED if not s["live"] else None
        g = s.get("group_size", 1)
        n_init = min(s.get("n_init", len(self.policy.grid) * self.policy.n0), s["budget"])
        if s["issued"] < n_init:
            k = min(self._design_chunk(), n_init - s["issued"])
        else:
            # a batch barrier keeps the design adaptive: at most max_ahead Tune trials ahead of the results
            if len(s["live"]) >= s.get("max_ahead", 2):
                return None
            k = min(g, s["budget"] - s["issued"])
        return [self._propose() for _ in range(k)]

    def _propose(self):
        """One trial: the policy's λ given the outcomes and everything pending (this batch included)."""
        s = self._state
        lam = self.policy.propose(s["outcomes"], s["pending"])
        s["grid"] = list(self.policy.grid)
        seed = s["seeds"].get(lam, 0)
        s["seeds"][lam] = seed + 1
        s["pending"][lam] = s["pending"].get(lam, 0) + 1
        pid = f"b{s['issued']:05d}"
        s["issued"] += 1
        s["lam_of"][pid] = lam
        cfg = dict(s["base"])
        cfg.update({"lambda": lam, "seed": int(cfg.get("seed", 0)) + seed})
        return pid, cfg

    def _complete(self, plan_id: str, result: dict, error: bool) -> None:
        s = self._state
        lam = s["lam_of"].get(plan_id)
        if lam is None:
            return
        s["pending"][lam] = max(0, s["pending"].get(lam, 0) - 1)
        err = result.get("test_error")
        if not error and err is not None and not (isinstance(err, float) and math.isnan(err)):
            s["outcomes"].setdefault(lam, []).append(self.policy.score(float(err)))

    def estimate(self, **kw) -> dict:
        lams, ys = [], []
        for lam, sc in self._state["outcomes"].items():
            for v in sc:
                if v != 0.5:
                    lams.append(lam)
                    ys.append(v)
        return fit_boundary(lams, ys, **kw)
