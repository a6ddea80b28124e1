"""The control service's name and subjects, shared by the service and its clients.

Each gateway answers on ``log_gateway.control.gw.<gateway_id>.<endpoint>`` (that
gateway alone) and on ``log_gateway.control.all.<endpoint>`` (every gateway, each
for itself: that endpoint's queue group is the gateway's own id), after the
gateways' subject prefix. The two forms have different token counts, so no
gateway id can be taken for ``all``. Discovery is the services framework's own:
``$SRV.PING.log-gateway``, ``$SRV.INFO.log-gateway``, ``$SRV.STATS.log-gateway``.

``query`` is the exception to "each for itself": every gateway of one subject
prefix stores its batches in the same stream, so one answer is the whole answer.
Its ``all`` form is served in the shared queue group :data:`QUERY_GROUP`: one
gateway (any) answers a page; the ``gw.<id>`` form asks that gateway.
"""

from __future__ import annotations

from contracts.events import validate_subject, validate_subject_token

__all__ = ["ENDPOINTS", "QUERY_GROUP", "SERVICE_NAME", "control_subject", "control_wildcard"]

SERVICE_NAME = "log-gateway"
ENDPOINTS = ("status", "config_get", "config_set", "query")
QUERY_GROUP = "log-gateway-query"
"""The queue group of ``query``'s ``all`` form: one gateway of them all answers."""
_ROOT = "log_gateway.control"


def _base(prefix: str) -> str:
    if prefix:
        validate_subject(prefix, "subject prefix")
        return f"{prefix}.{_ROOT}"
    return _ROOT


def control_subject(endpoint: str, gateway_id: str | None = None, prefix: str = "") -> str:
    """The subject of ``endpoint`` on gateway ``gateway_id``, or on every gateway (None).

    Raises:
        ValueError: an unknown endpoint, or an id or prefix that is not a safe subject token.
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown control endpoint {endpoint!r}; expected one of {', '.join(ENDPOINTS)}")
    if gateway_id is None:
        return f"{_base(prefix)}.all.{endpoint}"
    return f"{_base(prefix)}.gw.{validate_subject_token(gateway_id, 'gateway id')}.{endpoint}"


def control_wildcard(prefix: str = "") -> str:
    """Every control subject (for permissions): ``log_gateway.control.>``."""
    return f"{_base(prefix)}.>"
