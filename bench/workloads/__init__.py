"""The bench's workloads, in the order they run and appear in RESULTS.md.

Adding a workload is one module with one `Workload` entry (runner.py says what each field
is), and its line here.
"""

from __future__ import annotations

from runner import Workload

from workloads import elementwise, gmm, hvp, loop, lstsq, mlp, ode, overhead, scalar

REGISTRY: list[Workload] = [
    scalar.WORKLOAD,
    elementwise.WORKLOAD,
    overhead.WORKLOAD,
    mlp.WORKLOAD,
    loop.WORKLOAD,
    hvp.WORKLOAD,
    gmm.WORKLOAD,
    lstsq.WORKLOAD,
    ode.WORKLOAD,
]
BY_NAME = {workload.name: workload for workload in REGISTRY}
