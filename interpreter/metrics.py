"""Prometheus metrics, on a registry of the app's own (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.live_sessions = Gauge(
            "interpreter_live_sessions", "Sessions holding a sandbox", registry=self.registry
        )
        self.pool_ready = Gauge(
            "interpreter_pool_ready", "Warm sandboxes ready to claim", registry=self.registry
        )
        self.pool_refill_failures = Counter(
            "interpreter_pool_refill_failures",
            "Warm sandboxes that failed to start",
            registry=self.registry,
        )
        self.claims = Counter(
            "interpreter_sandbox_claims",
            "Sandboxes handed to sessions",
            ["source"],
            registry=self.registry,
        )
        self.executions = Counter(
            "interpreter_executions",
            "Code executions by outcome",
            ["status"],
            registry=self.registry,
        )
        self.execution_seconds = Histogram(
            "interpreter_execution_seconds",
            "Execution wall time",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sandbox_start_seconds = Histogram(
            "interpreter_sandbox_start_seconds",
            "Container start to kernel ready",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.kernel_restarts = Counter(
            "interpreter_kernel_restarts",
            "Kernels restarted (death, time-out, request)",
            ["reason"],
            registry=self.registry,
        )
        self.expiries = Counter(
            "interpreter_session_expiries",
            "Sessions ended by idle time-out",
            registry=self.registry,
        )
        self.evictions = Counter(
            "interpreter_session_evictions",
            "Idle sessions ended to make room at the session limit",
            registry=self.registry,
        )
        self.lost_sessions = Counter(
            "interpreter_sessions_lost",
            "Sessions ended because their container stopped for good or vanished",
            registry=self.registry,
        )
        self.max_sessions = Gauge(
            "interpreter_max_sessions", "Live sessions the service allows", registry=self.registry
        )
        self.pool_target = Gauge(
            "interpreter_pool_target", "Ready sandboxes the warm pool aims for",
            registry=self.registry,
        )  # fmt: skip
        self.responses = Counter(
            "interpreter_responses",
            "Responses API requests by final status",
            ["status"],
            registry=self.registry,
        )
