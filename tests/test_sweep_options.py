"""SweepOptions: one frozen record built once from the command line and a preset; flags from one table
(TrialConfig's field metadata and SweepOptions' fields); the manifest's options unchanged."""
import dataclasses
import importlib
import os
import sys

import pytest

from dgl_ray.config import TrialConfig
from dgl_ray.errors import ConfigError
from dgl_ray.train import build_parser as train_parser
from dgl_ray.trial_flags import flag_fields, flag_name, parse_milestones
from dgl_ray.tune import cli
from dgl_ray.tune.options import SweepOptions, build_parser, parse, plan_options
from tests._sweep_helpers import no_ray  # noqa: F401  (a fixture)

STORAGE, DATA_ROOT = "/tmp/dgl-manifest-literal", "/tmp/dgl-manifest-data"

# What the code of main (fc617d0) wrote for these commands (with --storage STORAGE --name m --data-root
# DATA_ROOT first; "started" left out, the interpreter and the working folder as placeholders): an old
# sweep resumes only if the options dict, the fingerprint and the command stay exactly these.
TODAYS_MANIFESTS = {'coexistence': (['--lambdas', '0.40,0.44', '--n', '2'],
                                    {'command': 'cd <cwd> && <python> -m dgl_ray.sweeps.coexistence --storage '
                                                '/tmp/dgl-manifest-literal --name m --data-root /tmp/dgl-manifest-data --lambdas '
                                                '0.40,0.44 --n 2 --resume',
                                     'family': 'coexistence',
                                     'fingerprint': '262318b432d6b679',
                                     'members': 4,
                                     'name': 'm',
                                     'options': {'K': 16,
                                                 'adaptive': None,
                                                 'adaptive_n0': 2,
                                                 'adaptive_step': 0.01,
                                                 'batch_size': None,
                                                 'bf16': None,
                                                 'channels_last': None,
                                                 'checkpoint_every': None,
                                                 'compile': None,
                                                 'decide_early': None,
                                                 'data_root': '/tmp/dgl-manifest-data',
                                                 'dataset': 'digits',
                                                 'device': 'auto',
                                                 'epochs': None,
                                                 'etas': '0.4',
                                                 'eval_every': None,
                                                 'fail_at_epoch': None,
                                                 'group_size': 2,
                                                 'lambdas': '0.40,0.44',
                                                 'lr': None,
                                                 'lr_milestones': None,
                                                 'mlflow': None,
                                                 'model': None,
                                                 'n': 2,
                                                 'noise': 'symmetric',
                                                 'order': None,
                                                 'seeds': None,
                                                 'tensorboard': False,
                                                 'tf32': None,
                                                 'wandb': None,
                                                 'widths': '1'},
                                     'plan_form': 2,
                                     'plan_kind': 'grid',
                                     'tool': 'dgl_ray',
                                     'trials': 2}),
                    'hysteresis': (['--mode',
                                    'sweep',
                                    '--dataset',
                                    'cifar10',
                                    '--n',
                                    '2',
                                    '--lr-milestones',
                                    '10,20',
                                    '--ordered-accept',
                                    '0.2'],
                                   {'command': 'cd <cwd> && <python> -m dgl_ray.sweeps.hysteresis --storage '
                                               '/tmp/dgl-manifest-literal --name m --data-root /tmp/dgl-manifest-data --mode '
                                               'sweep --dataset cifar10 --n 2 --lr-milestones 10,20 --ordered-accept 0.2 --resume',
                                    'family': 'hysteresis',
                                    'fingerprint': '75c81767bd50092e',
                                    'members': 8,
                                    'name': 'm',
                                    'options': {'K': 16,
                                                'batch_size': None,
                                                'bf16': None,
                                                'channels_last': None,
                                                'checkpoint_every': None,
                                                'collapse_accept': '0.4',
                                                'collapse_best': 0,
                                                'collapse_epochs': None,
                                                'collapse_lambda': None,
                                                'collapse_milestones': None,
                                                'collapse_n': None,
                                                'collapse_seed_offset': 0,
                                                'compile': None,
                                                'decide_early': None,
                                                'data_root': '/tmp/dgl-manifest-data',
                                                'dataset': 'cifar10',
                                                'device': 'auto',
                                                'down_range': '0.70,0.30',
                                                'epochs': None,
                                                'etas': '0.4',
                                                'eval_every': None,
                                                'fail_at_epoch': None,
                                                'group_size': 1,
                                                'holds': '1',
                                                'ladder_step': 0.02,
                                                'lr': None,
                                                'lr_milestones': '[10, 20]',
                                                'mlflow': None,
                                                'mode': 'sweep',
                                                'model': None,
                                                'n': 2,
                                                'noise': 'symmetric',
                                                'order': None,
                                                'ordered_accept': '0.2',
                                                'ordered_best': 0,
                                                'ordered_epochs': None,
                                                'ordered_lambda': None,
                                                'ordered_milestones': None,
                                                'ordered_n': None,
                                                'ordered_seed_offset': 0,
                                                'points': '0.20,0.64,0.22',
                                                'prep_epochs': None,
                                                'refine': None,
                                                'seeds': None,
                                                'sweep_lr': 0.001,
                                                'tensorboard': False,
                                                'tf32': None,
                                                'up_range': '0.30,0.70',
                                                'wandb': None,
                                                'widths': '1'},
                                    'plan_form': 2,
                                    'plan_kind': 'ChainedSearcher',
                                    'tool': 'dgl_ray',
                                    'trials': 8}),
                    'spinodal': (['--etas',
                                  '0.4,0.8',
                                  '--seeds',
                                  '0,1',
                                  '--eval-every',
                                  '2',
                                  '--max-concurrent',
                                  '3',
                                  '--lr-milestones',
                                  ''],
                                 {'command': 'cd <cwd> && <python> -m dgl_ray.sweeps.spinodal --storage /tmp/dgl-manifest-literal '
                                             '--name m --data-root /tmp/dgl-manifest-data --etas 0.4,0.8 --seeds 0,1 --eval-every '
                                             "2 --max-concurrent 3 --lr-milestones '' --resume",
                                  'family': 'spinodal',
                                  'fingerprint': '1b552cbc2ef95a92',
                                  'members': 16,
                                  'name': 'm',
                                  'options': {'K': 16,
                                              'batch_size': None,
                                              'bf16': None,
                                              'channels_last': None,
                                              'checkpoint_every': None,
                                              'compile': None,
                                              'decide_early': None,
                                              'data_root': '/tmp/dgl-manifest-data',
                                              'dataset': 'digits',
                                              'device': 'auto',
                                              'directions': 'up,down',
                                              'down_init': 0.65,
                                              'down_ladder': '0.60,0.20',
                                              'down_start_min': 0.4,
                                              'epochs': None,
                                              'etas': '0.4,0.8',
                                              'eval_every': 2,
                                              'fail_at_epoch': None,
                                              'group_size': 4,
                                              'holds': '1,3',
                                              'init_epochs': None,
                                              'ladder_step': 0.02,
                                              'lr': None,
                                              'lr_milestones': '[]',
                                              'mlflow': None,
                                              'model': None,
                                              'n': None,
                                              'noise': 'symmetric',
                                              'order': None,
                                              'seeds': '0,1',
                                              'tensorboard': False,
                                              'tf32': None,
                                              'up_init': None,
                                              'up_ladder': None,
                                              'up_start_max': 0.3,
                                              'wandb': None,
                                              'widths': '1'},
                                  'plan_form': 2,
                                  'plan_kind': 'grid',
                                  'tool': 'dgl_ray',
                                  'trials': 4}),
                    'trap': (['--n', '3', '--epochs', '2', '--tensorboard', '--bf16', '--no-channels-last', '--group-size', '2'],
                             {'command': 'cd <cwd> && <python> -m dgl_ray.sweeps.trap --storage /tmp/dgl-manifest-literal --name '
                                         'm --data-root /tmp/dgl-manifest-data --n 3 --epochs 2 --tensorboard --bf16 '
                                         '--no-channels-last --group-size 2 --resume',
                              'family': 'trap',
                              'fingerprint': '7ae0a0ccc924fb69',
                              'members': 30,
                              'name': 'm',
                              'options': {'K': 16,
                                          'batch_size': None,
                                          'bf16': True,
                                          'channels_last': False,
                                          'checkpoint_every': None,
                                          'compile': None,
                                          'decide_early': None,
                                          'data_root': '/tmp/dgl-manifest-data',
                                          'dataset': 'digits',
                                          'device': 'auto',
                                          'epochs': 2,
                                          'escape_below': 0.6,
                                          'etas': '0.4',
                                          'eval_every': None,
                                          'fail_at_epoch': None,
                                          'group_size': 2,
                                          'intervention_epochs': None,
                                          'intervention_lambdas': '0.60,0.0,0.20',
                                          'lr': None,
                                          'lr_milestones': None,
                                          'lr_multipliers': '0.01,0.1,1',
                                          'mlflow': None,
                                          'model': None,
                                          'n': 3,
                                          'noise': 'symmetric',
                                          'order': None,
                                          'seeds': None,
                                          'tensorboard': True,
                                          'tf32': None,
                                          'trap_accept': 0.85,
                                          'trap_epochs': None,
                                          'trap_lambda': 0.6,
                                          'wandb': None,
                                          'widths': '1'},
                              'plan_form': 2,
                              'plan_kind': 'ChainedSearcher',
                              'tool': 'dgl_ray',
                              'trials': 30}),
                    'universality': (['--variant', 'asymmetric', '--n', '2'],
                                     {'command': 'cd <cwd> && <python> -m dgl_ray.sweeps.universality --storage '
                                                 '/tmp/dgl-manifest-literal --name m --data-root /tmp/dgl-manifest-data --variant '
                                                 'asymmetric --n 2 --resume',
                                      'family': 'universality',
                                      'fingerprint': '4dc4ae11129a0fbb',
                                      'members': 8,
                                      'name': 'm',
                                      'options': {'K': 16,
                                                  'batch_size': None,
                                                  'bf16': None,
                                                  'channels_last': None,
                                                  'checkpoint_every': None,
                                                  'collapse_accept': '0.4',
                                                  'collapse_best': 0,
                                                  'collapse_epochs': None,
                                                  'collapse_lambda': None,
                                                  'collapse_milestones': None,
                                                  'collapse_n': None,
                                                  'collapse_seed_offset': 0,
                                                  'compile': None,
                                                  'decide_early': None,
                                                  'data_root': '/tmp/dgl-manifest-data',
                                                  'dataset': 'digits',
                                                  'device': 'auto',
                                                  'down_range': '0.70,0.30',
                                                  'epochs': None,
                                                  'etas': '0.4',
                                                  'eval_every': None,
                                                  'fail_at_epoch': None,
                                                  'group_size': 2,
                                                  'holds': '3',
                                                  'ladder_step': 0.05,
                                                  'lr': None,
                                                  'lr_milestones': None,
                                                  'mlflow': None,
                                                  'model': None,
                                                  'n': 2,
                                                  'noise': 'asymmetric',
                                                  'order': None,
                                                  'ordered_accept': '0.2',
                                                  'ordered_best': 0,
                                                  'ordered_epochs': None,
                                                  'ordered_lambda': None,
                                                  'ordered_milestones': None,
                                                  'ordered_n': None,
                                                  'ordered_seed_offset': 0,
                                                  'prep_epochs': None,
                                                  'seeds': None,
                                                  'sweep_lr': 0.001,
                                                  'tensorboard': False,
                                                  'tf32': None,
                                                  'trusted_fraction': 0.05,
                                                  'up_range': '0.30,0.70',
                                                  'variant': 'asymmetric',
                                                  'wandb': None,
                                                  'widths': '1'},
                                      'plan_form': 2,
                                      'plan_kind': 'ChainedSearcher',
                                      'tool': 'dgl_ray',
                                      'trials': 8})}


def _manifest(family: str, args: list) -> dict:
    mod = importlib.import_module(f"dgl_ray.sweeps.{family}")
    opts = parse(mod.FAMILY, ["--storage", STORAGE, "--name", "m", "--data-root", DATA_ROOT, *args])
    spec = mod.plan(opts)
    opts = spec.opts or opts
    spec, group_size = cli.pack_plan(spec, opts)
    m = cli.sweep_manifest(opts.replace(group_size=group_size), spec)
    m.pop("started")
    m["command"] = m["command"].replace(sys.executable, "<python>").replace(os.getcwd(), "<cwd>")
    return m


@pytest.mark.parametrize("family", sorted(TODAYS_MANIFESTS))
def test_the_manifest_is_what_main_wrote(family, no_ray):
    args, expected = TODAYS_MANIFESTS[family]
    assert _manifest(family, args) == expected


def _coexistence(*args) -> SweepOptions:
    return parse(importlib.import_module("dgl_ray.sweeps.coexistence").FAMILY, ["--storage", STORAGE, *args])


def test_options_are_frozen_and_replace_makes_a_new_record():
    o = _coexistence("--lambdas", "0.3,0.4", "--seeds", "2,3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.group_size = 4
    assert (o.lambdas, o.seed_list, o.group_size, o.family, o.name) == ("0.3,0.4", (2, 3), None, "coexistence",
                                                                       "coexistence")
    p = o.replace(group_size=4, lambdas="0.5")         # a field and a family option
    assert (p.group_size, p.lambdas) == (4, "0.5") and (o.group_size, o.lambdas) == (None, "0.3,0.4")
    assert getattr(o, "no_such_option", "absent") == "absent"


def test_packing_reads_the_options_and_returns_the_size():
    o = _coexistence("--lambdas", "0.3,0.4", "--n", "4")
    mod = importlib.import_module("dgl_ray.sweeps.coexistence")
    spec, group_size = cli.pack_plan(mod.plan(o), o)
    assert o.group_size is None and group_size == 2          # tinycnn on CPU: 8 trials in at least 4 Tune trials
    assert spec.searcher.size == 4


def test_train_and_every_sweep_share_the_trial_flags():
    """One table: a TrialConfig field marked for sweeps is the same flag, help and default in both."""
    train = {a.dest: a for a in train_parser()._actions}
    for family in ("coexistence", "hysteresis", "trap"):
        sweep = {a.dest: a for a in build_parser(importlib.import_module(f"dgl_ray.sweeps.{family}").FAMILY)._actions}
        for f in flag_fields(sweep=True):
            assert sweep[f.name].option_strings[0] == train[f.name].option_strings[0] == flag_name(f)
            assert sweep[f.name].help == train[f.name].help == f.metadata["help"]
    assert {f.name for f in flag_fields()} == {a.dest for a in train.values()} & {f.name for f in dataclasses.fields(TrialConfig)}


def test_run_options_are_a_column_of_the_table():
    """Options only the runner reads may change on --resume: never in the manifest; every other one is."""
    o = _coexistence("--lambdas", "0.3", "--n", "1")
    stored = plan_options(o)
    run = {f.name for f in dataclasses.fields(SweepOptions) if f.metadata.get("run")}
    assert run == {"storage", "name", "address", "resume", "retry_errored", "wait_for_nodes", "max_concurrent",
                   "max_failures", "cpus_per_trial", "gpus_per_trial", "num_cpus", "keep_checkpoints",
                   "storage_warn_gb", "progress_interval", "dry_run", "config", "dashboard"}
    assert not run & set(stored) and {"mlflow", "tensorboard", "lambdas", "group_size", "K"} <= set(stored)


def test_lr_milestones_are_parsed_by_one_function(capsys):
    assert parse_milestones("50, 75") == [50, 75] and parse_milestones("") == []
    with pytest.raises(ConfigError, match=r"--ordered-milestones='5,x'; expected a comma list of epochs \('' for"):
        parse_milestones("5,x", "--ordered-milestones", hint=" ('' for constant LR)")
    with pytest.raises(ConfigError, match="--lr-milestones='a'; expected a comma list of epochs"):
        _coexistence("--lr-milestones", "a")
    assert _coexistence("--lr-milestones", "20,30").lr_milestones == [20, 30]


def test_a_family_record_runs_through_the_sweep_command(tmp_path, capsys, no_ray):
    """The command reads a Family record (dgl_ray.sweeps.family), not a module's attributes."""
    from dgl_ray.sweeps.family import Family
    mod = importlib.import_module("dgl_ray.sweeps.trap")
    family = Family(name="trap", paper_ids=("Tδ",), summary="", doc=mod.__doc__, plan=mod.plan,
                    add_args=mod.FAMILY.add_args, refuses=("widths",))
    argv = ["--storage", str(tmp_path), "--n", "2", "--dry-run"]
    assert cli.main(family, argv) == 0 and "trap: plan for" in capsys.readouterr().out
    assert cli.main(family, [*argv, "--widths", "2"]) == 2
    assert "--widths=2 is not used by trap" in capsys.readouterr().err
