"""Reproducible studies declared as TOML data, run by :func:`experiments.runner.run_study`
(``ufm run EXPERIMENT``)."""
