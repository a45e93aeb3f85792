"""A compact live progress view for sweeps of hundreds of trials.

One status line every ``interval`` seconds (and one at the end), never a table per trial:

    [ 12:34] done 123/400 (err 1) | running 2 | pending 275 | 0.55 trials/s | ETA 8m24s | final error best 0.040 (λ=0.42 s=3) worst 0.921 (λ=0.56 s=7)

Trials of chained or adaptive plans that do not exist yet count as pending (``total`` is the plan's
size, an upper bound for chained plans). With grouped Tune trials (``members`` > ``total``) the line
counts (λ, seed) trials, each finished when its own last row arrives, and names the Tune trials after:

    [ 1m30s] done 150/400 trials (6/16 Tune trials) | Tune trials running 2, pending 8 | 1.67 trials/s | ETA 2m30s | ...

A Tune trial that fails and is retried (its node lost, an error with ``--max-failures`` left) is one
line when it happens and one when it resumes, and :meth:`ProgressLine.fault_lines` sums them up for
the sweep's summary ("1 Tune trial lost with its node, resumed from epoch 15"). Tune's own traceback
of each failed trial is not printed (``TUNE_PRINT_ALL_TRIAL_ERRORS=0``): its full text is in the
trial folder's ``error.txt``, which the line names.
"""
from __future__ import annotations

import os
import sys
import time

# Tune logs every failed trial's traceback (with, for a lost node, Ray's whole actor/node state)
# at the driver; the fault lines below replace it, and Tune keeps the full text in error.txt.
# Read by Tune's controller when a sweep starts (after this module is imported).
os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")

from ray.tune import Callback

from ..rows import result_rows, unpack_group


def _fmt_s(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class ProgressLine(Callback):
    def __init__(self, total: int, interval: float = 10.0, stream=None, already_done: int = 0,
                 members: int | None = None):
        self.total, self.interval, self.stream = total, interval, stream
        self.members = members if members and members > total else None
        self.member_done: set = set()
        self.member_errored: set = set()   # members ended by a fatal error row (status "error")
        self.member_decided: set = set()   # members stopped early with a branch (--decide-early): done
        self.t0 = time.monotonic()
        self.last = 0.0
        self.done, self.errored, self.running = set(), set(), set()
        self.already_done = already_done
        self.members_before = 0            # members of the Tune trials a resumed sweep had finished already
        self._restored_seen = False
        self.best = self.worst = None
        self.retried: dict = {}            # Tune trial id -> its failures: [cause, resumed-from epoch or None]

    def setup(self, **info):
        # a resumed sweep gets this object back from the saved experiment: time it from now
        self.t0, self.last = time.monotonic(), 0.0

    def _label(self, trial, err):
        c = trial.config or {}
        lam = c.get("lambda")
        bits = [f"{err:.3f}"]
        if lam is not None:
            bits.append(f"(λ={lam:g} s={c.get('seed')})")
        return " ".join(bits)

    def on_step_begin(self, iteration, trials, **info):
        if not self._restored_seen:
            self._count_restored(trials)

    def _count_restored(self, trials) -> None:
        """A resumed sweep: the Tune trials it had finished before (restored as TERMINATED, never reported
        to this driver) count as done, with their members, so the line does not start at 0 of N."""
        self._restored_seen = True
        for t in trials:
            if t.status != "TERMINATED" or t.trial_id in self.done or t.trial_id in self.errored:
                continue
            if self.members is None and (getattr(t, "last_result", None) or {}).get("status") == "error":
                self.errored.add(t.trial_id)          # ended by a fatal error row: errored, as it was then
                continue
            self.already_done += 1
            self.members_before += len(unpack_group(t.config or {}))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        if self.members is None and (trial.last_result or {}).get("status") == "error":
            self.errored.add(trial.trial_id)     # a fatal error row: ended, not retried, not done
            return
        self.done.add(trial.trial_id)
        err = (trial.last_result or {}).get("test_error")
        if self.members is None and isinstance(err, (int, float)) and err == err:
            if self.best is None or err < self.best[0]:
                self.best = (err, self._label(trial, err))
            if self.worst is None or err > self.worst[0]:
                self.worst = (err, self._label(trial, err))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        rows = result_rows(result)           # a grouped trial's epoch: one result, a row per member
        self._note_resumed(trial, rows)
        # members of a grouped Tune trial end one by one, each with its own final row
        if self.members is None:
            return
        for row in rows:
            self._member_row(trial, row)

    def on_trial_recover(self, iteration, trials, trial, **info):
        """Tune retries a failed trial (from its last checkpoint): one line, counted for the summary."""
        cause = fault_cause(trial)
        # the node it ran on, asked again for the summary: a killed raylet's node is marked dead only
        # after Ray's health checks (~30 s), when the retry has long been announced
        self.retried.setdefault(trial.trial_id, []).append([cause, None, _node_of(getattr(trial, "last_result", None))])
        where = f"; full error in {error_path(trial)}" if getattr(trial, "error_file", None) else ""
        self._say(f"Tune trial {trial.trial_id} {cause}; retrying from its last checkpoint{where}")

    def _note_resumed(self, trial, rows) -> None:
        """The first result after a retry says where the trial resumed (the epoch before its first row)."""
        faults = self.retried.get(trial.trial_id)
        if not faults or faults[-1][1] is not None:
            return
        epochs = [int(r["epoch"]) for r in rows if isinstance(r.get("epoch"), (int, float))]
        if not epochs:
            return
        faults[-1][1] = min(epochs) - 1
        self._say(f"Tune trial {trial.trial_id} resumed from epoch {faults[-1][1]}")

    def fault_lines(self) -> list[str]:
        """One summary line per kind of fault: how many Tune trials, from which epochs they resumed."""
        by_cause: dict = {}
        for faults in self.retried.values():
            for cause, epoch, *node in faults:      # (entries of older sweeps have no node)
                if cause != "lost with its node" and node and _node_is_dead(node[0]):
                    cause = "lost with its node"
                by_cause.setdefault(cause, []).append(epoch)
        lines = []
        for cause, epochs in by_cause.items():
            n = len(epochs)
            done = sorted({e for e in epochs if e is not None})
            text = f"{n} Tune trial{'s' if n > 1 else ''} {_plural(cause, n)}"
            if done:
                text += f", resumed from epoch{'s' if len(done) > 1 else ''} {', '.join(map(str, done))}"
            not_resumed = sum(e is None for e in epochs)
            if not_resumed:
                text += f" ({not_resumed} not resumed)"
            lines.append(text)
        return lines

    def _say(self, text: str) -> None:
        el = time.monotonic() - self.t0
        print(f"[{_fmt_s(el):>6}] {text}", file=self.stream or sys.stdout, flush=True)

    def _member_row(self, trial, row: dict) -> None:
        if row.get("status") == "error":     # a member's fatal error row: ended, counted as errored
            self.member_errored.add(row.get("run") or trial.trial_id)
            return
        if row.get("status") == "decided":   # ended with a branch: done, never a final error
            self.member_decided.add(row.get("run") or trial.trial_id)
            self.member_done.add(row.get("run") or trial.trial_id)
            return
        if row.get("status") not in ("completed", "diverged"):
            return
        self.member_done.add(row.get("run") or trial.trial_id)
        err = row.get("test_error")
        if isinstance(err, (int, float)) and err == err:
            label = f"{err:.3f} (λ={row.get('lambda', float('nan')):g} s={row.get('seed')})"
            if self.best is None or err < self.best[0]:
                self.best = (err, label)
            if self.worst is None or err > self.worst[0]:
                self.worst = (err, label)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.errored.add(trial.trial_id)     # the summary prints its error (runner.print_errors)

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.print_line(trials)

    def on_experiment_end(self, trials, **info):
        self.print_line(trials)

    def line(self, trials=None) -> str:
        running = sum(1 for t in trials if t.status == "RUNNING") if trials is not None else len(self.running)
        n_done = len(self.done) + self.already_done
        finished = n_done + len(self.errored)
        pending = max(0, self.total - finished - running)
        el = time.monotonic() - self.t0
        rate = len(self.done) / el if el > 0 and self.done else 0.0
        eta = (pending + running) / rate if rate > 0 else float("nan")
        if self.members is not None:
            m_now = len(self.member_done)               # this driver's; the rate counts only these
            m_done = m_now + self.members_before
            m_rate = m_now / el if el > 0 and m_now else 0.0
            eta = (self.members - m_done) / m_rate if m_rate > 0 else float("nan")
            head = (f"done {m_done}/{self.members} trials"
                    + (f" (errored {len(self.member_errored)})" if self.member_errored else "")
                    + (f" (decided early {len(self.member_decided)})" if self.member_decided else "")
                    + f" ({n_done}/{self.total} Tune trials)")
            run_s = f"Tune trials running {running}, pending {pending}"
            rate_s = f"{m_rate:.2f} trials/s"
        else:
            head, rate_s = f"done {n_done}/{self.total}", f"{rate:.2f} trials/s"
            run_s = f"running {running} | pending {pending}"
        s = (f"[{_fmt_s(el):>6}] {head}" + (f" (errored {len(self.errored)})" if self.errored else "")
             + f" | {run_s} | {rate_s} | ETA {_fmt_s(eta)}")
        if self.best:
            s += f" | final error best {self.best[1]} worst {self.worst[1]}"
        return s

    def print_line(self, trials=None) -> None:
        print(self.line(trials), file=self.stream or sys.stdout, flush=True)

    def __getstate__(self):            # Tune pickles callbacks with the experiment state
        d = dict(self.__dict__)
        d["stream"] = None
        return d

    def __setstate__(self, state):     # a sweep saved before retries (decisions, restored trials) were counted resumes too
        state.setdefault("retried", {})
        state.setdefault("member_decided", set())
        state.setdefault("members_before", 0)
        state.setdefault("_restored_seen", False)
        self.__dict__.update(state)


def error_path(trial) -> str:
    """Where the user finds a failed trial's error.txt: its folder in a local sweep folder (Tune copies
    it there from the driver's staging folder), else the staging copy."""
    name = os.path.basename(trial.error_file)
    path = getattr(trial, "path", None)
    return os.path.join(path, name) if path and os.path.isdir(path) else trial.error_file


def fault_cause(trial) -> str:
    """Why a Tune trial failed, in a few words: "lost with its node" when its node died (the actor's
    error says so), else "failed (<exception type>)"."""
    text = ""
    try:
        path = getattr(trial, "error_file", None)
        if path and os.path.exists(path):
            with open(path) as f:
                text = f.read()
    except OSError:
        pass
    if "node has died" in text or "NodeDiedError" in text or "node was terminated" in text:
        return "lost with its node"
    if _node_is_dead(_node_of(getattr(trial, "last_result", None))):
        return "lost with its node"       # a raylet killed: the actor's error only says "Socket closed"
    kind = _exception_type(text)
    return f"failed ({kind})" if kind else "failed"


def _node_of(result) -> str | None:
    """The Ray node a Tune trial last reported from (the trainable's ``node_id``; a packed trial's is
    among the fields its members share)."""
    result = result or {}
    return result.get("node_id") or (result.get("shared") or {}).get("node_id")


def _node_is_dead(node_id: str | None) -> bool:
    if not node_id:
        return False
    try:
        import ray
        return any(n.get("NodeID") == node_id and not n.get("Alive") for n in ray.nodes())
    except Exception:  # noqa: BLE001 - no cluster to ask: the error text alone decides
        return False


def _exception_type(text: str) -> str:
    """The exception class of the last ``Name: message`` line of a traceback text."""
    import re
    names = re.findall(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Failure))\b", text, flags=re.M)
    return names[-1] if names else ""


def _plural(cause: str, n: int) -> str:
    return cause.replace("its node", "their nodes") if n > 1 else cause


def fault_lines(tuner) -> list[str]:
    """The summary lines of the Tune trials a sweep retried, from its :class:`ProgressLine` (the one
    given to the Tuner, or the one a resumed experiment brought back); none without one."""
    try:
        callbacks = tuner._local_tuner.get_run_config().callbacks or []
    except AttributeError:  # a Tuner through Ray Client: no local run config
        return []
    lines = []
    for cb in callbacks:
        if isinstance(cb, ProgressLine):
            lines += cb.fault_lines()
    return lines
