# Helpers of the CIFAR-10 rules (workflows/rules/cifar10.smk): CLI flag strings and the
# Table 1 cells. Included by cifar10.smk after C10, C10M, C10P are defined.
import shlex


def c10_list(values):
    """Space-separated CLI values."""
    return " ".join(str(v) for v in values)


def c10m_sample_flags(model):
    """--steps / --teacher-last of one mini model's sweep."""
    s = C10["mini"]["sampling"]
    common = f"--num-samples {s['num_samples']} --seed {s['seed']} --batch-size {s['batch_size']}"
    if model == "hybrid":
        pairs = s["hybrid"]
        return (
            f"{common} --steps {c10_list(p[0] for p in pairs)}"
            f" --teacher-last {c10_list(p[1] for p in pairs)}"
        )
    key = "teacher_steps" if model == "teacher" else "student_steps"
    return f"{common} --steps {c10_list(s[key])}"


def c10m_variant_flags(wildcards):
    v = C10["mini"]["distill"]["variants"][wildcards.c10variant]
    return f"--K {v['K']} --batch-x {v['batch_x']} --label {wildcards.c10variant}"


def c10m_distill_flags():
    d = dict(C10["mini"]["distill"])
    d.pop("variants")
    return cli_flags(d)


def c10p_metrics_flags():
    """Paper-scale metrics flags; --weights-path only when a local Inception copy is set."""
    m = dict(C10["paper"]["metrics"])
    weights = m.pop("weights_path", None)
    flags = cli_flags(m)
    if weights:
        flags += f" --weights-path {shlex.quote(str(weights))}"
    return flags


def c10p_cells():
    """(model, N, L) of every Table 1 cell: teacher L = N, student L = 0, hybrid pairs."""
    p = C10["paper"]
    cells = [("teacher", n, n) for n in p["steps"]]
    cells += [("student", n, 0) for n in p["steps"]]
    cells += [("hybrid", n, l) for n, l in p["hybrid"]]
    return cells


C10P_CELLS = [f"{m}_N{n}_L{l}" for m, n, l in c10p_cells()]
C10P_STUDENT = (
    f"{C10P}/weights/released_student.pt"
    if C10["paper"]["student_source"] == "released"
    else f"{C10P}/student/student.pt"
)


def c10p_sample_inputs(wildcards):
    need = {
        "teacher": ["teacher"],
        "student": ["student"],
        "hybrid": ["teacher", "student"],
    }
    files = {"teacher": f"{C10P}/weights/teacher.pt", "student": C10P_STUDENT}
    return {k: files[k] for k in need[wildcards.c10model]}


def c10p_sample_flags(wildcards, input):
    flags = [f"--{k}-ckpt {v}" for k, v in input.items()]
    if wildcards.c10model == "student" and C10["paper"]["student_source"] == "released":
        flags.append("--label released_student")
    return " ".join(flags)
