# di4c: reproducibility DAG for "Distillation of Discrete Diffusion through
# Dimensional Correlations" (Di4C, ICML 2025). One rule shape for every setting:
# rules over {setting}/{scale} run the generic steps of di4c.cli.
#   snakemake --cores 2                                            # CPU tables
#   snakemake --cores 2 --configfile workflows/config/smoke.yaml   # CI smoke
#   snakemake --cores 8 paper_tables/cifar10.csv                   # paper scale (GPU)
from snakemake.utils import min_version

min_version("9.0")


configfile: "workflows/config/default.yaml"


report: "workflows/report/workflow.rst"


include: "workflows/rules/common.smk"
include: "workflows/rules/data.smk"
include: "workflows/rules/models.smk"
include: "workflows/rules/evaluate.smk"
include: "workflows/rules/tables.smk"


rule all:
    default_target: True
    input:
        final_targets(),
