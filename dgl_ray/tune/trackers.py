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

from ..config import TrialConfig
from ..errors import ConfigError
from ..rows import flat_config, member_run, result_rows, split_config, unpack_group
from ..schedules import expand_lambda_schedule, parse_range

EXTRA_HINT = "pip install -e '.[track]'"


class RunView:
    """What Ray's logger callbacks read from a Tune ``Trial``, for one (λ, seed) run of it: its id
    (``trial_id``: the ``run`` column, W&B's run id), its readable name (``str``: MLflow's run name,
    W&B's display name) and its whole resolved config (``config``: MLflow params, W&B config,
    TensorBoard hparams)."""

    def __init__(self, trial, run: str, config: dict, vary: tuple = ()):
        self.trial = trial
        self.trial_id = run
        self.config = run_params(config)
        self.name = run_name(self.config, vary)
        self.scheduled = scheduled_keys(self.config)   # config keys whose value changes within the run
        self.evaluated_params = self.config  # TensorBoard hparams
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
        return self.name

    def __repr__(self) -> str:
        return self.trial_id

    def metrics(self, row: dict) -> dict:
        """The measured values of one evaluation row (see :func:`measured`)."""
        return measured(row, self.config, self.scheduled)


# Result fields that are neither the run's config nor a measurement: the row's identity, where it ran,
# the step itself, and Tune's own bookkeeping (ray.tune.result.AUTO_RESULT_KEYS).
NOT_MEASURED = frozenset({"run", "group", "group_size", "member", "tune_trial", "host", "node_id",
                          "worker_pid", "status", "run_status", "error", "epoch", "step_index",
                          "global_step", "done", "trial_id", "experiment_tag", "should_checkpoint"})


def _auto_result_keys() -> frozenset:
    from ray.tune.result import AUTO_RESULT_KEYS
    return frozenset(AUTO_RESULT_KEYS)


def run_params(config: dict) -> dict:
    """The whole config of one (λ, seed) run as tracker params: the trial config resolved with every
    default (model, lr, batch size, momentum, weight decay, epochs, ... as the trial trains with them;
    lists as JSON text), ``lambda`` when it is constant, and the family's labels. Run-time keys
    (checkpointing, injected failures) are not the experiment's config and are left out."""
    trial, labels, _ = split_config(config)
    try:
        resolved = TrialConfig.from_dict(trial)
    except (ConfigError, TypeError, ValueError):   # the trainable reports it as an error row
        return {k: _param(v) for k, v in {**trial, **labels}.items()}
    params = flat_config(resolved)
    lambdas = {p.lam for p in _plans(resolved.lambda_schedule)}
    if len(lambdas) == 1:
        params["lambda"] = lambdas.pop()
    params.update(labels)
    return {k: _param(v) for k, v in params.items()}


def _plans(schedule) -> list:
    return expand_lambda_schedule(schedule)


def _param(value):
    """A param value every tracker stores as it is: None as text (TensorBoard drops None hparams)."""
    import json
    if value is None:
        return "None"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def scheduled_keys(params: dict) -> frozenset:
    """The row values that follow a schedule within the run, logged as metrics: ``lambda`` when the
    run's λ is scheduled (no constant ``lambda`` param), ``lr`` when it has milestones."""
    keys = set()
    if "lambda" not in params and params.get("lambda_schedule") not in (None, "None"):
        keys.add("lambda")
    if params.get("lr_milestones") not in (None, "None", "[]"):
        keys.add("lr")
    return frozenset(keys)


def measured(row: dict, params: dict, scheduled=frozenset()) -> dict:
    """The numbers of a result row that were measured (test_error, train_loss, avg_cos, norms,
    times, ...) or follow a schedule (``scheduled``): never a config value, an id or a step.

    The row of a run decided early (``--decide-early``, status "decided") logs its error as
    ``test_error_at_decision`` and its branch as ``decided_H`` (1 or 0, with ``p_branch``): a
    tracker's last ``test_error`` (W&B's summary, MLflow's latest value) is read as a final error, and
    a decided run has none."""
    skip = NOT_MEASURED | _auto_result_keys()
    out = {k: v for k, v in row.items()
           if (k in scheduled or (k not in params and k not in skip))
           and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if row.get("status") == "decided":
        if "test_error" in out:
            out["test_error_at_decision"] = out.pop("test_error")
        out["decided_H"] = float(row.get("decided_branch") == "H")
    return out


def run_name(params: dict, vary: tuple = ()) -> str:
    """A readable run name: ``lambda=0.44 seed=7``, with ``eta=``/``width=`` when the sweep varies
    them (``vary``) and the protocol labels a family sets (role, variant, schedule kind, target λ)."""
    lam = params.get("lambda", "scheduled")
    parts = [f"lambda={lam:g}" if isinstance(lam, float) else f"lambda={lam}", f"seed={params.get('seed')}"]
    parts += [f"{k}={params[k]:g}" if isinstance(params.get(k), float) else f"{k}={params.get(k)}"
              for k in vary if k in params]
    parts += [f"{k}={params[k]}" for k in ("role", "variant", "schedule_kind", "target_lambda")
              if params.get(k) not in (None, "None")]
    return " ".join(parts)


def member_configs(trial) -> Dict[str, dict]:
    """run id -> config of each (λ, seed) run of a Tune trial (one for a single trial)."""
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
            views[run] = RunView(trial, run, configs.get(run, dict(trial.config)), getattr(self, "_vary", ()))
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
            for row in result_rows(result):
                self.log_trial_result(iteration, trial, row)
            return
        run = str(result.get("run") or trial.trial_id)
        view = self._view(trial, run)
        epoch = result.get("epoch")
        step = int(epoch) if epoch is not None else int(result.get("training_iteration") or iteration)
        # Ray's callbacks take the step from training_iteration (W&B also keeps it as a history key);
        # the config is already the run's params, so no "config" key here
        super().log_trial_result(iteration, view, {**view.metrics(result), "training_iteration": step})

    def log_trial_end(self, trial, failed: bool = False) -> None:
        for view in self._views(trial).values():
            if view not in self._ended:
                super().log_trial_end(view, failed=failed)
                self._ended.add(view)


class _MLflowRun:
    """MLflow specifics between :class:`_PerRun` and Ray's callback (it sees RunViews only): the
    step is MLflow's own ``step`` (no ``training_iteration`` metric), the ``run`` id is a tag next to
    the readable run name."""

    def log_trial_start(self, view) -> None:
        base_tags = self.tags
        self.tags = {**base_tags, "run": view.trial_id}
        try:
            super().log_trial_start(view)
        finally:
            self.tags = base_tags

    def log_trial_result(self, iteration: int, view, result: Dict) -> None:
        metrics = dict(result)
        step = metrics.pop("training_iteration")
        self.mlflow_util.log_metrics(run_id=self._trial_runs[view], metrics_to_log=metrics, step=step)


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
    if getattr(opts, "mlflow", None):       # (already a URI: dgl_ray.tune.options made it one)
        _need("mlflow", "--mlflow")
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
            mixin, name = (_PerRun, _MLflowRun), "MLflowRuns"
        elif kind == "wandb":
            from ray.air.integrations.wandb import WandbLoggerCallback as base
            mixin, name = _PerRun, "WandbRuns"
        elif kind in ("tensorboard", "none"):
            from ray.tune.logger import TBXLoggerCallback as base
            mixin, name = (_PerRun, "TensorBoardRuns") if kind == "tensorboard" else (_Quiet, "NoTensorBoard")
        else:
            raise ValueError(f"tracker kind {kind!r}; expected mlflow, wandb, tensorboard or none")
        mixins = mixin if isinstance(mixin, tuple) else (mixin,)
        _CLASSES[kind] = type(name, (*mixins, base), {
            "__doc__": f"Ray's {base.__name__}, one logged run per (λ, seed).", "__module__": __name__,
            "__reduce__": _reduce})
    return _CLASSES[kind]


def _reduce(self):
    return make_tracker, (self._kind, self._kwargs, self._vary)


def make_tracker(kind: str, kwargs: dict | None = None, vary: tuple = ()):
    """An instance of :func:`tracker_class` (picklable: Tune saves the run config's callbacks);
    ``vary``: the config keys besides λ and seed that the sweep varies (in the run names)."""
    kwargs = dict(kwargs or {})
    cb = tracker_class(kind)(**kwargs)
    cb._kind, cb._kwargs, cb._vary = kind, kwargs, tuple(vary)
    return cb


def varied_keys(opts) -> tuple:
    """η and width when the sweep's --etas / --widths give several values."""
    keys = []
    for key, flag in (("eta", "etas"), ("width", "widths")):
        text = getattr(opts, flag, None)
        try:
            several = text is not None and len(parse_range(str(text), flag)) > 1
        except Exception:  # validated elsewhere; a name without η/width costs nothing
            several = False
        if several:
            keys.append(key)
    return tuple(keys)


def tracker_callbacks(opts) -> list:
    """Ray Tune callbacks for the tracker flags of ``opts`` (``mlflow``, ``wandb``, ``tensorboard``).

    Always includes a TensorBoard callback: without ``--tensorboard`` it writes nothing, so that
    Ray's default one is not added."""
    name = getattr(opts, "name", None) or "dgl_ray"
    vary = varied_keys(opts)
    callbacks = []
    if getattr(opts, "mlflow", None):
        callbacks.append(make_tracker("mlflow", dict(
            tracking_uri=mlflow_uri(opts.mlflow), experiment_name=name,
            tags={"family": str(getattr(opts, "family", "")), "sweep": name}), vary))
    if getattr(opts, "wandb", None):
        callbacks.append(make_tracker("wandb", dict(project=opts.wandb, group=name), vary))
    callbacks.append(make_tracker("tensorboard" if getattr(opts, "tensorboard", False) else "none", vary=vary))
    return callbacks


def mlflow_uri(uri: str) -> str:
    """A bare local path becomes an absolute ``file:`` URI (Tune changes the working directory).

    MLflow 3 keeps its file store in maintenance mode and refuses it unless
    ``MLFLOW_ALLOW_FILE_STORE=true``; a ``file:`` store is what the user asked for here, so it is
    allowed for this process (``sqlite:///...`` or a server URI is the long-term choice)."""
    if not ("://" in uri or uri.split(":", 1)[0] in ("file", "sqlite", "databricks")):
        uri = "file:" + os.path.abspath(os.path.expanduser(uri))
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def print_dashboard(ctx) -> None:
    """Print the address of Ray's dashboard (from ``ray.init``'s context) and, under Ray's token
    authentication (on by default for a local instance since Ray 2.59, the page opens on
    "Authentication Token Required"), how to get the token: not the token itself, which would end up
    in every log of the sweep."""
    url = getattr(ctx, "dashboard_url", None)
    if url:
        url = f"http://{url}" if "://" not in url else url
        print(f"Ray dashboard: {url}{_token_hint()}", flush=True)
    else:
        print("Ray dashboard: not running (Ray's dashboard needs 'ray[default]')", flush=True)


def _token_hint() -> str:
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
        enabled = is_token_auth_enabled()
    except ImportError:  # a Ray without token authentication
        enabled = False
    if not enabled:
        return ""
    return (" (token authentication: paste the token that `ray get-auth-token` prints, kept in "
            "~/.ray/auth_token, into the page; API clients send `Authorization: Bearer <token>`)")
