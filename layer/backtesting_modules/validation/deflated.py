"""The deflated Sharpe ratio (DSR): the probability that a sweep's winner has a true Sharpe ratio above the
best one N trials of no skill would show.

Bailey & López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting
and Non-Normality", Journal of Portfolio Management 40(5), 2014, 94–107 (SSRN 2460551); the probabilistic
Sharpe ratio it builds on is from Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier", Journal
of Risk 15(2), 2012 (SSRN 1821643).

Owns `expected_max_sharpe` (SR₀), `probabilistic_sharpe` (PSR) and `deflated_sharpe`, which measures the
winner's returns and the trials. Every Sharpe ratio here is per period (per bar), never annualised:
divide an annual one by √(periods a year), and an annual variance of Sharpe ratios by the periods a year.
Standard library and numpy only (`statistics.NormalDist` for Φ and Φ⁻¹). Conventions and edge cases are in
docs/validation.md, section "Deflated Sharpe ratio".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from .folds import ValidationError

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
ZERO_SPREAD = 1e-12  # as in pbo: a spread below 1e-12 of Σr² is a constant series


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(f"{field}: {value!r} is not a number.")
    if not math.isfinite(value):
        raise ValidationError(f"{field}: {value!r}: write a finite number.")
    return float(value)


def _whole(value: object, field: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValidationError(f"{field}: {value!r}: write a whole number, {least} or more.")
    return int(value)


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """SR₀ = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), γ the Euler–Mascheroni constant: the expected
    maximum of N independent Sharpe ratio estimates of true Sharpe 0 whose variance across trials is V
    (Bailey & López de Prado 2014, eq. 2, from the false strategy theorem). One trial is no selection:
    SR₀ = 0, and so is it for V = 0."""
    n = _whole(n_trials, "n_trials", 1)
    v = _number(variance, "variance")
    if v < 0:
        raise ValidationError(f"variance: {variance!r}: a variance of Sharpe ratios is 0 or more.")
    if n == 1 or v == 0:
        return 0.0
    quantiles = (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n) + EULER_GAMMA * _NORMAL.inv_cdf(
        1 - 1 / (n * math.e)
    )
    return math.sqrt(v) * quantiles


def probabilistic_sharpe(
    sr: float, sr0: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """PSR = Φ((SR − SR₀)·√(T − 1) / √(1 − γ₃·SR + (γ₄ − 1)/4·SR²)): the probability that the true Sharpe
    ratio exceeds SR₀ given an estimate SR over T periods whose returns have skewness γ₃ and kurtosis γ₄
    (non-excess: 3 for normal returns). With SR₀ the expected maximum of the trials it is the DSR.

    Every distribution has γ₄ ≥ 1 + γ₃², so the radicand is ≥ (1 − γ₃·SR/2)² ≥ 0: a kurtosis below that
    bound (often an excess kurtosis passed as kurtosis) is refused. A radicand of 0 (a two-point
    distribution) leaves SR no spread: PSR is then 1, 0 or 1/2 as SR is above, below or at SR₀.
    """
    sr_, sr0_ = _number(sr, "sr"), _number(sr0, "sr0")
    t = _whole(n_obs, "n_obs", 2)
    g3, g4 = _number(skew, "skew"), _number(kurtosis, "kurtosis")
    bound = 1 + g3 * g3
    if g4 < bound * (1 - 1e-9):
        raise ValidationError(
            f"kurtosis: {g4!r} with skew {g3!r} is impossible: every distribution has kurtosis ≥ 1 + skew² = "
            f"{bound:g}. Pass the non-excess kurtosis (3 for normal returns), i.e. excess kurtosis + 3."
        )
    radicand = 1 - g3 * sr_ + (g4 - 1) / 4 * sr_ * sr_
    if radicand <= 0:
        return 1.0 if sr_ > sr0_ else 0.0 if sr_ < sr0_ else 0.5
    return _NORMAL.cdf((sr_ - sr0_) * math.sqrt(t - 1) / math.sqrt(radicand))


@dataclass(frozen=True)
class DeflatedSharpeResult:
    """The DSR of a winner: `probability` (that its true Sharpe ratio exceeds `sr0`), its per-period `sr`
    (mean / std, ddof 1), `n_obs` periods with `skew` and `kurtosis` (non-excess, population moments), and
    SR₀ from `n_trials` trials whose per-period Sharpe ratios have variance `sharpe_variance`."""

    probability: float
    sr: float
    sr0: float
    n_trials: int
    sharpe_variance: float
    n_obs: int
    skew: float
    kurtosis: float

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the winner beats luck at level `alpha`: DSR > 1 − alpha."""
        level = _number(alpha, "alpha")
        if not 0 < level < 1:
            raise ValidationError(f"alpha: {alpha!r}: write a significance level between 0 and 1, e.g. 0.05.")
        return self.probability > 1 - level

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _trials(trials: object) -> tuple[float, int]:
    """(variance, N) of the trials' Sharpe ratios: given as a tuple, or measured (sample variance, ddof 1;
    0 for a single trial)."""
    if isinstance(trials, tuple):
        if len(trials) != 2:
            raise ValidationError(
                f"trials: a tuple of {len(trials)}: pass (variance, n_trials) or an array of the trials' "
                "per-period Sharpe ratios."
            )
        variance = _number(trials[0], "trials.variance")
        if variance < 0:
            raise ValidationError(f"trials.variance: {variance!r}: a variance of Sharpe ratios is 0 or more.")
        return variance, _whole(trials[1], "trials.n_trials", 1)
    sharpes = np.asarray(trials, dtype=np.float64).ravel()
    if sharpes.size == 0:
        raise ValidationError(
            "trials: no Sharpe ratio: pass every trial's per-period Sharpe ratio (the winner's too)."
        )
    bad = int(np.count_nonzero(~np.isfinite(sharpes)))
    if bad:
        raise ValidationError(
            f"trials: {bad} of {sharpes.size} Sharpe ratios are NaN or infinite: a variant that never traded "
            "has no Sharpe ratio; count it as 0 (np.nan_to_num) or leave it out of the trials."
        )
    variance = float(np.var(sharpes, ddof=1)) if sharpes.size > 1 else 0.0
    return variance, int(sharpes.size)


def _moments(returns: np.ndarray) -> tuple[float, float, float]:
    """(Sharpe ratio with ddof 1, skewness, kurtosis) of a series; population central moments for γ₃, γ₄."""
    centred = returns - returns.mean()
    m2 = float(np.mean(centred**2))
    if m2 * returns.size <= ZERO_SPREAD * float(np.sum(returns**2)):
        raise ValidationError(
            f"returns_of_winner: constant returns ({float(returns[0])!r} every period): a Sharpe ratio needs "
            "returns that vary."
        )
    sr = float(returns.mean()) / math.sqrt(m2 * returns.size / (returns.size - 1))
    return sr, float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


def deflated_sharpe(
    returns_of_winner: np.ndarray, trials: np.ndarray | tuple[float, int]
) -> DeflatedSharpeResult:
    """The DSR of a sweep's winner (Bailey & López de Prado 2014): the PSR of its per-period Sharpe ratio
    against SR₀ = `expected_max_sharpe(N, V)`.

    `returns_of_winner`: its per-period returns (finite, at least 3: the skewness and kurtosis of fewer are
    degenerate). `trials`: every trial's per-period Sharpe ratio, the winner's included (V is their sample
    variance, N their number), or `(V, N)`. One trial means no selection: SR₀ = 0 and the DSR is the PSR.
    """
    returns = np.asarray(returns_of_winner, dtype=np.float64).ravel()
    if returns.size < 3:
        raise ValidationError(
            f"returns_of_winner: {returns.size} periods: the deflated Sharpe ratio needs at least 3 (the "
            "skewness and kurtosis of fewer are degenerate)."
        )
    if not np.isfinite(returns).all():
        raise ValidationError("returns_of_winner: NaN or infinite returns: a flat period is a return of 0.")
    variance, n_trials = _trials(trials)
    sr, skew, kurtosis = _moments(returns)
    sr0 = expected_max_sharpe(n_trials, variance)
    return DeflatedSharpeResult(
        probability=probabilistic_sharpe(sr, sr0, returns.size, skew, kurtosis),
        sr=sr,
        sr0=sr0,
        n_trials=n_trials,
        sharpe_variance=variance,
        n_obs=int(returns.size),
        skew=skew,
        kurtosis=kurtosis,
    )
