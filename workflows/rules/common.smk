# Shared helpers: config validation, paths, the interpreter rules call.
import sys

from di4c.config import cli_flags, validate_config

validate_config(config)

PY = sys.executable
TABLES = config["tables_dir"]
RESULTS = config["results_dir"]
ENV = "../envs/di4c.yaml"

TABLE_FILES = {
    "theory": [f"{TABLES}/theory.csv", f"{TABLES}/theory.png"],
}


def final_targets():
    """Every table (and plot) named in config['targets']."""
    return [path for name in config["targets"] for path in TABLE_FILES[name]]
