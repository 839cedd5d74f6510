"""Routes as a YAML file: export for backup and version control, import to create or update by name."""

from routes.config_io.exporter import Export, export_document
from routes.config_io.importer import Change, ImportResult, import_document
from routes.config_io.reading import ConfigError
from routes.config_io.schema import dump_yaml, load_yaml

__all__ = [
    "Change",
    "ConfigError",
    "Export",
    "ImportResult",
    "dump_yaml",
    "export_document",
    "import_document",
    "load_yaml",
]
