"""One batch in both scaling modes of the worker's SQS event source mapping, for `run_batch.py --estimate`:
standard (start at 5 concurrent invocations, +300 a minute) and provisioned (minimum pollers × 10 at once,
+1,000 a minute, up to maximum pollers × 10), with provisioned mode's poller charge when config/pricing.yaml
prices it (docs/pipeline.md, "Projection on AWS"). The engine time and the per-job requests are
`projection.project`'s; only the scale-up, the cap and the poller charge differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import StackConfigError
from ..stack import ACCOUNT_CONCURRENCY, FunctionSettings, ProvisionedPollers, StackConfig
from .projection import Projection, load_pricing, project_jobs

# Scaling modes of the worker's SQS event source mapping (docs/pipeline.md, "Projection on AWS"; AWS:
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html): provisioned mode's figures and
# prices are read from config/pricing.yaml (`provisioned_mode`), which states and cites them; its two
# prices may be null (not priced), every key must be there.
PROVISIONED_KEYS = (
    "concurrency_per_poller",
    "added_per_minute",
    "maximum_concurrency",
    "per_epu_hour",
    "pollers_per_epu",
    "hours_per_month",
)
AWS_DEFAULT_POLLERS = ProvisionedPollers(minimum=2, maximum=200)  # ProvisionedPollerConfig's SQS defaults
# The worker maps two queues (opslib.deploy.functions: job queue, priority queue), each with its own
# pollers; a batch's jobs go to one of them, but the minimum pollers of both are billed all the time.
WORKER_MAPPINGS = 2
PRICE_KEYS = ("provisioned_mode.per_epu_hour", "provisioned_mode.pollers_per_epu")


@dataclass(frozen=True)
class ScalingMode:
    """How the mapping that feeds a batch scales in one mode: from `initial` concurrent invocations up by
    `added_per_minute` to `cap`; `pollers` only in provisioned mode; `assumed` says what the stack does not
    set (the mode it is not in), None when the mode is the stack's own."""

    name: str
    initial: int
    added_per_minute: float
    cap: int
    pollers: ProvisionedPollers | None = None
    assumed: str | None = None

    def scaling(self, cold_start_s: float) -> dict[str, Any]:
        """The mode as `project_wall_time`'s scaling parameters."""
        return {
            "initial_concurrency": self.initial,
            "added_per_minute": self.added_per_minute,
            "cold_start_s": cold_start_s,
        }


def provisioned_settings(prices: dict[str, Any]) -> dict[str, Any]:
    """`prices["provisioned_mode"]`, every key present (a null price stays None: not priced)."""
    section = prices.get("provisioned_mode") or {}
    missing = [key for key in PROVISIONED_KEYS if key not in section]
    if missing:
        raise StackConfigError(
            f"config/pricing.yaml: provisioned_mode.{missing[0]} is missing; the shipped file lists every "
            "key of provisioned mode (a price may be null: not priced)."
        )
    return {key: section[key] for key in PROVISIONED_KEYS}


def scaling_modes(
    worker: FunctionSettings, concurrency: int, prices: dict[str, Any]
) -> tuple[ScalingMode, ScalingMode]:
    """Standard and provisioned mode for the worker: the stack's own mode as configured, the other with
    defaults. Standard mode in a standard stack runs up to `concurrency`, the projection's, so its row is the
    projection; without a maximum concurrency (a provisioned stack, or provisioned mode itself, which AWS
    makes exclusive with it) a mapping runs up to the function's reserved concurrency, else the account's
    limit."""
    limit = worker.reserved_concurrency or ACCOUNT_CONCURRENCY
    scaling = prices["scaling"]
    initial, per_minute = int(scaling["initial_concurrency"]), float(scaling["added_per_minute"])
    if worker.provisioned_pollers is None:
        standard = ScalingMode("standard", initial, per_minute, concurrency)
    else:
        assumed = f"standard mode without a maximum concurrency: up to {limit:,} (the function's limit)"
        standard = ScalingMode("standard", initial, per_minute, limit, assumed=assumed)
    return standard, _provisioned_mode(worker.provisioned_pollers, limit, prices)


def _provisioned_mode(own: ProvisionedPollers | None, limit: int, prices: dict[str, Any]) -> ScalingMode:
    """Provisioned mode with the stack's pollers (`own`), else AWS's defaults: minimum pollers × 10 at once,
    up to maximum pollers × 10 within `limit` and provisioned mode's ceiling."""
    settings = provisioned_settings(prices)
    pollers = own or AWS_DEFAULT_POLLERS
    per_poller = int(settings["concurrency_per_poller"])
    cap = min(pollers.maximum * per_poller, limit, int(settings["maximum_concurrency"]))
    assumed = None
    if own is None:
        assumed = (
            f"provisioned mode with AWS's default pollers (minimum {pollers.minimum}, maximum "
            f"{pollers.maximum}) and no maximum concurrency (AWS makes the two exclusive)"
        )
    initial = min(pollers.minimum * per_poller, cap)
    return ScalingMode(
        "provisioned", initial, float(settings["added_per_minute"]), cap, pollers, assumed=assumed
    )


@dataclass(frozen=True)
class ModeProjection:
    """One mode's projection of the batch: wall time, the per-job costs (the same services as
    `Projection`), the poller charge per batch and the standing monthly charge of the minimum pollers
    (0 in standard mode; None in provisioned mode while config/pricing.yaml leaves its price null)."""

    mode: ScalingMode
    wall_s: float
    cost_usd: dict[str, float]
    poller_usd: float | None
    standing_usd_month: float | None
    peak_pollers: int | None = None

    @property
    def jobs_usd(self) -> float:
        return sum(self.cost_usd.values())

    @property
    def total_usd(self) -> float:
        """Per batch: the jobs' costs and the poller charge when priced (the standing charge apart)."""
        return self.jobs_usd + (self.poller_usd or 0.0)

    def to_json(self) -> dict[str, Any]:
        mode = self.mode
        return {
            "initial_concurrency": mode.initial,
            "added_per_minute": mode.added_per_minute,
            "concurrency": mode.cap,
            "pollers": None if mode.pollers is None else asdict(mode.pollers),
            "assumed": mode.assumed,
            "wall_s": round(self.wall_s, 2),
            "cost_usd": {k: round(v, 6) for k, v in self.cost_usd.items()},
            "poller_usd": None if self.poller_usd is None else round(self.poller_usd, 6),
            "standing_usd_month": None
            if self.standing_usd_month is None
            else round(self.standing_usd_month, 2),
            "peak_pollers": self.peak_pollers,
            "total_usd": round(self.total_usd, 6),
        }


def price_pollers(
    mode: ScalingMode, wall_s: float, jobs: int, prices: dict[str, Any]
) -> tuple[float | None, float | None, int]:
    """(per-batch USD, standing USD per month, peak pollers) of provisioned mode; the charges are None while
    `per_epu_hour` or `pollers_per_epu` is null. Assumed (docs/pipeline.md): EPUs billed pro rata by the
    second, no rounding up to whole EPUs or hours; per batch, the pollers beyond the minimum that the
    batch's peak concurrency needs on its mapping, billed for the whole wall time (the ramp at the peak,
    AWS's scale-down afterwards not modelled); standing, the minimum pollers of the worker's two mappings
    for `hours_per_month` (730)."""
    assert mode.pollers is not None
    settings = provisioned_settings(prices)
    peak = min(mode.cap, jobs, mode.initial + int(mode.added_per_minute * wall_s / 60.0))
    needed = max(mode.pollers.minimum, math.ceil(peak / int(settings["concurrency_per_poller"])))
    if settings["per_epu_hour"] is None or settings["pollers_per_epu"] is None:
        return None, None, needed
    poller_hour = float(settings["per_epu_hour"]) / float(settings["pollers_per_epu"])
    per_batch = (needed - mode.pollers.minimum) * wall_s / 3600.0 * poller_hour
    standing = WORKER_MAPPINGS * mode.pollers.minimum * float(settings["hours_per_month"]) * poller_hour
    return per_batch, standing, needed


def project_mode(
    base: Projection, mode: ScalingMode, *, memory_mb: int, architecture: str, prices: dict[str, Any]
) -> ModeProjection:
    """`base`'s jobs under `mode`: the same engine time and requests, the mode's scale-up and cap, at
    least `base.wall_floor_s`. No more invocations run at once than the batch has jobs, so a batch smaller
    than a mode's starting concurrency takes one job's time in both modes (`project` alone lets the work of
    a few jobs spread over more workers, which only matters below that size; kept as it was)."""
    p = project_jobs(
        base.jobs,
        base.backtests,
        base.job_seconds,
        memory_mb=memory_mb,
        concurrency=max(1, min(mode.cap, base.jobs)),
        architecture=architecture,
        prices=prices,
        scaling=mode.scaling(float(prices["scaling"]["cold_start_s"])),
    )
    wall = max(p.wall_s, base.wall_floor_s)
    if mode.pollers is None:
        return ModeProjection(mode, wall, p.cost_usd, 0.0, 0.0)
    per_batch, standing, peak = price_pollers(mode, wall, base.jobs, prices)
    return ModeProjection(mode, wall, p.cost_usd, per_batch, standing, peak)


@dataclass(frozen=True)
class ModeComparison:
    """One batch in both scaling modes, for `--estimate`: which is faster, which is cheaper."""

    current: str  # the stack's mode
    standard: ModeProjection
    provisioned: ModeProjection

    @property
    def unpriced(self) -> list[str]:
        """The config/pricing.yaml keys to set before provisioned mode's poller charge can be priced."""
        return list(PRICE_KEYS) if self.provisioned.poller_usd is None else []

    @property
    def verdict(self) -> str:
        """One line: the wall-time difference, then the cost difference or what keeps it unpriced."""
        std, prov = self.standard, self.provisioned
        gain = std.wall_s - prov.wall_s
        if abs(gain) < 0.05:
            speed = f"both modes take about {_seconds(std.wall_s)} s"
        else:
            share = abs(gain) / max(std.wall_s, prov.wall_s) * 100
            faster = "faster" if gain > 0 else "slower"
            speed = f"provisioned is {_seconds(abs(gain))} s {faster} ({share:.0f} %)"
        if prov.poller_usd is None or prov.standing_usd_month is None:
            return (
                f"{speed}; provisioned mode's cost is not priced: set {' and '.join(PRICE_KEYS)} in "
                f"config/pricing.yaml (AWS Lambda pricing page, your region). Without its poller charge: "
                f"standard ${std.total_usd:,.4f}, provisioned ${prov.total_usd:,.4f} per batch."
            )
        extra = prov.total_usd - std.total_usd
        cost = f"costs ${abs(extra):,.4f} {'more' if extra >= 0 else 'less'} per batch"
        cheaper = "standard" if extra >= 0 else "provisioned"
        faster = "" if abs(gain) < 0.05 else f", {'provisioned' if gain > 0 else 'standard'} faster"
        return (
            f"{speed} and {cost} plus ${prov.standing_usd_month:,.2f}/month standing (minimum pollers): "
            f"{cheaper} is cheaper per batch{faster}."
        )

    @property
    def assumed(self) -> list[str]:
        return [m.mode.assumed for m in (self.standard, self.provisioned) if m.mode.assumed is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "standard": self.standard.to_json(),
            "provisioned": self.provisioned.to_json(),
            "assumed": self.assumed,
            "unpriced": self.unpriced,
            "verdict": self.verdict,
        }


def compare_modes(
    base: Projection, stack: StackConfig, pricing: dict[str, Any] | None = None
) -> ModeComparison:
    """`base` (a projection at the worker's concurrency) in standard and in provisioned mode; the mode the
    stack is not in is modelled with AWS's defaults (`scaling_modes`)."""
    prices = pricing or load_pricing()
    worker = stack.worker
    modes = scaling_modes(worker, base.concurrency, prices)
    standard, provisioned = (
        project_mode(
            base, mode, memory_mb=worker.memory_mb, architecture=stack.layer.architecture, prices=prices
        )
        for mode in modes
    )
    current = "standard" if worker.provisioned_pollers is None else "provisioned"
    return ModeComparison(current, standard, provisioned)


def _mode_row(m: ModeProjection, current: str) -> str:
    mode = m.mode
    label = f"{mode.name} ({'the stack' if mode.name == current else 'assumed'})"
    ramp = f"{mode.initial:,} → {mode.cap:,}, +{mode.added_per_minute:,.0f}/min"
    if mode.pollers is not None:
        ramp += f"; pollers {mode.pollers.minimum}–{mode.pollers.maximum} (peak {m.peak_pollers})"
    unpriced = "not priced"
    pollers = unpriced if m.poller_usd is None else f"${m.poller_usd:,.4f}"
    standing = unpriced if m.standing_usd_month is None else f"${m.standing_usd_month:,.2f}"
    if mode.pollers is None:
        pollers = standing = "none"  # standard mode's pollers are in the Lambda price
    total = f"${m.total_usd:,.4f}" + (" + pollers" if m.poller_usd is None else "")
    wall = _seconds(m.wall_s)
    return f"| {label} | {ramp} | {wall} | ${m.jobs_usd:,.4f} | {pollers} | {standing} | {total} |"


def _seconds(value: float) -> str:
    """Short batches differ by fractions of a second: one decimal below 100 s."""
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def render_comparison(c: ModeComparison) -> str:
    """The comparison as markdown, printed after the projection by `run_batch.py --estimate`."""
    lines = [
        f"Scaling modes of the worker's SQS event source mapping (the stack is in {c.current} mode; "
        'docs/pipeline.md, "Projection on AWS"):',
        "",
        "| mode | concurrency | wall s | jobs USD | pollers USD/batch | standing USD/month | USD/batch |",
        "|---|---|---|---|---|---|---|",
        _mode_row(c.standard, c.current),
        _mode_row(c.provisioned, c.current),
        "",
    ]
    if c.current == "provisioned":
        lines.append("The projection above models standard mode; the stack's mappings are provisioned.")
    lines += [f"Assumed: {text}." for text in c.assumed]
    return "\n".join([*lines, f"Verdict: {c.verdict}"])
