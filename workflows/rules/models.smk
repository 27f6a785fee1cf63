# Every model of a run gets a folder with its weights and a model.json card:
# fetched/ (published teachers, tokenizers, judges, released Di4C students),
# trained/ (the mini twins' teacher, digit classifier, VQ and judge LM),
# distilled/ (Di4C students, K = 1 baselines, di4c^2 rounds).


rule fetch_model:
    """A published file (pinned, locked, retried download or a local copy)."""
    input:
        unpack(standins_inputs),
    output:
        f"{RUN}/fetched/{{model}}/model.json",
    log:
        f"{RUN}/logs/fetch_{{model}}.log",
    benchmark:
        f"{RUN}/benchmarks/fetch_{{model}}.tsv"
    retries: 2
    params:
        py=PY,
        flags=step_flags,
        config=step_config("fetch"),
        pins=f"{PINS}/{{setting}}.json",
    shell:
        "{params.py} -m di4c.cli.fetch {params.flags} --config {params.config}"
        " --model {wildcards.model} --pins {params.pins}"
        " --out-dir $(dirname {output}) --log {log}"


rule train_teacher:
    """The mini twin's teacher with its family's objective (tauLDR, MaskGIT, MDLM)."""
    input:
        unpack(teacher_inputs),
    output:
        f"{RUN}/trained/teacher/model.json",
    log:
        f"{RUN}/logs/train_teacher.log",
    benchmark:
        f"{RUN}/benchmarks/train_teacher.tsv"
    threads: threads_of
    params:
        py=PY,
        flags=step_flags,
        config=step_config("teacher"),
    shell:
        "{params.py} -m di4c.cli.teacher {params.flags} --config {params.config}"
        " --data-dir $(dirname {input.data[0]}) --out-dir $(dirname {output})"
        " --log {log} --threads {threads}"


rule train_classifier:
    """The digit classifier: FID / IS features of the image mini twins."""
    input:
        f"{RUN}/data/data.json",
    output:
        f"{RUN}/trained/classifier/model.json",
    log:
        f"{RUN}/logs/train_classifier.log",
    benchmark:
        f"{RUN}/benchmarks/train_classifier.tsv"
    threads: threads_of
    params:
        py=PY,
        flags=step_flags,
        config=step_config("classifier"),
    shell:
        "{params.py} -m di4c.cli.classifier {params.flags} --config {params.config}"
        " --data-dir $(dirname {input}) --out-dir $(dirname {output})"
        " --log {log} --threads {threads}"


rule train_vq:
    """The ImageNet mini twin's VQ tokenizer (the VQGAN family, trained on digits)."""
    input:
        f"{RESULTS}/imagenet/{{scale}}/data/data.json",
    output:
        f"{RESULTS}/imagenet/{{scale}}/trained/vq/model.json",
    log:
        f"{RESULTS}/imagenet/{{scale}}/logs/train_vq.log",
    benchmark:
        f"{RESULTS}/imagenet/{{scale}}/benchmarks/train_vq.tsv"
    threads: imagenet_threads
    params:
        py=PY,
        config=imagenet_step_config("mini_vq"),
    shell:
        "{params.py} -m di4c.cli.mini_vq --scale {wildcards.scale} --config {params.config}"
        " --data-dir $(dirname {input}) --out-dir $(dirname {output})"
        " --log {log} --threads {threads}"


rule train_judge:
    """The OpenWebText mini twin's judge LM (GPT-2 architecture, judge texts only)."""
    input:
        f"{RESULTS}/openwebtext/{{scale}}/data/data.json",
    output:
        f"{RESULTS}/openwebtext/{{scale}}/trained/judge/model.json",
    log:
        f"{RESULTS}/openwebtext/{{scale}}/logs/train_judge.log",
    benchmark:
        f"{RESULTS}/openwebtext/{{scale}}/benchmarks/train_judge.tsv"
    threads: openwebtext_threads
    params:
        py=PY,
        config=openwebtext_step_config("judge"),
    shell:
        "{params.py} -m di4c.cli.judge --scale {wildcards.scale} --config {params.config}"
        " --data-dir $(dirname {input}) --out-dir $(dirname {output})"
        " --log {log} --threads {threads}"


rule distill:
    """A Di4C student (or K = 1 baseline, or di4c^2 round) from its teacher."""
    input:
        unpack(distill_inputs),
    output:
        f"{RUN}/distilled/{{model}}/model.json",
    log:
        f"{RUN}/logs/distill_{{model}}.log",
    benchmark:
        f"{RUN}/benchmarks/distill_{{model}}.tsv"
    threads: threads_of
    resources:
        gpu=gpus_of,
    params:
        py=PY,
        flags=step_flags,
        config=step_config("distill"),
    shell:
        "{params.py} -m di4c.cli.distill {params.flags} --config {params.config}"
        " --model {wildcards.model} --data-dir $(dirname {input.data[0]})"
        " --teacher {input.teacher} --init {input.init} --out-dir $(dirname {output})"
        " --log {log} --threads {threads}"
