"""huntgroup.config: the YAML configuration file (models, loading, JSON Schema)."""

from huntgroup.config.loader import load_config, load_config_text, summarize
from huntgroup.config.models import Config
from huntgroup.config.schema import json_schema

__all__ = ["Config", "json_schema", "load_config", "load_config_text", "summarize"]
