"""Prometheus metrics of one service instance (a registry of its own, so tests can run many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.submit_requests = Counter(
            "img2svg_submit_requests", "Submit POSTs received (async interface)", registry=r
        )
        self.sync_requests = Counter(
            "img2svg_sync_requests", "POSTs received on the sync interface", registry=r
        )
        self.tasks_created = Counter(
            "img2svg_tasks_created", "Tasks created (idempotent replays excluded)", registry=r
        )
        self.tasks_finished = Counter(
            "img2svg_tasks_finished", "Tasks that reached a terminal status", ["status"], registry=r
        )
        self.refusals = Counter(
            "img2svg_refusals", "Requests refused with a business error code", ["code"], registry=r
        )
        self.conversion_seconds = Histogram(
            "img2svg_conversion_seconds",
            "Wall time of one vectorization in a worker",
            ["mode"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.callback_deliveries = Counter(
            "img2svg_callback_deliveries",
            "notify_url deliveries by final result",
            ["result"],
            registry=r,
        )
        self.faults_injected = Counter(
            "img2svg_faults_injected", "Injected request faults by kind", ["kind"], registry=r
        )
        self.tasks_open = Gauge("img2svg_tasks_open", "Tasks waiting or processing", registry=r)
