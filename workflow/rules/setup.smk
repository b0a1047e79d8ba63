# Before the config is read: lbgap importable, and config.yaml's YAML syntax checked.
import os
import sys

# The workflow and its jobs (local, conda or cluster) import lbgap from this source tree.
_SRC = os.path.join(os.path.dirname(os.path.abspath(workflow.main_snakefile)), "src")
sys.path.insert(0, _SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p))

from lbgap.config.matrix import yaml_syntax_error
from lbgap.words import plural

# Where the workflow was started: config.yaml and a scale's workdir are relative to it. A job
# that SLURM starts re-reads this file from inside the scale's workdir (the rehearsal's), and
# finds the same place through the environment it inherits.
LAUNCH_DIR = os.environ.setdefault("LBGAP_LAUNCH_DIR", os.getcwd())
CONFIG_YAML = os.path.join(LAUNCH_DIR, "config.yaml")

# Snakemake's own message for a config file it cannot parse names neither the file nor the
# line. The workflow's config.yaml is checked here first; a --configfile is parsed by
# Snakemake before any of this runs.
if os.path.exists(CONFIG_YAML) and (_error := yaml_syntax_error(CONFIG_YAML)):
    sys.exit(f"lbgap: {_error}")
