"""W3C trace context from the current OpenTelemetry span, when the API is installed."""

from __future__ import annotations

from typing import Any

try:  # the OpenTelemetry API is optional: without it there is simply no span
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised only without the bench/dev extra
    _trace = None  # type: ignore[assignment]
    _context = None  # type: ignore[assignment]

__all__ = ["capture_context", "current_trace", "trace_extensions", "trace_ids", "trace_of"]


def capture_context() -> object:
    """The caller's OpenTelemetry context, as cheaply as it can be taken (None without the API);
    :func:`trace_of` reads the span from it later, on another thread."""
    return None if _context is None else _context.get_current()


def trace_of(captured: Any) -> dict[str, str]:
    """What :func:`current_trace` gave in the call where :func:`capture_context` returned ``captured``."""
    if _trace is None or captured is None:
        return {}
    return _span_trace(_trace.get_current_span(captured))


def current_trace() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``), ``traceId`` and ``spanId`` of the active span, or {}."""
    if _trace is None:  # pragma: no cover
        return {}
    return _span_trace(_trace.get_current_span())


def _span_trace(span: Any) -> dict[str, str]:
    context = span.get_span_context()
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
