import pytest

from dgl_ray.config import TrialConfig
from dgl_ray.errors import ConfigError
from dgl_ray.schedules import expand_lambda_schedule, ladder_values, lr_at, parse_range


def test_range_includes_stop_without_drift():
    v = parse_range("0.42:0.56:0.02")
    assert v == [0.42, 0.44, 0.46, 0.48, 0.5, 0.52, 0.54, 0.56]
    assert parse_range("0.1,0.3") == [0.1, 0.3] and parse_range("0.5") == [0.5]


def test_constant():
    p = expand_lambda_schedule([{"kind": "constant", "value": 0.3, "epochs": 4}])
    assert [e.lam for e in p] == [0.3] * 4 and {e.phase for e in p} == {"main"}


def test_ladder_up_and_down_with_hold():
    up = expand_lambda_schedule({"kind": "ladder", "points": [0.30, 0.40], "step": 0.02, "hold": 3})
    assert [e.lam for e in up[::3]] == [0.30, 0.32, 0.34, 0.36, 0.38, 0.40] and len(up) == 18
    assert {e.direction for e in up} == {"up"}
    down = expand_lambda_schedule({"kind": "ladder", "points": [0.70, 0.60], "step": 0.05})
    assert [e.lam for e in down] == [0.70, 0.65, 0.60] and {e.direction for e in down} == {"down"}


def test_up_then_down_ladder_refined_inside_the_window_r2():
    v = ladder_values([0.20, 0.64, 0.22], 0.02, refine=(0.42, 0.58, 0.01))
    up = v[: v.index(0.64) + 1]
    down = v[v.index(0.64):]
    assert up[:3] == [0.20, 0.22, 0.24]
    assert [x for x in up if 0.42 <= x <= 0.58] == [round(0.42 + 0.01 * i, 2) for i in range(17)]
    assert up[-3:] == [0.60, 0.62, 0.64] and down[-1] == 0.22 and down.count(0.64) == 1
    plans = expand_lambda_schedule({"kind": "ladder", "points": [0.20, 0.64, 0.22], "step": 0.02})
    assert len(plans) == 23 + 21  # 0.20..0.64 (23 values), then 0.62..0.22 (21 values)
    assert plans[22].lam == 0.64 and plans[22].direction == "up" and plans[23].direction == "down"


def test_r1_ladder_matches_the_paper_length():
    # The archive's R1a_config.json says lambda_steps = 60: 0.20..0.64..0.22 by 0.02 is 44 values,
    # and the 0.01 step inside [0.42, 0.58] adds 8 on each leg.
    v = ladder_values([0.20, 0.64, 0.22], 0.02, refine=(0.42, 0.58, 0.01))
    assert len(v) == 60


def test_jump_and_init_phase_and_ramp():
    p = expand_lambda_schedule([{"kind": "constant", "value": 0.35, "epochs": 30, "name": "init"},
                                {"kind": "constant", "value": 0.55, "epochs": 20, "name": "after"}])
    assert p[29].lam == 0.35 and p[30].lam == 0.55 and p[30].phase == "after" and len(p) == 50
    r = expand_lambda_schedule({"kind": "ramp", "start": 0.3, "stop": 0.6, "epochs": 4})
    assert [e.lam for e in r] == [0.3, 0.4, 0.5, 0.6]


def test_lr_schedule():
    assert [lr_at(e, 0.1, [50, 75], 0.1) for e in (0, 49, 50, 74, 75)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert lr_at(10, 0.1, [], 0.1, multiplier=0.01) == pytest.approx(0.001)


@pytest.mark.parametrize("seg,needle", [
    ({"kind": "ladder", "points": [0.2, 0.64], "step": -0.0}, "step=0.0"),
    ({"kind": "ladder", "points": [0.2, 0.65], "step": 0.02}, "never land on its stop"),
    ({"kind": "ladder", "points": [0.2, 1.2], "step": 0.02}, "outside [0, 1]"),
    ({"kind": "ladder", "points": [0.2], "step": 0.02}, "at least a start and a stop"),
    ({"kind": "ladder", "points": [0.2, 0.4], "step": 0.02, "hold": 0}, "hold=0"),
    ({"kind": "wiggle", "value": 0.3}, "kind='wiggle' is unknown"),
    ({"kind": "constant", "value": 0.3, "epochs": 0}, "epochs=0"),
])
def test_bad_schedules(seg, needle):
    with pytest.raises(ConfigError, match=None) as e:
        expand_lambda_schedule([seg])
    assert needle in str(e.value)


def test_range_errors():
    for text, needle in [("0.56:0.42:0.02", "goes away from stop"), ("", "empty range"), ("a:b", "cannot read")]:
        with pytest.raises(ConfigError) as e:
            parse_range(text)
        assert needle in str(e.value)


def test_epochs_disagreeing_with_the_schedule():
    with pytest.raises(ConfigError, match="lasts 3 epochs"):
        TrialConfig(lambda_schedule=[{"kind": "ladder", "points": [0.3, 0.34], "step": 0.02}], epochs=5).resolved()
