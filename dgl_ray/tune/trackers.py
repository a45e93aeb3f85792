"""Experiment trackers through Ray Tune's own logger callbacks, one logged run per (λ, seed) trial.

``--mlflow URI`` uses Ray's ``MLflowLoggerCallback``, ``--wandb PROJECT`` Ray's ``WandbLoggerCallback``
(``WANDB_MODE=offline`` works without network), ``--tensorboard`` Ray's ``TBXLoggerCallback``.

Why thin subclasses: Ray's callbacks log one run per *Tune* trial, but a grouped Tune trial
(``--group-size``) trains many (λ, seed) members and reports one row per member, each with its own
``run`` id (``<tune trial id>_<member>``). Logged as Ray does it, the members would interleave in one
run. :class:`_PerRun` hands Ray's callback a :class:`RunView` per ``run`` instead of the Tune trial:
its own name (the ``run`` id, the same key as the tidy frame), its own config (the member's, with the
group's labels) and its own folder; the step of every result is the trial's ``epoch``, so every
evaluation is one step of its own run. Everything else (clients, actors, writers) is Ray's code.

Without ``--tensorboard`` no event files are written: Ray's default TensorBoard logger would write
one curve per Tune trial with the members of a group interleaved (misleading, and a writer thread per
trial for nothing). With it, each run's events go to ``<trial folder>/runs/<run>/``, so
``tensorboard --logdir <storage>/<name>`` shows one curve per (λ, seed).
"""
from __future__ import annotations

import os
from typing import Dict

from ..errors import ConfigError

EXTRA_HINT = "pip install -e '.[track]'"


class RunView:
    """What Ray's logger callbacks read from a Tune ``Trial``, for one (λ, seed) run of it."""

    def __init__(self, trial, run: str, config: dict):
        self.trial = trial
        self.trial_id = run
        self.config = config
        self.evaluated_params = config       # TensorBoard hparams
        self.experiment_dir_name = getattr(trial, "experiment_dir_name", None)
        # A local sweep folder gets the files directly (Ray's driver staging folder is only synced
        # at its checkpoints); with a URI storage Ray syncs the staging folder to it.
        trial_dir = trial.path if os.path.isdir(trial.path or "") else trial.local_path
        self.local_path = os.path.join(trial_dir, "runs", run)
        self.checkpoint = None               # wandb's upload_checkpoints: not per member
        self.init_local_path()               # W&B's logging actor chdirs into it when it starts

    def init_local_path(self) -> None:
        os.makedirs(self.local_path, exist_ok=True)

    def __str__(self) -> str:
        return self.trial_id

    __repr__ = __str__


def member_configs(trial) -> Dict[str, dict]:
    """run id -> config of each (λ, seed) run of a Tune trial (one for a single trial)."""
    from .trainable import member_run, unpack_group
    config = dict(trial.config)
    if "group" not in config:
        return {trial.trial_id: config}
    return {member_run(trial.trial_id, i): m for i, m in enumerate(unpack_group(config))}


class _PerRun:
    """Mixin over a Ray ``LoggerCallback``: one logged run per ``run`` id, step = ``epoch``."""

    def _views(self, trial) -> dict:
        if not hasattr(self, "_run_views"):
            self._run_views, self._ended = {}, set()
        return self._run_views.setdefault(trial, {})

    def _view(self, trial, run: str) -> RunView:
        views = self._views(trial)
        if run not in views:
            configs = member_configs(trial)
            views[run] = RunView(trial, run, configs.get(run, dict(trial.config)))
            super().log_trial_start(views[run])
        elif views[run] in self._ended:      # a trial retried after a failure: the same run goes on
            self._ended.discard(views[run])
            super().log_trial_start(views[run])
        return views[run]

    def log_trial_start(self, trial) -> None:
        if isinstance(trial, RunView):       # Ray's own code restarting a run's logger
            super().log_trial_start(trial)
            return
        # runs start at their first result: a group's members are only known by their rows
        self._views(trial)

    def log_trial_result(self, iteration: int, trial, result: Dict) -> None:
        if isinstance(result.get("rows"), list):     # a grouped trial's epoch: one result, a row per member
            from .trainable import result_rows
            for row in result_rows(result):
                self.log_trial_result(iteration, trial, row)
            return
        run = str(result.get("run") or trial.trial_id)
        view = self._view(trial, run)
        row = dict(result)
        row.pop("timesteps_total", None)
        epoch = row.get("epoch")
        if epoch is not None:
            row["training_iteration"] = int(epoch)   # the step of every tracker
        super().log_trial_result(iteration, view, row)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        for view in self._views(trial).values():
            if view not in self._ended:
                super().log_trial_end(view, failed=failed)
                self._ended.add(view)


def _need(module: str, flag: str) -> None:
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{flag} needs the Python package {module!r}, which is not installed; "
                          f"install the tracking extra: {EXTRA_HINT}") from None


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import wandb
        return bool(wandb.login(prompt=False))   # checks the stored credentials, never prompts
    except Exception:  # no settings, no netrc: not logged in
        return False


def check_trackers(opts) -> None:
    """Before Ray starts: every tracker flag has its package (one-line error naming the extra)."""
    if getattr(opts, "mlflow", None):
        _need("mlflow", "--mlflow")
        opts.mlflow = _mlflow_uri(opts.mlflow)
        try:
            import mlflow
            mlflow.MlflowClient(tracking_uri=opts.mlflow)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"--mlflow {opts.mlflow}: not a tracking URI MLflow can use ({first})") from None
    if getattr(opts, "wandb", None):
        _need("wandb", "--wandb")
        if os.environ.get("WANDB_MODE") not in ("offline", "disabled") and not _wandb_logged_in():
            raise ConfigError(f"--wandb {opts.wandb}: no W&B API key (set WANDB_API_KEY, run `wandb login`, "
                              "or set WANDB_MODE=offline to write the runs locally)")
    if getattr(opts, "tensorboard", False):
        _need("tensorboardX", "--tensorboard")
    if getattr(opts, "dashboard", False):
        for module in ("aiohttp", "aiohttp_cors", "prometheus_client", "opencensus"):  # ray[default]
            _need(module, "--dashboard")


class _Quiet:
    """Stands in for Ray's default TensorBoard logger, which would interleave a group's members."""

    def __init__(self):
        pass

    def log_trial_start(self, trial):
        pass

    def log_trial_result(self, iteration, trial, result):
        pass

    def log_trial_end(self, trial, failed=False):
        pass


_CLASSES: dict = {}


def tracker_class(kind: str):
    """The callback class of a tracker kind, built on first use: Ray's integration modules import
    MLflow and W&B eagerly (≈ 2.5 s), so that a sweep without tracker flags, or a command line that
    only fails validation, never pays for them. Kinds: mlflow, wandb, tensorboard, none."""
    if kind not in _CLASSES:
        if kind == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback as base
            mixin, name = _PerRun, "MLflowRuns"
        elif kind == "wandb":
            from ray.air.integrations.wandb import WandbLoggerCallback as base
            mixin, name = _PerRun, "WandbRuns"
        elif kind in ("tensorboard", "none"):
            from ray.tune.logger import TBXLoggerCallback as base
            mixin, name = (_PerRun, "TensorBoardRuns") if kind == "tensorboard" else (_Quiet, "NoTensorBoard")
        else:
            raise ValueError(f"tracker kind {kind!r}; expected mlflow, wandb, tensorboard or none")
        _CLASSES[kind] = type(name, (mixin, base), {
            "__doc__": f"Ray's {base.__name__}, one logged run per (λ, seed).", "__module__": __name__,
            "__reduce__": _reduce})
    return _CLASSES[kind]


def _reduce(self):
    return make_tracker, (self._kind, self._kwargs)


def make_tracker(kind: str, kwargs: dict | None = None):
    """An instance of :func:`tracker_class` (picklable: Tune saves the run config's callbacks)."""
    kwargs = dict(kwargs or {})
    cb = tracker_class(kind)(**kwargs)
    cb._kind, cb._kwargs = kind, kwargs
    return cb


def tracker_callbacks(opts) -> list:
    """Ray Tune callbacks for the tracker flags of ``opts`` (``mlflow``, ``wandb``, ``tensorboard``).

    Always includes a TensorBoard callback: without ``--tensorboard`` it writes nothing, so that
    Ray's default one is not added."""
    name = getattr(opts, "name", None) or "dgl_ray"
    callbacks = []
    if getattr(opts, "mlflow", None):
        callbacks.append(make_tracker("mlflow", dict(
            tracking_uri=_mlflow_uri(opts.mlflow), experiment_name=name,
            tags={"family": str(getattr(opts, "family", "")), "sweep": name})))
    if getattr(opts, "wandb", None):
        callbacks.append(make_tracker("wandb", dict(project=opts.wandb, group=name)))
    callbacks.append(make_tracker("tensorboard" if getattr(opts, "tensorboard", False) else "none"))
    return callbacks


def _mlflow_uri(uri: str) -> str:
    """A bare local path becomes an absolute ``file:`` URI (Tune changes the working directory).

    MLflow 3 keeps its file store in maintenance mode and refuses it unless
    ``MLFLOW_ALLOW_FILE_STORE=true``; a ``file:`` store is what the user asked for here, so it is
    allowed for this process (``sqlite:///...`` or a server URI is the long-term choice)."""
    if not ("://" in uri or uri.split(":", 1)[0] in ("file", "sqlite", "databricks")):
        uri = "file:" + os.path.abspath(os.path.expanduser(uri))
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def add_tracker_args(parser) -> None:
    """The tracking flags of every sweep family."""
    g = parser.add_argument_group("tracking (Ray Tune's logger callbacks; one run per (λ, seed) trial)")
    g.add_argument("--mlflow", default=None, metavar="URI",
                   help="log to MLflow: a tracking server URI or a local folder/file: store "
                        f"(needs {EXTRA_HINT})")
    g.add_argument("--wandb", default=None, metavar="PROJECT",
                   help="log to Weights & Biases project PROJECT (WANDB_MODE=offline: no network; "
                        f"needs {EXTRA_HINT})")
    g.add_argument("--tensorboard", action="store_true",
                   help="TensorBoard event files per (λ, seed) under <storage>/<name>/<trial folder>/runs/<run>/")
    g.add_argument("--dashboard", action="store_true",
                   help="start Ray's dashboard with a local Ray instance and print its address")


def print_dashboard(ctx) -> None:
    """Print the address of Ray's dashboard (from ``ray.init``'s context)."""
    url = getattr(ctx, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}" if "://" not in url else f"Ray dashboard: {url}", flush=True)
    else:
        print("Ray dashboard: not running (Ray's dashboard needs 'ray[default]')", flush=True)
