"""Typed configuration: metric catalog, sources and experiments, loaded from YAML.

Every model is strict (unknown keys are errors) so that a typo in a config fails
loudly instead of being ignored.  A bad file raises
:class:`~analysis.config.base.ConfigError` naming the file, the key path and
the reason.  So does config that would silently mean something else: a
duplicate YAML key, two files of one experiment, an experiment id that collides
with the output directory's own names, a metric in two roles, a ``columns:``
key that is not a contract column, an unreadable file.

One job per module:

- :mod:`analysis.config.base`: what every model shares: strict models, the
  identifier rule, the output directory's reserved names, the error;
- :mod:`analysis.config.sources`: the models of ``sources.yaml``;
- :mod:`analysis.config.experiments`: the metric catalog and the experiments;
- :mod:`analysis.config.load`: read and cross-check a config dir
  (:func:`~analysis.config.load.load_config`);
- :mod:`analysis.config.run`: a run's id and its default analysis date.
"""

from analysis.config.base import ConfigError
from analysis.config.experiments import Experiment, Metric
from analysis.config.load import ProofConfig, load_config
from analysis.config.run import AsOfError, check_as_of, validate_run_id, yesterday
from analysis.config.sources import DuckDBSource, FileSource, Source, SqlSource

__all__ = [
    "AsOfError",
    "ConfigError",
    "DuckDBSource",
    "Experiment",
    "FileSource",
    "Metric",
    "ProofConfig",
    "Source",
    "SqlSource",
    "check_as_of",
    "load_config",
    "validate_run_id",
    "yesterday",
]
