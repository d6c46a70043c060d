"""The local provider's node agent: a kubelet whose containers are processes on this machine.

Run it as ``python -m pytest_kuberay.providers.local.node_agent ...`` (see ``__main__``), or
from Python with ``launcher.NodeAgentProcess``. Module map:

* ``agent``: main loop and watches; ``node``: Node registration and Lease
* ``pod_worker``: one pod's life; ``pod_network``, ``pod_sandbox`` + ``holder``: namespaces and mounts
* ``volumes``, ``env``, ``hosts``, ``images``: what a pod sees; ``containers``, ``probes``, ``pod_status``
* ``state``: what was created on the host, for the reaper; ``kube``, ``informer``: API access
"""

from __future__ import annotations

__all__: list[str] = []
