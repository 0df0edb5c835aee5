"""edge-appliance: camera or serial sensor in, inference results out (SQLite, REST, PLC)."""

__version__ = "0.1.0"
