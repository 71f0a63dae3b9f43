"""The configuration: its typed model (`config.model`) and the file's reader (`config.reader`)."""

from journeyguard.features.config.model import Config, SourceConfig, TaskConfig
from journeyguard.features.config.reader import load_config, parse_config, parse_duration

__all__ = ["Config", "SourceConfig", "TaskConfig", "load_config", "parse_config", "parse_duration"]
