# Sampling and scoring: one job per cell (model x steps [x hybrid split] [x CFG weight]
# [x noise precision]), the metric reference once per run, and the teacher-curve gate.


rule sample:
    """One cell's samples (per-sample seeds seed + i; the one hybrid rule)."""
    input:
        unpack(sample_inputs),
    output:
        f"{RUN}/samples/{{cell}}.pt",
    log:
        f"{RUN}/logs/sample_{{cell}}.log",
    benchmark:
        f"{RUN}/benchmarks/sample_{{cell}}.tsv"
    threads: threads_of
    resources:
        gpu=gpus_of,
    params:
        py=PY,
        flags=step_flags,
        config=step_config("sample"),
        cards=sample_cards,
    shell:
        "{params.py} -m di4c.cli.sample {params.flags} --config {params.config}"
        " --cell {wildcards.cell} {params.cards} --data-dir $(dirname {input.data[0]})"
        " --out {output} --log {log} --threads {threads}"


rule reference:
    """Reference features of the metrics and the table's reference rows."""
    input:
        unpack(standins_inputs),
        data=f"{RUN}/data/data.json",
        cards=metric_cards,
    output:
        f"{RUN}/reference/rows.json",
    log:
        f"{RUN}/logs/reference.log",
    benchmark:
        f"{RUN}/benchmarks/reference.tsv"
    threads: threads_of
    resources:
        gpu=gpus_of,
    params:
        py=PY,
        flags=step_flags,
        config=step_config("reference"),
        cards=metric_card_flags,
    shell:
        "{params.py} -m di4c.cli.reference {params.flags} --config {params.config}"
        " {params.cards} --data-dir $(dirname {input.data}) --out-dir $(dirname {output})"
        " --log {log} --threads {threads}"


rule score:
    """One cell's metric record (FID / IS / precision / recall, or gen PPL / entropy)."""
    input:
        samples=f"{RUN}/samples/{{cell}}.pt",
        rows=f"{RUN}/reference/rows.json",
        cards=metric_cards,
    output:
        f"{RUN}/metrics/{{cell}}.json",
    log:
        f"{RUN}/logs/score_{{cell}}.log",
    benchmark:
        f"{RUN}/benchmarks/score_{{cell}}.tsv"
    threads: threads_of
    resources:
        gpu=gpus_of,
    params:
        py=PY,
        flags=step_flags,
        config=step_config("score"),
        cards=metric_card_flags,
    shell:
        "{params.py} -m di4c.cli.score {params.flags} --config {params.config}"
        " {params.cards} --samples {input.samples} --reference $(dirname {input.rows})"
        " --out {output} --log {log} --threads {threads}"


rule check_teacher:
    """Stop before distilling unless the teacher still improves at teacher_check.min_steps."""
    input:
        check_inputs,
    output:
        f"{RUN}/teacher_check.json",
    log:
        f"{RUN}/logs/check_teacher.log",
    benchmark:
        f"{RUN}/benchmarks/check_teacher.tsv"
    params:
        py=PY,
        flags=step_flags,
        config=step_config("check"),
    shell:
        "{params.py} -m di4c.cli.check {params.flags} --config {params.config}"
        " --metrics {input} --out {output} --log {log}"
