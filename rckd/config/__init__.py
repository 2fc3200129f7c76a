"""Dataclass configs: options declared once, defaults in code, overrides from any source.

Every command takes a config dataclass (a :class:`Config`) whose fields are :func:`option`\\ s:
type, default, help and constraints in one place (:mod:`~rckd.config.fields`). YAML files,
``key=value`` overrides, command-line flags and grid files are laid over the defaults and checked
against those declarations by the same code (:mod:`~rckd.config.values`), and a bad value is
refused with one line naming its source and key path (:mod:`~rckd.config.sources`). The resolved
config is saved beside every output with :func:`save_config`. The command line itself is built
from the same declarations in :mod:`rckd.commands.arguments`.
"""

from rckd.config.fields import (Config, ConfigError, RunConfig, device_spec, equivalent, option,
                                options_of, section, to_dict)
from rckd.config.sources import (Layer, apply_overrides, file_layer, from_dict, load_config,
                                 parse_override, read_yaml, resolve, save_config, update)
from rckd.config.values import Overrides

__all__ = ["Config", "ConfigError", "RunConfig", "Overrides", "option", "section", "options_of",
           "device_spec", "equivalent", "to_dict", "from_dict", "update", "load_config", "apply_overrides", "save_config",
           "resolve", "Layer", "file_layer", "parse_override", "read_yaml"]
