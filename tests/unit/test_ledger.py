"""Conservation ledger: interface and global balances, tolerances, JSON round trip."""
import json
import math

import pytest

from bridge.errors import ConservationError, SetupError
from bridge.ledger import Ledger


def balanced_ledger():
    """Energy moving from an MD region into a continuum, with a heater on the outer boundary.

    Window k: the heater puts q_k in through the continuum's outer boundary; the continuum passes
    p_k on to the atoms.  Stored changes: continuum q_k - p_k, atoms p_k.  Sum of stores = sum of inflows.
    """
    led = Ledger()
    q = [1.5, 2.25, 0.75]
    p = [0.5, 1.25, 1.0]
    for k in range(3):
        led.inflow(k, "heater", "energy", q[k])
        led.transfer(k, "md/fe", "energy", sent=p[k], received=p[k])
        led.store(k, "continuum", "energy", q[k] - p[k])
        led.store(k, "atoms", "energy", p[k])
        led.transfer(k, "md/fe", "momentum", sent=-0.1 * k, received=-0.1 * k)
    return led


def test_balanced_transfers_pass():
    led = balanced_ledger()
    led.check()
    assert led.interface_imbalance() == 0.0
    assert led.global_imbalance("energy") == pytest.approx(0.0, abs=1e-15)
    assert led.quantities() == ["energy", "momentum"]
    assert list(led.windows()) == [0, 1, 2]
    assert led.scale("energy") == 2.25  # largest single entry


def test_interface_imbalance_above_tolerance_raises_with_the_amount():
    led = balanced_ledger()
    led.transfer(3, "md/fe", "energy", sent=2.0, received=2.0 - 1e-6)
    with pytest.raises(ConservationError) as exc:
        led.check(rtol=1e-10)
    assert exc.value.imbalance == pytest.approx(1e-6, rel=1e-9)
    assert exc.value.tolerance == pytest.approx(1e-10 * 2.25)
    assert "interface balance of 'energy'" in str(exc.value) and exc.value.fix
    # within a looser tolerance it passes (the store changes are recorded for window 3 too)
    led.store(3, "atoms", "energy", 2.0 - 1e-6)
    led.store(3, "continuum", "energy", -(2.0 - 1e-6))
    led.check(rtol=1e-6)
    led.check(atol=2e-6)


def test_round_off_imbalance_passes_the_default_tolerance():
    led = Ledger()
    sent = 0.1 + 0.2  # 0.30000000000000004
    led.transfer(0, "a/b", "mass", sent=sent, received=0.3)
    led.check()
    assert led.interface_imbalance("mass") == pytest.approx(5.55e-17, rel=0.01)


def test_global_imbalance_with_stores_and_inflows():
    led = balanced_ledger()
    led.store(2, "atoms", "energy", 0.01)  # energy appearing from nowhere
    assert led.global_imbalance("energy") == pytest.approx(0.01, rel=1e-12)
    with pytest.raises(ConservationError, match="global balance of 'energy'") as exc:
        led.check()
    assert exc.value.imbalance == pytest.approx(0.01, rel=1e-12)
    led.check(global_balance=False)  # the interfaces themselves are fine
    led.inflow(2, "heater", "energy", 0.01)  # ... unless it came in through a boundary
    led.check()


def test_stores_without_inflows_must_sum_to_zero():
    led = Ledger()
    led.transfer(0, "qm/mm", "charge", sent=0.25, received=0.25)
    led.store(0, "qm", "charge", -0.25)
    led.store(0, "mm", "charge", 0.25)
    led.check()
    led.store(1, "mm", "charge", 1e-3)
    with pytest.raises(ConservationError):
        led.check()


@pytest.mark.parametrize("call", [
    lambda led: led.transfer(0, "a/b", "energy", math.nan, 1.0),
    lambda led: led.transfer(0, "a/b", "energy", 1.0, received=math.inf),
    lambda led: led.store(0, "md", "energy", math.nan),
    lambda led: led.inflow(0, "left", "energy", -math.inf),
])
def test_non_finite_entries_are_refused(call):
    led = Ledger()
    with pytest.raises(SetupError, match="ledger entry") as exc:
        call(led)
    assert exc.value.fix
    assert not (led.transfers or led.stores or led.inflows)


def test_json_round_trip():
    led = balanced_ledger()
    text = led.to_json()
    json.loads(text)  # plain JSON
    back = Ledger.from_json(text)
    assert back.transfers == led.transfers and back.stores == led.stores and back.inflows == led.inflows
    assert back.global_imbalance("energy") == led.global_imbalance("energy")
    assert back.to_dict() == led.to_dict()
    assert Ledger.from_dict({}).quantities() == []


def test_summary_names_every_quantity():
    text = balanced_ledger().summary()
    assert "energy: 3 transfers" in text and "momentum: 3 transfers" in text
