# Shared helpers: config assembly + validation, paths, the interpreter rules call.
# Each slice's rules file registers its tables in TABLE_FILES under a target name.
import sys

from di4c.config import assemble_config, cli_flags

assemble_config(config, root=workflow.basedir)

PY = sys.executable
ENV = "../envs/di4c.yaml"
TABLES = config["tables_dir"]
MINI = config["mini_tables_dir"]
RESULTS = config["results_dir"]
# sha256/commit pins of the published weights, written by the first download (di4c.pins)
PINS = config.get("pins_dir", "workflows/pins")

TABLE_FILES = {}


def final_targets():
    """Every table (and plot) named in config['targets']."""
    unknown = [t for t in config["targets"] if t not in TABLE_FILES]
    if unknown:
        raise ValueError(
            f"config key targets: unknown target(s) {unknown}; allowed: {sorted(TABLE_FILES)}"
        )
    return [path for name in config["targets"] for path in TABLE_FILES[name]]
