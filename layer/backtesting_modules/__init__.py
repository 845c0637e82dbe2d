"""backtesting_modules (public API assembled once all modules land)."""
