"""Reproducible studies declared as TOML data, run by :func:`experiments.runner.run_command`
(``ufm run EXPERIMENT``); see the module docstring of :mod:`experiments.runner`."""
