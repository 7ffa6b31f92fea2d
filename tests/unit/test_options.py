"""check_options: unknown keyword options are a SetupError with a did-you-mean fix."""
import pytest

from bridge.errors import SetupError
from bridge.options import check_options

ALLOWED = ("calculator", "timestep", "integrator")


def test_known_options_pass():
    assert check_options({}, ALLOWED, "Thing") is None
    assert check_options({"timestep": 0.001, "integrator": None}, ALLOWED, "Thing") is None
    assert check_options({"a": 1}, iter(["a", "b"]), "Thing") is None   # any iterable


def test_a_typo_names_the_option_and_suggests_the_closest():
    with pytest.raises(SetupError) as exc:
        check_options({"timstep": 0.001}, ALLOWED, "ASEEngine")
    msg = str(exc.value)
    assert "unknown ASEEngine option 'timstep'" in msg
    assert exc.value.fix.startswith("did you mean 'timestep'?")
    assert "calculator, timestep, integrator" in exc.value.fix     # the order given
    assert msg.endswith(" -- fix: " + exc.value.fix)


def test_several_unknown_options():
    with pytest.raises(SetupError) as exc:
        check_options({"timstep": 1, "integrater": 2, "zzz": 3, "calculator": 4}, ALLOWED, "X")
    msg = str(exc.value)
    assert "unknown X options 'timstep', 'integrater', 'zzz'" in msg
    assert "'timestep' for 'timstep'" in exc.value.fix
    assert "'integrator' for 'integrater'" in exc.value.fix
    assert "zzz" not in exc.value.fix


def test_no_close_match_still_lists_the_valid_options():
    with pytest.raises(SetupError) as exc:
        check_options({"qqqq": 1}, {"beta", "alpha"}, "Model")
    assert "did you mean" not in exc.value.fix
    assert exc.value.fix == "valid Model options: alpha, beta"       # a set is listed sorted


def test_a_setup_error_is_a_value_error():
    with pytest.raises(ValueError):
        check_options({"x": 1}, (), "Nothing")
