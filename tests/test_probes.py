"""Issue 21, items 6-10: bad input that hung, crashed or slipped through is a one-line `error:` with exit
code 2, before Ray starts. One probe per line: (argv of the `dgl-ray` command, exit code, a piece of the
one-line message). A new option's bad value joins by adding a line. Placeholders in the argv:
{storage} a fresh folder, {bad_utf8} a file that is not UTF-8, {resume_no} a preset with resume = "no",
{ckpt} a saved one-epoch trial, {not_results} a Parquet of another table (no `run`), {deaf} a port that accepts connections but is not Ray, {closed} a closed port."""
import socket
import threading

import pytest

from dgl_ray.cli import main
from tests._sweep_helpers import no_ray  # noqa: F401  (a fixture)

S = ["--storage", "{storage}"]
C = ["sweep", "coexistence", *S]

PROBES = [
    # ranges and plan sizes: counted before anything is built (item 8, 10)
    (C + ["--lambdas", "0.3:inf:0.1"], 2, "start, stop and step must be finite numbers"),
    (C + ["--lambdas", "0:1:0.0000001", "--dry-run"], 2, "10,000,001 values; a sweep plans at most 100,000"),
    (C + ["--n", "1000000000", "--dry-run"], 2, "--n=1000000000: 1,000,000,000 trials"),
    (C + ["--n", "50000", "--lambdas", "0.3,0.4,0.5", "--dry-run"], 2, "150,000 trials; a sweep plans at most"),
    (C + ["--adaptive", "10000000000", "--dry-run"], 2, "--adaptive=10000000000"),
    (C + ["--seeds", "0:1e12:1", "--dry-run"], 2, "a sweep plans at most 100,000"),
    (["sweep", "hysteresis", *S, "--mode", "sweep", "--ordered-n", "100000000", "--dry-run"], 2, "--ordered-n=100000000"),
    # resources that no trial could ever get (item 7)
    (C + ["--num-cpus", "0"], 2, "--num-cpus=0 must be >= 1"),
    (C + ["--cpus-per-trial", "4096"], 2, "--cpus-per-trial=4096 but this machine has"),
    (C + ["--num-cpus", "1", "--cpus-per-trial", "2"], 2, "--cpus-per-trial=2 but --num-cpus=1"),
    # --address: a closed port, and a port that answers but is not Ray (ray.init retried it for minutes)
    (C + ["--address", "127.0.0.1:{closed}"], 2, "no Ray cluster answers there"),
    (C + ["--address", "127.0.0.1:{deaf}"], 2, "a port answers there but not a Ray cluster"),
    # sweep names: one plain folder name (item 9, 10)
    (C + ["--name", "."], 2, "must be one plain folder name"),
    (C + ["--name", ".."], 2, "must be one plain folder name"),
    (C + ["--name", ".hidden"], 2, "not starting with '.'"),
    (C + ["--name", "a/b"], 2, "must be one plain folder name"),
    (C + ["--name", "a" * 300], 2, "(300 characters)"),
    # presets: UTF-8 TOML, switches are TOML booleans (both entry points)
    (C + ["--config", "{bad_utf8}"], 2, "not UTF-8 text"),
    (["sweep", "--config", "{bad_utf8}"], 2, "can't decode byte 0xff"),
    (C + ["--config", "{resume_no}"], 2, "resume = 'no' must be a TOML boolean"),
    # one trial
    (["train", "--ladder", "0.2,foo"], 2, "--ladder='0.2,foo'; expected waypoints"),
    (["train", "--ladder", "0.2,0.4", "--refine", "0.3:x"], 2, "--refine='0.3:x'; expected lo:hi:step"),
    (["train", "--ladder", "0.2,inf"], 2, "--ladder='0.2,inf'"),
    (["train", "--lambda-schedule", "@{bad_utf8}"], 2, "cannot read it as UTF-8 JSON"),
    (["train", "--resume", "{ckpt}", "--epochs", "40"], 2, "--epochs 40 cannot change a saved trial"),
    (["train", "--resume", "{ckpt}", "--lambda", "0.7"], 2, "--lambda 0.7 cannot change a saved trial"),
    (["train", "--resume", "{ckpt}", "--eta", "0.2", "--seed", "3"], 2, "--eta 0.2, --seed 3 cannot change"),
    # report (item 10): a Parquet that is not a results table, by name and as a folder's results.parquet
    (["report", "{not_results}", "--no-figures", "--no-html"], 2, "not a results table of dgl_ray: no 'run'"),
    (["report", "{not_results_dir}", "--no-figures", "--no-html"], 2, "not a results table of dgl_ray: no 'run'"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """The placeholders' files and ports, made once for the module."""
    d = tmp_path_factory.mktemp("probes")
    (d / "bad.toml").write_bytes(b"\xff\xfefamily = 1\n")
    (d / "resume_no.toml").write_text('family = "coexistence"\nresume = "no"\n')
    (d / "other").mkdir()
    import pandas as pd
    pd.DataFrame({"lambda": [0.3], "error": [0.1]}).to_parquet(d / "other" / "results.parquet")
    ckpt = d / "t.pt"
    assert main(["train", "--lambda", "0.3", "--epochs", "1", "--save", str(ckpt), "--quiet"]) == 0
    deaf = socket.socket()                  # accepts connections, never speaks: not a Ray GCS
    deaf.bind(("127.0.0.1", 0))
    deaf.listen(16)
    conns = []
    stop = threading.Event()

    def accept():
        deaf.settimeout(0.5)
        while not stop.is_set():
            try:
                conns.append(deaf.accept()[0])
            except OSError:
                pass
    threading.Thread(target=accept, daemon=True).start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()                          # nothing listens there now
    yield {"not_results": str(d / "other" / "results.parquet"), "not_results_dir": str(d / "other"),
           "bad_utf8": str(d / "bad.toml"), "resume_no": str(d / "resume_no.toml"), "ckpt": str(ckpt),
           "deaf": str(deaf.getsockname()[1]), "closed": str(closed_port)}
    stop.set()
    for c in conns:
        c.close()
    deaf.close()


@pytest.mark.timeout(60)        # a probe that hangs fails here (the --address probe ends in 8 s)
@pytest.mark.parametrize("argv, code, needle", PROBES, ids=[" ".join(p[0])[:60] for p in PROBES])
def test_probe(argv, code, needle, places, tmp_path, capsys, no_ray):  # noqa: F811
    args = [a.format(storage=tmp_path / "s", **places) for a in argv]
    assert main(args) == code
    out = capsys.readouterr()
    err = out.err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert needle in err, err
    assert "epoch" not in out.out                                   # nothing trained
    assert not (tmp_path / "s" / "coexistence").exists()            # nothing written


def test_a_plan_at_the_maximum_is_counted_not_refused():
    from dgl_ray.tune.options import MAX_TRIALS, check_plan_size, check_range_size
    from dgl_ray.errors import ConfigError
    check_plan_size(MAX_TRIALS, "x")
    check_range_size(f"1:{MAX_TRIALS}:1", "--seeds")            # exactly MAX_TRIALS values
    with pytest.raises(ConfigError, match="100,001 values"):
        check_range_size(f"0:{MAX_TRIALS}:1", "--seeds")


def test_preset_booleans_are_kept(tmp_path, capsys, no_ray):  # noqa: F811
    """A TOML boolean is the switch's value (resume = false is no resume; dry-run = true is a dry run)."""
    p = tmp_path / "p.toml"
    p.write_text('family = "coexistence"\nresume = false\ndry-run = true\nlambdas = "0.3"\nn = 1\n')
    assert main(["sweep", "coexistence", "--storage", str(tmp_path), "--config", str(p)]) == 0
    assert "trial size: 1" in capsys.readouterr().out
