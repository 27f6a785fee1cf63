# CIFAR-10 slice: paper Table 1 (tauLDR teacher, Di4C student; method.md §3) and its
# CPU mini twin on packaged digits. Targets: cifar10 (paper scale), cifar10_mini.
#
# Paper scale (one GPU, internet or local copies):
#   snakemake --cores 8 paper_tables/cifar10.csv
# - CIFAR-10 through torchvision into cifar10.paper.data_root (downloaded if missing);
# - teacher: tauLDR ckpt_0001999999.pt from the authors' Dropbox folder (zip, extracted),
#   or a local copy at cifar10.paper.teacher_ckpt; runs on its EMA weights;
# - student: our Di4C run (student_source: distill; 320k steps, resumable in
#   results/cifar10/paper/student/run) or the released Zenodo tldr-di4c.pt
#   (student_source: released; local copy at cifar10.paper.student_ckpt);
# - 9 cells (teacher / student / hybrid at 10, 20, 40 steps), 50,000 samples each,
#   FID and IS (torch-fidelity Inception) and clean-fid FID against CIFAR-10 train.
# Offline, each fetch fails with the name of the config key that takes a local copy.
C10 = config["cifar10"]
C10M = f"{RESULTS}/cifar10/mini"
C10P = f"{RESULTS}/cifar10/paper"
C10_LOGS = f"{RESULTS}/logs/cifar10"
C10M_VARIANTS = list(C10["mini"]["distill"]["variants"])
C10M_MODELS = ["teacher", *C10M_VARIANTS, "hybrid"]

TABLE_FILES["cifar10_mini"] = [f"{MINI}/cifar10.csv", f"{MINI}/cifar10.png"]
TABLE_FILES["cifar10"] = [f"{TABLES}/cifar10.csv", f"{TABLES}/cifar10.png"]


include: "cifar10_common.smk"


wildcard_constraints:
    c10variant="|".join(C10M_VARIANTS),
    c10model="|".join(["teacher", "student", "hybrid"]),


# ------------------------------------------------------------------ mini twin (CPU)


rule prepare_cifar10_mini_data:
    """Packaged digits, resized and quantised to S levels; train / held-out split."""
    output:
        f"{C10M}/data.pt",
    log:
        f"{C10_LOGS}/mini_data.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=cli_flags(C10["mini"]["data"]),
    shell:
        "{params.py} -m di4c.cli.cifar10_data --out {output} --log {log}"
        " --threads {threads} {params.flags}"


rule train_cifar10_mini_classifier:
    """Digit classifier on the held-out split: the FID / IS feature network."""
    input:
        f"{C10M}/data.pt",
    output:
        f"{C10M}/classifier.pt",
    log:
        f"{C10_LOGS}/mini_classifier.log",
    conda:
        ENV
    threads: 2
    params:
        py=PY,
        flags=cli_flags(C10["mini"]["classifier"]),
    shell:
        "{params.py} -m di4c.cli.cifar10_classifier --data {input} --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule train_cifar10_mini_teacher:
    """tauLDR-family UNet teacher (x0 cross-entropy) on the Gaussian-rate process."""
    input:
        f"{C10M}/data.pt",
    output:
        f"{C10M}/teacher.pt",
    log:
        f"{C10_LOGS}/mini_teacher.log",
    conda:
        ENV
    threads: 2
    params:
        py=PY,
        work=f"{C10M}/teacher_run",
        flags=" ".join(
            cli_flags(C10["mini"][k]) for k in ("teacher", "network", "process")
        ),
    shell:
        "{params.py} -m di4c.cli.cifar10_teacher --data {input} --out {output}"
        " --work-dir {params.work} --log {log} --threads {threads} {params.flags}"


rule sample_cifar10_mini_teacher:
    """Teacher sweep over N (analytical sampler, final argmax)."""
    input:
        f"{C10M}/teacher.pt",
    output:
        f"{C10M}/samples/teacher.pt",
    log:
        f"{C10_LOGS}/mini_sample_teacher.log",
    conda:
        ENV
    threads: 2
    params:
        py=PY,
        flags=c10m_sample_flags("teacher"),
    shell:
        "{params.py} -m di4c.cli.cifar10_sample --model teacher --teacher-ckpt {input}"
        " --out {output} --log {log} --threads {threads} {params.flags}"


rule score_cifar10_mini:
    """FID / IS under the digit classifier with split-half noise, for one model's sweep."""
    input:
        samples=f"{C10M}/samples/{{model}}.pt",
        data=f"{C10M}/data.pt",
        classifier=f"{C10M}/classifier.pt",
    output:
        f"{C10M}/metrics/{{model}}.json",
    log:
        f"{C10_LOGS}/mini_score_{{model}}.log",
    wildcard_constraints:
        model="|".join(C10M_MODELS),
    conda:
        ENV
    threads: 2
    params:
        py=PY,
        flags=cli_flags(C10["mini"]["metrics"]),
    shell:
        "{params.py} -m di4c.cli.cifar10_metrics --samples {input.samples}"
        " --reference-data {input.data} --weights-path {input.classifier}"
        " --out {output} --log {log} --threads {threads} {params.flags}"


rule check_cifar10_mini_teacher:
    """The teacher must still improve at min_steps before we distil (mini-twins.md)."""
    input:
        f"{C10M}/metrics/teacher.json",
    output:
        f"{C10M}/teacher_check.json",
    log:
        f"{C10_LOGS}/mini_teacher_check.log",
    conda:
        ENV
    params:
        py=PY,
        flags=cli_flags(C10["mini"]["teacher_check"]),
    shell:
        "{params.py} -m di4c.cli.cifar10_check --metrics {input} --out {output}"
        " --log {log} {params.flags}"


rule distill_cifar10_mini:
    """Di4C student (K = 16) or the equal-compute K = 1 baseline from the mini teacher."""
    input:
        teacher=f"{C10M}/teacher.pt",
        data=f"{C10M}/data.pt",
        check=f"{C10M}/teacher_check.json",
    output:
        f"{C10M}/students/{{c10variant}}.pt",
    log:
        f"{C10_LOGS}/mini_distill_{{c10variant}}.log",
    conda:
        ENV
    threads: 2
    params:
        py=PY,
        work=f"{C10M}/students/{{c10variant}}_run",
        variant=c10m_variant_flags,
        flags=c10m_distill_flags(),
    shell:
        "{params.py} -m di4c.cli.cifar10_distill --scale mini --teacher-ckpt {input.teacher}"
        " --data {input.data} --out {output} --work-dir {params.work} --log {log}"
        " --threads {threads} {params.variant} {params.flags}"


rule sample_cifar10_mini_student:
    """Student sweep over N (fresh lambda per image per step)."""
    input:
        f"{C10M}/students/{{c10variant}}.pt",
    output:
        f"{C10M}/samples/{{c10variant}}.pt",
    log:
        f"{C10_LOGS}/mini_sample_{{c10variant}}.log",
    conda:
        ENV
    threads: 2
    params:
        py=PY,
        flags=c10m_sample_flags("student"),
    shell:
        "{params.py} -m di4c.cli.cifar10_sample --model student --student-ckpt {input}"
        " --label {wildcards.c10variant} --out {output} --log {log}"
        " --threads {threads} {params.flags}"


rule sample_cifar10_mini_hybrid:
    """Hybrid -n N -l L: Di4C student first, the teacher for the last L steps."""
    input:
        teacher=f"{C10M}/teacher.pt",
        student=f"{C10M}/students/student.pt",
    output:
        f"{C10M}/samples/hybrid.pt",
    log:
        f"{C10_LOGS}/mini_sample_hybrid.log",
    conda:
        ENV
    threads: 2
    params:
        py=PY,
        flags=c10m_sample_flags("hybrid"),
    shell:
        "{params.py} -m di4c.cli.cifar10_sample --model hybrid"
        " --teacher-ckpt {input.teacher} --student-ckpt {input.student}"
        " --out {output} --log {log} --threads {threads} {params.flags}"


rule make_cifar10_mini_table:
    """Mini Table 1: FID / IS per model and N, speed-up note, plot."""
    input:
        metrics=expand(f"{C10M}/metrics/{{model}}.json", model=C10M_MODELS),
        classifier=f"{C10M}/classifier.pt",
    output:
        csv=report(
            f"{MINI}/cifar10.csv",
            caption="../report/cifar10.rst",
            category="CIFAR-10",
        ),
        png=report(
            f"{MINI}/cifar10.png",
            caption="../report/cifar10.rst",
            category="CIFAR-10",
        ),
        md=f"{MINI}/cifar10.md",
        meta=f"{MINI}/cifar10.meta.json",
    log:
        f"{C10_LOGS}/mini_table.log",
    conda:
        ENV
    params:
        py=PY,
        cmeta=f"{C10M}/classifier.meta.json",
    shell:
        "{params.py} -m di4c.cli.cifar10_table --scale mini --metrics {input.metrics}"
        " --classifier-meta {params.cmeta} --out {output.csv} --log {log}"


# ------------------------------------------------------------------ paper scale (GPU)


rule download_cifar10:
    """CIFAR-10 through torchvision (train: distillation data and FID/IS reference)."""
    output:
        f"{C10P}/cifar10_data.json",
    log:
        f"{C10_LOGS}/paper_data.log",
    conda:
        ENV
    params:
        py=PY,
        root=C10["paper"]["data_root"],
    shell:
        "{params.py} -m di4c.cli.cifar10_data --cifar10-root {params.root}"
        " --out {output} --log {log}"


rule fetch_cifar10_teacher:
    """tauLDR teacher ckpt_0001999999.pt (local copy or the pinned Dropbox folder)."""
    output:
        f"{C10P}/weights/teacher.pt",
    log:
        f"{C10_LOGS}/paper_fetch_teacher.log",
    conda:
        ENV
    params:
        py=PY,
        local=C10["paper"]["teacher_ckpt"],
        pins=f"{PINS}/cifar10.json",
    shell:
        "{params.py} -m di4c.cli.cifar10_fetch --what teacher --local '{params.local}'"
        " --pins {params.pins} --out {output} --log {log}"


rule fetch_cifar10_released_student:
    """The released Di4C student tldr-di4c.pt (Zenodo 15124163), evaluated without distilling."""
    output:
        f"{C10P}/weights/released_student.pt",
    log:
        f"{C10_LOGS}/paper_fetch_student.log",
    conda:
        ENV
    params:
        py=PY,
        local=C10["paper"]["student_ckpt"],
        pins=f"{PINS}/cifar10.json",
    shell:
        "{params.py} -m di4c.cli.cifar10_fetch --what released_student"
        " --local '{params.local}' --pins {params.pins} --out {output} --log {log}"


rule distill_cifar10_paper:
    """Di4C distillation with the paper's rules (K=16, 8 images, Adam 2e-4, EMA 0.9999)."""
    input:
        teacher=f"{C10P}/weights/teacher.pt",
        data=f"{C10P}/cifar10_data.json",
    output:
        f"{C10P}/student/student.pt",
    log:
        f"{C10_LOGS}/paper_distill.log",
    conda:
        ENV
    threads: 8
    resources:
        gpu=1,
        runtime=14 * 24 * 60,
    params:
        py=PY,
        root=C10["paper"]["data_root"],
        work=f"{C10P}/student/run",
        flags=cli_flags(C10["paper"]["distill"]),
    shell:
        "{params.py} -m di4c.cli.cifar10_distill --scale paper --teacher-ckpt {input.teacher}"
        " --cifar10-root {params.root} --out {output} --work-dir {params.work}"
        " --log {log} --threads {threads} {params.flags}"


rule sample_cifar10_paper:
    """One Table 1 cell: 50,000 samples of teacher / student / hybrid at N steps."""
    input:
        unpack(c10p_sample_inputs),
    output:
        f"{C10P}/samples/{{c10model}}_N{{steps}}_L{{last}}.pt",
    log:
        f"{C10_LOGS}/paper_sample_{{c10model}}_N{{steps}}_L{{last}}.log",
    wildcard_constraints:
        steps=r"\d+",
        last=r"\d+",
    conda:
        ENV
    threads: 8
    resources:
        gpu=1,
        runtime=24 * 60,
    params:
        py=PY,
        ckpts=c10p_sample_flags,
        flags=cli_flags(C10["paper"]["sampling"]),
    shell:
        "{params.py} -m di4c.cli.cifar10_sample --model {wildcards.c10model}"
        " --steps {wildcards.steps} --teacher-last {wildcards.last} {params.ckpts}"
        " --out {output} --log {log} --threads {threads} {params.flags}"


rule score_cifar10_paper:
    """FID / IS (torch-fidelity) and clean-fid FID of one cell vs CIFAR-10 train."""
    input:
        samples=f"{C10P}/samples/{{cell}}.pt",
        data=f"{C10P}/cifar10_data.json",
    output:
        f"{C10P}/metrics/{{cell}}.json",
    log:
        f"{C10_LOGS}/paper_score_{{cell}}.log",
    wildcard_constraints:
        cell="|".join(C10P_CELLS),
    conda:
        ENV
    threads: 8
    resources:
        gpu=1,
        runtime=6 * 60,
    params:
        py=PY,
        root=C10["paper"]["data_root"],
        flags=c10p_metrics_flags(),
    shell:
        "{params.py} -m di4c.cli.cifar10_metrics --samples {input.samples}"
        " --reference-cifar10 {params.root} --split-half false --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule make_cifar10_table:
    """Table 1: FID / IS per model and N beside the published values, plot."""
    input:
        expand(f"{C10P}/metrics/{{cell}}.json", cell=C10P_CELLS),
    output:
        csv=report(
            f"{TABLES}/cifar10.csv",
            caption="../report/cifar10.rst",
            category="CIFAR-10",
        ),
        png=report(
            f"{TABLES}/cifar10.png",
            caption="../report/cifar10.rst",
            category="CIFAR-10",
        ),
        md=f"{TABLES}/cifar10.md",
        meta=f"{TABLES}/cifar10.meta.json",
    log:
        f"{C10_LOGS}/paper_table.log",
    conda:
        ENV
    params:
        py=PY,
    shell:
        "{params.py} -m di4c.cli.cifar10_table --scale paper --metrics {input}"
        " --out {output.csv} --log {log}"
