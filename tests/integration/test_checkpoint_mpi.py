"""The coupled checkpoint under ``mpiexec -n 2``: one file, every rank's own state, exact restart."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.mpi

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from mpi4py import MPI
    from bridge import checkpoint
    from bridge.errors import SetupError
    from bridge.scheduler import Participant, Scheduler
    from bridge_adapters.dolfinx import DolfinxField, interval_mesh, tag_boundaries

    path = sys.argv[1]
    mesh = interval_mesh(40)
    tags = tag_boundaries(mesh, {"left": lambda x: np.isclose(x[0], 0.0), "right": lambda x: np.isclose(x[0], 1.0)})
    field = DolfinxField(mesh, tags, dirichlet={"left": 1.0, "right": 0.0}, initial=0.0)
    sched = Scheduler(0.01, [Participant("heat", field.advance)])
    sched.run(3)
    checkpoint.save_run(path, engines={"heat": field}, scheduler=sched)
    sched.run(4)
    first = field.evaluate(np.linspace(0, 1, 11)[:, None])
    field.u.x.array[:] = -7.0
    checkpoint.restore_run(path, engines={"heat": field}, scheduler=sched)
    sched.run(4)
    second = field.evaluate(np.linspace(0, 1, 11)[:, None])
    if MPI.COMM_WORLD.rank == 0:
        print("RESULT " + json.dumps({"diff": float(np.max(np.abs(first - second))), "k": sched.k}))
    """
)


def test_two_rank_checkpoint_round_trip_and_rank_count_check(tmp_path, mpiexec):
    script = tmp_path / "ck.py"
    script.write_text(SCRIPT)
    ck = tmp_path / "run.h5"
    env = {**os.environ, "MSBRIDGE_PROGRESS": "0"}
    out = subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(script), str(ck)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["diff"] == 0.0 and result["k"] == 7
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".h5"] == ["run.h5"]
    # a serial restart of a 2-rank checkpoint is refused with the fix
    from bridge import checkpoint
    from bridge.errors import SetupError

    with pytest.raises(SetupError, match="mpiexec -n 2"):
        checkpoint.load(ck)
