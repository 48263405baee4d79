"""The service's Prometheus metrics (GET /metrics): one registry per service instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

__all__ = ["Metrics"]


class Metrics:
    """Prometheus metrics of one service instance (its own registry, so tests can run several)."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they are noise for dashboards
        r = self.registry = CollectorRegistry()
        self.requests = Counter("rbr_requests", "HTTP requests by route and status.", ["route", "status"], registry=r)
        self.latency = Histogram(
            "rbr_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.batch_items = Histogram(
            "rbr_batch_items",
            "Items per scoring batch sent to the grader and RM.",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self.batch_requests = Histogram(
            "rbr_batch_requests",
            "Requests merged into one scoring batch.",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
        self.grader_seconds = Histogram("rbr_grader_seconds", "Grader time per batch.", registry=r)
        self.rm_seconds = Histogram("rbr_rm_seconds", "Reward model time per batch.", registry=r)
        self.queue_depth = Gauge("rbr_queue_depth", "Items admitted and not finished (queued or running).", registry=r)
        self.rejected = Counter(
            "rbr_rejected_requests", "Requests refused at admission, by reason.", ["reason"], registry=r
        )
        self.dropped = Counter(
            "rbr_dropped_items", "Admitted items never scored: caller gone or deadline passed.", ["reason"], registry=r
        )
        self.items = Counter("rbr_items", "Items scored or graded.", ["route"], registry=r)
        self.errors = Counter("rbr_errors", "Errors by kind.", ["kind"], registry=r)
