"""PBO by CSCV: against an independent brute force in plain Python (every split's λ, exactly), the block
cut, streaming over column chunks, the conventions (zero variance, ties), noise against a planted edge,
and the errors."""

from __future__ import annotations

import itertools
import json
import math
import statistics

import numpy as np
import pytest

from backtesting_modules.validation import BlockStats, PBOResult, ValidationError, compute_pbo
from backtesting_modules.validation.pbo import block_sizes, split_masks

# --- the brute force: plain Python, from the definitions in Bailey, Borwein, López de Prado, Zhu (2017) -----


def _brute_blocks(n_periods: int, blocks: int) -> list[list[int]]:
    """S contiguous blocks of rows, as equal as possible, the longer ones first."""
    rows, out = list(range(n_periods)), []
    for b in range(blocks):
        size = n_periods // blocks + (1 if b < n_periods % blocks else 0)
        out.append(rows[:size])
        rows = rows[size:]
    return out


def _brute_sharpe(values: list[float]) -> float:
    """mean / sample std; zero variance: 0 if the mean is 0, ±inf otherwise."""
    mean, std = statistics.fmean(values), statistics.stdev(values)
    if std == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / std


def _brute_force(returns: list[list[float]], blocks: int) -> dict[str, object]:
    """Every split of `blocks` blocks, in lexicographic order of its IS blocks: λ, IS and OOS Sharpe."""
    n_variants = len(returns[0])
    cut = _brute_blocks(len(returns), blocks)
    logits, is_best, oos_best = [], [], []
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        ins = [t for b in chosen for t in cut[b]]
        oos = [t for b in range(blocks) if b not in chosen for t in cut[b]]
        is_perf = [_brute_sharpe([returns[t][j] for t in ins]) for j in range(n_variants)]
        oos_perf = [_brute_sharpe([returns[t][j] for t in oos]) for j in range(n_variants)]
        best = is_perf.index(max(is_perf))  # the first of equal maxima
        value = oos_perf[best]
        rank = sum(v < value for v in oos_perf) + (sum(v == value for v in oos_perf) + 1) / 2
        # ω / (1 − ω) with ω = rank / (N + 1) is rank / (N + 1 − rank): written so, the ratio is exact.
        logits.append(math.log(rank / (n_variants + 1 - rank)))
        is_best.append(is_perf[best])
        oos_best.append(value)
    return {
        "logits": logits,
        "pbo": sum(lam <= 0 for lam in logits) / len(logits),
        "is": is_best,
        "oos": oos_best,
        "loss": sum(v < 0 for v in oos_best) / len(oos_best),
    }


def _line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
    mx = statistics.fmean(p[0] for p in pairs)
    my = statistics.fmean(p[1] for p in pairs)
    slope = sum((x - mx) * (y - my) for x, y in pairs) / sum((x - mx) ** 2 for x, _ in pairs)
    return slope, my - slope * mx


def _panel(seed: int, periods: int, variants: int, drift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(drift, 0.01, size=(periods, variants))


def _pbo(returns: np.ndarray, blocks: int) -> PBOResult:
    return compute_pbo(BlockStats.from_returns(returns, blocks))


@pytest.mark.parametrize(
    ("seed", "periods", "variants", "blocks"),
    [(1, 8, 3, 4), (2, 12, 5, 4), (3, 40, 4, 4), (4, 10, 5, 4), (5, 23, 4, 6), (6, 37, 3, 8), (7, 9, 2, 4)],
)
def test_every_logit_matches_the_brute_force(seed: int, periods: int, variants: int, blocks: int) -> None:
    returns = _panel(seed, periods, variants, drift=0.001)
    expected = _brute_force(returns.tolist(), blocks)
    result = _pbo(returns, blocks)
    assert result.n_splits == math.comb(blocks, blocks // 2) == len(expected["logits"])  # type: ignore[arg-type]
    assert result.logits.dtype == np.float32
    assert result.logits.tolist() == np.asarray(expected["logits"], dtype=np.float32).tolist()
    assert result.pbo == expected["pbo"]
    assert result.prob_oos_loss == expected["loss"]
    slope, intercept = _line(expected["is"], expected["oos"])  # type: ignore[arg-type]
    assert result.slope == pytest.approx(slope, rel=1e-9, abs=1e-12)
    assert result.intercept == pytest.approx(intercept, rel=1e-9, abs=1e-12)
    # The literal formula λ = ln(ω / (1 − ω)), to float32 precision.
    omega = np.exp(result.logits.astype(np.float64)) / (1 + np.exp(result.logits.astype(np.float64)))
    np.testing.assert_allclose(np.log(omega / (1 - omega)), result.logits, atol=1e-5)


def test_ties_and_zero_variance_follow_the_brute_force() -> None:
    returns = _panel(11, 16, 6, drift=0.002)
    returns[:, 1] = returns[:, 4]  # two identical variants: equal Sharpe ratios in every half
    returns[:, 2] = 0.0  # flat: Sharpe 0 in every half, tied with column 5
    returns[:, 5] = 0.0
    expected = _brute_force(returns.tolist(), 4)
    result = _pbo(returns, 4)
    assert result.logits.tolist() == np.asarray(expected["logits"], dtype=np.float32).tolist()
    assert result.pbo == expected["pbo"]


def test_a_riskless_gain_wins_every_split_with_an_infinite_sharpe_ratio() -> None:
    returns = _panel(12, 40, 5)
    returns[:, 3] = 0.001  # constant positive return: zero variance, Sharpe +inf in both halves
    result = _pbo(returns, 4)
    expected = _brute_force(returns.tolist(), 4)
    assert expected["is"] == [math.inf] * 6
    assert result.pbo == 0.0
    assert result.logits.tolist() == [np.float32(math.log(5 / 1))] * 6  # rank N of N
    assert result.prob_oos_loss == 0.0
    assert (
        math.isnan(result.slope) and math.isnan(result.intercept) and math.isnan(result.r2)
    )  # no finite pair


def test_blocks_split_the_periods_as_evenly_as_possible() -> None:
    assert block_sizes(10, 4).tolist() == [3, 3, 2, 2]
    assert block_sizes(16, 4).tolist() == [4, 4, 4, 4]
    assert block_sizes(401, 16).tolist() == [26] + [25] * 15
    returns = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, 2))
    stats = BlockStats.from_returns(returns, 4)
    assert stats.counts.tolist() == [3, 3, 2, 2]
    assert stats.sums[:, 0].tolist() == [0 + 1 + 2, 3 + 4 + 5, 6 + 7, 8 + 9]
    assert stats.sumsq[:, 0].tolist() == [0 + 1 + 4, 9 + 16 + 25, 36 + 49, 64 + 81]
    assert (stats.blocks, stats.n_variants, stats.n_periods) == (4, 2, 10)


def test_split_masks_are_lexicographic_and_reverse_under_complement() -> None:
    assert split_masks(4).astype(int).tolist() == [
        [1, 1, 0, 0],
        [1, 0, 1, 0],
        [1, 0, 0, 1],
        [0, 1, 1, 0],
        [0, 1, 0, 1],
        [0, 0, 1, 1],
    ]
    for blocks in (4, 6, 8, 12, 16):
        masks = split_masks(blocks)
        assert masks.shape == (math.comb(blocks, blocks // 2), blocks)
        assert (masks.sum(axis=1) == blocks // 2).all()
        assert np.array_equal(masks[::-1], ~masks)


def test_streaming_over_column_chunks_gives_the_same_result() -> None:
    returns = _panel(21, 300, 1000, drift=0.0002)
    whole = _pbo(returns, 10)
    chunks = [BlockStats.from_returns(returns[:, lo : lo + 137], 10) for lo in range(0, 1000, 137)]
    streamed = compute_pbo(BlockStats.concat(chunks))
    assert np.array_equal(streamed.logits, whole.logits)
    assert streamed.to_dict() == whole.to_dict()
    one_at_a_time = compute_pbo(
        BlockStats.concat([BlockStats.from_returns(returns[:, j], 10) for j in range(1000)])
    )
    assert np.array_equal(one_at_a_time.logits, whole.logits)
    assert one_at_a_time.to_dict() == whole.to_dict()


def test_pure_noise_overfits_about_half_the_time() -> None:
    # 200 random walks (i.i.d. normal returns, no drift) over 500 periods: the IS winner is luck, its OOS
    # rank uniform, so E[PBO] = 1/2. One panel's PBO is noisy (the splits share their periods): over 60
    # seeds it measured 0.51 on average with a standard deviation of 0.13, so the test averages 12 panels.
    results = [_pbo(_panel(seed, 500, 200), 16) for seed in range(100, 112)]
    assert 0.4 <= float(np.mean([r.pbo for r in results])) <= 0.6
    assert all(r.pbo > 0.2 for r in results)
    assert abs(float(np.mean([np.median(r.logits) for r in results]))) < 0.5
    assert float(np.mean([r.slope for r in results])) < 0.3  # IS performance does not carry over OOS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_planted_edge_does_not_overfit(seed: int) -> None:
    returns = _panel(seed, 500, 200)
    returns[:, [17, 88, 150]] += 0.004  # a persistent drift, every period: SR ≈ 0.4 per period
    result = _pbo(returns, 16)
    assert result.pbo < 0.01
    assert float(np.min(result.logits)) > 0
    assert result.prob_oos_loss == 0.0


def test_the_histogram_and_the_dict_summarise_the_logits() -> None:
    result = _pbo(_panel(5, 120, 30), 8)
    edges, counts = result.histogram(10)
    assert edges.shape == (11,) and counts.sum() == result.n_splits == 70
    assert edges[0] == pytest.approx(float(result.logits.min())) and edges[-1] == pytest.approx(
        float(result.logits.max())
    )
    data = result.to_dict(bins=5)
    assert json.loads(json.dumps(data)) == data
    assert data["pbo"] == result.pbo and data["blocks"] == 8 and data["n_variants"] == 30
    assert sum(data["logit_histogram"]["counts"]) == 70  # type: ignore[index]
    assert set(data) == {
        "pbo",
        "n_splits",
        "n_variants",
        "n_periods",
        "blocks",
        "slope",
        "intercept",
        "r2",
        "prob_oos_loss",
        "logit_histogram",
        "splits_total",
        "standard_error",
    }
    assert data["splits_total"] == 70 and data["standard_error"] == 0.0  # every split computed


@pytest.mark.parametrize(
    ("periods", "blocks", "fragments"),
    [
        (100, 5, ["validation.pbo_blocks: 5", "an even number from 4 to 20"]),
        (100, 2, ["validation.pbo_blocks: 2", "from 4 to 20"]),
        (100, 22, ["validation.pbo_blocks: 22", "from 4 to 20"]),
        (9, 10, ["validation.pbo_blocks: 10 (at most one block per period: 9 periods)", "from 4 to 8"]),
        (3, 4, ["validation.pbo_blocks: 4: the returns have 3 periods", "at least 4"]),
        (100, 16.0, ["validation.pbo_blocks: 16.0", "an even number from 4 to 20"]),
        (100, True, ["validation.pbo_blocks: True"]),
    ],
)
def test_block_counts_that_do_not_fit_say_what_would(
    periods: int, blocks: object, fragments: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        BlockStats.from_returns(np.zeros((periods, 3)), blocks)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_bad_returns_are_refused() -> None:
    returns = np.zeros((40, 3))
    returns[7, 2] = np.nan
    with pytest.raises(
        ValidationError, match=r"returns: 1 NaN or infinite values \(the first at period 7, variant 2\)"
    ):
        BlockStats.from_returns(returns, 4)
    with pytest.raises(ValidationError, match="returns: shape"):
        BlockStats.from_returns(np.zeros((4, 4, 4)), 4)
    with pytest.raises(ValidationError, match="returns: 1 variant: PBO ranks"):
        compute_pbo(BlockStats.from_returns(np.ones(40), 4))
    with pytest.raises(ValidationError, match="chunk 2 has 41 periods in 4 blocks, chunk 1 40 in 4"):
        BlockStats.concat(
            [BlockStats.from_returns(np.ones((40, 2)), 4), BlockStats.from_returns(np.ones((41, 2)), 4)]
        )
    with pytest.raises(ValidationError, match="no chunk"):
        BlockStats.concat([])


def test_a_large_grid_samples_split_pairs_with_a_stated_error_and_stays_close_to_all_of_them() -> None:
    returns = np.random.default_rng(11).normal(0.0, 0.01, (160, 600))
    stats = BlockStats.from_returns(returns, blocks=12)  # C(12, 6) = 924 splits
    exact = compute_pbo(stats)
    sampled = compute_pbo(stats, max_evaluations=300 * 600)  # 150 pairs: 300 splits
    assert not exact.sampled and exact.n_splits == exact.splits_total == 924
    assert sampled.sampled and sampled.n_splits == 300 and sampled.splits_total == 924
    assert 0 < sampled.standard_error < 0.03
    assert abs(sampled.pbo - exact.pbo) <= 3 * sampled.standard_error
    assert compute_pbo(stats, max_evaluations=300 * 600).pbo == sampled.pbo  # seeded: the same every time
    # Sampled splits come in complementary pairs: each pair's IS and OOS halves swap.
    assert sampled.logits.shape == (300,)
