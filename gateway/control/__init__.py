"""Steering a running gateway: live reconfiguration (``apply``), the control service on NATS
(``service``) and its client (``client``).

``gateway.control.client`` imports only the contracts and nats-py (checked by
tests/test_architecture.py). The in-process path, which the MCP tool may call
too, is :class:`gateway.control.apply.Reconfigurer` (``apply``, ``reload``).
"""

__all__: list[str] = []
