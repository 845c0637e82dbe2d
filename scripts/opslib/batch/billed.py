"""The worker's own Lambda metrics in CloudWatch over a batch's time window: the third cost figure of a batch
run with `--target aws`, beside the metered one (job records) and the projection (docs/pipeline.md,
"Projection on AWS").

What it reads: `AWS/Lambda` `Duration` (Sum, ms) and `Invocations` (Sum) with the one dimension
`FunctionName` = the worker function (that dimension aggregates every version and alias, `live` included),
in one paginated `GetMetricData` call, from the earliest job start minus a minute to the latest job finish
plus a minute, on whole minutes (Lambda metrics have 1-minute resolution). Duration × the worker's
configured memory gives GB-seconds, priced at the list prices in config/pricing.yaml.

Why it is kept apart from the metered figure, and labelled so: the sums are function-wide over the window
(another batch running at the same time is counted, nothing is subtracted), and Duration is close to the
billed duration but not it (the bill rounds each invocation up to the millisecond and may add init time that
Duration leaves out). Lambda publishes its metrics a few minutes late: empty sums right after the batch mean
"not yet available", not "free". A refused read (the principal lacks `cloudwatch:GetMetricData`), bad
credentials, throttling or any other error leave the figure unavailable with the reason: the batch's results
are stored and its report is due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from backtesting_modules.pipeline.records import JobRecord

from ..deploy.state import ACCESS_DENIED, BAD_CREDENTIALS, THROTTLED, error_code
from .projection import load_pricing, price_jobs

NAMESPACE = "AWS/Lambda"
PERMISSION = "cloudwatch:GetMetricData"
BATCH_POLICY = "docs/iam/github-batch-policy-<env>.json"
PERIOD_S = 60  # Lambda's metric resolution
MARGIN = timedelta(minutes=1)  # around the jobs' own timestamps: the invocation starts before the record
METRICS_LAG = timedelta(minutes=5)  # Lambda metrics appear in CloudWatch a few minutes after the fact
NOTE = (
    "function-wide over the window: another batch on the same worker at the same time is included; "
    "Lambda's Duration metric, close to but not the billed duration (the bill rounds each invocation up "
    "to the millisecond and may add init time)"
)
NOT_YET = "not yet available (Lambda metrics reach CloudWatch a few minutes late)"


@dataclass(frozen=True)
class CloudWatchFigure:
    """The worker's Lambda metrics over the window, priced; or why there are none (`reason`)."""

    window: tuple[datetime, datetime] | None
    available: bool
    invocations: int = 0
    duration_s: float = 0.0
    gb_s: float = 0.0
    compute_usd: float = 0.0
    reason: str = ""
    note: str = NOTE

    def to_json(self) -> dict[str, Any]:
        window = [t.isoformat() for t in self.window] if self.window else None
        if not self.available:
            return {"available": False, "reason": self.reason, "window": window}
        return {
            "available": True,
            "invocations": self.invocations,
            "duration_s": round(self.duration_s, 3),
            "lambda_gb_s": round(self.gb_s, 3),
            "lambda_compute_usd": round(self.compute_usd, 6),
            "window": window,
            "note": self.note,
        }

    def render(self) -> str:
        """The clause the cost line appends."""
        if not self.available or self.window is None:
            return f"CloudWatch: {self.reason}"
        start, end = (t.strftime("%H:%M") for t in self.window)
        return (
            f"CloudWatch (worker, {start}–{end} UTC, function-wide) ${self.compute_usd:,.4f} compute — "
            f"{self.invocations:,} invocations, {self.duration_s:,.1f} s Duration, {self.gb_s:,.1f} GB-s"
        )


def _utc(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def batch_window(records: Sequence[JobRecord]) -> tuple[datetime, datetime] | None:
    """From the earliest start minus a minute down to its minute, to the latest finish plus a minute up to
    the next minute (UTC), over the jobs that ran here (reused ones ran in an earlier batch); None if none."""
    ran = [r for r in records if r.terminal and not r.reused]
    starts = [_utc(stamp) for r in ran if (stamp := r.started_at or r.finished_at)]
    ends = [_utc(r.finished_at) for r in ran if r.finished_at]
    if not starts or not ends:
        return None
    start = (min(starts) - MARGIN).astimezone(UTC).replace(second=0, microsecond=0)
    end = (max(ends) + MARGIN).astimezone(UTC)
    floor = end.replace(second=0, microsecond=0)
    return start, floor if floor == end else floor + timedelta(minutes=1)


def _query(query_id: str, metric: str, function: str) -> dict[str, Any]:
    dimensions = [{"Name": "FunctionName", "Value": function}]
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
            "Period": PERIOD_S,
            "Stat": "Sum",
        },
        "ReturnData": True,
    }


def read_sums(cloudwatch: Any, function: str, window: tuple[datetime, datetime]) -> tuple[float, float]:
    """(Invocations, Duration in ms) of `function` summed over `window`: one GetMetricData, every page."""
    queries = [_query("invocations", "Invocations", function), _query("duration", "Duration", function)]
    sums = {"invocations": 0.0, "duration": 0.0}
    params: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": window[0], "EndTime": window[1]}
    while True:
        page = cloudwatch.get_metric_data(**params)
        for result in page.get("MetricDataResults", []):
            sums[result["Id"]] += sum(float(v) for v in result.get("Values", []))
        if not page.get("NextToken"):
            return sums["invocations"], sums["duration"]
        params["NextToken"] = page["NextToken"]


def unavailable_reason(exc: ClientError) -> str:
    """Why a refused read leaves the figure out. Any error does: the batch's results are stored and its
    report is due, and a measurement read after the fact must not lose them (unlike the deploy reads,
    where an unknown error stops the plan)."""
    code = error_code(exc)
    if code in ACCESS_DENIED:
        return f"{PERMISSION}: {code} — the batch principal needs it ({BATCH_POLICY})"
    if code in BAD_CREDENTIALS:
        return f"{PERMISSION}: {code} — the AWS credentials are invalid or expired"
    if code in THROTTLED:
        return f"{PERMISSION}: {code} — throttled by AWS (botocore's retries included)"
    return f"{PERMISSION}: {code} — {exc.response.get('Error', {}).get('Message', exc)}"


def cloudwatch_figure(
    cloudwatch: Any,
    function: str,
    records: Sequence[JobRecord],
    *,
    memory_mb: int,
    architecture: str = "x86_64",
    pricing: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> CloudWatchFigure:
    """The worker's CloudWatch figure for the batch whose job records are `records` (module docstring)."""
    window = batch_window(records)
    if window is None:
        return CloudWatchFigure(None, False, reason="nothing ran here (every job reused)")
    try:
        invocations, duration_ms = read_sums(cloudwatch, function, window)
    except ClientError as exc:
        return CloudWatchFigure(window, False, reason=unavailable_reason(exc))
    # The window's end is a minute (or up to two, rounded) past the last finish: "recent" errs on waiting.
    recent = (now or datetime.now(UTC)) - (window[1] - MARGIN) < METRICS_LAG
    if invocations <= 0 and duration_ms <= 0:
        reason = NOT_YET if recent else f"no {NAMESPACE} datapoints for {function} in the window"
        return CloudWatchFigure(window, False, reason=reason)
    gb_s = duration_ms / 1000.0 * memory_mb / 1024.0
    prices = pricing or load_pricing()
    compute = price_jobs(int(invocations), gb_s, architecture, prices)["lambda_compute"]
    note = NOTE + (
        "; the batch ended minutes ago, so its last minutes may still be arriving" if recent else ""
    )
    return CloudWatchFigure(window, True, int(invocations), duration_ms / 1000.0, gb_s, compute, note=note)
