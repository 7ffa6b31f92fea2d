"""Conservation ledger: what crossed each interface, per coupling window.

Every interface that moves mass, momentum or energy between models records, per window, the
amount one side *sent* and the amount the other side *received*, plus (optionally) the change
of the quantity stored inside each model.  Two balances are checked:

- **interface balance**: ``sent - received`` for every (window, interface, quantity);
- **global balance** (per quantity): ``sum(stored changes) - sum(external inflows)``, where
  external inflows are boundary fluxes from outside the coupled system.

Both are exact to round-off for a conservative coupling; :meth:`Ledger.check` raises
:class:`~bridge.errors.ConservationError` when they are not within the tolerance.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Iterable

from .errors import ConservationError, SetupError


@dataclass
class Transfer:
    window: int
    interface: str
    quantity: str
    sent: float
    received: float

    @property
    def imbalance(self) -> float:
        return self.sent - self.received


@dataclass
class StoreChange:
    window: int
    model: str
    quantity: str
    change: float


@dataclass
class Inflow:
    window: int
    boundary: str
    quantity: str
    amount: float


def _finite(x: float, what: str) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise SetupError(f"ledger entry {what} is {x}", fix="find where the NaN entered the coupling")
    return x


class Ledger:
    """Record and balance the transfers of conserved quantities between coupled models."""

    def __init__(self) -> None:
        self.transfers: list[Transfer] = []
        self.stores: list[StoreChange] = []
        self.inflows: list[Inflow] = []

    # -- recording --------------------------------------------------------------------
    def transfer(self, window: int, interface: str, quantity: str, sent: float, received: float) -> None:
        """Record that ``sent`` left one side of ``interface`` and ``received`` entered the other.

        Both sides report their own measurement (e.g. from their own state), so the balance
        tests the coupling rather than restating one number twice.
        """
        sent = _finite(sent, f"{interface}/{quantity} sent")
        received = _finite(received, f"{interface}/{quantity} received")
        self.transfers.append(Transfer(int(window), interface, quantity, sent, received))

    def store(self, window: int, model: str, quantity: str, change: float) -> None:
        """Record the change of ``quantity`` held inside ``model`` over ``window``."""
        self.stores.append(StoreChange(int(window), model, quantity, _finite(change, f"{model}/{quantity}")))

    def inflow(self, window: int, boundary: str, quantity: str, amount: float) -> None:
        """Record ``amount`` of ``quantity`` entering the coupled system through an outer boundary."""
        self.inflows.append(Inflow(int(window), boundary, quantity, _finite(amount, f"{boundary}/{quantity}")))

    # -- balances ---------------------------------------------------------------------
    def quantities(self) -> list[str]:
        return sorted({t.quantity for t in self.transfers} | {s.quantity for s in self.stores}
                      | {i.quantity for i in self.inflows})

    def interface_imbalance(self, quantity: str | None = None) -> float:
        """Largest |sent - received| over all windows and interfaces."""
        vals = [abs(t.imbalance) for t in self.transfers if quantity in (None, t.quantity)]
        return max(vals, default=0.0)

    def global_imbalance(self, quantity: str) -> float:
        """|sum of stored changes - sum of external inflows| for ``quantity`` over the run."""
        stored = math.fsum(s.change for s in self.stores if s.quantity == quantity)
        inflow = math.fsum(i.amount for i in self.inflows if i.quantity == quantity)
        return abs(stored - inflow)

    def scale(self, quantity: str) -> float:
        """A magnitude to judge imbalances against: the largest single entry for ``quantity``."""
        vals = ([abs(t.sent) for t in self.transfers if t.quantity == quantity]
                + [abs(s.change) for s in self.stores if s.quantity == quantity]
                + [abs(i.amount) for i in self.inflows if i.quantity == quantity])
        return max(vals, default=0.0)

    def check(self, rtol: float = 1e-10, atol: float = 0.0, *, global_balance: bool = True) -> None:
        """Raise :class:`ConservationError` if a balance misses ``atol + rtol * scale``."""
        for q in self.quantities():
            tol = atol + rtol * self.scale(q)
            bad = self.interface_imbalance(q)
            if bad > tol:
                raise ConservationError(f"interface balance of '{q}' misses by {bad:.3e} (tolerance {tol:.3e})",
                                        imbalance=bad, tolerance=tol,
                                        fix="make the receiving side apply exactly what the sender reports")
            if global_balance and (any(s.quantity == q for s in self.stores)):
                bad = self.global_imbalance(q)
                if bad > tol:
                    raise ConservationError(f"global balance of '{q}' misses by {bad:.3e} (tolerance {tol:.3e})",
                                            imbalance=bad, tolerance=tol,
                                            fix="record every outer-boundary inflow, and every store change")

    # -- output -----------------------------------------------------------------------
    def summary(self) -> str:
        lines = ["conservation ledger"]
        for q in self.quantities():
            n = sum(1 for t in self.transfers if t.quantity == q)
            lines.append(f"  {q}: {n} transfers, max interface imbalance {self.interface_imbalance(q):.3e}, "
                         f"global imbalance {self.global_imbalance(q):.3e} (scale {self.scale(q):.3e})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"transfers": [asdict(t) for t in self.transfers],
                "stores": [asdict(s) for s in self.stores],
                "inflows": [asdict(i) for i in self.inflows]}

    @classmethod
    def from_dict(cls, data: dict) -> "Ledger":
        led = cls()
        led.transfers = [Transfer(**t) for t in data.get("transfers", [])]
        led.stores = [StoreChange(**s) for s in data.get("stores", [])]
        led.inflows = [Inflow(**i) for i in data.get("inflows", [])]
        return led

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Ledger":
        return cls.from_dict(json.loads(text))

    def windows(self) -> Iterable[int]:
        return sorted({t.window for t in self.transfers} | {s.window for s in self.stores}
                      | {i.window for i in self.inflows})
