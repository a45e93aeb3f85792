"""A sweep's plan between the family's searcher and the run: packing, the dry run's text, the
manifest's plan facts. Every searcher is read through its contract (dgl_ray.tune.searchers.PlanSearcher);
the options are read, never changed."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..batched import default_group_size
from ..errors import ConfigError


def group_sizes(trial_cfgs, given: int | None, on_gpu: bool) -> dict:
    """{model: group size} for these resolved trial configs: ``given`` (--group-size) or a fixed
    function of the model and the device kind (dgl_ray.batched.default_group_size); the digits
    TinyCNN's default is capped so that the trials make at least 4 Tune trials (every worker gets work).
    Each row records its population (group_size, member), which is what an exact rerun needs
    (docs/PACKING.md)."""
    sizes: dict = {}
    for c in trial_cfgs:
        sizes.setdefault(c.model, given if given is not None else default_group_size(c.model, on_gpu))
    if given is None and sizes.get("tinycnn", 1) > 2:
        n = sum(c.model == "tinycnn" for c in trial_cfgs)
        sizes["tinycnn"] = max(2, min(sizes["tinycnn"], -(-n // 4)))
    return sizes


@dataclass(frozen=True)
class SizeRule:
    """The ``size_for`` a searcher packs with: resolved trial configs -> {model: group size}, from
    --group-size (``given``; None: the default per model and device) and the device kind; ``text``,
    ``device`` and ``auto`` phrase the searcher's notes."""
    given: int | None
    on_gpu: bool

    def __call__(self, trial_cfgs) -> dict:
        return group_sizes(trial_cfgs, self.given, self.on_gpu)

    @property
    def auto(self) -> bool:
        return self.given is None

    @property
    def device(self) -> str:
        return "GPU" if self.on_gpu else "CPU"

    def text(self, sizes: dict) -> str:
        how = "default for" if self.auto else "--group-size for"
        return ", ".join(f"{s} {how} {m}" for m, s in sizes.items())


def one_or_all(sizes: dict):
    """One size when every model (and phase) has the same, else the dict (the manifest stores it)."""
    return next(iter(sizes.values())) if len(set(sizes.values())) == 1 else dict(sizes)


def pack_plan(spec, opts):
    """Pack the plan's trials into Tune trials of up to N members trained as one population (same
    data set, model, shapes; see dgl_ray.batched.group_configs). N is --group-size, or by default a
    fixed function of the model and the device kind (``group_sizes``), stated by --dry-run.
    -> (the spec with the packing's notes, the resolved group size the manifest records: one int, or
    {model or phase:model: size}). A grid is packed in plan order; a chained plan packs its
    preparation trials and, as they become ready, its children; the adaptive search proposes a
    population per Tune trial."""
    searcher = spec.searcher
    notes = searcher.pack(SizeRule(opts.group_size, opts.gpus_per_trial > 0))
    return dataclasses.replace(spec, notes=[*spec.notes, *notes]), one_or_all(searcher.group_sizes)


def check_order(spec, opts) -> None:
    """--order orders a grid; chained and adaptive plans order their trials themselves."""
    s = spec.searcher
    if opts.order is not None and not s.takes_order:
        raise ConfigError(f"--order={opts.order} orders grid plans; this {opts.family} plan is "
                          f"{type(s).__name__.replace('Searcher', '').lower()} (drop --order)")


def print_plan(spec, opts) -> None:
    s = spec.searcher
    print(f"{spec.family}: plan for {opts.storage.rstrip('/')}/{opts.name}")
    for line in s.describe():
        print(f"  {line}")
    for note in spec.notes:
        print(f"  {note}")
    print(f"  trial size: {s.size}" + (f" Tune trials ({s.members} trials packed)" if s.members > s.size else ""))


def plan_kind(spec) -> str:
    """The manifest's plan_kind: "grid", "ChainedSearcher" or "BoundarySearcher" (stored values)."""
    return spec.searcher.kind


def members(spec) -> int:
    """(λ, seed) trials of the plan (at most, for chained plans): the manifest's members."""
    return spec.searcher.members
