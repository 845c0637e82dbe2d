"""The probability of backtest overfitting (PBO), by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, López de Prado, Zhu, "The Probability of Backtest Overfitting", Journal of Computational
Finance 20(4), 2017 (SSRN 2326253). The T periods (rows) of N variants' per-period returns are cut into S
contiguous blocks; each of the C(S, S/2) ways of choosing S/2 blocks as in-sample (IS) and the rest as
out-of-sample (OOS) is a split. The IS-best variant's OOS relative rank ω gives the logit λ = ln(ω/(1−ω));
PBO is the share of splits with λ ≤ 0 (the IS winner at or below the OOS median).

Owns `BlockStats` (per block and variant: the count, sum and sum of squares of the returns, built from
column chunks and concatenated, so a caller never holds more than a chunk of the returns) and
`compute_pbo`, which reads only those sums. Conventions (Sharpe ratio with ddof 1, zero variance, ties) are
in docs/validation.md, section "Probability of backtest overfitting".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .folds import ValidationError

MIN_BLOCKS = 4
MAX_BLOCKS = 20  # C(20, 10) = 184,756 splits
# A half's variance counts as zero when the spread Σ(r − mean)² is below 1e-12 of Σr² (float64 rounding of
# the sums cannot tell it from zero): that is when |Sharpe| would exceed 10⁶ per period.
ZERO_SPREAD = 1e-12
# Splits are worked through in chunks: the block-sum products on 16 MB per buffer (four buffers), the
# elementwise work on 1 MB slices of them, which stay in the L2 cache (measured fastest).
_PRODUCT_BYTES = 16 << 20
_WORK_BYTES = 1 << 20
# Splits × variants whose Sharpe ratios one PBO computes at most (about 0.15 s on one core). Above it, a
# seeded random sample of complementary split pairs stands for all of them: the estimate's standard error
# is reported (√(p(1 − p)/splits), ≤ 0.016 with 1,000 splits). 25,000 variants, S = 16: 1,000 of 12,870.
DEFAULT_MAX_EVALUATIONS = 25_000_000
SAMPLE_SEED = 20170101  # fixed: the same returns give the same PBO


def _check_blocks(blocks: object, n_periods: int) -> int:
    top = min(MAX_BLOCKS, n_periods - n_periods % 2)
    fits = f"an even number from {MIN_BLOCKS} to {top}" if top >= MIN_BLOCKS else None
    if isinstance(blocks, bool) or not isinstance(blocks, int | np.integer):
        raise ValidationError(f"validation.pbo_blocks: {blocks!r}: write {fits or 'an even whole number'}.")
    if fits is None:
        raise ValidationError(
            f"validation.pbo_blocks: {blocks}: the returns have {n_periods} periods; PBO needs at least "
            f"{MIN_BLOCKS} (one per block)."
        )
    if blocks % 2 or not MIN_BLOCKS <= blocks <= top:
        why = f" (at most one block per period: {n_periods} periods)" if blocks > n_periods else ""
        raise ValidationError(f"validation.pbo_blocks: {blocks}{why}: write {fits}, e.g. 16.")
    return int(blocks)


def block_sizes(n_periods: int, blocks: int) -> np.ndarray:
    """Rows per block: S contiguous blocks as equal as possible, the first T mod S one row longer
    (`np.array_split`'s rule)."""
    base, extra = divmod(n_periods, blocks)
    return np.array([base + 1] * extra + [base] * (blocks - extra), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class BlockStats:
    """Per block (rows) and variant (columns): the sum and the sum of squares of the returns; `counts` are
    the periods per block (the same for every variant). Float64. Build one per column chunk with
    `from_returns` and join them with `concat`."""

    counts: np.ndarray  # (S,) int64
    sums: np.ndarray  # (S, N) float64
    sumsq: np.ndarray  # (S, N) float64

    @property
    def blocks(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_variants(self) -> int:
        return int(self.sums.shape[1])

    @property
    def n_periods(self) -> int:
        return int(self.counts.sum())

    @classmethod
    def from_returns(cls, returns: np.ndarray, blocks: int) -> BlockStats:
        """The block sums of `returns` (T periods × N variants; a 1-D array is one variant), which must be
        finite: a period a variant was flat is a return of 0."""
        data = np.asarray(returns, dtype=np.float64)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[1] == 0:
            raise ValidationError(
                f"returns: shape {data.shape}: pass a 2-D array, one row per period, one column per variant."
            )
        bad = ~np.isfinite(data)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise ValidationError(
                f"returns: {int(bad.sum())} NaN or infinite values (the first at period {row}, variant "
                f"{column}): a period a variant was flat is a return of 0."
            )
        counts = block_sizes(data.shape[0], _check_blocks(blocks, data.shape[0]))
        edges = np.concatenate([[0], np.cumsum(counts)])
        sums = np.zeros((counts.shape[0], data.shape[1]))
        sumsq = np.zeros_like(sums)
        square = np.empty(data.shape[1])
        # Row by row, in period order: each column's sums are then the same bits whatever the chunk's width
        # (numpy's own reductions sum narrow and wide arrays in different orders).
        for block, (lo, hi) in enumerate(itertools.pairwise(edges)):
            for row in data[lo:hi]:
                sums[block] += row
                sumsq[block] += np.multiply(row, row, out=square)
        return cls(counts, sums, sumsq)

    @classmethod
    def concat(cls, parts: Sequence[BlockStats]) -> BlockStats:
        """The stats of column chunks of the same periods, side by side (variants in the order given)."""
        if not parts:
            raise ValidationError("returns: no chunk of block stats to join: pass at least one.")
        for number, part in enumerate(parts[1:], start=2):
            if not np.array_equal(part.counts, parts[0].counts):
                raise ValidationError(
                    f"returns: chunk {number} has {part.n_periods} periods in {part.blocks} blocks, chunk 1 "
                    f"{parts[0].n_periods} in {parts[0].blocks}: every chunk holds the same periods, cut the "
                    "same way."
                )
        return cls(parts[0].counts, np.hstack([p.sums for p in parts]), np.hstack([p.sumsq for p in parts]))


@dataclass(frozen=True, eq=False)
class PBOResult:
    """What CSCV says of a grid: `pbo` (share of splits whose IS winner is at or below the OOS median), the
    logit λ of every split (float32, splits in lexicographic order of their IS blocks), the least-squares
    line of the IS winner's OOS Sharpe ratio on its IS Sharpe ratio (`slope`, `intercept`, `r2`: the
    performance degradation) and `prob_oos_loss` (share of splits whose IS winner has an OOS Sharpe < 0)."""

    pbo: float
    n_splits: int
    n_variants: int
    n_periods: int
    blocks: int
    logits: np.ndarray
    slope: float
    intercept: float
    r2: float
    prob_oos_loss: float
    splits_total: int = 0  # C(S, S/2); n_splits is less when the splits were sampled

    @property
    def sampled(self) -> bool:
        return self.n_splits < self.splits_total

    @property
    def standard_error(self) -> float:
        """Of the PBO estimate: 0 when every split was computed, else the binomial √(p(1 − p)/splits)."""
        return math.sqrt(self.pbo * (1 - self.pbo) / self.n_splits) if self.sampled else 0.0

    def histogram(self, bins: int | Sequence[float] = 20) -> tuple[np.ndarray, np.ndarray]:
        """(bin edges, counts) of the logits, for a chart of their distribution."""
        counts, edges = np.histogram(self.logits.astype(np.float64), bins=bins)
        return edges, counts

    def to_dict(self, bins: int = 20) -> dict[str, object]:
        """A JSON-ready summary: the numbers (NaN as None) and a histogram of the logits instead of all."""
        edges, counts = self.histogram(bins)
        return {
            "pbo": self.pbo,
            "n_splits": self.n_splits,
            "n_variants": self.n_variants,
            "n_periods": self.n_periods,
            "blocks": self.blocks,
            "slope": _json_float(self.slope),
            "intercept": _json_float(self.intercept),
            "r2": _json_float(self.r2),
            "prob_oos_loss": self.prob_oos_loss,
            "splits_total": self.splits_total,
            "standard_error": self.standard_error,
            "logit_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        }


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def split_masks(blocks: int) -> np.ndarray:
    """Every choice of blocks/2 IS blocks as a (C(S, S/2), S) boolean matrix, in lexicographic order of the
    chosen blocks. Row C−1−i is the complement of row i (the order reverses under complement), so split i's
    OOS half is split C−1−i's IS half."""
    chosen = itertools.combinations(range(blocks), blocks // 2)
    flat = np.fromiter(itertools.chain.from_iterable(chosen), dtype=np.int64)
    masks = np.zeros((math.comb(blocks, blocks // 2), blocks), dtype=bool)
    masks[np.repeat(np.arange(masks.shape[0]), blocks // 2), flat] = True
    return masks


@dataclass(frozen=True, eq=False)
class _Sums:
    """One half of a chunk of splits: per split its periods `n`; per split and variant Σr and Σr²."""

    n: np.ndarray  # (c,)
    s: np.ndarray  # (c, N)
    q: np.ndarray  # (c, N)


def _sums(stats: BlockStats, mask: np.ndarray, s_out: np.ndarray, q_out: np.ndarray) -> _Sums:
    """The halves' sums as (splits × S) 0/1 weights times the (S × N) block sums, into reused buffers."""
    weights = mask.astype(np.float64)
    rows = weights.shape[0]
    np.matmul(weights, stats.sums, out=s_out[:rows])
    np.matmul(weights, stats.sumsq, out=q_out[:rows])
    return _Sums(weights @ stats.counts.astype(np.float64), s_out[:rows], q_out[:rows])


def _complement(stats: BlockStats, half: _Sums, s_out: np.ndarray, q_out: np.ndarray) -> _Sums:
    """The other halves' sums: the totals less `half`'s (one subtraction instead of a product)."""
    rows = half.s.shape[0]
    np.subtract(stats.sums.sum(axis=0), half.s, out=s_out[:rows])
    np.subtract(stats.sumsq.sum(axis=0), half.q, out=q_out[:rows])
    return _Sums(float(stats.counts.sum()) - half.n, s_out[:rows], q_out[:rows])


@dataclass(frozen=True, eq=False)
class _Half:
    """Part of a `_Sums`: per split, its periods `n`; per split and variant, the scaled Sharpe ratio
    u = Σr / √(nΣr² − (Σr)²) = SR·√(n / (n − 1)), which ranks like SR within a split."""

    n: np.ndarray  # (c,)
    u: np.ndarray  # (c, N)


def _half(sums: _Sums, part: slice) -> _Half:
    """The scaled Sharpe ratios of `part` of the splits, computed in place of their Σr² (used once)."""
    n, s, spread = sums.n[part], sums.s[part], sums.q[part]
    spread *= n[:, None]  # n·Σr²
    limit = spread * ZERO_SPREAD
    spread -= s * s  # n·Σr² − (Σr)² = n²·(population variance)
    zero = spread <= limit
    with np.errstate(invalid="ignore"):
        np.sqrt(spread, out=spread)
    u = np.divide(s, spread, out=spread, where=~zero)
    if zero.any():
        # Zero variance: the limit of the Sharpe ratio, +inf for a riskless gain, −inf for a loss, 0 if flat.
        flat = s[zero]
        u[zero] = np.where(flat > 0, np.inf, np.where(flat < 0, -np.inf, 0.0))
    return _Half(n, u)


def _score(ins: _Half, oos: _Half) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per split: twice the OOS rank of the IS winner (ranks 1..N, ties averaged, so 2·rank is a whole
    number), and the winner's IS and OOS Sharpe ratios."""
    rows = np.arange(ins.u.shape[0])
    best = ins.u.argmax(axis=1)  # ties: the lowest index
    chosen = oos.u[rows, best][:, None]
    below = np.count_nonzero(oos.u < chosen, axis=1)
    level = np.count_nonzero(oos.u == chosen, axis=1)  # counts the winner itself
    rank2 = 2 * below + level + 1
    return rank2, _sharpe(ins.u[rows, best], ins.n), _sharpe(chosen[:, 0], oos.n)


def _sharpe(u: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The per-period Sharpe ratio mean / std (ddof 1) from the scaled one."""
    return u * np.sqrt((n - 1) / n)


def compute_pbo(stats: BlockStats, *, max_evaluations: int = DEFAULT_MAX_EVALUATIONS) -> PBOResult:
    """PBO, the logits and the performance degradation of a grid from its block stats (Bailey et al. 2017).

    Performance is the per-period Sharpe ratio over a half's periods (mean / std with ddof 1); a half of
    zero variance has Sharpe 0 if its mean is 0, ±inf otherwise. The IS winner is the highest IS Sharpe
    (ties: the lowest variant index); ω = its averaged OOS rank / (N + 1). Work is chunked over splits (four
    16 MB buffers at most), so memory does not grow with the number of splits. When C(S, S/2) × N exceeds
    `max_evaluations`, a seeded sample of complementary split pairs stands for all splits
    (`PBOResult.sampled`, `.standard_error`).
    """
    blocks = _check_blocks(stats.blocks, stats.n_periods)
    n_variants = stats.n_variants
    if n_variants < 2:
        raise ValidationError(
            f"returns: {n_variants} variant: PBO ranks the in-sample winner among at least 2 variants."
        )
    masks = split_masks(blocks)
    pairs = _pairs(masks.shape[0], n_variants, max_evaluations)
    rank2, is_sharpe, oos_sharpe = _scan(stats, masks, pairs)
    total = rank2.shape[0]
    twice = 2 * (n_variants + 1)
    logits = np.log(rank2 / (twice - rank2)).astype(np.float32)
    slope, intercept, r2 = _fit_line(is_sharpe, oos_sharpe)
    return PBOResult(
        pbo=float(np.mean(rank2 <= n_variants + 1)),  # λ ≤ 0 ⟺ ω ≤ 1/2, decided on whole numbers
        n_splits=total,
        n_variants=n_variants,
        n_periods=stats.n_periods,
        blocks=blocks,
        logits=logits,
        slope=slope,
        intercept=intercept,
        r2=r2,
        prob_oos_loss=float(np.mean(oos_sharpe < 0)),
        splits_total=masks.shape[0],
    )


def _pairs(total: int, n_variants: int, max_evaluations: int) -> np.ndarray:
    """The first-half split indices computed (each with its complement): all, or a seeded sample."""
    every = np.arange(total // 2)
    wanted = max(1, max_evaluations // (2 * n_variants))
    if wanted >= every.size:
        return every
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(every, size=wanted, replace=False))


def _scan(
    stats: BlockStats, masks: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per split computed: 2·(OOS rank of the IS winner), its IS and its OOS Sharpe ratio; the splits are
    `pairs` (first-half indices) then their complements, in reverse (all of them: lexicographic order).

    Split i and split C−1−i are each other's halves, so first-half splits give all C. The block-sum
    products run on large chunks of splits (BLAS threads pay off, buffers are reused); the other halves'
    sums are the totals less these; the elementwise work runs on slices of about `_WORK_BYTES` per array,
    which stay in cache.
    """
    count, n_variants = pairs.shape[0], stats.n_variants
    rank2 = np.empty(2 * count, dtype=np.int64)
    is_sharpe, oos_sharpe = np.empty(2 * count), np.empty(2 * count)
    big = max(1, _PRODUCT_BYTES // (8 * n_variants))
    small = max(1, _WORK_BYTES // (8 * n_variants))
    buffers = [np.empty((min(big, count), n_variants)) for _ in range(4)]
    for lo in range(0, count, big):
        at_rows = np.arange(lo, min(count, lo + big))
        first = _sums(stats, masks[pairs[at_rows]], buffers[0], buffers[1])
        second = _complement(stats, first, buffers[2], buffers[3])
        for at in range(0, at_rows.shape[0], small):
            part = slice(at, at + small)
            ins, oos = _half(first, part), _half(second, part)
            for where, (a, b) in ((at_rows[part], (ins, oos)), (2 * count - 1 - at_rows[part], (oos, ins))):
                rank2[where], is_sharpe[where], oos_sharpe[where] = _score(a, b)
    return rank2, is_sharpe, oos_sharpe


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y ≈ slope·x + intercept over the finite pairs, and R²; NaN when x does not vary (or
    fewer than 2 finite pairs); R² NaN when y does not vary."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2:
        return math.nan, math.nan, math.nan
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if sxx == 0:
        return math.nan, math.nan, math.nan
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy) if syy > 0 else math.nan
    return slope, float(y.mean()) - slope * float(x.mean()), r2
