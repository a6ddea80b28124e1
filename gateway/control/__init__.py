"""Steering a running gateway: live reconfiguration (``apply``), the control service on NATS
(``service``) and its client (``client``).

``gateway.control.client`` needs only the contracts and nats-py, so a tool that
only talks to gateways (``log-gateway ctl``, the MCP server) loads nothing of
the gateway's runtime. The in-process path is :class:`gateway.control.apply.Reconfigurer`.
"""

__all__: list[str] = []
