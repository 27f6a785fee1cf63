# Shared by all the rule files (config assembly and validation, paths, wildcard constraints).
# Each setting's run lives in {results_dir}/{setting}/{scale}/ (di4c/workflow.py says
# what goes where); input functions and step configs come from di4c.workflow.Workflow.
import sys

from di4c.config import SCALE_PARENT, assemble_config
from di4c.workflow import SAMPLING_SETTINGS, Workflow

assemble_config(config, root=workflow.basedir)

WF = Workflow(config)
PY = sys.executable  # the interpreter Snakemake runs in (the project's venv)
RESULTS = config["results_dir"]
PINS = config["pins_dir"]
PAPER_SCALE = config["paper_scale"]
CPU_SCALE = config["cpu_scale"]
RUN = f"{RESULTS}/{{setting}}/{{scale}}"


wildcard_constraints:
    setting="|".join(SAMPLING_SETTINGS),
    scale="|".join(SCALE_PARENT),
    model=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    cell=r"[A-Za-z0-9][A-Za-z0-9_.\-]*_n[0-9]+(_l[0-9]+)?(_w[0-9.]+)?(_fp32|_fp64)?",


def step_config(step):
    """Param function: the part of the resolved config the step reads (JSON)."""

    def params(wildcards):
        ids = {k: v for k, v in wildcards.items() if k in ("model", "cell")}
        return WF.step_config(wildcards.setting, wildcards.scale, step, **ids)

    return params


def threads_of(wildcards):
    return WF.threads(wildcards.setting, wildcards.scale)


def gpus_of(wildcards):
    return WF.gpus(wildcards.setting, wildcards.scale)


def setting_step_config(setting, step):
    """Param function of a rule whose setting is fixed (ImageNet / OWT-only steps)."""

    def params(wildcards):
        ids = {k: v for k, v in wildcards.items() if k in ("model", "cell")}
        return WF.step_config(setting, wildcards.scale, step, **ids)

    return params


def imagenet_step_config(step):
    return setting_step_config("imagenet", step)


def imagenet_vq_card(wildcards):
    return WF.card("imagenet", wildcards.scale, "vq")


def imagenet_threads(wildcards):
    return WF.threads("imagenet", wildcards.scale)


def imagenet_gpus(wildcards):
    return WF.gpus("imagenet", wildcards.scale)


def step_flags(wildcards):
    return f"--setting {wildcards.setting} --scale {wildcards.scale}"


TABLE_FILES = {"theory": [f"{config['tables_dir']}/theory.csv"]}
for _s in SAMPLING_SETTINGS:
    TABLE_FILES[_s] = [WF.table_path(_s, PAPER_SCALE)]
    TABLE_FILES[f"{_s}_mini"] = [WF.table_path(_s, CPU_SCALE)]


def final_targets():
    """Every table named in config['targets']."""
    unknown = [t for t in config["targets"] if t not in TABLE_FILES]
    if unknown:
        raise ValueError(
            f"config key targets: unknown target(s) {unknown}; allowed: {sorted(TABLE_FILES)}"
        )
    return [path for name in config["targets"] for path in TABLE_FILES[name]]


def openwebtext_step_config(step):
    return setting_step_config("openwebtext", step)


def openwebtext_threads(wildcards):
    return WF.threads("openwebtext", wildcards.scale)


# ------------------------------------------------------------- input / param functions
def standins_inputs(wildcards):
    """The stand-ins' manifest where the scale builds them (rehearsal), else nothing."""
    return WF.standins_inputs(wildcards.setting, wildcards.scale)


def teacher_inputs(wildcards):
    return WF.teacher_inputs(wildcards.setting, wildcards.scale)


def distill_inputs(wildcards):
    return WF.distill_inputs(wildcards.setting, wildcards.scale, wildcards.model)


def sample_inputs(wildcards):
    return WF.sample_inputs(wildcards.setting, wildcards.scale, wildcards.cell)


def sample_cards(wildcards):
    return WF.sample_cards(wildcards.setting, wildcards.scale, wildcards.cell)


def metric_cards(wildcards):
    return WF.metric_cards(wildcards.setting, wildcards.scale)


def metric_card_flags(wildcards):
    s, x = wildcards.setting, wildcards.scale
    return WF.cards_flags(s, x, WF.metric_models(s, x))


def check_inputs(wildcards):
    return WF.check_inputs(wildcards.setting, wildcards.scale)


def paper_table_inputs(wildcards):
    return WF.table_inputs(wildcards.setting, PAPER_SCALE)


def cpu_table_inputs(wildcards):
    return WF.table_inputs(wildcards.setting, CPU_SCALE)


def paper_teacher_of(wildcards):
    return WF.teacher_of(wildcards.setting, PAPER_SCALE)


def cpu_teacher_of(wildcards):
    return WF.teacher_of(wildcards.setting, CPU_SCALE)


def theory_config(wildcards):
    return WF.theory_config(wildcards.scale)


def theory_inputs(wildcards):
    return WF.theory_inputs(CPU_SCALE)
