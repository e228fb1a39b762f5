"""garrison's benchmarks: each one measures its baseline in the same run and reports ratios.

Run them with ``python -m bench`` (all), ``python -m bench tell ask`` (a subset)
or ``python -m bench --quick`` (a smoke run); see ``bench/README.md``.
"""
