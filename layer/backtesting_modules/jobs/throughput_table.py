"""The planner's engine throughput per strategy: bar·combinations per second on one core,
measured by benchmarks/calibrate.py (do not edit by hand: run it with --write). The planner sizes
a strategy's jobs with its figure here, and a strategy not listed with DEFAULT_THROUGHPUT.

Measured 2026-12-06 on x86_64, Python 3.11.7:
a year of synthetic hourly bars, costs, a stop, every metric; MEASURED from job-sized grid tiles
run as a worker runs them (`run_job`), MEASURED_SETS from random parameter sets over every
parameter's whole range (`run_sets`, what a search's jobs run).
"""

MEASURED: dict[str, float] = {
    "Donchian_Breakout": 3.379e07,
    "Dynamic_RSI_MACD": 1.831e07,
    "Hybrid_VCP_Momentum": 2.890e07,
    "RSI_MeanReversion": 3.898e07,
    "SMA_Crossover": 4.255e07,
    "Simple_MA_Crossover": 3.331e07,
    "Static_Donchian_Supertrend": 1.876e07,
}

MEASURED_SETS: dict[str, float] = {
    "Donchian_Breakout": 2.963e07,
    "Dynamic_RSI_MACD": 1.443e07,
    "Hybrid_VCP_Momentum": 8.475e06,
    "RSI_MeanReversion": 2.905e07,
    "SMA_Crossover": 3.270e07,
    "Simple_MA_Crossover": 1.215e07,
    "Static_Donchian_Supertrend": 8.362e06,
}
