# Tables: the paper tables (paper_scale) and their CPU twins (cpu_scale) from one step,
# and the exact theory table.


rule make_paper_table:
    """A paper table (Table 1, Fig. 3, Fig. 4) beside the published values, with plot."""
    input:
        unpack(paper_table_inputs),
    output:
        csv=report(
            f"{config['tables_dir']}/{{setting}}.csv",
            caption="../report/table.rst",
            category="Paper scale",
            subcategory="{setting}",
        ),
        png=report(
            f"{config['tables_dir']}/{{setting}}.png",
            caption="../report/table.rst",
            category="Paper scale",
            subcategory="{setting}",
        ),
        md=f"{config['tables_dir']}/{{setting}}.md",
        meta=f"{config['tables_dir']}/{{setting}}.meta.json",
    log:
        f"{RESULTS}/{{setting}}/{PAPER_SCALE}/logs/table.log",
    benchmark:
        f"{RESULTS}/{{setting}}/{PAPER_SCALE}/benchmarks/table.tsv"
    params:
        py=PY,
        scale=f"--scale {PAPER_SCALE}",
        teacher_of=paper_teacher_of,
    shell:
        "{params.py} -m di4c.cli.table --setting {wildcards.setting} {params.scale}"
        " --metrics {input.metrics} --rows {input.rows} --teacher-of {params.teacher_of}"
        " --out {output.csv} --log {log}"


rule make_cpu_table:
    """A mini twin's table (or the smoke run's), with its notes and plot."""
    input:
        unpack(cpu_table_inputs),
    output:
        csv=report(
            f"{config['mini_tables_dir']}/{{setting}}.csv",
            caption="../report/table.rst",
            category="CPU twins",
            subcategory="{setting}",
        ),
        png=report(
            f"{config['mini_tables_dir']}/{{setting}}.png",
            caption="../report/table.rst",
            category="CPU twins",
            subcategory="{setting}",
        ),
        md=f"{config['mini_tables_dir']}/{{setting}}.md",
        meta=f"{config['mini_tables_dir']}/{{setting}}.meta.json",
    log:
        f"{RESULTS}/{{setting}}/{CPU_SCALE}/logs/table.log",
    benchmark:
        f"{RESULTS}/{{setting}}/{CPU_SCALE}/benchmarks/table.tsv"
    params:
        py=PY,
        scale=f"--scale {CPU_SCALE}",
        teacher_of=cpu_teacher_of,
    shell:
        "{params.py} -m di4c.cli.table --setting {wildcards.setting} {params.scale}"
        " --metrics {input.metrics} --rows {input.rows} --teacher-of {params.teacher_of}"
        " --out {output.csv} --log {log}"


rule run_theory_experiment:
    """One theory experiment: exact product samplers and trained students."""
    output:
        f"{RESULTS}/theory/{{scale}}/{{experiment}}.json",
    log:
        f"{RESULTS}/theory/{{scale}}/logs/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/theory/{{scale}}/benchmarks/{{experiment}}.tsv"
    threads: 1
    params:
        py=PY,
        config=theory_config,
    shell:
        "{params.py} -m di4c.cli.theory experiment --scale {wildcards.scale}"
        " --experiment {wildcards.experiment} --config {params.config}"
        " --out {output} --threads {threads} --log {log}"


rule make_theory_table:
    """Exact-TV theory table: Theorem 1 product samplers and Di4C students."""
    input:
        theory_inputs,
    output:
        csv=report(
            f"{config['tables_dir']}/theory.csv",
            caption="../report/theory.rst",
            category="Theory",
        ),
        png=report(
            f"{config['tables_dir']}/theory.png",
            caption="../report/theory.rst",
            category="Theory",
        ),
        meta=f"{config['tables_dir']}/theory.meta.json",
    log:
        f"{RESULTS}/theory/{CPU_SCALE}/logs/table.log",
    benchmark:
        f"{RESULTS}/theory/{CPU_SCALE}/benchmarks/table.tsv"
    params:
        py=PY,
    shell:
        "{params.py} -m di4c.cli.theory table --inputs {input} --out {output.csv}"
        " --log {log}"
