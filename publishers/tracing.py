"""W3C trace context from the current OpenTelemetry span, when the API is installed."""

from __future__ import annotations

__all__ = ["current_trace", "trace_extensions", "trace_ids"]

try:  # the OpenTelemetry API is optional: without it there is simply no span
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised only without the bench/dev extra
    _trace = None  # type: ignore[assignment]


def current_trace() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``), ``traceId`` and ``spanId`` of the active span, or {}."""
    if _trace is None:  # pragma: no cover
        return {}
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    out = {
        "traceparent": f"00-{trace_id}-{span_id}-{int(context.trace_flags):02x}",
        "traceId": trace_id,
        "spanId": span_id,
    }
    state = context.trace_state.to_header()
    if state:
        out["tracestate"] = state
    return out


def trace_extensions(trace: dict[str, str]) -> dict[str, str]:
    """The CloudEvents extension attributes of a :func:`current_trace` result."""
    return {k: v for k, v in trace.items() if k in ("traceparent", "tracestate")}


def trace_ids(trace: dict[str, str]) -> dict[str, str]:
    """The entry fields (``traceId``, ``spanId``) of a :func:`current_trace` result."""
    return {k: v for k, v in trace.items() if k in ("traceId", "spanId")}
