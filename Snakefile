# di4c: reproducibility DAG for "Distillation of Discrete Diffusion through
# Dimensional Correlations" (Di4C, ICML 2025).
#   snakemake --cores 2                                   # CPU tables (default config)
#   snakemake --cores 2 --configfile workflows/config/smoke.yaml   # CI smoke
from snakemake.utils import min_version

min_version("9.0")


configfile: "workflows/config/default.yaml"


report: "workflows/report/workflow.rst"


include: "workflows/rules/common.smk"
include: "workflows/rules/theory.smk"
include: "workflows/rules/cifar10.smk"
include: "workflows/rules/imagenet.smk"
include: "workflows/rules/openwebtext.smk"


rule all:
    default_target: True
    input:
        final_targets(),
