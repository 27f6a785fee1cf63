# Paths, config views and input/param functions of the imagenet rules
# (workflows/rules/imagenet.smk, which includes this file). Both scales share the
# distill / sample / eval rules through the {scale} wildcard.
import os
import re
import shlex

IMN = f"{RESULTS}/imagenet"
IMN_SEC = {"paper": config["imagenet"]["paper"], "mini": config["imagenet"]["mini"]}
IMN_P = IMN_SEC["paper"]
IMN_M = IMN_SEC["mini"]
IMN_PROTOCOL = {
    "paper": "paper",
    "mini": "smoke" if config["scale"] == "smoke" else "mini",
}
IMN_TABLE = {"paper": f"{TABLES}/imagenet", "mini": f"{MINI}/imagenet"}

TABLE_FILES["imagenet_mini"] = [
    f"{MINI}/imagenet.csv",
    f"{MINI}/imagenet.png",
    f"{MINI}/imagenet.md",
]
TABLE_FILES["imagenet"] = [
    f"{TABLES}/imagenet.csv",
    f"{TABLES}/imagenet.png",
    f"{TABLES}/imagenet.md",
]


def imn_regex(names):
    return "|".join(re.escape(n) for n in sorted(set(names)))


IMN_VARIANTS = sorted(set(IMN_P["variants"]) | set(IMN_M["variants"]))
IMN_VARIANT_RE = imn_regex(IMN_VARIANTS)
IMN_MODEL_RE = imn_regex(["teacher", "released", "hybrid", *IMN_VARIANTS])


def imn_cfg(w):
    """CFG weight as written in file names: 3, 0.5."""
    return f"{float(w):g}"


def imn_students(scale):
    sec = IMN_SEC[scale]
    extra = ["released"] if scale == "paper" and sec.get("released", False) else []
    return list(sec["variants"]) + extra


def imn_cells(scale):
    """(model, steps, cfg) of every sample cell: FID-IS curves + step grids."""
    sw = IMN_SEC[scale]["sweep"]
    studs = imn_students(scale)
    cells = set()
    for w in sw["cfg_grid"]:
        cells |= {("teacher", n, imn_cfg(w)) for n in sw["curve_steps"]["teacher"]}
        cells |= {
            (m, n, imn_cfg(w)) for m in studs for n in sw["curve_steps"]["student"]
        }
    w = imn_cfg(sw["step_grid_cfg"])
    cells |= {("teacher", n, w) for n in sw["teacher_step_grid"]}
    cells |= {(m, n, w) for m in studs for n in sw["student_step_grid"]}
    hybrid = IMN_SEC[scale].get("hybrid")
    if hybrid:
        cells |= {("hybrid", n, w) for n in hybrid["steps"]}
    return sorted(cells)


def imn_metric_files(scale):
    return [
        f"{IMN}/{scale}/metrics/{m}_steps{n}_cfg{w}.json"
        for m, n, w in imn_cells(scale)
    ]


def imn_teacher(scale):
    if scale == "paper":
        return f"{IMN}/paper/weights/teacher.pth"
    return f"{IMN}/mini/teacher/model.pth"


def imn_tokens(scale):
    return f"{IMN}/{scale}/tokens.pt"


def imn_tokenizer(scale):
    d = f"{IMN}/paper/weights/vqgan" if scale == "paper" else f"{IMN}/mini/vq"
    return {"vq_ckpt": f"{d}/last.ckpt", "vq_yaml": f"{d}/model.yaml"}


def imn_weight_files():
    """Outputs of fetch_imagenet_weights (the released student only if evaluated)."""
    d = f"{IMN}/paper/weights"
    files = [f"{d}/teacher.pth", f"{d}/vqgan/last.ckpt", f"{d}/vqgan/model.yaml"]
    return files + ([f"{d}/released.pth"] if IMN_P.get("released", False) else [])


def imn_out_dir(wildcards, output):
    """Folder of the rule's first output (the tokenizer / weights folder)."""
    return os.path.dirname(output[0])


def imn_fetch_flags():
    flags = [
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}"
        for k, v in (IMN_P.get("weights") or {}).items()
        if v
    ]
    if IMN_P.get("released", False):
        flags.append("--student")
    return " ".join(flags)


def imn_model_file(wildcards):
    s, m = wildcards.scale, wildcards.model
    if m == "teacher":
        return imn_teacher(s)
    if m == "released":
        return f"{IMN}/paper/weights/released.pth"
    if m == "hybrid":
        m = imn_hybrid(s)["student"]
    return f"{IMN}/{s}/students/{m}/model.pth"


def imn_hybrid(scale):
    hybrid = IMN_SEC[scale].get("hybrid")
    if not hybrid:
        raise ValueError(f"imagenet.{scale}.hybrid is not configured")
    if hybrid["student"] not in imn_students(scale):
        raise ValueError(
            f"imagenet.{scale}.hybrid.student {hybrid['student']!r} is not a student; "
            f"allowed: {imn_students(scale)}"
        )
    return hybrid


def imn_distill_inputs(wildcards):
    return {
        "teacher": imn_teacher(wildcards.scale),
        "tokens": imn_tokens(wildcards.scale),
    }


def imn_distill_flags(wildcards):
    sec = IMN_SEC[wildcards.scale]
    if wildcards.variant not in sec["variants"]:
        raise ValueError(
            f"imagenet.{wildcards.scale}.variants has no {wildcards.variant!r}; "
            f"allowed: {sorted(sec['variants'])}"
        )
    merged = dict(sec["distill"])
    merged.update(sec["variants"][wildcards.variant] or {})
    return f"--variant {wildcards.variant} {cli_flags(merged)}"


def imn_pick(section, keys):
    return cli_flags({k: v for k, v in section.items() if k in keys})


IMN_SAMPLE_KEYS = (
    "num_samples",
    "batch_size",
    "seed",
    "sm_temp",
    "r_temp",
    "precision",
    "device",
)


def imn_sample_inputs(wildcards):
    files = {
        "model": imn_model_file(wildcards),
        "labels": f"{IMN}/{wildcards.scale}/labels.pt",
    }
    if wildcards.model == "hybrid":
        files["teacher"] = imn_teacher(wildcards.scale)
    return files


def imn_sample_flags(wildcards, input):
    flags = imn_pick(IMN_SEC[wildcards.scale]["sample"], IMN_SAMPLE_KEYS)
    if wildcards.model == "hybrid":
        last = imn_hybrid(wildcards.scale)["teacher_last"]
        flags = f"{flags} --hybrid-teacher {input.teacher} --teacher-last {last}"
    return flags


def imn_eval_inputs(wildcards):
    s = wildcards.scale
    cell = f"{wildcards.model}_steps{wildcards.steps}_cfg{wildcards.cfg}"
    files = {
        "samples": f"{IMN}/{s}/samples/{cell}.pt",
        "reference": f"{IMN}/{s}/reference.pt",
        **imn_tokenizer(s),
    }
    if s == "mini":
        files["classifier"] = f"{IMN}/mini/classifier.pt"
    return files


def imn_eval_flags(wildcards):
    s = wildcards.scale
    ev = IMN_SEC[s]["eval"]
    flags = [f"--protocol {IMN_PROTOCOL[s]}", f"--batch-size {ev['batch_size']}"]
    if s == "mini":
        flags += [
            "--feature-extractor digit-classifier",
            f"--weights-path {IMN}/mini/classifier.pt",
            f"--levels {IMN_M['data']['levels']}",
            "--device cpu",
        ]
    else:
        flags += [
            f"--feature-extractor {ev['feature_extractor']}",
            f"--device {ev.get('device', 'auto')}",
            f"--prc-chunks {ev.get('prc_chunks', 5)}",
        ]
        if ev.get("weights_path"):
            flags.append(f"--weights-path {shlex.quote(ev['weights_path'])}")
    return " ".join(flags)


def imn_table_flags(scale):
    sw = IMN_SEC[scale]["sweep"]
    curve = sw["curve_steps"]
    steps = " ".join(
        f"{k}={','.join(str(n) for n in sorted(curve[k], reverse=True))}"
        for k in ("teacher", "student")
    )
    return (
        f"--curve-steps {steps} --note-cfg {sw['step_grid_cfg']}"
        f" --meta-note {shlex.quote(imn_about(scale))}"
    )


def imn_about(scale):
    n = IMN_SEC[scale]["sample"]["num_samples"]
    if scale == "paper":
        return (
            f"ImageNet 256, MaskGIT-pytorch teacher on VQGAN f16 codes; {n} "
            "class-conditional samples per cell (ImageNet val labels in loader order); "
            "FID, IS, precision and recall with torch-fidelity Inception against the "
            "ImageNet val images, per-image min-max preprocessing. Models: teacher, "
            "our Di4C students (di4c, di4c-d: see the config comment), released = the "
            "authors' Zenodo di4c-d. paper_fid / paper_is: MaskGIT-pytorch README "
            "teacher reference (8 steps, CFG 3, 50k), the only transcribed value."
        )
    d, vq, t = IMN_M["data"], IMN_M["vq"], IMN_M["teacher"]
    grid = vq["resolution"] // 2 ** (len(vq["ch_mult"]) - 1)
    return (
        f"Mini twin of Fig. 3. Data: {d['source']} digits {d['size']}x{d['size']}, "
        f"{d['levels']} grey levels, {d['heldout']} held out. Tokens: a small VQ of the "
        f"VQGAN family trained by the DAG ({vq['n_embed']} codes, {grid}x{grid} grid, "
        f"D = {grid * grid}). Teacher: the paper's MaskGIT network at hidden "
        f"{t['hidden_dim']}, depth {t['depth']}, trained by the DAG with the MaskGIT "
        "objective. Students: di4c-d, di4c (Di4C, K = "
        f"{IMN_M['distill']['K']}) and k1 (K = 1 product distillation, equal rows per "
        "step). Same confidence sampler, Di4C unmask schedule, linear CFG ramp and "
        f"lambda token as the paper. {n} samples per cell (held-out labels); FID, IS, "
        "precision and recall under the DAG's digit classifier trained on the held-out "
        "digits; *_spread = split-half difference. Rows 'data' and 'vq "
        "reconstruction': real training digits and their VQ reconstructions, scored "
        "the same way. No paper values apply at this scale."
    )
