TABLE_FILES["theory"] = [f"{TABLES}/theory.csv", f"{TABLES}/theory.png"]
THEORY_FLAGS = cli_flags(
    {k: v for k, v in config["theory"].items() if k != "experiments"}
)


wildcard_constraints:
    experiment="|".join(config["theory"]["experiments"]),


rule run_theory_experiment:
    """One theory experiment: exact product sampler and trained students."""
    output:
        json=f"{RESULTS}/theory/{{experiment}}.json",
        meta=f"{RESULTS}/theory/{{experiment}}.meta.json",
    log:
        f"{RESULTS}/logs/theory_{{experiment}}.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=THEORY_FLAGS,
    shell:
        "{params.py} -m di4c.cli.theory experiment --experiment {wildcards.experiment}"
        " --out {output.json} --threads {threads} --log {log} {params.flags}"


rule make_theory_table:
    """Exact-TV theory table: Theorem 1 product samplers and Di4C students."""
    input:
        expand(
            f"{RESULTS}/theory/{{experiment}}.json",
            experiment=config["theory"]["experiments"],
        ),
    output:
        csv=report(
            f"{TABLES}/theory.csv",
            caption="../report/theory.rst",
            category="Theory",
        ),
        png=report(
            f"{TABLES}/theory.png",
            caption="../report/theory.rst",
            category="Theory",
        ),
        meta=f"{TABLES}/theory.meta.json",
    log:
        f"{RESULTS}/logs/theory.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
    shell:
        "{params.py} -m di4c.cli.theory table --inputs {input} --out {output.csv}"
        " --threads {threads} --log {log}"
