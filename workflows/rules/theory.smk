TABLE_FILES["theory"] = [f"{TABLES}/theory.csv", f"{TABLES}/theory.png"]


rule make_theory_table:
    """Exact-TV theory table: Theorem 1 product samplers and Di4C students."""
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
        flags=cli_flags(config["theory"]),
    shell:
        "{params.py} -m di4c.cli.theory --out {output.csv} --threads {threads}"
        " --log {log} {params.flags}"
